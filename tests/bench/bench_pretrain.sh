#!/usr/bin/env bash
# Time per pre-training step of masked signal modeling (msm: one pass over the visible
# patches + text, one full pass for MLM) against the VLMo baseline itc,itm,mlm (vision and
# text passes for ITC, one fusion pass over 3x the batch for ITM, one full pass for MLM) at
# the same model, batch, resolution, data and threads. The paper reports 3.5x less training
# time for masked signal modeling. Per-step seconds come from metrics.jsonl (batch /
# samples_per_s); the median over the steps after the first two. BENCH_PRETRAIN_CONFIG
# (default eve-tiny), _BATCH (32), _STEPS (10), _THREADS (1), _RES (0 = the preset's),
# _PRECISION (fp32 or bf16), _DEVICE (auto: the first GPU when there is one).
set -euo pipefail
: "${EVE_BIN:?}" "${EVE_SOURCE:?}"
PY=${EVE_PYTHON:-/usr/bin/python3}
config=${BENCH_PRETRAIN_CONFIG:-eve-tiny} batch=${BENCH_PRETRAIN_BATCH:-32}
steps=${BENCH_PRETRAIN_STEPS:-10} threads=${BENCH_PRETRAIN_THREADS:-1} res=${BENCH_PRETRAIN_RES:-0}
precision=${BENCH_PRETRAIN_PRECISION:-fp32} device=${BENCH_PRETRAIN_DEVICE:-auto}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The toy world as caption pairs with token ids.
"$EVE_BIN/eve-prep" synth --out "$tmp/w" --count 80 --size 96 --seed 1 -q
"$EVE_BIN/eve-prep" -q pairs --ann "$tmp/w/pairs_train.json" --images "$tmp/w" --out "$tmp/d"
"$EVE_BIN/eve-tokenize" train -q "$tmp/d/train.jsonl" -o "$tmp/tok.model" --vocab-size 300
"$EVE_BIN/eve-tokenize" encode --tokenizer "$tmp/tok.model" "$tmp/d/train.jsonl" >"$tmp/d/ids.jsonl"
cfg=$config
if [[ $res != 0 ]]; then
  "$PY" -c 'import json,sys; c=json.load(open(sys.argv[1])); c["image_res"]=int(sys.argv[3]); json.dump(c,open(sys.argv[2],"w"))' \
    "$EVE_SOURCE/share/eve/configs/$config.json" "$tmp/cfg.json" "$res"
  cfg=$tmp/cfg.json
fi

run() {  # run OBJECTIVE -> "median_seconds_per_step wall_seconds"
  local start end
  start=$(date +%s.%N)
  "$EVE_BIN/eve-pretrain" --data "$tmp/d" --split ids --tokenizer "$tmp/tok.json" --config "$cfg" \
    --objective "$1" --batch-size "$batch" --max-steps "$steps" --threads "$threads" -q --out "$tmp/run-$1" \
    --precision "$precision" --device "$device"
  end=$(date +%s.%N)
  "$PY" - "$tmp/run-$1/metrics.jsonl" "$batch" "$start" "$end" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
per_step = [int(sys.argv[2]) / r["samples_per_s"] for r in rows[2:]] or [int(sys.argv[2]) / rows[-1]["samples_per_s"]]
print("%.4f %.1f" % (statistics.median(per_step), float(sys.argv[4]) - float(sys.argv[3])))
EOF
}
read -r msm_s msm_wall < <(run msm)
read -r vlmo_s vlmo_wall < <(run itc,itm,mlm)
R=$("$PY" -c "import json; print(json.load(open('$tmp/run-msm/config.json'))['image_res'])")
printf '%-14s %12s %10s %12s\n' objective "s/step" "samples/s" "run wall s"
awk -v b="$batch" -v s="$msm_s" -v w="$msm_wall" 'BEGIN{printf "%-14s %12.4f %10.1f %12.1f\n", "msm", s, b/s, w}'
awk -v b="$batch" -v s="$vlmo_s" -v w="$vlmo_wall" 'BEGIN{printf "%-14s %12.4f %10.1f %12.1f\n", "itc,itm,mlm", s, b/s, w}'
awk -v a="$msm_s" -v b="$vlmo_s" 'BEGIN{printf "ratio (itc,itm,mlm time / msm time per step): %.2fx\n", b/a}'
echo "($config at ${R}px, $precision on device $device, global batch $batch, $steps steps each (median of steps 3..$steps), $threads threads," \
     "image mask ratio 0.75; the paper reports 3.5x less pre-training time for msm)"
