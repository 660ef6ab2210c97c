#!/usr/bin/env bash
# One modality-aware MoE layer, forward + backward: sparse dispatch (grouped GEMMs, eve's
# default on the CPU) against the sparse fixed-capacity layout (batched GEMMs, no host reads;
# the default elsewhere) and the GShard dense dispatch, E=32, top-2, width 768, 2 threads, at
# 4096 and 16384 tokens; prints the ratios and the sparse layer's share of the float32 matmul
# rate.
# EVE_MOE_DENSE_MAX lowers the largest token count the dense layer runs at (memory: the
# dense layer at 16384 tokens needs ~10 GB). The sparse time is the best of 4 steps, as in
# training: the first step creates the gradients and the second allocates the tensors that
# accumulate into them. EVE_MALLOC=system shows the cost of glibc's default of handing every
# large freed block back to the kernel (see retain_host_memory in lib/eve/model/runtime.h).
set -euo pipefail
: "${EVE_BIN:?set EVE_BIN to the directory holding the eve programs}"
"$EVE_BIN/eve-model-bench" moe --tokens 4096,16384 --experts 32 --width 768 --inner 3072 \
  --threads 2 --reps 4 --dense-max "${EVE_MOE_DENSE_MAX:-16384}"
# Host reads (each a wait for all queued device work on a GPU) in one training step of
# eve-small with 32 experts, the sync-free layout against the grouped one.
for layout in capacity grouped; do
  "$EVE_BIN/eve-model-bench" syncs --config eve-small --experts 32 --batch 4 --layout "$layout"
done
