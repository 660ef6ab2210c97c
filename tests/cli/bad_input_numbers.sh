#!/usr/bin/env bash
# Numbers that are not finite never reach an output as a bare nan/inf, and inputs that hold
# them are errors naming the file, row and column; each numbered part below says which.
source "$(dirname "$0")/lib.bash"
# strict_json FILE...: every line of every file parses with nan/inf refused.
strict_json() {
  "$PY" - "$@" <<'PYEOF' || fail "not strict JSON: $*"
import json, sys
def refuse(c): raise ValueError("bare " + c)
for path in sys.argv[1:]:
    for n, line in enumerate(open(path), 1):
        json.loads(line, parse_constant=refuse)
PYEOF
}

# 1. eve-score: a NaN score is an error naming file, row and column; infinite scores (here
# float16 and float32) still order, and the result is strict JSON.
"$PY" - <<'PYEOF'
import json, numpy as np
json.dump([{"image": "a.jpg", "caption": ["x", "y"]}, {"image": "b.jpg", "caption": ["z"]}], open("ann.json", "w"))
i2t = np.array([[3, 2, 1], [0, 1, np.inf]], np.float16)
t2i = np.ascontiguousarray(i2t.T.astype(np.float32))
np.save("i2t.npy", i2t); np.save("t2i.npy", t2i)
bad = t2i.copy(); bad[2, 0] = np.nan; np.save("t2i_nan.npy", bad)
PYEOF
expect_error 1 "t2i_nan.npy: score at row 2, column 0 is NaN" -- \
  "$EVE_BIN/eve-score" retrieval --ann ann.json --i2t i2t.npy --t2i t2i_nan.npy
"$EVE_BIN/eve-score" retrieval --ann ann.json --i2t i2t.npy --t2i t2i.npy > score.json
strict_json score.json
grep -q '"txt_r1":100.0' score.json || fail "score with inf: $(cat score.json)"

"$PY" - <<'PYEOF'
import json, numpy as np
rng = np.random.default_rng(3)
q = rng.standard_normal((6, 8)).astype(np.float32)
g = rng.standard_normal((30, 8)).astype(np.float32)
np.save("q.npy", q); np.save("g.npy", g)
np.save("g1.npy", g[:10]); np.save("g2.npy", g[10:].astype(np.float16))
a = q.copy(); a[2, 3] = np.nan; np.save("q_nan.npy", a)
b = g[10:].astype(np.float16); b[5, 1] = np.inf; np.save("g2_inf.npy", b)
b = g[10:].copy(); b[7, 0] = -np.inf; np.save("g2_minf.npy", b)
np.save("w5.npy", rng.standard_normal((4, 5)).astype(np.float32))
# Finite, but the inner product of query row 1 and gallery row 12 is beyond float32's range.
big = q.copy(); big[1] = 1e30; np.save("q_big.npy", big)
big = g[10:].copy(); big[2] = 1e30; np.save("g2_big.npy", big)
PYEOF

# 2. eve-rank: NaN in float32 queries, inf in a float16 gallery part, -inf in a float32 part.
expect_error 1 "q_nan.npy: value at row 2, column 3 is NaN" -- \
  "$EVE_BIN/eve-rank" -q --queries q_nan.npy --gallery g.npy -o ranks.jsonl
[[ ! -e ranks.jsonl ]] || fail "rank-nan left ranks.jsonl"
expect_error 1 "g2_inf.npy: value at row 5, column 1 is inf" -- \
  "$EVE_BIN/eve-rank" -q --queries q.npy --gallery g1.npy g2_inf.npy
expect_error 1 "g2_minf.npy: value at row 7, column 0 is -inf" -- \
  "$EVE_BIN/eve-rank" -q --queries q.npy --gallery g1.npy g2_minf.npy --scores-out s.npy
[[ ! -e s.npy ]] || fail "rank-minf left s.npy"

# 3. eve-rank: finite embeddings whose scores overflow float32, in ranks and --scores-out.
expect_error 1 "score at row 1, column 12 is inf: the inner product of q_big.npy row 1 and g2_big.npy row 2 is beyond float32's range" -- \
  "$EVE_BIN/eve-rank" -q --queries q_big.npy --gallery g1.npy g2_big.npy -k 3 -o ranks.jsonl
[[ ! -e ranks.jsonl ]] || fail "rank-overflow left ranks.jsonl"
expect_error 1 "score at row 1, column 12 is inf: the inner product of q_big.npy row 1 and g2_big.npy row 2" -- \
  "$EVE_BIN/eve-rank" -q --queries q_big.npy --gallery g1.npy g2_big.npy -o ranks.jsonl --scores-out s.npy
[[ ! -e s.npy && ! -e ranks.jsonl ]] || fail "rank-overflow-scores left outputs"

# 4. eve-rank: widths differ: both files, both widths, one line.
expect_error 1 "the queries q.npy have 8 columns but the gallery w5.npy has 5" -- \
  "$EVE_BIN/eve-rank" -q --queries q.npy --gallery w5.npy
[[ $(wc -l <err) == 1 ]] || fail "rank-width: not one line: $(cat err)"

# The good inputs still rank, and the output is strict JSON.
"$EVE_BIN/eve-rank" -q --queries q.npy --gallery g1.npy g2.npy -k 4 -o ranks.jsonl
[[ $(wc -l <ranks.jsonl) == 6 ]] || fail "ranks: $(wc -l <ranks.jsonl) lines"
strict_json ranks.jsonl

# 5. eve-embed: a model whose word embedding of token 7 is NaN gives NaN for the texts that
# hold it: the part holding such a text fails naming its row, column and input; the part
# before it is finished (a rerun resumes there); no matrix holds a NaN.
make_bundle bundle
"$PY" - "$EVE_SOURCE/tests/reference" <<'PYEOF'
import json, sys, math
sys.path.insert(0, sys.argv[1])
import eve_ref_io
w = eve_ref_io.load("bundle/model.safetensors")
key = [k for k in w if k.endswith("word_embedding.weight")]
assert len(key) == 1, key
w[key[0]][7] = math.nan
eve_ref_io.save("bundle/model.safetensors", w)
with open("texts.jsonl", "w") as f:
    for i, ids in enumerate([[2, 5, 3], [2, 6, 9, 3], [2, 8, 3], [2, 9, 7, 3]]):
        f.write(json.dumps({"id": "t%d" % i, "ids": ids}) + "\n")
PYEOF
expect_error 1 'txt-00001.npy: embedding at row 1, column 0 is NaN for input "t3"' -- \
  "$EVE_BIN/eve-embed" -q -m bundle --texts texts.jsonl -o txt --part-size 2 -b 1
[[ -f txt-00000.npy && -f txt-00000.ids.jsonl && ! -e txt-00001.npy && ! -e txt-00001.ids.jsonl ]] ||
  fail "embed-nan parts: $(ls txt*)"
"$PY" -c "import numpy as np; a = np.load('txt-00000.npy'); assert a.shape[0] == 2 and np.isfinite(a).all()" ||
  fail "embed-nan: part 0"
expect_error 1 'txt.npy: embedding at row 3, column 0 is NaN for input "t3"' -- \
  "$EVE_BIN/eve-embed" -q -m bundle --texts texts.jsonl -o txt.npy --half
[[ ! -e txt.npy ]] || fail "embed-nan-half left txt.npy"

# 6. eve-rank --rerank with that model: the ITM logit of text t3 (query row 3) is NaN, an
# error naming the query and gallery rows and their files; no ranks are left.
"$PY" - <<'PYEOF'
import json, numpy as np
from PIL import Image
rng = np.random.default_rng(5)
for name in ("a.png", "b.png", "c.png"):
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(name)
np.save("qr.npy", rng.standard_normal((4, 6)).astype(np.float32))
np.save("gr.npy", rng.standard_normal((3, 6)).astype(np.float32))
open("qr.ids.jsonl", "w").write("".join(json.dumps("t%d" % i) + "\n" for i in range(4)))
open("gr.ids.jsonl", "w").write("".join(json.dumps(n) + "\n" for n in ("a.png", "b.png", "c.png")))
PYEOF
rm -f ranks.jsonl
expect_error 1 "is NaN: the ITM match logit of the model bundle for qr.npy row 3 and gr.npy row" -- \
  "$EVE_BIN/eve-rank" -q --queries qr.npy --gallery gr.npy -k 2 --rerank -m bundle --images a.png b.png c.png \
  --texts texts.jsonl --k-test 3 -o ranks.jsonl
grep -q "score at row 3, column [0-2] is NaN" err || fail "rerank-nan: $(cat err)"
[[ ! -e ranks.jsonl ]] || fail "rerank-nan left ranks.jsonl"

# 7. eve-pretrain and eve-finetune at a learning rate that makes the loss NaN: exit 1, the
# message names the step, metrics.jsonl ends with that step and "loss": null, all strict JSON.
# loss_stop RUN_DIR: checks the metrics against the message in err.
loss_stop() {
  "$PY" - "$1/metrics.jsonl" err <<'PYEOF' || fail "loss_stop $1: $(cat err)"
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
step = int(re.search(r"the loss is not finite at step (\d+)", open(sys.argv[2]).read()).group(1))
assert rows[-1]["step"] == step and rows[-1]["loss"] is None, (rows[-1], step)
assert all(r["loss"] is not None for r in rows[:-1]), rows
assert [r["step"] for r in rows] == list(range(1, step + 1)), rows
PYEOF
  strict_json "$1/metrics.jsonl"
}
"$EVE_BIN/eve-prep" synth --out w --count 16 --size 32 --nlvr-sets 2 --seed 2 -q
"$EVE_BIN/eve-prep" -q pairs --ann w/pairs_train.json --images w --out pairs
"$EVE_BIN/eve-tokenize" train -q pairs/train.jsonl -o tok.model --vocab-size 120
"$EVE_BIN/eve-tokenize" encode --tokenizer tok.model pairs/train.jsonl -o pairs/ids.jsonl
expect_error 1 "the loss is not finite at step" -- \
  "$EVE_BIN/eve-pretrain" -q --data pairs --split ids --tokenizer tok.json --config eve-tiny --out pre \
  --batch-size 4 --max-steps 6 --lr 1e30 --warmup 0 --log-every 1 --threads 2
loss_stop pre
"$EVE_BIN/eve-prep" -q vqa --questions train=w/vqa/questions_train.json --annotations train=w/vqa/annotations_train.json \
  --images w/images --size 0 --out vqa
"$EVE_BIN/eve-tokenize" encode --tokenizer tok.model vqa/train.jsonl -o vqa/train.ids.jsonl
expect_error 1 "the loss is not finite at step" -- \
  "$EVE_BIN/eve-finetune" -q --task vqa --data vqa --config eve-tiny --tokenizer tok.json --image-res 32 \
  --out ft --batch-size 4 --max-steps 6 --lr 1e30 --warmup 0 --log-every 1 --val none --threads 2
loss_stop ft
echo ok
