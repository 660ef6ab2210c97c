#!/usr/bin/env bash
# Image-text retrieval on COCO 5k or Flickr30k 1k (Karpathy splits): prepare, fine-tune a
# pre-trained bundle with the EVE recipe, predict and score the test split.
#
# usage: retrieval.sh --dataset coco|flickr --root DIR --model BUNDLE --work WORKDIR
#                     [--gpus N] [--size PX] [--dry-run] [-- extra eve-finetune flags]
#
#   --dataset coco|flickr  which Karpathy split (recipe retrieval-coco or retrieval-flickr)
#   --root DIR             the annotations and images, laid out as below
#   --model BUNDLE          pre-trained model bundle (its tokenizer.model encodes the captions)
#   --work WORKDIR         everything the recipe writes; a rerun resumes there
#   --gpus N               N workers with one GPU each (--nproc-per-node N --device cuda)
#   --size PX              shorter image side stored by eve-prep (default 512)
#   --dry-run              print the commands that would run; create nothing
#   -- FLAGS               passed to eve-finetune (--epochs 5, --batch-size 64, --k-test 64 ...)
#
# Expected input layout (the Karpathy JSON files as ALBEF/X-VLM/EVE publish them; image paths
# inside them are relative to DIR):
#
#   DIR/ (--dataset coco)
#   |-- coco_train.json     one entry per caption: {"image", "caption", "image_id"} (113,287 images)
#   |-- coco_val.json       one entry per image: {"image", "caption": [...]} (5,000 images)
#   |-- coco_test.json      the same form (5,000 images, about 25,000 captions)
#   |-- train2014/          COCO_train2014_*.jpg
#   `-- val2014/            COCO_val2014_*.jpg (Karpathy restval, val and test come from here)
#
#   DIR/ (--dataset flickr)
#   |-- flickr30k_train.json  one entry per caption (29,000 images)
#   |-- flickr30k_val.json    one entry per image (1,014 images)
#   |-- flickr30k_test.json   one entry per image (1,000 images, 5,000 captions)
#   `-- flickr30k-images/     <id>.jpg
#
# Writes WORKDIR/data (eve-prep dataset dir with token ids), WORKDIR/finetune (the run: best
# bundle picked on val, predictions/test.{i2t,t2i}.npy and rank files, results.json,
# metrics.jsonl) and WORKDIR/metrics-test.txt (eve-score retrieval on the test predictions,
# printed at the end).
#
# Runtime: the recipe is EVE's (384 px, 10 epochs, global batch 256 for COCO / 128 for
# Flickr30k, ITM re-rank of the top 256 / 128 candidates). COCO is 10 epochs over about
# 567k captions, about 22,000 optimiser steps with three fused passes per step for the
# hard-negative matching, plus a test evaluation of 5,000 x 256 + 25,000 x 256 fused passes;
# Flickr30k about 11,300 steps. That is multi-GPU work (for EVE-Base, 8 GPUs with 40-80 GB
# each: --gpus 8); on CPU only the toy sizes are practical. The paper gives no GPU-hours:
# read samples_per_s in WORKDIR/finetune/metrics.jsonl after a few minutes to extrapolate.
set -euo pipefail
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash"

recipe_parse "--dataset:DATASET --root:ROOT --model:INIT" "$@"
require_opts --dataset DATASET --root ROOT --model INIT --work WORK
one_of --dataset "$DATASET" coco flickr
use_programs eve-prep eve-tokenize eve-finetune eve-score

if [[ $DATASET == coco ]]; then
  prefix=coco
  expect_dir "$ROOT/train2014" "the COCO train2014 images (COCO_train2014_*.jpg)"
  expect_dir "$ROOT/val2014" "the COCO val2014 images (COCO_val2014_*.jpg)"
else
  prefix=flickr30k
  expect_dir "$ROOT/flickr30k-images" "the Flickr30k images (<id>.jpg)"
fi
expect_file "$ROOT/${prefix}_train.json" "Karpathy train split, one {\"image\", \"caption\", \"image_id\"} per caption"
for split in val test; do
  expect_file "$ROOT/${prefix}_$split.json" "Karpathy $split split, one {\"image\", \"caption\": [...]} per image"
done
expect_bundle "$INIT"
begin_work
data=$WORK/data
run=$WORK/finetune
stage "prep" "$data/manifest.json" "${PROG[eve-prep]}" retrieval "${PREP_ARGS[@]}" \
  --ann "train=$ROOT/${prefix}_train.json" --ann "val=$ROOT/${prefix}_val.json" \
  --ann "test=$ROOT/${prefix}_test.json" --images "$ROOT" --out "$data"
encode_splits "$data" "$INIT/tokenizer.model" train val test
stage "finetune" "$run/results.json" "${PROG[eve-finetune]}" --task retrieval --recipe "$(share_file tasks "retrieval-$DATASET")" \
  --data "$data" --model "$INIT" --predict test.ids --out "$run" "${GPU_ARGS[@]}" "${EXTRA[@]}"
stage_stdout "score test" "$WORK/metrics-test.txt" "${PROG[eve-score]}" --format table retrieval \
  --ann "$ROOT/${prefix}_test.json" --i2t "$run/predictions/test.i2t.npy" --t2i "$run/predictions/test.t2i.npy"
show_tables "$DATASET retrieval, Karpathy test (txt_r = image query, img_r = text query)" "$WORK/metrics-test.txt"
