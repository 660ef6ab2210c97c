#!/usr/bin/env bash
# Same-modality search and near-duplicates, against a numpy oracle: --exclude-self (k hits,
# never the query's own id, repeated ids included), --min-score (every hit at or above the
# threshold, at most -k), eve-rank dupes (connected components) and eve-rank leakage (test
# rows with near-duplicates in train); bad input named in one line.
source "$(dirname "$0")/lib.bash"
"$PY" - <<'PYEOF'
import json, numpy as np
rng = np.random.default_rng(3)
def unit(x): return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)
g = unit(rng.standard_normal((60, 16)))
near = lambda r: unit(r + 0.01 * rng.standard_normal(r.shape))
g[30] = near(g[7])                  # a pair
g[40] = near(g[12]); g[41] = near(g[40])   # a chain of three: one group
g[55] = g[50]                       # an exact copy
np.save("a.npy", g)
with open("a.ids.jsonl", "w") as f:
    f.writelines(json.dumps(f"a{i}") + "\n" for i in range(60))
# the same rows with one id used twice (rows 7 and 30, near-copies), for --exclude-self
with open("rep.ids.jsonl", "w") as f:
    f.writelines(json.dumps("a7" if i == 30 else f"a{i}") + "\n" for i in range(60))
# a "test" collection: 3 near-copies of "train" rows among 12
t = unit(rng.standard_normal((12, 16)))
t[2] = near(g[5]); t[6] = near(g[12]); t[9] = g[50]
np.save("t.npy", t)
with open("t.ids.jsonl", "w") as f:
    f.writelines(json.dumps({"id": f"t{i}"}) + "\n" for i in range(12))
PYEOF
rank() { "$EVE_BIN/eve-rank" -q --threads 2 "$@"; }

# 1. --exclude-self: k hits, never the query's id (nor a row sharing it), else the top k
rank --queries a.npy --gallery a.npy -k 5 --exclude-self -o self.jsonl
rank --queries a.npy --gallery a.npy --query-ids rep.ids.jsonl --gallery-ids rep.ids.jsonl -k 5 --exclude-self -o rep.jsonl
# 2. --min-score: every hit at or above S, at most -k
rank --queries a.npy --gallery a.npy -k 2 --exclude-self --min-score 0.99 -o near.jsonl
rank --queries a.npy --gallery a.npy -k 50 --exclude-self --min-score 0.99 -o near50.jsonl
"$PY" - <<'PYEOF' || fail "--exclude-self / --min-score against the oracle"
import json, numpy as np
g = np.load("a.npy"); s = g.astype(np.float64) @ g.T.astype(np.float64)
def oracle(ids, k, smin=None):
    out = []
    for i in range(len(g)):
        order = sorted((j for j in range(len(g)) if ids[j] != ids[i]), key=lambda j: (-np.float32(s[i, j]), j))
        if smin is not None: order = [j for j in order if np.float32(s[i, j]) >= np.float32(smin)]
        out.append([ids[j] for j in order[:k]])
    return out
ids = [f"a{i}" for i in range(60)]
rep = ["a7" if i == 30 else x for i, x in enumerate(ids)]
for name, want_ids, want in (("self", ids, oracle(ids, 5)), ("rep", rep, oracle(rep, 5)),
                             ("near", ids, oracle(ids, 2, 0.99)), ("near50", ids, oracle(ids, 50, 0.99))):
    got = [json.loads(l) for l in open(name + ".jsonl")]
    assert [x["query"] for x in got] == want_ids, name
    assert [[r[0] for r in x["results"]] for x in got] == want, (name, got, want)
near = [json.loads(l) for l in open("near50.jsonl")]
assert {x["query"]: len(x["results"]) for x in near if x["results"]} == \
    {"a7": 1, "a30": 1, "a12": 2, "a40": 2, "a41": 2, "a50": 1, "a55": 1}, near
assert all(len(json.loads(l)["results"]) == 5 for l in open("rep.jsonl"))
m = json.load(open("near.meta.json"))
assert m["exclude_self"] is True and m["min_score"] == 0.99, m
PYEOF

# 3. dupes: the connected components, in first-seen order
"$EVE_BIN/eve-rank" dupes -q near50.jsonl -o groups.jsonl
"$PY" - <<'PYEOF' || fail "dupes groups: $(cat groups.jsonl)"
import json
got = [json.loads(l) for l in open("groups.jsonl")]
assert [(x["group"], x["size"], x["ids"]) for x in got] == \
    [(0, 2, ["a7", "a30"]), (1, 3, ["a12", "a40", "a41"]), (2, 2, ["a50", "a55"])], got
assert [len(x["pairs"]) for x in got] == [1, 3, 1], got
assert got[2]["pairs"][0][:2] == ["a50", "a55"] and abs(got[2]["pairs"][0][2] - 1) < 1e-6, got
PYEOF
# a higher --min-score splits the chain where its weakest link is
"$EVE_BIN/eve-rank" dupes -q near50.jsonl --min-score 0.99999 > strict.jsonl
[[ $(wc -l < strict.jsonl) == 1 ]] && grep -q '"ids": \["a50", "a55"\]' strict.jsonl || fail "dupes --min-score: $(cat strict.jsonl)"

# 4. leakage: test rows with near-duplicates in train
rank --queries t.npy --gallery a.npy -k 3 --min-score 0.99 -o leak.jsonl
"$EVE_BIN/eve-rank" leakage -q leak.jsonl -o report.json
"$PY" - <<'PYEOF' || fail "leakage report: $(cat report.json)"
import json
r = json.load(open("report.json"))
# the threshold is the one the ranks were made with, from their meta file
assert (r["queries"], r["leaked_queries"], r["min_score"]) == (12, 3, 0.99), r
assert abs(r["leaked_fraction"] - 0.25) < 1e-12, r
leaks = {x["query"]: [m[0] for m in x["matches"]] for x in r["leaks"]}
assert leaks == {"t2": ["a5"], "t6": ["a12", "a40", "a41"], "t9": ["a50", "a55"]}, leaks
assert r["pairs"] == 6 and r["gallery_ids"] == 6, r
PYEOF
# ranks without a meta file: no threshold to report
cp leak.jsonl nometa.jsonl
"$EVE_BIN/eve-rank" leakage -q nometa.jsonl > report2.json
grep -q '"min_score": null' report2.json || fail "leakage without a meta file: $(head -c 200 report2.json)"

# 5. bad input: one line naming the file; exit 1 (data) or 2 (usage)
printf '{"query": "a1", "results": [["a2", 0.5]]}\nnot json\n' > bad.jsonl
expect_error 1 'bad.jsonl:2: not a JSON line' -- eve-rank -q dupes bad.jsonl
expect_error 1 'bad.jsonl:2: not a JSON line' -- eve-rank -q leakage bad.jsonl
echo '{"query": "a1", "results": [["a2"]]}' > pair.jsonl
expect_error 1 'pair.jsonl:1: result 0 is not an [ID, SCORE] pair' -- eve-rank -q dupes pair.jsonl
expect_error 2 'missing.jsonl' -- eve-rank -q dupes missing.jsonl
expect_error 2 'min-score' -- eve-rank -q dupes near50.jsonl --min-score high
expect_error 2 'min-score' -- eve-rank -q --queries a.npy --gallery a.npy --min-score high
mkdir outdir
expect_error 1 'outdir' -- eve-rank -q dupes near50.jsonl -o outdir
expect_error 2 'queries and --gallery are required' -- eve-rank -q -k 3
echo ok
