#!/usr/bin/env bash
# eve-rank against an exact float64 oracle (tests/reference/rank_ref.py --exact) on rows
# with planted exact ties and near-ties, across several query blocks and gallery tiles, at
# 1, 2 and 3 threads, float32 and float16 galleries: the same rows in the same order
# (ties to the lower row), the same scores to the last bit, the same bytes for every
# thread count.
source "$(dirname "$0")/lib.bash"
"$PY" - <<'PYEOF'
import numpy as np
rng = np.random.default_rng(11)
nq, ng, d = 1100, 3100, 48  # two query blocks, four gallery tiles (the last one partial)
g = rng.standard_normal((ng, d)).astype(np.float32)
g /= np.linalg.norm(g, axis=1, keepdims=True)
q = rng.standard_normal((nq, d)).astype(np.float32)
q /= np.linalg.norm(q, axis=1, keepdims=True)
# Exact ties: copies of row 5 spread over every tile, more of them than k; query 0 and the
# first query of the second block are row 5 itself, so all copies are their best rows.
copies = [5, 700, 1023, 1024, 1500, 2047, 2048, 2600, 3071, 3072, 3099]
for r in copies[1:]:
    g[r] = g[5]
q[0] = g[5]; q[1024] = g[5]
# Near-ties: rows that differ from row 9 in its largest component so that their exact
# scores against row 9 are 1, 2 or 3 float32 ulps of 1 apart, closer than the rounding of a
# float32 product of 48 terms: the float32 order of these candidates cannot be trusted.
base = g[9].copy()
j = int(np.argmax(np.abs(base)))
for n, r in ((2, 10), (-1, 1030), (3, 2050), (1, 3090)):
    g[r] = base
    g[r, j] = np.float32(base[j] + n * 2.0 ** -23 / base[j])
q[1] = base * 4; q[1099] = base
np.save("q.npy", q); np.save("f32.npy", g)
np.save("f16.npy", g.astype(np.float16))
PYEOF
same_as_exact() { # got.jsonl gallery.npy k
  "$PY" "$EVE_SOURCE/tests/reference/rank_ref.py" --exact q.npy "$2" "$3" > want.jsonl
  "$PY" - "$1" want.jsonl "$3" <<'PYEOF' || exit 1
import json, sys
import numpy as np
f32 = lambda r: {"query": r["query"], "results": [[i, np.float32(s)] for i, s in r["results"]]}
got = [f32(json.loads(l)) for l in open(sys.argv[1])]
want = [f32(json.loads(l)) for l in open(sys.argv[2])]
assert len(got) == len(want) == 1100, (len(got), len(want))
bad = [(a, b) for a, b in zip(got, want) if a != b]
assert not bad, f"{len(bad)} queries differ from the exact ranking, first: {bad[0]}"
k = int(sys.argv[3])
copies = [5, 700, 1023, 1024, 1500, 2047, 2048, 2600, 3071, 3072, 3099]
for i in (0, 1024):
    assert [r[0] for r in got[i]["results"]] == copies[:k], got[i]
# the near-ties are query 1099's best rows, at several distinct scores in float32 (float16
# rounds them to one value: then they are exact ties, in row order)
near = got[1099]["results"][:5]
if sys.argv[1].startswith("f32"):
    assert sorted(r[0] for r in near) == [9, 10, 1030, 2050, 3090], got[1099]
    assert len({r[1] for r in near}) >= 3, got[1099]
else:
    assert [r[0] for r in near] == [9, 10, 1030, 2050, 3090], got[1099]
PYEOF
}
for gal in f32.npy f16.npy; do
  for th in 1 2 3; do
    "$EVE_BIN/eve-rank" --queries q.npy --gallery "$gal" -k 10 --threads "$th" -q > "$gal.$th.jsonl"
  done
  cmp "$gal.1.jsonl" "$gal.2.jsonl" || fail "$gal: output differs between 1 and 2 threads"
  cmp "$gal.1.jsonl" "$gal.3.jsonl" || fail "$gal: output differs between 1 and 3 threads"
  same_as_exact "$gal.1.jsonl" "$gal" 10
done
# Eleven copies fit in the k + 16 candidates the search keeps, so nothing is reported. With
# 60 more copies of row 5, every query that has row 5 in its top 10 (queries 0 and 1024, and
# any other that happens to) has 71 rows at its k-th score: each is counted.
"$EVE_BIN/eve-rank" --queries q.npy --gallery f32.npy -k 10 > /dev/null 2> plain.err
grep -q "within float32 rounding" plain.err && fail "a warning about crowding without a crowd: $(cat plain.err)"
crowded=$("$PY" -c "
import numpy as np
q, g = np.load('q.npy').astype(np.float64), np.load('f32.npy')
g[200:260] = g[5]; np.save('crowd.npy', g)
s = q @ g.astype(np.float64).T
kth = np.sort(s, axis=1)[:, -10]
print(int((s[:, 5] >= kth - 1e-6).sum()))")
[ "$crowded" -ge 2 ] || fail "the crowd reaches $crowded queries, expected at least 2"
"$EVE_BIN/eve-rank" --queries q.npy --gallery crowd.npy -k 10 > /dev/null 2> crowd.err
grep -q "rank: $crowded queries have more than 26 gallery rows within float32 rounding of their k-th score" crowd.err ||
  fail "expected a warning about $crowded crowded queries: $(cat crowd.err)"
echo ok
