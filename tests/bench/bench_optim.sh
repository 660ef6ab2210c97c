#!/usr/bin/env bash
# Gradient clipping + AdamW over eve-small's parameters (2 threads): aten operations and host
# syncs per step, the per-tensor algorithm the trainers had against the flat buffers, with
# the time ratio of the two measured in the same run. EVE_BENCH_MODELS overrides the preset.
set -euo pipefail
: "${EVE_BIN:?set EVE_BIN to the directory holding the eve programs}"
for preset in ${EVE_BENCH_MODELS:-eve-small}; do
  "$EVE_BIN/eve-model-bench" optim --config "$preset" --threads 2 --steps 5
  echo
done
