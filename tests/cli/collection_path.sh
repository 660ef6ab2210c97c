#!/usr/bin/env bash
# The README's collection path (embed -> rank -> score -> report, between the
# collection-path markers) run as it stands there, on a small toy world with a random
# bundle; then what it rests on: eve-embed --split embeds only the split's images,
# eve-score retrieval scores the same with --data alone and with --ann + --data, and the
# bad inputs of both options.
source "$(dirname "$0")/lib.bash"

# What the README's block starts from: the toy world, a tokenizer and a retrieval bundle.
"$EVE_BIN/eve-prep" synth --out world --count 20 --size 48 --nlvr-sets 2 --seed 4 -q
"$EVE_BIN/eve-tokenize" train -q world/corpus.txt -o tok.model --vocab-size 300
make_bundle runs/retrieval
ln -s "$EVE_SOURCE/scripts" scripts

# The block's lines, continuation lines joined; every line must run as written.
awk '/<!-- collection-path -->/ {on = 1; next} /<!-- \/collection-path -->/ {on = 0} on' "$EVE_SOURCE/README.md" |
  grep -v '^```' | sed -e ':a' -e '/\\$/N; s/\\\n//; ta' >commands.sh
[[ $(grep -c . commands.sh) -ge 8 ]] || fail "the README's collection path is missing: $(cat commands.sh)"
grep -q '^eve-embed .*--split test' commands.sh || fail "the block lost eve-embed --split: $(cat commands.sh)"
n=0
while IFS= read -r line; do
  [[ -n $line ]] || continue
  n=$((n + 1))
  PATH="$EVE_BIN:$PATH" bash -c "$line" >"step$n.out" 2>"step$n.err" ||
    fail "README line $n failed: $line: $(cat "step$n.err")"
done <commands.sh

# The split's images alone, in record order: 2 test images (of the 20 the dir stores).
"$PY" - <<'PYEOF' || exit 1
import json
keys = [json.loads(l)["image"] for l in open("data/retrieval/test.jsonl")]
rows = [json.loads(l) for l in open("emb/test-images.ids.jsonl")]
stored = int(open("data/retrieval/images.idx").read().split("\n")[2].split()[1])
assert rows == keys and len(keys) < stored, (rows, keys, stored)
PYEOF
table=$(cat "step$(grep -n '^eve-score' commands.sh | cut -d: -f1).out")
grep -qE '^r_mean +[0-9.]+$' <<<"$table" || fail "no r_mean in the table: $table"
grep -qE '^images +2$' <<<"$table" || fail "not 2 images: $table"
[[ -f report/retrieval/index.html ]] || fail "no report page"

# The same numbers from the dataset dir alone and with the test file, by key or by path.
score=$EVE_BIN/eve-score
with_ann=$("$score" retrieval --ann world/retrieval_test.json --data data/retrieval --i2t-ranks i2t.jsonl --t2i-ranks t2i.jsonl)
alone=$("$score" retrieval --data data/retrieval --split test --i2t-ranks i2t.jsonl --t2i-ranks t2i.jsonl)
[[ $with_ann == "$alone" ]] || fail "--ann + --data $with_ann vs --data $alone"
"$PY" - <<'PYEOF' || exit 1
import json
# The ranks renamed to the test file's paths score the same against it without --data.
path = {r["image"]: e["image"] for r, e in zip(map(json.loads, open("data/retrieval/test.jsonl")),
                                             json.load(open("world/retrieval_test.json")))}
def rename(i):
    key, sep, k = i.partition("#")
    return path[key] + sep + k
for name in ("i2t", "t2i"):
    with open(name + ".paths.jsonl", "w") as f:
        for l in open(name + ".jsonl"):
            r = json.loads(l)
            f.write(json.dumps({"query": rename(r["query"]), "results": [[rename(i), s] for i, s in r["results"]]}) + "\n")
PYEOF
by_path=$("$score" retrieval --ann world/retrieval_test.json --i2t-ranks i2t.paths.jsonl --t2i-ranks t2i.paths.jsonl)
[[ $by_path == "$alone" ]] || fail "paths $by_path vs keys $alone"

# Bad inputs.
expect_error 1 "add --data DIR --split SPLIT" -- \
  "$score" retrieval --ann world/retrieval_test.json --i2t-ranks i2t.jsonl --t2i-ranks t2i.jsonl
expect_error 1 "data/retrieval: the dataset dir has no split nope (no data/retrieval/nope.jsonl)" -- \
  "$score" retrieval --data data/retrieval --split nope --i2t-ranks i2t.jsonl --t2i-ranks t2i.jsonl
expect_error 2 "give the test annotation (--ann FILE) or the dataset dir" -- \
  "$score" retrieval --i2t-ranks i2t.jsonl --t2i-ranks t2i.jsonl
expect_error 1 "no entry of world/retrieval_val.json has its captions" -- \
  "$score" retrieval --ann world/retrieval_val.json --data data/retrieval --i2t-ranks i2t.jsonl --t2i-ranks t2i.jsonl
embed=$EVE_BIN/eve-embed
expect_error 2 "data/retrieval: the dataset dir has no split nope" -- \
  "$embed" -q -m runs/retrieval --images data/retrieval --split nope -o x
expect_error 2 "world/images: --split selects records of a dataset dir; this is not one" -- \
  "$embed" -q -m runs/retrieval --images world/images --split test -o x
expect_error 2 "--split goes with --images" -- \
  "$embed" -q -m runs/retrieval --texts data/retrieval/test.ids.jsonl --split test -o x
"$embed" --help | grep -q -- "--split" || fail "eve-embed --help lacks --split"
"$score" retrieval --help | grep -q -- "--data" || fail "eve-score retrieval --help lacks --data"
echo "ok: $n README lines"
exit $fail
