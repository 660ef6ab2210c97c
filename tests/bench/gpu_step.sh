#!/usr/bin/env bash
# One prepared GPU measurement of eve-pretrain's step (under 8 minutes on one GPU):
#   1. builds the cuda preset (libtorch with CUDA from $LIBTORCH, or from the pip torch of
#      $EVE_PYTHON) into build/cuda, unless EVE_BIN already names a CUDA build;
#   2. eve-base at 224 px, msm and itc,itm,mlm, fp32 (TF32 matrix products) and bf16,
#      batch 64 and 128, with synthetic data (EVE_BENCH_REUSE_BATCH=1: one batch, its images
#      kept on the GPU) and with the real loader on the toy world;
#   3. prints samples/s, the model FLOP count per sample (formula below, from the config),
#      model TFLOP/s and its share of the GPU's dense bf16 peak;
#   4. the 10 kernels with the most GPU time of one step mix, when nsys is installed.
# Without CUDA (no nvidia-smi, or a build without CUDA) it makes a dry run of the same logic
# on the CPU: eve-tiny at 64 px, batch 4, 4 steps, so the script itself stays tested
# (tests/cli/gpu_step_dry_run.sh; GPU_STEP_DRY_RUN=1 forces it). GPU_STEP_STEPS (default 12; the median of steps 3..N),
# GPU_STEP_BATCHES ("64 128"), GPU_STEP_THREADS (loader threads, default 16).
#
# FLOPs per sample (multiply-adds count 2): a pass over L tokens of width D with H layers,
# FFN width F, of which M are MoE layers (top-2: two expert FFNs per token), costs
#   H (8 D^2 L + 4 L^2 D) + 4 D F L (H - M) + 8 D F L M        (projections, attention, FFNs)
# plus 6 P^2 D per image patch (the patch embedding). msm runs the MIM pass (K = N/4 kept
# patches + CLS + T text tokens), the MIM decoder over N + 1 tokens (its own width, depth and
# FFN), and the MLM pass over N + 1 + T; itc,itm,mlm runs a vision pass (N + 1), a text pass
# (T), a fusion pass over 3 samples' N + 1 + T (the positive and both hard negatives) and the
# MLM pass. Heads (vocabulary projection, pixel head, ITC/ITM) are left out. Training counts
# 3x the forward FLOPs (the backward pass costs twice the forward).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
PY=${EVE_PYTHON:-python3}
steps=${GPU_STEP_STEPS:-12} batches=${GPU_STEP_BATCHES:-64 128} threads=${GPU_STEP_THREADS:-16}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 || true)
[[ ${GPU_STEP_DRY_RUN:-0} == 1 ]] && gpu=""
if [[ -n $gpu && -z ${EVE_BIN:-} ]]; then
  if [[ -z ${LIBTORCH:-} ]]; then
    LIBTORCH=$("$PY" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)
  fi
  [[ -n ${LIBTORCH:-} ]] || { echo "gpu_step: set LIBTORCH to a CUDA libtorch (or install torch for $PY)" >&2; exit 2; }
  export LIBTORCH
  echo "building the cuda preset against $LIBTORCH"
  (cd "$src" && cmake --preset cuda >/dev/null &&
   cmake --build build/cuda -j "$(nproc)" --target eve-prep eve-tokenize eve-pretrain >/dev/null)
  EVE_BIN=$src/build/cuda/bin
fi
: "${EVE_BIN:?set EVE_BIN (or run on a GPU machine, where the script builds one)}"
if [[ -n $gpu ]] && "$EVE_BIN/eve-pretrain" --version | grep -q "CUDA yes"; then
  device=cuda config=eve-base res=224 precisions="fp32 bf16"
  datas="synthetic loader"
else
  echo "no CUDA here: a dry run on the CPU (eve-tiny, 64 px, batch 4, 4 steps)"
  gpu="" device=cpu config=eve-tiny res=64 precisions="fp32 bf16" datas="synthetic loader"
  batches=4 steps=4 threads=1
fi

# The toy world as caption pairs with token ids, prepared near the model's side.
"$EVE_BIN/eve-prep" synth --out "$tmp/w" --count 160 --size $((res + res / 7)) --seed 1 -q
"$EVE_BIN/eve-prep" -q pairs --ann "$tmp/w/pairs_train.json" --images "$tmp/w" --size 0 --out "$tmp/d"
"$EVE_BIN/eve-tokenize" train -q "$tmp/d/train.jsonl" -o "$tmp/tok.model" --vocab-size 300
"$EVE_BIN/eve-tokenize" encode --tokenizer "$tmp/tok.model" "$tmp/d/train.jsonl" >"$tmp/d/ids.jsonl"
"$PY" -c 'import json,sys; c=json.load(open(sys.argv[1])); c["image_res"]=int(sys.argv[3]); json.dump(c,open(sys.argv[2],"w"))' \
  "$src/share/eve/configs/$config.json" "$tmp/cfg.json" "$res"

flops() {  # flops OBJECTIVE: training FLOPs per sample
  "$PY" - "$tmp/cfg.json" "$1" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1])); objective = sys.argv[2]
D, H, F = c["vision_width"], c["num_hidden_layers"], c["intermediate_size"]
M = len(c.get("moeffn_layers", [])) if c.get("moe_param", {}).get("num_experts", 0) > 0 else 0
P, R, T = c["patch_size"], c["image_res"], c.get("max_text_len", 40)
N = (R // P) ** 2
def stack(L, D, H, F, M=0):
    return H * (8 * D * D * L + 4 * L * L * D) + 4 * D * F * L * (H - M) + 8 * D * F * L * M
embed = 6 * P * P * D  # per patch: 3 P^2 inputs, D outputs, 2 FLOPs a multiply-add
if objective == "msm":
    dec = c.get("mim_decoder", {"width": 512, "depth": 2, "intermediate_size": 2048})
    K = N - int(N * c.get("image_mask_ratio", 0.75))
    fwd = stack(K + 1 + T, D, H, F, M) + K * embed
    fwd += stack(N + 1, dec["width"], dec["depth"], dec["intermediate_size"])
    fwd += stack(N + 1 + T, D, H, F, M) + N * embed
else:
    fwd = stack(N + 1, D, H, F, M) + N * embed + stack(T, D, H, F, M)
    fwd += 3 * (stack(N + 1 + T, D, H, F, M) + N * embed)
    fwd += stack(N + 1 + T, D, H, F, M) + N * embed
print(3 * fwd)
EOF
}

# Dense bf16 peaks (TFLOP/s, without sparsity) by the name nvidia-smi gives.
peak=0
case $gpu in
  *H200*) peak=989 ;;
  *H100*PCIe*) peak=756 ;;
  *H100*) peak=989 ;;
  *A100*) peak=312 ;;
  *L40S*) peak=362 ;;
  *A10*) peak=125 ;;
esac

run() {  # run OBJECTIVE PRECISION BATCH DATA -> median samples/s of steps 3..N
  local out=$tmp/run-$1-$2-$3-$4 reuse=0
  [[ $4 == synthetic ]] && reuse=1
  EVE_BENCH_REUSE_BATCH=$reuse "$EVE_BIN/eve-pretrain" --data "$tmp/d" --split ids --tokenizer "$tmp/tok.json" \
    --config "$tmp/cfg.json" --objective "$1" --precision "$2" --batch-size "$3" --max-steps "$steps" \
    --log-every 1 --save-every 0 --threads "$threads" --device "$device" -q --out "$out"
  "$PY" -c 'import json,statistics,sys
rows=[json.loads(l) for l in open(sys.argv[1])]
print("%.1f" % statistics.median([r["samples_per_s"] for r in rows[2:]] or [rows[-1]["samples_per_s"]]))' "$out/metrics.jsonl"
}

echo "device: ${gpu:-cpu (dry run)}; $config at ${res}px; dense bf16 peak: $([[ $peak != 0 ]] && echo "$peak TFLOP/s" || echo unknown)"
printf '%-12s %-5s %6s %-10s %11s %12s %10s %8s\n' objective prec batch data samples/s "GFLOP/sample" TFLOP/s "% peak"
for obj in msm itc,itm,mlm; do
  f=$(flops "$obj")
  for prec in $precisions; do
    for b in $batches; do
      for data in $datas; do
        s=$(run "$obj" "$prec" "$b" "$data")
        awk -v o="$obj" -v p="$prec" -v b="$b" -v d="$data" -v s="$s" -v f="$f" -v pk="$peak" 'BEGIN{
          t = s * f / 1e12; share = "-"; if (pk > 0) share = sprintf("%.1f", 100 * t / pk);
          printf "%-12s %-5s %6d %-10s %11.1f %12.2f %10.3f %8s\n", o, p, b, d, s, f / 1e9, t, share }'
      done
    done
  done
done
echo "(fp32 runs use TF32 matrix products on the GPU; median samples/s of steps 3..$steps; FLOPs per sample: see the formula at the top of tests/bench/gpu_step.sh)"

if [[ $device == cuda ]] && command -v nsys >/dev/null; then
  b=${batches##* }
  EVE_BENCH_REUSE_BATCH=1 nsys profile -o "$tmp/prof" --force-overwrite true -t cuda \
    "$EVE_BIN/eve-pretrain" --data "$tmp/d" --split ids --tokenizer "$tmp/tok.json" --config "$tmp/cfg.json" \
    --objective msm --precision bf16 --batch-size "$b" --max-steps 6 --save-every 0 --device cuda -q \
    --out "$tmp/prof-run" >/dev/null 2>&1
  echo "top 10 kernels by GPU time (msm, bf16, batch $b, synthetic, 6 steps):"
  nsys stats -q --report cuda_gpu_kern_sum --format csv "$tmp/prof.nsys-rep" 2>/dev/null |
    "$PY" -c 'import csv,sys
rows=[r for r in csv.DictReader(l for l in sys.stdin if l.strip() and "," in l)]
for r in rows[:10]: print("%6s%%  %12s ns  %8s calls  %s" % (r.get("Time (%)"), r.get("Total Time (ns)"), r.get("Instances"), r.get("Name","")[:90]))'
elif [[ $device == cuda ]]; then
  echo "top kernels: skipped (nsys is not installed; libtorch's C++ profiler needs no script change to add later)"
else
  echo "top kernels: skipped on the CPU dry run"
fi
