#!/usr/bin/env bash
# Gradient checkpointing: one VQA fine-tuning step of eve-base at 384 px, batch 2, 2 threads
# (forward, VQA head, BCE + MoE aux loss, backward), without and with it, each in a process
# of its own since the peak resident size is the process's. Prints both runs, then the ratio
# of activation memory (peak resident size less the weights and gradients) and of step time.
# EVE_CKPT_CONFIG, EVE_CKPT_RES and EVE_CKPT_BATCH change the preset, resolution and batch.
set -euo pipefail
: "${EVE_BIN:?set EVE_BIN to the directory holding the eve programs}"
args=(--config "${EVE_CKPT_CONFIG:-eve-base}" --image-res "${EVE_CKPT_RES:-384}"
      --batch "${EVE_CKPT_BATCH:-2}" --threads 2 --reps 2)
off=$("$EVE_BIN/eve-model-bench" train-memory "${args[@]}" --checkpoint 0)
on=$("$EVE_BIN/eve-model-bench" train-memory "${args[@]}" --checkpoint 1)
echo "$off"
echo "$on"
pick() { sed -n 's/^step \([0-9.]*\) s;.*gradients \(-\{0,1\}[0-9]*\) MiB$/\1 \2/p' <<<"$1"; }
read -r t0 m0 <<<"$(pick "$off")"
read -r t1 m1 <<<"$(pick "$on")"
awk -v t0="$t0" -v t1="$t1" -v m0="$m0" -v m1="$m1" 'BEGIN {
  printf "checkpointing: activation memory %d -> %d MiB (%.2fx less), step time %.2fx\n",
         m0, m1, m0 / m1, t1 / t0 }'
