#!/usr/bin/env bash
# The CUDA paths, on a GPU: eve-pretrain (msm and itc,itm,mlm), eve-finetune, eve-embed and
# eve-rank --rerank on --device cuda agree with the CPU within the tolerances stated below;
# bf16 autocast on CUDA; a bundle trained on the GPU is float32 and loads on the CPU; a GPU run
# stopped and resumed ends with the weights of an uninterrupted one; several workers take one
# GPU each over NCCL (2 workers = 1 process) or, with fewer GPUs than workers, fail with a usage
# error. Skipped (exit 77) where this build has no CUDA or no GPU is visible.
source "$(dirname "$0")/lib.bash"
pre=$EVE_BIN/eve-pretrain
toy_pairs 16 48 7 120
# No randomness inside the model (dropout, drop-path, routing noise): the CPU and the GPU draw
# from different generators, so the runs differ only by arithmetic.
"$EVE_PYTHON" - "$EVE_SOURCE/share/eve/configs/eve-tiny.json" "$tmp/det.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.update(drop_path_rate=0.0, text_dropout=0.0, moe_noise=False, moe_capacity_factor=2.0)
json.dump(c, open(sys.argv[2], "w"))
PY
common=(--data "$tmp/d" --split ids --tokenizer "$tmp/tok.json" --config "$tmp/det.json" --threads 2
        --batch-size 4 --seed 3 -q)

set +e
err=$("$pre" "${common[@]}" --max-steps 4 --save-every 2 --device cuda --out "$tmp/g32" 2>&1); rc=$?
set -e
if [[ $rc -ne 0 && $err == *"CUDA is not available"* ]]; then
  echo "skipped: $("$pre" --version): $err"
  exit 77
fi
[[ $rc -eq 0 ]] || { echo "FAIL eve-pretrain --device cuda exit $rc: $err"; exit 1; }
"$pre" "${common[@]}" --max-steps 4 --device cpu --out "$tmp/c32"
"$pre" "${common[@]}" --max-steps 4 --device cuda --precision bf16 --out "$tmp/g16"

# close A_METRICS B_METRICS TOL STEPS KEY...: each KEY of the first STEPS steps within TOL
# (relative) of A's, every logged number finite; prints the largest difference.
close() {
  "$EVE_PYTHON" - "$@" <<'PY' || fail=1
import json, math, sys
a_path, b_path, tol, steps, keys = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
a = [json.loads(l) for l in open(a_path) if "eval" not in l]
b = [json.loads(l) for l in open(b_path) if "eval" not in l]
assert len(a) == len(b) >= steps, (len(a), len(b))
for row in b:
    for k, v in row.items():
        if isinstance(v, float): assert math.isfinite(v), (b_path, row["step"], k, v)
worst = max(abs(x[k] - y[k]) / abs(x[k]) for x, y in zip(a[:steps], b[:steps]) for k in keys)
name = lambda p: p.split("/")[-2]
print(f"{name(b_path)} vs {name(a_path)}, steps 1-{steps} {' '.join(keys)}: largest rel. diff {worst:.2e} (tolerance {tol})")
assert worst <= tol, f"{b_path} is not within {tol} of {a_path}"
PY
}
# weights A B TOL: the two bundles hold the same float32 tensors within TOL (max abs).
weights() {
  "$EVE_PYTHON" - "$@" <<'PY' || fail=1
import json, struct, sys
import numpy as np
def load(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); d = b[8 + n:]
    assert {v["dtype"] for k, v in h.items() if k != "__metadata__"} == {"F32"}, p
    return {k: np.frombuffer(d[v["data_offsets"][0]:v["data_offsets"][1]], dtype=np.float32)
            for k, v in h.items() if k != "__metadata__"}
x, y, tol = load(sys.argv[1] + "/model.safetensors"), load(sys.argv[2] + "/model.safetensors"), float(sys.argv[3])
assert x.keys() == y.keys()
diff = max(float(np.abs(x[k] - y[k]).max()) for k in x)
print(f"max |{sys.argv[1].split('/')[-1]} - {sys.argv[2].split('/')[-1]}| = {diff:.3g} (tolerance {tol})")
assert diff <= tol, diff
PY
}

# 1. msm on the GPU against the CPU. fp32 matrix products on CUDA are float32 (libtorch does not
# allow TF32 for them by default); cuDNN may use TF32 in the patch convolution, and reductions
# sum in another order: measured on an H100, the first steps' losses within about 1e-4.
close "$tmp/c32/metrics.jsonl" "$tmp/g32/metrics.jsonl" 2e-3 4 mim mlm loss
weights "$tmp/c32" "$tmp/g32" 1e-3
# bf16 autocast on CUDA: the first step within 0.5 % of fp32 on CUDA, not bit-identical, the
# bundle float32 (weights() checks the dtype), the precision in trainer.json.
close "$tmp/g32/metrics.jsonl" "$tmp/g16/metrics.jsonl" 5e-3 1 mim mlm loss
"$EVE_PYTHON" - "$tmp/g32/metrics.jsonl" "$tmp/g16/metrics.jsonl" <<'PY' || fail=1
import json, sys
a, b = (json.loads(open(p).readline()) for p in sys.argv[1:])
assert any(a[k] != b[k] for k in ("mim", "mlm")), "bf16 losses equal the fp32 ones bit for bit: autocast did nothing"
PY
# The weights cannot be equal, but neither run can move a weight far: a step of AdamW (lr
# 1.5e-4 by default) moves a weight by at most lr * sqrt(t) at step t (Cauchy-Schwarz over
# the bias-corrected moments), so after 4 steps each run is within 6.2 lr = 9.2e-4 of the
# start and the two within 1.9e-3 of each other, whatever bf16 does to the gradients.
weights "$tmp/g32" "$tmp/g16" 2e-3
check bf16-trainer-precision bf16 "$("$EVE_PYTHON" -c 'import glob,json,sys; print(json.load(open(sorted(glob.glob(sys.argv[1] + "/checkpoint-*/trainer.json"))[-1]))["options"]["precision"])' "$tmp/g16")"

# 2. Resume on the GPU: the run above saved steps 2 and 4; a copy without step 4 resumed from
# step 2 (model, AdamW state and RNG streams back onto the GPU) ends where it did. Atomic adds
# make some CUDA sums order-dependent, so "where" is within 1e-5, not bit for bit.
# The copy is put back to what a run stopped after step 2 leaves (no final model, no later
# metrics lines), so only a resume that trains steps 3 and 4 can pass.
cp -r "$tmp/g32" "$tmp/part"
rm -rf "$tmp/part/checkpoint-00000004" "$tmp/part/model.safetensors"
head -n 2 "$tmp/g32/metrics.jsonl" >"$tmp/part/metrics.jsonl"
"$pre" "${common[@]}" --max-steps 4 --device cuda --save-every 2 --out "$tmp/part" --resume
check resumed-metrics 4 "$(wc -l <"$tmp/part/metrics.jsonl")"
check resumed-steps "1 2 3 4" "$(cut -d, -f1 "$tmp/part/metrics.jsonl" | tr -dc '0-9\n' | tr '\n' ' ' | sed 's/ $//')"
weights "$tmp/g32" "$tmp/part" 1e-5

# 3. The VLMo objective: ITC over the batch, hard negatives drawn on the host from the GPU's
# logits, ITM and MLM. The first step within 2e-3 of the CPU's.
"$pre" "${common[@]}" --objective itc,itm,mlm --device cpu --out "$tmp/vc"
"$pre" "${common[@]}" --objective itc,itm,mlm --device cuda --out "$tmp/vg"
close "$tmp/vc/metrics.jsonl" "$tmp/vg/metrics.jsonl" 2e-3 1 itc itm mlm

# 4. eve-embed and eve-rank --rerank with the GPU-trained bundle: on the CPU and on the GPU,
# the same embeddings (max abs 1e-4) and the same re-ranked scores (max abs 1e-3).
for dev in cpu cuda; do
  "$EVE_BIN/eve-embed" -q -m "$tmp/vg" --images "$tmp/d" -o "$tmp/img_$dev" -b 8 --device "$dev"
  "$EVE_BIN/eve-embed" -q -m "$tmp/vg" --texts "$tmp/d/ids.jsonl" -o "$tmp/txt_$dev" -b 8 --device "$dev"
  "$EVE_BIN/eve-rank" -q --queries "$tmp/txt_$dev.npy" --gallery "$tmp/img_$dev.npy" -k 3 --rerank -m "$tmp/vg" \
    --images "$tmp/d" --texts "$tmp/d/ids.jsonl" --k-test 4 -b 4 --device "$dev" --scores-out "$tmp/s_$dev.npy" \
    >"$tmp/rank_$dev.jsonl"
done
"$EVE_PYTHON" - "$tmp" <<'PY' || fail=1
import sys
import numpy as np
t = sys.argv[1]
for name, tol in (("img", 1e-4), ("txt", 1e-4), ("s", 1e-3)):
    a, b = np.load(f"{t}/{name}_cpu.npy"), np.load(f"{t}/{name}_cuda.npy")
    assert a.shape == b.shape and a.dtype == b.dtype == np.float32, (name, a.shape, b.shape)
    d = float(np.abs(a - b).max())
    print(f"eve-{'rank' if name == 's' else 'embed'} {name}: max |cpu - cuda| = {d:.3g} (tolerance {tol})")
    assert d <= tol, (name, d)
PY

# 5. eve-finetune VQA on the GPU: first step within 2e-3 of the CPU's, predictions written.
W=$tmp/w
"$EVE_BIN/eve-prep" -q vqa --questions train="$W/vqa/questions_train.json" --annotations train="$W/vqa/annotations_train.json" \
  --questions val="$W/vqa/questions_val.json" --annotations val="$W/vqa/annotations_val.json" \
  --images "$W/images" --size 0 --out "$tmp/vqa"
for f in "$tmp"/vqa/*.jsonl; do "$EVE_BIN/eve-tokenize" encode --tokenizer "$tmp/tok.model" "$f" -o "${f%.jsonl}.ids.jsonl"; done
vqa=(--task vqa --data "$tmp/vqa" --model "$tmp/g32" --tokenizer "$tmp/tok.json" --threads 2 -q
     --batch-size 4 --max-steps 3 --eval-every 3 --lr 1e-3)
"$EVE_BIN/eve-finetune" "${vqa[@]}" --device cpu --out "$tmp/fc"
"$EVE_BIN/eve-finetune" "${vqa[@]}" --device cuda --out "$tmp/fg"
close "$tmp/fc/metrics.jsonl" "$tmp/fg/metrics.jsonl" 2e-3 1 loss
[[ -s $tmp/fg/predictions/val.json ]] || { echo "FAIL the GPU fine-tuning wrote no predictions"; fail=1; }

# 6. Several workers: one GPU each, NCCL. With fewer GPUs than workers, a usage error (exit 2)
# naming the missing GPU; with two or more, 2 workers end with the weights of 1 process.
gpus=$("$EVE_PYTHON" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 1)
set +e
err=$(MASTER_PORT=$((29600 + RANDOM % 200)) "$pre" "${common[@]}" --max-steps 4 --device cuda --out "$tmp/two" \
      --nproc-per-node 2 --dist-timeout 30 2>&1); rc=$?
set -e
if [[ $gpus -lt 2 ]]; then
  check few-gpus-exit 2 "$rc"
  [[ $err == *"LOCAL_RANK 1 needs GPU cuda:1, but 1 GPU(s) are visible"* ]] || { echo "FAIL few-gpus message: $err"; fail=1; }
else
  check nccl-exit 0 "$rc"
  weights "$tmp/g32" "$tmp/two" 1e-5
fi
exit $fail
