#!/usr/bin/env bash
# Evaluate an official EVE checkpoint (.pth): convert it into an eve bundle, describe it,
# predict a split of a prepared dataset with it (eve-finetune --eval-only) and score the
# predictions with the official metrics.
#
# usage: official-checkpoint.sh --checkpoint X.pth --config vlmo_config.json
#            --tokenizer SPM.model --task vqa|nlvr2|retrieval --data DATASET_DIR
#            --work WORKDIR [--split SPLIT] [--answers answer_list.json]
#            [--annotations ANNOTATIONS --questions QUESTIONS] [--compat eve|official]
#            [--gpus N] [--dry-run] [-- extra eve-finetune flags]
#
#   --checkpoint X.pth  the fine-tuned checkpoint (a 'model' state dict or a bare one)
#   --config C          the vlmo-style model config it was trained with
#   --tokenizer M       its sentencepiece model (the records are re-encoded with it)
#   --task T            vqa, nlvr2 or retrieval: which head the checkpoint carries (an
#                       NLVR2 bi-attention head is found and used by itself)
#   --data DIR          a prepared dataset dir: WORKDIR/data of vqa.sh, nlvr2.sh or
#                       retrieval.sh (WORKDIR/data-test-dev of vqa.sh for test-dev), or any
#                       eve-prep output of the task; it is read, never written
#   --work WORKDIR      everything the recipe writes; a rerun resumes there
#   --split S           the split to predict (default: val for vqa, dev for nlvr2, test for
#                       retrieval)
#   --answers A         VQA: the checkpoint's answer list (JSON list, index = class; ALBEF/
#                       EVE's answer_list.json); required with --task vqa
#   --annotations A, --questions Q
#                       VQA: the official annotation and question files of the split, to
#                       score it (without them the predictions are the result, e.g. for
#                       test-dev, in the EvalAI form)
#   --compat C          behaviour recorded in the bundle (eve-convert-checkpoint --compat):
#                       official (the default) evaluates as the released code does
#                       (capacity limits and routing noise at inference, retrieval
#                       embeddings before the final LayerNorm, the released batching);
#                       eve is eve's own, independent of the batch. Pass
#                       -- --deterministic-routing for numbers that are the same every run
#   --gpus N            N workers with one GPU each (--nproc-per-node N --device cuda)
#   --dry-run           print the commands that would run; create nothing
#   -- FLAGS            passed to eve-finetune (--k-test 128 for Flickr30k, --image-res,
#                       --eval-batch-size ...)
#
# Expected inputs:
#
#   X.pth                torch.save'd checkpoint, e.g. EVE's released VQA/NLVR2/retrieval
#                        fine-tuned weights (the converter reads it with Debian's
#                        python3-torch; $EVE_PYTHON, default /usr/bin/python3)
#   vlmo_config.json     the model config (configs/config_vlmoB_base64k.json style)
#   SPM.model            the sentencepiece model the checkpoint was trained with
#   DATASET_DIR/
#   |-- manifest.json    written by eve-prep
#   |-- images.idx       the image index
#   |-- images-00000.tar ...
#   `-- <split>.jsonl    the records to predict (the token ids are made here)
#
# Writes WORKDIR/bundle (the converted bundle), WORKDIR/describe.txt (eve-embed
# --describe), WORKDIR/data (links to DATASET_DIR's images + the records encoded with the
# checkpoint's tokenizer), WORKDIR/eval (predictions/ in the official form, results.json)
# and WORKDIR/metrics-<split>.txt (printed at the end).
#
# Runtime: one forward pass per example (two for NLVR2) at the checkpoint's resolution;
# retrieval adds the ITM re-rank of the top --k-test candidates of every query (COCO 5k
# test at k 256: about 7.7 million fused passes). Minutes on GPUs for VQA and NLVR2; the
# COCO re-rank is hours on one GPU (--gpus N divides it).
set -euo pipefail
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash"

recipe_parse "--checkpoint:CKPT --config:CONFIG --tokenizer:TOKENIZER --task:TASK --data:DATA --split:SPLIT
  --answers:ANSWERS --annotations:ANN --questions:QUES --compat:COMPAT" "$@"
require_opts --checkpoint CKPT --config CONFIG --tokenizer TOKENIZER --task TASK --data DATA --work WORK
one_of --task "$TASK" vqa nlvr2 retrieval
[[ -z $COMPAT ]] || one_of --compat "$COMPAT" eve official
[[ -z $SIZE ]] || usage_error "--size: the images come prepared in --data"
if [[ $TASK == vqa ]]; then
  [[ -n $ANSWERS ]] || usage_error "--task vqa needs --answers (the checkpoint's answer list)"
  [[ -n $ANN && -n $QUES || -z $ANN && -z $QUES ]] || usage_error "--annotations and --questions go together"
else
  [[ -z $ANSWERS && -z $ANN && -z $QUES ]] || usage_error "--answers, --annotations and --questions are for --task vqa"
fi
declare -A default_split=([vqa]=val [nlvr2]=dev [retrieval]=test)
SPLIT=${SPLIT:-${default_split[$TASK]}}
use_programs eve-tokenize eve-embed eve-finetune eve-score

expect_file "$CKPT" "the official checkpoint (.pth)"
expect_file "$CONFIG" "the checkpoint's vlmo-style config JSON"
expect_file "$TOKENIZER" "the checkpoint's sentencepiece model"
[[ -z $ANSWERS ]] || expect_file "$ANSWERS" "the checkpoint's VQA answer list (JSON list of strings)"
[[ -z $ANN ]] || expect_file "$ANN" "the official VQA annotations of split $SPLIT"
[[ -z $QUES ]] || expect_file "$QUES" "the official VQA questions of split $SPLIT"
expect_file "$DATA/manifest.json" "an eve-prep dataset dir"
expect_file "$DATA/images.idx" "the image index eve-prep writes"
expect_file "$DATA/$SPLIT.jsonl" "the $SPLIT records eve-prep wrote (pick another with --split)"
expect_file "$PYTHON" "a Python 3 with torch and numpy for eve-convert-checkpoint (set EVE_PYTHON)"
begin_work
bundle=$WORK/bundle
convert=("$PYTHON" "$REPO/scripts/eve-convert-checkpoint" "$CKPT" "$CONFIG" "$bundle" --tokenizer "$TOKENIZER")
[[ -z $COMPAT ]] || convert+=(--compat "$COMPAT")
done_marker=$bundle/tokenizer.model  # the converter's last file
[[ -z $ANSWERS ]] || { convert+=(--answers "$ANSWERS"); done_marker=$bundle/answers.json; }
stage "convert" "$done_marker" "${convert[@]}"
stage_stdout "describe" "$WORK/describe.txt" "${PROG[eve-embed]}" --describe "$bundle"
show_tables "the converted bundle" "$WORK/describe.txt"
# Say which evaluation path runs: compat official is the released code's (the default for a
# converted checkpoint), compat eve eve's own.
[[ -n $DRY_RUN ]] || log "evaluation path: $(sed -n 's/^compat *//p' "$WORK/describe.txt")"

shopt -s nullglob
stage_links "data" "$WORK/data" "$DATA"/images-*.tar "$DATA/images.idx" "$DATA/manifest.json" "$DATA/$SPLIT.jsonl"
encode_splits "$WORK/data" "$bundle/tokenizer.model" "$SPLIT"
declare -A recipe=([vqa]=vqa [nlvr2]=nlvr2 [retrieval]=retrieval-coco)
# An NLVR2 checkpoint with the bi-attention head (EVE's documented NLVR2 command uses it)
# is predicted with that head; the converter names it nlvr2_biattn in config.json.
head=()
if [[ $TASK == nlvr2 && -f $bundle/config.json ]] && grep -q '"nlvr2_biattn"' "$bundle/config.json"; then
  head=(--head biattn)
fi
run=$WORK/eval
stage "predict $SPLIT" "$run/results.json" "${PROG[eve-finetune]}" --task "$TASK" \
  --recipe "$(share_file tasks "${recipe[$TASK]}")" "${head[@]}" --eval-only --model "$bundle" --data "$WORK/data" \
  --predict "$SPLIT.ids" --out "$run" "${GPU_ARGS[@]}" "${EXTRA[@]}"

metrics=$WORK/metrics-$SPLIT.txt
score=("${PROG[eve-score]}" --format table)
case $TASK in
  vqa)
    if [[ -n $ANN ]]; then
      stage_stdout "score $SPLIT" "$metrics" "${score[@]}" vqa --annotations "$ANN" --questions "$QUES" --pred "$run/predictions/$SPLIT.json"
    else
      [[ -n $DRY_RUN ]] || log "no --annotations/--questions: the predictions are the result: $run/predictions/$SPLIT.json (EvalAI form)"
      exit 0
    fi
    ;;
  nlvr2)
    stage_stdout "score $SPLIT" "$metrics" "${score[@]}" nlvr2 --gold "$DATA/$SPLIT.jsonl" --pred "$run/predictions/$SPLIT.csv"
    ;;
  retrieval)
    stage_stdout "score $SPLIT" "$metrics" "${score[@]}" retrieval --ann "$DATA/$SPLIT.jsonl" \
      --i2t "$run/predictions/$SPLIT.i2t.npy" --t2i "$run/predictions/$SPLIT.t2i.npy"
    ;;
esac
show_tables "$TASK $SPLIT, official checkpoint $CKPT" "$metrics"
