#!/usr/bin/env bash
# eve-rank --rerank: each query's top --k-test by ITC re-scored by the ITM match logit of the
# fusion pass, in both directions, against the Python reference model; --scores-out holds
# those logits and -100 elsewhere; usage errors.
source "$(dirname "$0")/lib.bash"
make_bundle bundle
make_dataset

"$EVE_BIN/eve-tokenize" encode --tokenizer tok.model --max-tokens 16 < ret/test.jsonl > test.ids.jsonl
"$EVE_BIN/eve-embed" -q -m bundle --images ret -o img
"$EVE_BIN/eve-embed" -q -m bundle --texts test.ids.jsonl -o txt
rr=(--rerank -m bundle --images ret --texts test.ids.jsonl --k-test 6 -b 4 -q)
"$EVE_BIN/eve-rank" --queries txt.npy --gallery img.npy -k 6 -q > t2i_itc.jsonl
"$EVE_BIN/eve-rank" --queries txt.npy --gallery img.npy -k 4 "${rr[@]}" --scores-out t2i.npy > t2i.jsonl
"$EVE_BIN/eve-rank" --queries img.npy --gallery txt.npy -k 6 -q > i2t_itc.jsonl
"$EVE_BIN/eve-rank" --queries img.npy --gallery txt.npy -k 6 "${rr[@]}" --threads 1 > i2t.jsonl

"$PY" - "$EVE_SOURCE/tests/reference" <<PYEOF || exit 1
$ORACLE_PRELUDE
texts = {}
for r in map(json.loads, open("test.ids.jsonl")):
    for k, ids in enumerate(r["ids_list"]):
        texts["%s#%d" % (r["image"], k)] = ids
def itm(image_keys, text_ids):
    ids, mask = text_batch([texts[t] for t in text_ids])
    with torch.no_grad():
        out = m.backbone("vl", image=pixels(image_keys), text_ids=ids, text_mask=mask)
        return m.itm_head(out["pooled"])[:, 1].numpy()
changed = 0
for name, k, text_query in (("t2i", 4, True), ("i2t", 6, False)):
    got = [json.loads(l) for l in open(name + ".jsonl")]
    itc = [json.loads(l) for l in open(name + "_itc.jsonl")]
    assert [g["query"] for g in got] == [i["query"] for i in itc]
    for g, i in zip(got, itc):
        cand = [r[0] for r in i["results"]]          # the ITC top k_test
        ids = [r[0] for r in g["results"]]
        scores = [r[1] for r in g["results"]]
        assert len(ids) == k and set(ids) <= set(cand), (g, cand)
        assert scores == sorted(scores, reverse=True), g
        q = g["query"]
        want = itm(cand, [q] * len(cand)) if text_query else itm([q] * len(cand), cand)
        best = [cand[j] for j in sorted(range(len(cand)), key=lambda j: -want[j])][:k]
        for c, s in zip(ids, scores):
            assert abs(s - want[cand.index(c)]) < 2e-4, (q, c, s, want)
        # the re-ranked list is the best k by the oracle's logits (up to near-ties)
        wb = sorted(want, reverse=True)[:k]
        assert all(abs(a - b) < 2e-4 for a, b in zip(sorted(scores, reverse=True), wb)), (scores, wb)
        changed += ids != cand[:k]
assert changed > 0, "re-ranking never changed an order"
# Score matrix: the logits of the k_test candidates, -100 elsewhere.
S = np.load("t2i.npy")
gids = [json.loads(l) for l in open("img.ids.jsonl")]
assert S.shape == (10, 18), S.shape
for row, i in zip(S, [json.loads(l) for l in open("t2i_itc.jsonl")]):
    cand = set(gids.index(r[0]) for r in i["results"])
    assert all((row[j] == -100) != (j in cand) for j in range(18)), row
PYEOF

# Usage errors.
check_usage() {  # WANT ARGS...
  local want=$1; shift
  set +e; err=$("$EVE_BIN/eve-rank" --queries txt.npy --gallery img.npy "$@" 2>&1); rc=$?; set -e
  [[ $rc == 2 && $err == "eve-rank: error: $want" ]] || fail "usage: $* -> $rc $err"
}
check_usage "--rerank needs --model, --images and --texts" --rerank -m bundle
check_usage "-k 10 is more than --k-test 6 (only the top --k-test candidates are re-ranked)" "${rr[@]}" -k 10
check_usage "--model, --images and --texts are for --rerank" -m bundle
set +e; err=$("$EVE_BIN/eve-rank" --queries txt.npy --gallery txt.npy "${rr[@]}" -k 3 2>&1); rc=$?; set -e
[[ $rc == 1 && $err == *"are not an image of --images and a text of --texts (either way round)"* ]] || fail "id mismatch: $rc $err"
echo ok
