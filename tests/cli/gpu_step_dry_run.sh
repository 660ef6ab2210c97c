#!/usr/bin/env bash
# tests/bench/gpu_step.sh, the one prepared GPU measurement, in its CPU dry run: the same
# runs, FLOP counts and table on eve-tiny, so the script a GPU session depends on is known to
# work before the GPU is lent.
source "$(dirname "$0")/lib.bash"
script=$EVE_SOURCE/tests/bench/gpu_step.sh
bash -n "$script"
out=$(GPU_STEP_DRY_RUN=1 bash "$script")
# 2 objectives x 2 precisions x 2 data sources, each with samples/s and TFLOP/s above zero.
rows=$(awk '$1 ~ /^(msm|itc,itm,mlm)$/ && $5 > 0 && $6 > 0 && $7 > 0' <<<"$out" | wc -l)
[[ $rows == 8 ]] || { echo "FAIL want 8 measured rows, got $rows:"; echo "$out"; fail=1; }
for want in "dry run" "msm          fp32       4 synthetic" "itc,itm,mlm  bf16       4 loader"; do
  grep -qF -- "$want" <<<"$out" || { echo "FAIL output lacks '$want':"; echo "$out"; fail=1; }
done
exit $fail
