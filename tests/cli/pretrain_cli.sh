#!/usr/bin/env bash
# eve-pretrain on the toy world with eve-tiny: MIM and MLM losses fall, the run dir is a
# bundle with trainer state and metrics, --device cpu equals the default, bad flags exit 2.
source "$(dirname "$0")/lib.bash"
pre=$EVE_BIN/eve-pretrain
toy_pairs 40 64 3 200
common=(--data "$tmp/d" --split ids --tokenizer "$tmp/tok.json" --threads 2 -q)

# Learning: 40 steps of 8 pairs; compare the first and last 10 steps of each loss. Raw pixel
# targets (mim_norm_target false): per-patch normalised ones fall only a few percent this early.
"$EVE_PYTHON" -c 'import json,sys; c=json.load(open(sys.argv[1])); c["mim_norm_target"]=False; json.dump(c,open(sys.argv[2],"w"))' \
  "$EVE_SOURCE/share/eve/configs/eve-tiny.json" "$tmp/raw.json"
"$pre" "${common[@]}" --config "$tmp/raw.json" --out "$tmp/run" --batch-size 8 --max-steps 40 --lr 1e-3 --warmup 4 --save-every 20
for f in config.json model.safetensors metrics.jsonl checkpoint-00000040/trainer.json \
         checkpoint-00000040/optimizer.safetensors checkpoint-00000020/model.safetensors; do
  [[ -f $tmp/run/$f ]] || { echo "FAIL missing $f"; fail=1; }
done
cmp -s "$tmp/tok.model" "$tmp/run/tokenizer.model" || { echo "FAIL the run dir lacks tokenizer.model"; fail=1; }
check metrics-lines 40 "$(wc -l <"$tmp/run/metrics.jsonl")"
"$EVE_PYTHON" - "$tmp/run/metrics.jsonl" <<'EOF' || fail=1
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for key, margin in (("mim", 0.8), ("mlm", 0.8)):
    first = sum(r[key] for r in rows[:10]) / 10
    last = sum(r[key] for r in rows[-10:]) / 10
    print(f"{key}: first 10 steps {first:.4f}, last 10 steps {last:.4f}")
    if not last < margin * first:
        print(f"FAIL {key} did not fall by 20%"); sys.exit(1)
r = rows[-1]
for k in ("step", "loss", "mim", "mlm", "aux", "lr", "grad_norm", "samples_per_s", "expert_load"):
    assert k in r, k
assert sorted(r["expert_load"]) == ["2", "3"] and len(r["expert_load"]["2"]) == 4, r["expert_load"]
EOF
check trainer-step 40 "$("$EVE_PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["step"])' "$tmp/run/checkpoint-00000040/trainer.json")"

# Stopping and resuming (SIGINT, SIGTERM, the checkpoint at the stop step, bit-identical
# resume) is tested in interrupt.sh. The reference run for the device check:
one=(--data "$tmp/d" --split ids --tokenizer "$tmp/tok.json" --config eve-tiny --threads 1 -q
     --batch-size 4 --max-steps 6 --save-every 2 --seed 7)
"$pre" "${one[@]}" --out "$tmp/full"

# Device: an explicit --device cpu trains exactly as the default; without CUDA, --device cuda
# is a usage error before anything is read.
"$pre" "${one[@]}" --out "$tmp/cpu" --device cpu
cmp -s "$tmp/full/model.safetensors" "$tmp/cpu/model.safetensors" || { echo "FAIL --device cpu changed the weights"; fail=1; }
if "$pre" --version | grep -q "CUDA no"; then
  set +e
  err=$("$pre" "${one[@]}" --out "$tmp/gpu" --device cuda 2>&1); rc=$?
  set -e
  check cuda-rc 2 "$rc"
  check cuda-msg "eve-pretrain: error: --device cuda: CUDA is not available (this libtorch was built without CUDA or no GPU is visible)" "$err"
  [[ ! -e $tmp/gpu ]] || { echo "FAIL a refused --device left $tmp/gpu behind"; fail=1; }
fi

# Usage errors.
set +e
err=$("$pre" "${common[@]}" --out "$tmp/x" --objective msm,itc 2>&1); rc=$?
check objective-rc 2 "$rc"
check objective-msg "eve-pretrain: error: --objective msm,itc: msm (masked signal modeling) cannot be combined with other objectives" "$err"
err=$("$pre" "${common[@]}" --out "$tmp/x" --batch-size 0 2>&1); rc=$?
check batch-rc 2 "$rc"
"$pre" --bogus >/dev/null 2>&1; rc=$?
check bogus-rc 2 "$rc"
err=$("$pre" --data "$tmp/d" --out "$tmp/x" --config eve-tiny -q 2>&1); rc=$?
check tokenizer-rc 2 "$rc"
err=$("$pre" --data "$tmp/d" --tokenizer "$tmp/tok.json" -q --out "$tmp/y" 2>&1); rc=$?
check no-ids-rc 1 "$rc"
check no-ids-msg "eve-pretrain: error: $tmp/d/train.jsonl:1: record has no token ids (\"ids\" or \"ids_list\") (run the records through eve-tokenize encode first)" "$err"
set -e
exit $fail
