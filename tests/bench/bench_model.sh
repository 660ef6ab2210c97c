#!/usr/bin/env bash
# The full model in vl mode at batch 8 (2 threads): forward and forward + backward of the
# libtorch model against the Python reference (tests/reference/eve_ref.py), for eve-tiny,
# eve-small and eve-base, with GFLOP/s as a share of the matmul rate measured in the run.
# Each side's best of 4 steps: the first two still allocate (gradients, then the tensors that
# accumulate into them). EVE_BENCH_MODELS overrides the preset list.
set -euo pipefail
: "${EVE_BIN:?set EVE_BIN to the directory holding the eve programs}"
src=${EVE_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}
py=${EVE_PYTHON:-/usr/bin/python3}
for preset in ${EVE_BENCH_MODELS:-eve-tiny eve-small eve-base}; do
  cpp=$("$EVE_BIN/eve-model-bench" model --config "$preset" --batch 8 --threads 2 --reps 4)
  ref=$("$py" "$src/tests/reference/eve_ref.py" bench "$src/share/eve/configs/$preset.json" \
        --batch 8 --reps 4 --threads 2)
  echo "$cpp"
  echo "$ref"
  c_f=$(sed -n 's/^c++ forward \([0-9.]*\) s.*fwd+bwd \([0-9.]*\) s.*/\1 \2/p' <<<"$cpp")
  p_f=$(sed -n 's/^python forward \([0-9.]*\) s; fwd+bwd \([0-9.]*\) s/\1 \2/p' <<<"$ref")
  read -r cf cb <<<"$c_f"
  read -r pf pb <<<"$p_f"
  awk -v cf="$cf" -v cb="$cb" -v pf="$pf" -v pb="$pb" -v m="$preset" \
    'BEGIN { printf "%s: python/c++ time ratio forward %.2fx, fwd+bwd %.2fx\n\n", m, pf/cf, pb/cb }'
done
