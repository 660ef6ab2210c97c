#!/usr/bin/env bash
# NLVR2 from the official JSON lines files: prepare, fine-tune a pre-trained bundle with the
# EVE recipe (best model picked on dev), predict dev and test-P (test1), and score both with
# the official accuracy and consistency.
#
# usage: nlvr2.sh --root DIR --model BUNDLE --work WORKDIR [--images IMG_DIR]
#                 [--gpus N] [--size PX] [--dry-run] [-- extra eve-finetune flags]
#
#   --root DIR        the official NLVR2 files, laid out as below
#   --model BUNDLE     pre-trained model bundle (its tokenizer.model encodes the statements)
#   --work WORKDIR    everything the recipe writes; a rerun resumes there
#   --images IMG_DIR  the image folders train/ dev/ test1/ (default: DIR/images)
#   --gpus N          N workers with one GPU each (--nproc-per-node N --device cuda)
#   --size PX         shorter image side stored by eve-prep (default 512)
#   --dry-run         print the commands that would run; create nothing
#   -- FLAGS          passed to eve-finetune (--head biattn, --epochs 5, --batch-size 64 ...)
#
# Expected input layout (lil-lab/nlvr: nlvr2/data/*.json, and the images the maintainers
# hand out, unpacked; an image may be a JPEG under a .png name):
#
#   DIR/
#   |-- train.json     86,373 statements, one JSON object per line: "identifier",
#   |                  "sentence", "label" ("True"/"False"), "directory" (0..99), ...
#   |-- dev.json       6,982 statements
#   |-- test1.json     6,967 statements (test-P)
#   `-- images/        (IMG_DIR)
#       |-- train/<directory>/train-<set>-<pair>-img0.png, ...-img1.png
#       |-- dev/dev-<set>-<pair>-img0.png, ...-img1.png
#       `-- test1/test1-<set>-<pair>-img0.png, ...-img1.png
#
# Writes WORKDIR/data (records with token ids), WORKDIR/finetune (the run: best bundle on
# dev, predictions/dev.csv and predictions/test1.csv in the official CSV form, results.json,
# metrics.jsonl) and WORKDIR/metrics-{dev,test1}.txt (accuracy and consistency, printed at
# the end).
#
# Runtime: the recipe is EVE's (384 px, 10 epochs, global batch 128, lr 3.5e-5, two fused
# passes per statement): 10 epochs over 86,373 statements are about 6,700 optimiser steps,
# then two passes per dev and test1 statement. Multi-GPU work (for EVE-Base, 8 GPUs with
# 40-80 GB each: --gpus 8); the paper gives no GPU-hours: read samples_per_s in
# WORKDIR/finetune/metrics.jsonl to extrapolate.
set -euo pipefail
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash"

recipe_parse "--root:ROOT --model:INIT --images:IMAGES" "$@"
require_opts --root ROOT --model INIT --work WORK
IMAGES=${IMAGES:-$ROOT/images}
use_programs eve-prep eve-tokenize eve-finetune eve-score

splits=(train dev test1)
for s in "${splits[@]}"; do
  expect_file "$ROOT/$s.json" "the official NLVR2 $s statements, JSON lines"
  expect_dir "$IMAGES/$s" "the NLVR2 $s images ($s-<set>-<pair>-img0.png and -img1.png)"
done
expect_bundle "$INIT"
begin_work
data=$WORK/data
run=$WORK/finetune
stage "prep" "$data/manifest.json" "${PROG[eve-prep]}" nlvr2 "${PREP_ARGS[@]}" \
  --ann "train=$ROOT/train.json" --ann "dev=$ROOT/dev.json" --ann "test1=$ROOT/test1.json" \
  --images "$IMAGES" --out "$data"
encode_splits "$data" "$INIT/tokenizer.model" "${splits[@]}"
stage "finetune" "$run/results.json" "${PROG[eve-finetune]}" --task nlvr2 --recipe "$(share_file tasks nlvr2)" \
  --data "$data" --model "$INIT" --val dev.ids --predict test1.ids --out "$run" "${GPU_ARGS[@]}" "${EXTRA[@]}"
for s in dev test1; do
  stage_stdout "score $s" "$WORK/metrics-$s.txt" "${PROG[eve-score]}" --format table nlvr2 \
    --gold "$ROOT/$s.json" --pred "$run/predictions/$s.csv"
done
show_tables "NLVR2 dev (accuracy and consistency as fractions)" "$WORK/metrics-dev.txt" \
  "NLVR2 test-P" "$WORK/metrics-test1.txt"
