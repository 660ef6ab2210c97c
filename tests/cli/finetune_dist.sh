#!/usr/bin/env bash
# eve-finetune data parallelism: VQA with 2 local workers (Gloo on loopback) ends with the
# weights of one process with the same global batch (within 1e-5); retrieval, whose
# contrastive loss gathers features across ranks, trains and predicts with 2 workers.
set -euo pipefail
: "${EVE_BIN:?}" "${EVE_SOURCE:?}" "${EVE_PYTHON:?}"
ft=$EVE_BIN/eve-finetune
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
W=$tmp/w
"$EVE_BIN/eve-prep" synth --out "$W" --count 40 --size 32 --seed 2 -q
"$EVE_BIN/eve-prep" -q vqa --questions train="$W/vqa/questions_train.json" --annotations train="$W/vqa/annotations_train.json" \
  --questions val="$W/vqa/questions_val.json" --annotations val="$W/vqa/annotations_val.json" \
  --images "$W/images" --size 0 --out "$tmp/vqa"
"$EVE_BIN/eve-prep" -q retrieval --ann train="$W/retrieval_train.json" --ann val="$W/retrieval_val.json" \
  --images "$W" --size 0 --out "$tmp/ret"
"$EVE_BIN/eve-tokenize" train -q "$W/corpus.txt" -o "$tmp/tok.model" --vocab-size 150
for f in "$tmp"/vqa/*.jsonl "$tmp"/ret/*.jsonl; do
  "$EVE_BIN/eve-tokenize" encode -m "$tmp/tok.model" "$f" -o "${f%.jsonl}.ids.jsonl"
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
   --batch-size 4 --max-steps 3 --seed 1 --flip 0 --val none)
"$ft" "${a[@]}" --out "$tmp/one"
MASTER_PORT=$((29400 + RANDOM % 200)) "$ft" "${a[@]}" --out "$tmp/two" --nproc-per-node 2 --dist-timeout 30
"$EVE_PYTHON" - "$tmp/one/model.safetensors" "$tmp/two/model.safetensors" <<'PY' || fail=1
import json, struct, sys
import numpy as np
def load(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); d = b[8 + n:]
    return {k: np.frombuffer(d[v["data_offsets"][0]:v["data_offsets"][1]], dtype=np.float32)
            for k, v in h.items() if k != "__metadata__"}
x, y = load(sys.argv[1]), load(sys.argv[2])
assert x.keys() == y.keys()
diff = max(float(np.abs(x[k] - y[k]).max()) for k in x)
print(f"VQA: max |1 process - 2 processes| = {diff:.3g}")
if not diff < 1e-5: print("FAIL weights differ"); sys.exit(1)
PY
MASTER_PORT=$((29600 + RANDOM % 200)) "$ft" --task retrieval --data "$tmp/ret" --config eve-tiny --tokenizer "$tmp/tok.json" \
  --image-res 32 --threads 1 -q --batch-size 8 --max-steps 2 --k-test 2 --out "$tmp/r2" --nproc-per-node 2 --dist-timeout 30
"$EVE_PYTHON" - "$tmp/r2" <<'PY' || fail=1
import json, math, sys
d = sys.argv[1]
rows = [json.loads(l) for l in open(d + "/metrics.jsonl")]
train = [r for r in rows if "eval" not in r]
assert [r["step"] for r in train] == [1, 2] and all(math.isfinite(r["itc"]) and math.isfinite(r["itm"]) for r in train), train
res = json.load(open(d + "/results.json"))["splits"]["val"]
assert res["images"] == 4 and res["k_test"] == 2, res
PY
exit $fail
