#!/usr/bin/env bash
# eve-rank against a numpy brute-force oracle: parts, ids files, ties, --scores-out, errors.
source "$(dirname "$0")/lib.bash"
"$PY" - <<'PYEOF'
import json, numpy as np
rng = np.random.default_rng(7)
q = rng.standard_normal((23, 8)).astype(np.float32)
g = rng.standard_normal((301, 8)).astype(np.float32)
g[40] = g[3]; g[250] = g[3]          # exact ties: must rank as 3, 40, 250
q[0] = g[3] * 3
np.save("q.npy", q); np.save("g.npy", g)
np.save("g1.npy", g[:100]); np.save("g2.npy", g[100:].astype(np.float16).astype(np.float32))
np.save("g2h.npy", g[100:].astype(np.float16))
with open("g1.ids.jsonl", "w") as f:
    for i in range(100): f.write(json.dumps({"id": f"img{i}"}) + "\n")
for name in ("g2.ids.jsonl", "g2h.ids.jsonl"):
    with open(name, "w") as f:
        for i in range(100, 301): f.write(json.dumps(f"img{i}") + "\n")
PYEOF

# 1. one part, row numbers as ids, same as the oracle (scores to float32 precision)
"$EVE_BIN/eve-rank" --queries q.npy --gallery g.npy -k 5 --threads 2 -q > got.jsonl
"$PY" "$EVE_SOURCE/tests/reference/rank_ref.py" q.npy g.npy 5 > want.jsonl
"$PY" - <<'PYEOF' || exit 1
import json
got = [json.loads(l) for l in open("got.jsonl")]
want = [json.loads(l) for l in open("want.jsonl")]
assert len(got) == len(want) == 23, (len(got), len(want))
for a, b in zip(got, want):
    assert a["query"] == b["query"]
    assert [r[0] for r in a["results"]] == [r[0] for r in b["results"]], (a, b)
    for (_, x), (_, y) in zip(a["results"], b["results"]):
        assert abs(x - y) <= 1e-5 * max(1, abs(y)), (x, y)
assert [r[0] for r in got[0]["results"][:3]] == [3, 40, 250], got[0]
PYEOF

# 2. the thread count does not change a byte
"$EVE_BIN/eve-rank" --queries q.npy --gallery g.npy -k 5 --threads 1 -q > got1.jsonl
cmp got.jsonl got1.jsonl || fail "output depends on the thread count"

# 3. parts with ids files beside them; float16 part; --out file; --scores-out
"$EVE_BIN/eve-rank" --queries q.npy --gallery g1.npy g2h.npy -k 3 -o parts.jsonl --scores-out s.npy -q
head -1 parts.jsonl | grep -q '"query": 0, "results": \[\["img3"' || fail "ids from .ids.jsonl: $(head -1 parts.jsonl)"
"$PY" -c "
import numpy as np
s = np.load('s.npy'); q = np.load('q.npy'); g = np.concatenate([np.load('g1.npy'), np.load('g2h.npy').astype(np.float32)])
assert s.shape == (23, 301) and s.dtype == np.float32, s.shape
assert np.allclose(s, q @ g.T, atol=1e-4)
" || fail "--scores-out"

# 4. errors: clear message and exit code
"$PY" -c "import numpy as np; np.save('bad.npy', np.zeros((4, 5), np.float32)); np.save('v.npy', np.zeros(4, np.float32))"
set +e
"$EVE_BIN/eve-rank" --queries q.npy --gallery bad.npy 2> err.txt; rc=$?
[[ $rc == 1 ]] && grep -q 'the queries q.npy have 8 columns but the gallery bad.npy has 5' err.txt || fail "dim mismatch rc=$rc $(cat err.txt)"
"$EVE_BIN/eve-rank" --queries q.npy --gallery v.npy 2> err.txt; rc=$?
[[ $rc == 1 ]] && grep -q 'v.npy: expected a 2-D matrix' err.txt || fail "1-D rc=$rc $(cat err.txt)"
"$EVE_BIN/eve-rank" --queries q.npy --gallery g1.npy --gallery-ids g2.ids.jsonl 2> err.txt; rc=$?
[[ $rc == 1 ]] && grep -q 'ids files list 201 ids but the matrices have 100 rows' err.txt || fail "ids count rc=$rc $(cat err.txt)"
"$EVE_BIN/eve-rank" --queries q.npy --gallery missing.npy 2> err.txt; rc=$?
[[ $rc == 2 ]] || fail "missing file rc=$rc"
"$EVE_BIN/eve-rank" --queries q.npy --gallery g.npy -k 0 2> err.txt; rc=$?
[[ $rc == 2 ]] || fail "-k 0 rc=$rc"
tmps=(*.tmp.*)
[[ ! -e ${tmps[0]} ]] || fail "temp files left behind: ${tmps[*]}"
set -e
echo ok
