#!/usr/bin/env bash
# eve-pretrain's loader alone at 224 px (decode, random resized crop, flip, pixels to [-1, 1],
# and the MIM/MLM masks of each micro-batch) on one loader thread: samples/s per core, and
# what 16 such cores would feed against the GPU's 1,900 samples/s goal. Needs eve-model-bench
# (built beside the programs). BENCH_LOADER_BATCHES (default 8), _BATCH (32), _CORES (16),
# _GOAL (1900).
set -euo pipefail
: "${EVE_BIN:?}"
batches=${BENCH_LOADER_BATCHES:-8} batch=${BENCH_LOADER_BATCH:-32}
cores=${BENCH_LOADER_CORES:-16} goal=${BENCH_LOADER_GOAL:-1900}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Images prepared at 256 px on the shorter side, as a 224 px run's data would be.
"$EVE_BIN/eve-prep" synth --out "$tmp/w" --count 80 --size 256 --seed 1 -q
"$EVE_BIN/eve-prep" -q pairs --ann "$tmp/w/pairs_train.json" --images "$tmp/w" --size 256 --out "$tmp/d"
"$EVE_BIN/eve-tokenize" train -q "$tmp/d/train.jsonl" -o "$tmp/tok.model" --vocab-size 300
"$EVE_BIN/eve-tokenize" encode --tokenizer "$tmp/tok.model" "$tmp/d/train.jsonl" >"$tmp/d/ids.jsonl"
line=$("$EVE_BIN/eve-model-bench" loader --data "$tmp/d" --split ids --res 224 --batch "$batch" \
  --batches "$batches" --threads 1)
echo "$line"
per=$(sed -E 's/.* ([0-9.]+) per thread$/\1/' <<<"$line")
awk -v p="$per" -v c="$cores" -v g="$goal" 'BEGIN{
  verdict = "the loader limits the GPU"; if (c * p >= g) verdict = "enough";
  printf "%d cores x %.1f samples/s = %.0f samples/s against the %d samples/s goal: %.2fx (%s)\n",
         c, p, c * p, g, c * p / g, verdict;
  printf "cores needed for %d samples/s at this rate: %.0f\n", g, g / p + 0.999 }'
