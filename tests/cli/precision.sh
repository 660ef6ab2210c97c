#!/usr/bin/env bash
# --precision bf16 (bfloat16 autocast, here on the CPU) in eve-pretrain, eve-finetune and
# eve-embed: finite losses whose first step is within a stated tolerance of the fp32 run's,
# float32 weights in the saved bundles, the precision in trainer.json and in the log,
# embeddings with cosine >= 0.99 to the fp32 ones, and the usage error of any other value.
source "$(dirname "$0")/lib.bash"
pre=$EVE_BIN/eve-pretrain
toy_pairs 16 48 7 120
common=(--data "$tmp/d" --split ids --tokenizer "$tmp/tok.json" --config eve-tiny --threads 1 --batch-size 4
        --max-steps 3 --seed 3)

# first_losses FP32_METRICS BF16_METRICS TOL KEY...: every logged number finite in the bf16
# run, and step 1 of each KEY within TOL (relative) of the fp32 run's.
first_losses() {
  "$EVE_PYTHON" - "$@" <<'PY' || fail=1
import json, math, sys
a_path, b_path, tol, keys = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
a = [json.loads(l) for l in open(a_path) if "eval" not in l]
b = [json.loads(l) for l in open(b_path) if "eval" not in l]
assert len(a) == len(b) == 3, (len(a), len(b))
for row in b:
    for k, v in row.items():
        if isinstance(v, float): assert math.isfinite(v), (b_path, row["step"], k, v)
for k in keys:
    x, y = a[0][k], b[0][k]
    print(f"{b_path.split('/')[-2]} step 1 {k}: fp32 {x:.6f}, bf16 {y:.6f} (rel. diff {abs(x - y) / abs(x):.2e})")
    assert abs(x - y) <= tol * abs(x), f"{k}: bf16 {y} is not within {tol} of fp32 {x}"
assert any(a[0][k] != b[0][k] for k in keys), "bf16 losses equal the fp32 ones bit for bit: autocast did nothing"
PY
}
# float32_bundle DIR: every tensor of DIR/model.safetensors is F32.
float32_bundle() {
  "$EVE_PYTHON" - "$1/model.safetensors" <<'PY' || fail=1
import json, struct, sys
b = open(sys.argv[1], "rb").read(8 << 20)
h = json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])
types = {v["dtype"] for k, v in h.items() if k != "__metadata__"}
assert types == {"F32"}, (sys.argv[1], types)
PY
}
trainer_precision() {
  "$EVE_PYTHON" -c 'import glob,json,sys; print(json.load(open(sorted(glob.glob(sys.argv[1] + "/checkpoint-*/trainer.json"))[-1]))["options"]["precision"])' "$1"
}

# 1. eve-pretrain msm: 3 steps each way. Tolerance 0.5 % on the first step's losses (bf16 keeps
# 8 significant bits, ~0.4 % per rounding, but float32 accumulation and float32 losses keep the
# losses far closer: measured 1e-5 to 4e-4 relative on these runs).
"$pre" "${common[@]}" -q --out "$tmp/p32"
"$pre" "${common[@]}" --precision bf16 --out "$tmp/p16" 2>"$tmp/p16.err"
grep -q "precision bf16" "$tmp/p16.err" || { echo "FAIL the bf16 run does not log its precision"; cat "$tmp/p16.err"; fail=1; }
first_losses "$tmp/p32/metrics.jsonl" "$tmp/p16/metrics.jsonl" 0.005 mim mlm loss
float32_bundle "$tmp/p16"
check pretrain-trainer-precision bf16 "$(trainer_precision "$tmp/p16")"
check pretrain-trainer-precision-fp32 fp32 "$(trainer_precision "$tmp/p32")"

# 2. The VLMo objective under bf16 (ITC logits, hard negatives and ITM in float32), and its
# bundle for eve-embed below.
"$pre" "${common[@]}" -q --objective itc,itm,mlm --out "$tmp/v32"
"$pre" "${common[@]}" -q --objective itc,itm,mlm --precision bf16 --out "$tmp/v16"
first_losses "$tmp/v32/metrics.jsonl" "$tmp/v16/metrics.jsonl" 0.005 itc itm mlm
float32_bundle "$tmp/v16"

# 3. eve-finetune VQA: 3 steps each way, first-step BCE within 0.5 %.
W=$tmp/w
"$EVE_BIN/eve-prep" -q vqa --questions train="$W/vqa/questions_train.json" --annotations train="$W/vqa/annotations_train.json" \
  --images "$W/images" --size 0 --out "$tmp/vqa"
"$EVE_BIN/eve-tokenize" encode --tokenizer "$tmp/tok.model" "$tmp/vqa/train.jsonl" -o "$tmp/vqa/train.ids.jsonl"
f=(--task vqa --data "$tmp/vqa" --model "$tmp/p32" --image-res 48 --threads 1 -q --batch-size 4 --max-steps 3 --seed 1
   --val none --num-answers 20)
"$EVE_BIN/eve-finetune" "${f[@]}" --out "$tmp/f32"
"$EVE_BIN/eve-finetune" "${f[@]}" --precision bf16 --out "$tmp/f16"
first_losses "$tmp/f32/metrics.jsonl" "$tmp/f16/metrics.jsonl" 0.005 bce
float32_bundle "$tmp/f16"
check finetune-trainer-precision bf16 "$(trainer_precision "$tmp/f16")"

# 4. eve-embed: bf16 image and text embeddings point where the fp32 ones do (cosine >= 0.99).
for p in fp32 bf16; do
  "$EVE_BIN/eve-embed" -q --threads 1 -m "$tmp/v32" --images "$tmp/d" -o "$tmp/img-$p" --precision $p
  "$EVE_BIN/eve-embed" -q --threads 1 -m "$tmp/v32" --texts "$tmp/d/ids.jsonl" -o "$tmp/txt-$p" --precision $p
done
"$EVE_PYTHON" - "$tmp" <<'PY' || fail=1
import sys
import numpy as np
for kind in ("img", "txt"):
    a, b = (np.load(f"{sys.argv[1]}/{kind}-{p}.npy") for p in ("fp32", "bf16"))
    assert a.shape == b.shape and a.dtype == b.dtype == np.float32, (a.shape, b.shape, a.dtype, b.dtype)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    print(f"eve-embed {kind}: {len(a)} rows, cosine bf16 vs fp32 min {cos.min():.5f}, max |diff| {np.abs(a - b).max():.3g}")
    assert cos.min() >= 0.99, cos.min()
    assert not np.array_equal(a, b), "bf16 embeddings are identical to fp32: autocast did nothing"
PY

# 5. Any other precision is a usage error, from the flag or the environment.
for prog in eve-pretrain eve-finetune eve-embed eve-rank; do
  set +e
  err=$("$EVE_BIN/$prog" --precision fp16 2>&1 >/dev/null); rc=$?
  set -e
  check "$prog-fp16-exit" 2 "$rc"
  check "$prog-fp16-message" "$prog: error: --precision: expected fp32 or bf16, got fp16 (see --help)" "$err"
done
set +e
err=$(EVE_PRECISION=half "$pre" "${common[@]}" --out "$tmp/bad" 2>&1 >/dev/null); rc=$?
set -e
check env-precision-exit 2 "$rc"
check env-precision-message "eve-pretrain: error: --precision: expected fp32 or bf16, got half (see --help)" "$err"
[[ ! -e $tmp/bad ]] || { echo "FAIL a usage error left a run dir"; fail=1; }
exit $fail
