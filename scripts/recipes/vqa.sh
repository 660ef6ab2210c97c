#!/usr/bin/env bash
# VQA v2 from the official question and annotation files (+ Visual Genome QA): prepare,
# fine-tune a pre-trained bundle with the EVE recipe, score val with the official
# evaluator, and predict test-dev as an EvalAI submission file.
#
# usage: vqa.sh --root DIR --model BUNDLE --work WORKDIR [--images COCO_DIR] [--vg VG_DIR]
#               [--trainval] [--gpus N] [--size PX] [--dry-run] [-- extra eve-finetune flags]
#
#   --root DIR        the official VQA v2 files, laid out as below
#   --model BUNDLE     pre-trained model bundle (its tokenizer.model encodes the questions)
#   --work WORKDIR    everything the recipe writes; a rerun resumes there
#   --images COCO_DIR the COCO images: train2014/, val2014/, test2015/ (default: DIR)
#   --vg VG_DIR       also train on Visual Genome QA in the EVE/ALBEF form (below)
#   --trainval        also train on val, as the paper does for its test-dev numbers; val is
#                     then not held out, so it is neither used for picking nor scored
#   --gpus N          N workers with one GPU each (--nproc-per-node N --device cuda)
#   --size PX         shorter image side stored by eve-prep (default 512)
#   --dry-run         print the commands that would run; create nothing
#   -- FLAGS          passed to eve-finetune (--epochs 5, --batch-size 64, --image-res 384 ...)
#
# Expected input layout (file names as visualqa.org publishes them):
#
#   DIR/
#   |-- v2_OpenEnded_mscoco_train2014_questions.json     443,757 questions
#   |-- v2_mscoco_train2014_annotations.json             10 human answers each
#   |-- v2_OpenEnded_mscoco_val2014_questions.json       214,354 questions
#   |-- v2_mscoco_val2014_annotations.json
#   |-- v2_OpenEnded_mscoco_test-dev2015_questions.json  107,394 questions (no answers)
#   |-- v2_OpenEnded_mscoco_test2015_questions.json      optional, 447,793 questions: when
#   |                                                    present the submission answers all of
#   |                                                    them (EvalAI checks the test-dev phase
#   |                                                    against the whole test2015 set)
#   `-- answer_list.json                                 optional: the answer vocabulary (JSON
#                                                        list, e.g. ALBEF/EVE's 3,128 answers);
#                                                        default: the 3,128 most frequent
#                                                        training answers
#   COCO_DIR/ (default DIR)
#   |-- train2014/COCO_train2014_<image_id:012>.jpg
#   |-- val2014/COCO_val2014_<image_id:012>.jpg
#   `-- test2015/COCO_test2015_<image_id:012>.jpg
#
#   VG_DIR/ (--vg)
#   |-- vg_qa.json   [{"question": str, "answer": str, "image": "<path under VG_DIR>",
#   |                  "dataset": "vg"}, ...] as ALBEF/EVE distribute Visual Genome QA
#   `-- the images vg_qa.json names (e.g. VG_100K/, VG_100K_2/)
#
# Writes WORKDIR/data (train, val [, vg] records with token ids), WORKDIR/data-test-dev (the
# test questions; data-test with test2015), WORKDIR/finetune (the run: best bundle on val,
# predictions/val.json, results.json, metrics.jsonl), WORKDIR/predict-test-dev (its test
# predictions),
# WORKDIR/metrics-val.txt (the official accuracy on val, printed at the end) and the EvalAI
# submission WORKDIR/v2_OpenEnded_mscoco_<test-dev2015|test2015>_eve_results.json.
#
# Runtime: the recipe is EVE's (480 px, 10 epochs, global batch 128, lr 3e-5): 10 epochs over
# 443,757 training questions (658,111 with --trainval, more with VG) are about 35,000 (51,000)
# optimiser steps at 900 image tokens per sample, then one forward pass per val and test
# question. Multi-GPU work (for EVE-Base, 8 GPUs with 40-80 GB each: --gpus 8); the paper
# gives no GPU-hours: read samples_per_s in WORKDIR/finetune/metrics.jsonl to extrapolate.
set -euo pipefail
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash"

recipe_parse "--root:ROOT --model:INIT --images:IMAGES --vg:VG --trainval!TRAINVAL" "$@"
require_opts --root ROOT --model INIT --work WORK
IMAGES=${IMAGES:-$ROOT}
use_programs eve-prep eve-tokenize eve-finetune eve-score

questions() { printf '%s/v2_OpenEnded_mscoco_%s_questions.json' "$ROOT" "$1"; }
annotations() { printf '%s/v2_mscoco_%s_annotations.json' "$ROOT" "$1"; }
for s in train2014 val2014; do
  expect_file "$(questions $s)" "the official $s questions"
  expect_file "$(annotations $s)" "the official $s annotations (10 answers per question)"
  expect_dir "$IMAGES/$s" "the COCO $s images (COCO_${s}_<image_id:012>.jpg)"
done
expect_file "$(questions test-dev2015)" "the official test-dev questions"
expect_dir "$IMAGES/test2015" "the COCO test2015 images (COCO_test2015_<image_id:012>.jpg)"
if [[ -n $VG ]]; then
  expect_file "$VG/vg_qa.json" "Visual Genome QA in the EVE/ALBEF form, image paths relative to $VG"
fi
expect_bundle "$INIT"
begin_work

# The submission covers test2015 when its question file is there (what EvalAI checks).
test_subtype=test-dev2015
[[ -f $(questions test2015) ]] && test_subtype=test2015
test_split=${test_subtype%2015}
[[ $test_subtype == test2015 ]] ||
  log "note: $(questions test2015) is absent: the submission answers test-dev only (EvalAI may want all test2015 questions)"
data=$WORK/data
run=$WORK/finetune
test_data=$WORK/data-$test_split
test_run=$WORK/predict-$test_split
prep=("${PROG[eve-prep]}" vqa "${PREP_ARGS[@]}" --images "$IMAGES")
vg_prep=() vg_train=() answers=() splits=(train val)
if [[ -n $VG ]]; then
  vg_prep=(--ann "vg=$VG/vg_qa.json" --vg-images "$VG")
  vg_train=(--train vg.ids)
  splits+=(vg)
fi
[[ ! -f $ROOT/answer_list.json ]] || answers=(--answers "$ROOT/answer_list.json")

stage "prep" "$data/manifest.json" "${prep[@]}" \
  --questions "train=$(questions train2014)" --annotations "train=$(annotations train2014)" \
  --questions "val=$(questions val2014)" --annotations "val=$(annotations val2014)" "${vg_prep[@]}" \
  --image-name "{data_subtype}/COCO_{data_subtype}_{image_id:012}.jpg" --out "$data"
stage "prep $test_split" "$test_data/manifest.json" "${prep[@]}" \
  --questions "$test_split=$(questions "$test_subtype")" \
  --image-name "test2015/COCO_test2015_{image_id:012}.jpg" --out "$test_data"
encode_splits "$data" "$INIT/tokenizer.model" "${splits[@]}"
encode_splits "$test_data" "$INIT/tokenizer.model" "$test_split"

if [[ -n $TRAINVAL ]]; then
  held=(--train train.ids --train val.ids "${vg_train[@]}" --val none)
else
  held=(--train train.ids "${vg_train[@]}" --val val.ids)
fi
stage "finetune" "$run/results.json" "${PROG[eve-finetune]}" --task vqa --recipe "$(share_file tasks vqa)" --data "$data" \
  --model "$INIT" "${held[@]}" "${answers[@]}" --out "$run" "${GPU_ARGS[@]}" "${EXTRA[@]}"
stage "predict $test_split" "$test_run/results.json" "${PROG[eve-finetune]}" --task vqa --recipe "$(share_file tasks vqa)" --eval-only \
  --model "$run" --data "$test_data" --predict "$test_split.ids" --out "$test_run" \
  "${GPU_ARGS[@]}" "${EXTRA[@]}"
submission=$WORK/v2_OpenEnded_mscoco_${test_subtype}_eve_results.json
stage_stdout "submission" "$submission" cat "$test_run/predictions/$test_split.json"

if [[ -z $TRAINVAL ]]; then
  stage_stdout "score val" "$WORK/metrics-val.txt" "${PROG[eve-score]}" --format table vqa \
    --annotations "$(annotations val2014)" --questions "$(questions val2014)" --pred "$run/predictions/val.json"
  show_tables "VQA v2 val accuracy (official evaluator)" "$WORK/metrics-val.txt"
fi
[[ -n $DRY_RUN ]] || log "EvalAI submission ($test_subtype): $submission (upload it to the VQA challenge on eval.ai)"
