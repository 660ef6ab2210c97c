#!/usr/bin/env bash
# eve-rank merge: a gallery split in 3 shards, each ranked on its own and the ranks merged,
# is byte-identical to ranking the whole gallery at once (exact ties across shards
# included, any k, k above a shard's size too); the merged meta file; bad parts refused
# with one line naming the file.
source "$(dirname "$0")/lib.bash"
"$PY" - <<'PYEOF'
import json, numpy as np
rng = np.random.default_rng(11)
q = rng.standard_normal((37, 8)).astype(np.float32)
g = rng.standard_normal((700, 8)).astype(np.float32)
# Equal rows in every shard: their equal scores must come out in global row order.
g[10] *= 3  # its own best match whatever the other rows
for r in (250, 600, 20, 699):
    g[r] = g[10]
g[30] = g[500]
q[0] = g[10] * 2; q[1] = g[500]; q[2] = g[10]
np.save("q.npy", q); np.save("g.npy", g)
ids = [f"img{i}" for i in range(700)]
with open("g.ids.jsonl", "w") as f:
    f.writelines(json.dumps(i) + "\n" for i in ids)
for n, (a, b) in enumerate([(0, 233), (233, 500), (500, 700)]):
    np.save(f"s{n}.npy", g[a:b])
    with open(f"s{n}.ids.jsonl", "w") as f:
        f.writelines(json.dumps(i) + "\n" for i in ids[a:b])
np.save("q2.npy", q[:30])
PYEOF
rank() { "$EVE_BIN/eve-rank" -q --threads 2 "$@"; }

for k in 1 10 400; do
  rank --queries q.npy --gallery g.npy -k $k -o whole$k.jsonl
  for n in 0 1 2; do rank --queries q.npy --gallery s$n.npy -k $k -o part$n.k$k.jsonl; done
  "$EVE_BIN/eve-rank" merge -q -k $k part0.k$k.jsonl part1.k$k.jsonl part2.k$k.jsonl -o merged$k.jsonl
  cmp whole$k.jsonl merged$k.jsonl || fail "merge -k $k differs from the single run"
done
head -1 merged10.jsonl | grep -q '"results": \[\["img10", [0-9.]*\], \["img20", [0-9.]*\], \["img250", [0-9.]*\], \["img600", [0-9.]*\], \["img699"' ||
  fail "ties across shards: $(head -1 merged10.jsonl)"
# a smaller -k than the parts kept, and stdout
"$EVE_BIN/eve-rank" merge -q -k 3 part0.k10.jsonl part1.k10.jsonl part2.k10.jsonl > merged3.jsonl
rank --queries q.npy --gallery g.npy -k 3 > whole3.jsonl
cmp whole3.jsonl merged3.jsonl || fail "merge -k 3 of -k 10 parts"

"$PY" - <<'PYEOF' || fail "merged meta file"
import json
m = json.load(open("merged10.meta.json"))
assert m["format"] == "eve-rank-meta 1" and m["ranks"] == "merged10.jsonl", m
assert m["gallery"] == ["s0.npy", "s1.npy", "s2.npy"] and m["gallery_rows"] == 700, m
assert m["queries"] == ["q.npy"] and m["query_rows"] == 37 and m["k"] == 10, m
assert m["merged_from"] == ["part0.k10.jsonl", "part1.k10.jsonl", "part2.k10.jsonl"], m
PYEOF

# bad parts: one line naming the file, exit 1; usage errors exit 2
expect() {  # expect RC PATTERN ARGS...: eve-rank merge ARGS fails so, and writes nothing
  expect_error "$1" "$2" -- eve-rank -q merge "${@:3}" -o bad.jsonl
  [[ ! -e bad.jsonl ]] || fail "merge ${*:3} left an output"
}
rank --queries q2.npy --gallery s1.npy -k 10 -o other.jsonl
expect 1 'part0.k10.meta.json and other.meta.json differ in "queries"' -k 10 part0.k10.jsonl other.jsonl
expect 1 'part1.k1.meta.json: the part kept 1 hits per query of its 267 gallery rows, fewer than -k 10' \
  -k 10 part0.k10.jsonl part1.k1.jsonl
cp part1.k10.jsonl short.jsonl; sed -i '$d' short.jsonl
expect 1 'short.jsonl: ends after 36 queries, but part0.k10.jsonl has more' part0.k10.jsonl short.jsonl
sed '5s/.*/{"query": 4, "results": [[1, 0.5]/' part1.k10.jsonl > broken.jsonl
expect 1 'broken.jsonl:5: not a JSON line' part0.k10.jsonl broken.jsonl
sed '2s/"query": 1,/"query": 99,/' part1.k10.jsonl > swapped.jsonl
expect 1 'swapped.jsonl:2: query 99 where part0.k10.jsonl has query 1' part0.k10.jsonl swapped.jsonl
echo '{"query": 0, "results": [["a", 0.5], ["b", 0.75]]}' > unsorted.jsonl
expect 1 'unsorted.jsonl:1: result 1 scores 0.75, more than the one before it' unsorted.jsonl
echo '{"query": 0, "results": [["a", 1e99]]}' > huge.jsonl
expect 1 'huge.jsonl:1: result 0 has the score 1e99, not a finite float32 number' huge.jsonl
echo '{"query": 0, "hits": []}' > shape.jsonl
expect 1 'shape.jsonl:1: no "results"' shape.jsonl
expect 2 'missing.jsonl' part0.k10.jsonl missing.jsonl
expect 2 '' -k 0 part0.k10.jsonl
echo ok
