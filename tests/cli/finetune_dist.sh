#!/usr/bin/env bash
# eve-finetune data parallelism: VQA with 2 local workers (Gloo on loopback) ends with the
# weights of one process with the same global batch (within 1e-5), and so does retrieval,
# whose contrastive loss gathers features and draws hard negatives across ranks (losses and
# weights within the tolerances stated below).
source "$(dirname "$0")/lib.bash"
ft=$EVE_BIN/eve-finetune
W=$tmp/w
"$EVE_BIN/eve-prep" synth --out "$W" --count 40 --size 32 --seed 2 -q
"$EVE_BIN/eve-prep" -q vqa --questions train="$W/vqa/questions_train.json" --annotations train="$W/vqa/annotations_train.json" \
  --questions val="$W/vqa/questions_val.json" --annotations val="$W/vqa/annotations_val.json" \
  --images "$W/images" --size 0 --out "$tmp/vqa"
"$EVE_BIN/eve-prep" -q retrieval --ann train="$W/retrieval_train.json" --ann val="$W/retrieval_val.json" \
  --images "$W" --size 0 --out "$tmp/ret"
"$EVE_BIN/eve-tokenize" train -q "$W/corpus.txt" -o "$tmp/tok.model" --vocab-size 150
for f in "$tmp"/vqa/*.jsonl "$tmp"/ret/*.jsonl; do
  "$EVE_BIN/eve-tokenize" encode --tokenizer "$tmp/tok.model" "$f" -o "${f%.jsonl}.ids.jsonl"
done
# No randomness inside the model and no token dropping: the runs differ only in how the
# global batch is split.
"$EVE_PYTHON" - "$EVE_SOURCE/share/eve/configs/eve-tiny.json" "$tmp/det.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.update(drop_path_rate=0.0, text_dropout=0.0, moe_noise=False, moe_capacity_factor=2.0, moe_lossweight=0.0)
json.dump(c, open(sys.argv[2], "w"))
PY
a=(--task vqa --data "$tmp/vqa" --config "$tmp/det.json" --tokenizer "$tmp/tok.json" --image-res 32 --threads 1 -q
   --batch-size 4 --max-steps 3 --seed 1 --no-flip --val none)
"$ft" "${a[@]}" --out "$tmp/one"
MASTER_PORT=$((29400 + RANDOM % 200)) "$ft" "${a[@]}" --out "$tmp/two" --nproc-per-node 2 --dist-timeout 30
same_weights VQA "$tmp/one" "$tmp/two" 1e-5 1
# Retrieval: the contrastive loss gathers the features of every rank and draws the ITM hard
# negatives from the whole global batch with a rank-independent seed, fetching the chosen
# images/texts from the ranks that hold them, so 2 workers train as 1 process: the same loss
# and loss parts (within 1e-5 at step 1, 1e-4 later) and the same weights at the end. Adam
# moves every weight by about +-lr whatever the size of its gradient, so a weight whose
# gradient is ~0 moves the way float noise of the summation order says: the tolerance is that
# at most 0.1 % of the weights differ by more than 1e-6 and none by more than 1e-4 (measured:
# 24 of 1.9 M weights, max 8.3e-6; 3.5e-5 with another build). The start is a bundle with
# wide random weights (std 0.3): with eve-tiny's own initialisation every ITC feature is nearly
# the same (ITC at ln(batch)) and the ITC gradient is float noise everywhere.
"$ft" --task retrieval --data "$tmp/ret" --config "$tmp/det.json" --tokenizer "$tmp/tok.json" --image-res 32 --threads 1 \
  -q --batch-size 8 --max-steps 1 --val none --out "$tmp/wide"
widen_weights "$tmp/wide"
b=(--task retrieval --data "$tmp/ret" --model "$tmp/wide" --image-res 32 --threads 1 -q --batch-size 8 --max-steps 3
   --seed 1 --no-flip --k-test 2)
"$ft" "${b[@]}" --out "$tmp/r1"
MASTER_PORT=$((29600 + RANDOM % 200)) "$ft" "${b[@]}" --out "$tmp/r2" --nproc-per-node 2 --dist-timeout 30
"$EVE_PYTHON" - "$tmp/r1" "$tmp/r2" <<'PY' || fail=1
import json, math, sys
one, two = sys.argv[1], sys.argv[2]
train = lambda d: [r for r in map(json.loads, open(d + "/metrics.jsonl")) if "eval" not in r]
t1, t2 = train(one), train(two)
assert [r["step"] for r in t2] == [1, 2, 3], t2
for a, b in zip(t1, t2):
    print(f"retrieval step {a['step']}: itc {a['itc']:.6f} / {b['itc']:.6f}, itm {a['itm']:.6f} / {b['itm']:.6f}")
    tol = 1e-5 if a["step"] == 1 else 1e-4  # later steps start from weights apart by float noise
    for k in ("loss", "itc", "itm", "itm_accuracy"):
        if not (math.isfinite(b[k]) and abs(a[k] - b[k]) <= tol):
            print(f"FAIL {k}: 2 workers do not compute the 1-process value"); sys.exit(1)
res = json.load(open(two + "/results.json"))["splits"]["val"]
assert res["images"] == 4 and res["k_test"] == 2, res
PY
same_weights retrieval "$tmp/r1" "$tmp/r2" 1e-4 1e-3
exit $fail
