#!/usr/bin/env bash
# eve-embed's meta files, eve-rank's use of them, and reruns: each output part has a <stem>.meta.json saying what its
# rows are and what they were made from (bundle by sha256, compat, resolution, inputs,
# dtype, ...); a rerun skips a part only when it was made the same way, refuses a part made
# otherwise (exit 2, naming the file and what differs, before any work), and --overwrite
# makes it again. eve-rank refuses queries and gallery from different bundles (naming both
# meta files; --allow-mixed overrides) and writes what it ranked beside the ranks.
source "$(dirname "$0")/lib.bash"
shopt -s nullglob
embed=$EVE_BIN/eve-embed
make_bundle bundle
make_dataset

# expect_refusal NAME MESSAGE-PART -- command...: expect_error 2, and the outputs untouched;
# the message is left in $out.
expect_refusal() {
  local name=$1 msg=$2; shift 3
  local before
  before=$(cat ./*.npy ./*.meta.json | sha256sum)
  expect_error 2 "$msg" -- "$@"
  out=$(cat "$t/err")
  [[ $before == "$(cat ./*.npy ./*.meta.json | sha256sum)" ]] || fail "$name: a refused run changed the outputs"
}

# 1. Images: the meta file describes the rows and names the bundle by content.
"$embed" -q -m bundle --images ret -o img -b 4
"$PY" - <<'EOF' || fail "image meta"
import hashlib, json
import numpy as np
m = json.load(open("img.meta.json"))
x = np.load("img.npy")
assert m["format"] == "eve-embed-meta 1" and m["tool"].startswith("eve-embed "), m
assert m["modality"] == "image" and m["rows"] == x.shape[0] == 18 and m["cols"] == x.shape[1], m
assert m["dtype"] == "float32" and m["l2_normalized"] is True and m["bundle"] == "bundle", m
f = m["made_from"]
assert f["model_sha256"] == hashlib.sha256(open("bundle/model.safetensors", "rb").read()).hexdigest(), f
assert f["inputs"] == ["ret"] and f["image_res"] == 32 and f["compat"] == "eve" and f["dtype"] == "float32", f
assert "tokenizer_sha256" not in f and "after the final LayerNorm" in f["embedding"], f
EOF

# 2. The same command again: nothing to do, same bytes. Another batch size changes nothing in
# the rows of a compat eve bundle, so it is the same output too.
cp img.npy img.first
"$embed" -m bundle --images ret -o img -b 4 2>err.txt
grep -q "nothing to do" err.txt || fail "rerun: $(cat err.txt)"
"$embed" -q -m bundle --images ret -o img -b 7
cmp -s img.npy img.first || fail "a rerun rewrote the rows"

# 3. Made otherwise: refused before any work, naming the file and the difference.
expect_refusal half "img.npy: exists and was not made from these inputs, bundle and options: dtype was \"float32\", now \"float16\"" -- \
  "$embed" -q -m bundle --images ret -o img --half
cp -r bundle other
"$PY" - <<'EOF'
import json, struct
b = bytearray(open("other/model.safetensors", "rb").read())
n = struct.unpack("<Q", b[:8])[0]
b[-4:] = bytes(4)  # another last weight
open("other/model.safetensors", "wb").write(bytes(b))
EOF
expect_refusal bundle "model_sha256 was" -- "$embed" -q -m other --images ret -o img
expect_refusal inputs "inputs was [\"ret\"], now [\"w/images\"]" -- "$embed" -q -m bundle --images w/images -o img
grep -q -- "--overwrite" <<<"$out" || fail "the refusal does not say how to go on: $out"

# 4. --overwrite makes it again, with a meta file that says so.
"$embed" -q -m bundle --images ret -o img --half --overwrite
"$PY" -c 'import json, numpy as np; m = json.load(open("img.meta.json")); assert m["dtype"] == m["made_from"]["dtype"] == "float16" and np.load("img.npy").dtype == np.float16, m' ||
  fail "--overwrite --half"

# 5. Outputs without a meta file (an earlier eve, another tool) are not taken as this run's.
rm img.meta.json
expect_refusal no-meta "it has no img.meta.json saying how it was made" -- "$embed" -q -m bundle --images ret -o img --half
"$embed" -q -m bundle --images ret -o img --half --overwrite
[[ -f img.meta.json ]] || fail "no meta after --overwrite"

# 6. Parts: each has its meta; a part made with another part size is refused, and a rerun
# after a part is removed makes only that part.
"$embed" -q -m bundle --images ret -o p -b 4 --part-size 7
for k in 00000 00001 00002; do
  [[ -f p-$k.meta.json ]] || fail "no p-$k.meta.json"
  [[ $("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["part"])' "p-$k.meta.json") == "$((10#$k))" ]] ||
    fail "p-$k.meta.json part number"
done
expect_refusal part-size "p-00000.npy: exists and was not made from these inputs, bundle and options: part_size was 7, now 6" -- \
  "$embed" -q -m bundle --images ret -o p --part-size 6
rm p-00001.npy
"$embed" -m bundle --images ret -o p -b 4 --part-size 7 2>err.txt
grep -q "in 1 part(s), 2 part(s) already done" err.txt || fail "part rerun: $(cat err.txt)"

# 7. Texts: the tokenizer of the bundle is named by content too.
cp tok.model bundle/tokenizer.model
"$EVE_BIN/eve-tokenize" encode --tokenizer tok.model --max-tokens 16 < ret/test.jsonl > test.ids.jsonl
"$embed" -q -m bundle --texts test.ids.jsonl -o txt
"$PY" - <<'EOF' || fail "text meta"
import hashlib, json
m = json.load(open("txt.meta.json"))
f = m["made_from"]
assert m["modality"] == "text" and f["inputs"] == "test.ids.jsonl" and f["max_text_len"] == 16, m
assert f["tokenizer_sha256"] == hashlib.sha256(open("bundle/tokenizer.model", "rb").read()).hexdigest(), f
assert "image_res" not in f and "batch_size" not in f, f
EOF
# 8. eve-rank: text queries of `bundle` against images of `bundle` are ranked, and the ranks
# get a meta file; images of `other` are refused, naming both meta files.
rank=$EVE_BIN/eve-rank
"$embed" -q -m bundle --images ret -o gal
"$rank" -q --queries txt.npy --gallery gal.npy -k 3 -o ranks.jsonl
"$PY" - <<'EOF' || fail "rank meta"
import hashlib, json
m = json.load(open("ranks.meta.json"))
sha = hashlib.sha256(open("bundle/model.safetensors", "rb").read()).hexdigest()
assert m["format"] == "eve-rank-meta 1" and m["ranks"] == "ranks.jsonl" and m["k"] == 3, m
assert m["queries"] == ["txt.npy"] and m["gallery"] == ["gal.npy"] and m["query_rows"] == 10 and m["gallery_rows"] == 18, m
assert m["model_sha256"] == {"queries": [sha], "gallery": [sha]}, m
assert m["score"] == "inner product of the embeddings" and m["rerank"] is None, m
EOF
"$embed" -q -m other --images ret -o gal2
set +e; out=$("$rank" -q --queries txt.npy --gallery gal.npy gal2.npy -k 3 -o mixed.jsonl 2>&1); rc=$?; set -e
[[ $rc == 1 && $out == *"txt.meta.json and gal2.meta.json describe embeddings of different models: model_sha256 "* ]] ||
  fail "mixed bundles: exit $rc: $out"
[[ ! -e mixed.jsonl ]] || fail "a refused rank wrote its output"
"$rank" --queries txt.npy --gallery gal.npy gal2.npy -k 3 -o mixed.jsonl --allow-mixed 2>err.txt
grep -q "ranked anyway (--allow-mixed)" err.txt && [[ -s mixed.jsonl ]] || fail "--allow-mixed: $(cat err.txt)"
# Parts made elsewhere (no meta file) are ranked with a note.
cp gal2.npy bare.npy; cp gal2.ids.jsonl bare.ids.jsonl
"$rank" --queries txt.npy --gallery bare.npy -k 3 -o bare.jsonl 2>err.txt
grep -q "1 of 2 parts have no eve-embed meta file" err.txt || fail "no-meta note: $(cat err.txt)"
echo "embed_meta: ok"
