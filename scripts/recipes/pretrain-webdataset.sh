#!/usr/bin/env bash
# Pre-training on img2dataset webdataset shards (CC3M, SBU, CC12M, LAION ...): prepare the
# caption pairs, train a tokenizer on their captions (or take one), encode, and pre-train
# by masked signal modeling with eve-pretrain.
#
# usage: pretrain-webdataset.sh --shards SPEC [--shards SPEC ...] --work WORKDIR
#            [--config PRESET|config.json] [--tokenizer TOK.model] [--vocab-size N]
#            [--gpus N] [--size PX] [--dry-run] [-- extra eve-pretrain flags]
#
#   --shards SPEC     a directory of .tar shards, a brace range 'DIR/{00000..00099}.tar'
#                     (quote it), or one .tar file; repeat for several sources (CC3M + SBU)
#   --work WORKDIR    everything the recipe writes; a rerun resumes there
#   --config C        model preset (eve-tiny, eve-small, eve-base, eve-large) or a
#                     config.json (default eve-base)
#   --tokenizer M     a sentencepiece model to use (eve-tokenize's special ids: pad 0, unk 1,
#                     cls 2, sep 3, mask 4); default: train one on the captions
#   --vocab-size N    vocabulary of the trained tokenizer (default 64000, as eve-base)
#   --gpus N          N workers with one GPU each (--nproc-per-node N --device cuda)
#   --size PX         shorter image side stored by eve-prep (default 512)
#   --dry-run         print the commands that would run; create nothing
#   -- FLAGS          passed to eve-pretrain (--batch-size, --epochs or --max-steps, --lr,
#                     --save-every, --objective ...; see eve-pretrain --help)
#
# Expected input layout (img2dataset --output_format webdataset, default shard naming):
#
#   DIR/
#   |-- 00000.tar           POSIX tar: <key>.jpg + <key>.txt (the caption) [+ <key>.json]
#   |                       per sample, key = 9 digits (shard * 10^4 + row)
#   |-- 00000.parquet       (not read)
#   |-- 00000_stats.json    (not read)
#   |-- 00001.tar
#   `-- ...
#
# Writes WORKDIR/data (the pairs as an eve-prep dataset dir: image shards, train.jsonl,
# train.ids.jsonl, manifest.json with the skipped samples by reason), WORKDIR/tok.model +
# tok.json (the tokenizer and its special ids) and WORKDIR/pretrain (the run: checkpoints,
# metrics.jsonl, and the latest model bundle, the --model of the fine-tuning recipes).
# The pre-training stage counts as done when eve-pretrain last exited 0 (WORKDIR/.done);
# an interrupted run resumes from its last checkpoint.
#
# Runtime: CC3M gives about 3 million pairs once downloaded and SBU about 0.9 million (EVE's
# 4M-image corpus adds COCO and Visual Genome); eve-prep decodes and resizes each image
# once, on all cores. Steps = epochs x pairs / batch: one epoch of 3.9 million pairs at a
# global batch of 1,024 is about 3,800 optimiser steps. The paper states neither its
# pre-training steps nor its GPU-hours (only that masked signal modeling is 3.5x faster
# than ITC+ITM); at this scale pre-training an EVE-Base is multi-GPU work measured in days
# (--gpus 8, or torchrun/srun across nodes; see eve-pretrain(1)).
set -euo pipefail
# shellcheck source=common.bash
source "$(dirname "$0")/common.bash"

recipe_parse "--shards+SHARD_SPECS --config:CONFIG --tokenizer:TOKENIZER --vocab-size:VOCAB" "$@"
((${#SHARD_SPECS[@]})) || usage_error "--shards is required"
require_opts --work WORK
CONFIG=${CONFIG:-eve-base}
VOCAB=${VOCAB:-64000}
[[ $VOCAB =~ ^[1-9][0-9]*$ ]] || usage_error "--vocab-size $VOCAB: expected a positive number"
use_programs eve-prep eve-tokenize eve-pretrain eve-embed

shards=()
for spec in "${SHARD_SPECS[@]}"; do
  mapfile -t found < <(expand_shards "$spec")
  ((${#found[@]})) || MISSING+=("$spec|webdataset shards: it names no .tar file")
  for f in "${found[@]}"; do
    expect_file "$f" "a webdataset shard (<key>.jpg + <key>.txt per sample) from --shards $spec"
    shards+=("$f")
  done
done
[[ -z $TOKENIZER ]] || expect_file "$TOKENIZER" "the sentencepiece model given with --tokenizer"
if [[ $CONFIG == */* || $CONFIG == *.json ]]; then
  expect_file "$CONFIG" "the model config given with --config"
elif [[ ! -f $REPO/share/eve/configs/$CONFIG.json ]]; then
  usage_error "--config $CONFIG: no such preset (eve-tiny, eve-small, eve-base, eve-large) or config file"
fi
begin_work
data=$WORK/data
tok=$WORK/tok.model
stage "prep" "$data/manifest.json" "${PROG[eve-prep]}" webdataset "${PREP_ARGS[@]}" \
  --input "${shards[@]}" --split train --out "$data"
if [[ -n $TOKENIZER ]]; then
  # eve-pretrain reads the special ids from tok.json beside tok.model (eve-tokenize train
  # writes both; for a given model they are made here).
  stage_stdout "tokenizer" "$tok" cat "$TOKENIZER"
  stage_stdout "tokenizer ids" "${tok%.model}.json" "${PROG[eve-tokenize]}" info --tokenizer "$tok"
else
  stage "tokenizer" "${tok%.model}.json" "${PROG[eve-tokenize]}" train "$data/train.jsonl" --vocab-size "$VOCAB" -o "$tok"
fi
encode_splits "$data" "$tok" train
stage_stamp "pretrain" "${PROG[eve-pretrain]}" --data "$data" --split train.ids --tokenizer "${tok%.model}.json" \
  --config "$(share_file configs "$CONFIG")" --out "$WORK/pretrain" "${GPU_ARGS[@]}" "${EXTRA[@]}"
if [[ -z $DRY_RUN ]]; then
  printf '\n== pre-trained bundle: %s\n' "$WORK/pretrain"
  "${PROG[eve-embed]}" --describe "$WORK/pretrain"
fi
