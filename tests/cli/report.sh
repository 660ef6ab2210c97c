#!/usr/bin/env bash
# eve-report on the toy world: retrieval pages both ways (images copied out of the shards,
# correct results marked, R@1/R@5 over all queries), a VQA sample page, training curves as
# SVG (panels, point counts, eval markers, legend), error lines and exit codes, and every
# page opened in headless Chromium, which must render all of its images.
source "$(dirname "$0")/lib.bash"
report=$EVE_SOURCE/scripts/eve-report

# report_error CODE TEXT ARGS...: eve-report ARGS fails so; a usage error (2) comes with
# argparse's usage lines.
report_error() {
  local lines=()
  [[ $1 != 2 ]] || lines=(--many-lines)
  expect_error "${lines[@]}" "$1" "$2" -- "$EVE_PYTHON" "$report" "${@:3}"
}

# The fixture: 6 test images with 5 captions each, 6 val images with 4 questions each.
"$EVE_BIN/eve-prep" synth --out w --count 60 --size 32 -q
"$EVE_BIN/eve-prep" -q retrieval --ann test=w/retrieval_test.json --images w --size 0 --out ret
"$EVE_BIN/eve-prep" -q vqa --questions val=w/vqa/questions_val.json --annotations val=w/vqa/annotations_val.json \
  --images w/images --size 0 --out vqa

# Ranks: caption j of image i ranks the 6 images from image i + s on, s = 0 for even j, 1 for
# j = 1 (its image comes last, rank 6), 3 for j = 3 (rank 4): R@1 = 60%, R@5 = 80%. Image i
# ranks the captions of image i + (i % 2) first. expected.json holds what the pages must say.
"$EVE_PYTHON" - <<'PY'
import json
recs = [json.loads(l) for l in open("ret/test.jsonl")]
keys = [r["image"] for r in recs]
n = len(keys)
assert n == 6 and all(len(r["texts"]) == 5 for r in recs), (n, [len(r["texts"]) for r in recs])
hits1 = hits5 = 0
with open("t2i.jsonl", "w") as f:
    for i, r in enumerate(recs):
        for j in range(len(r["texts"])):
            s = {1: 1, 3: 3}.get(j, 0)
            order = [keys[(i + s + m) % n] for m in range(n)]
            rank = order.index(r["image"]) + 1
            hits1 += rank == 1
            hits5 += rank <= 5
            f.write(json.dumps({"query": f"{r['image']}#{j}",
                                "results": [[k, round(0.9 - 0.1 * m, 3)] for m, k in enumerate(order)]}) + "\n")
texts = [f"{k}#{j}" for k in keys for j in range(5)]
i2t1 = 0
with open("i2t.jsonl", "w") as f:
    for i, k in enumerate(keys):
        start = 5 * ((i + i % 2) % n)
        order = texts[start:] + texts[:start]
        i2t1 += order[0].startswith(k + "#")
        f.write(json.dumps({"query": k, "results": [[t, 0.5 - 0.01 * m] for m, t in enumerate(order[:8])]}) + "\n")
# VQA: the majority answer (right), an answer 1 or 2 humans gave (partly), a made-up one (wrong).
qs = [json.loads(l) for l in open("vqa/val.jsonl")]
preds, verdicts = [], []
for q in qs:
    tally = {a: q["answers"].count(a) for a in q["answers"]}
    few = [a for a, c in tally.items() if c <= 2]
    pick = len(preds) % 3
    if pick == 1 and few:
        answer, verdict = few[0], "partly"
    elif pick == 2:
        answer, verdict = "no such answer", "wrong"
    else:
        answer = max(tally, key=tally.get)
        verdict = "right" if tally[answer] >= 3 else "partly"
    preds.append({"question_id": q["question_id"], "answer": answer})
    verdicts.append(verdict)
json.dump(preds, open("pred.json", "w"), indent=1)
json.dump({"t2i_queries": sum(len(r["texts"]) for r in recs), "r1": 100.0 * hits1 / 30, "r5": 100.0 * hits5 / 30,
           "i2t_r1": 100.0 * i2t1 / n, "keys": keys, "verdicts": verdicts}, open("expected.json", "w"))
PY

# Retrieval, text -> image: 7 queries x top 3.
"$EVE_PYTHON" "$report" retrieval --data ret --split test --ranks t2i.jsonl -o page --queries 7 --top 3 2>log.txt ||
  fail "retrieval t2i: $(cat log.txt)"
"$EVE_PYTHON" - <<'PY' || fail "retrieval t2i page"
import json, re, tarfile
exp = json.load(open("expected.json"))
page = open("page/index.html", encoding="utf-8").read()
# 7 queries x 3 results, and the correct image of the 3 queries whose image is ranked below them.
assert page.count("<img ") == 24, page.count("<img ")
summary = "R@1 = %.2f%% &middot; R@5 = %.2f%% &middot; R@10 = 100.00%% over all 30 queries" % (exp["r1"], exp["r5"])
assert summary in page, (summary, re.findall(r'class="summary">[^<]*', page))
sections = page.split('<section class="query">')[1:]
assert len(sections) == 7, len(sections)
k0 = exp["keys"][0]
# Query 1 (caption 0 of image 0) is right at rank 1: its first figure is marked, no other is.
first = sections[0]
assert first.count('class="result correct"') == 1 and first.count(">correct<") == 1, first
assert re.search(r'<figure class="result correct"><img src="img/%s\.jpg"' % k0, first), first
assert "%s#0" % k0 in first
# Query 2 (caption 1) has its image last, rank 6, not among the 3 shown: none of them is
# marked, and its image is shown below them with its rank and score.
shown, outside = sections[1].split('<div class="outside">')
assert 'class="result correct"' not in shown, shown
assert re.search(r'<img src="img/%s\.jpg".*correct image: <b>rank 6</b> <span class="score">0\.4000</span>' % k0,
                 outside), outside
assert '<div class="outside">' not in sections[0]
# No meta file beside the ranks: the page says so.
assert "scores: not described (no t2i.meta.json)" in page
assert (exp["r1"], exp["r5"]) == (60.0, 80.0), exp
assert (exp["r1"], exp["r5"]) == (60.0, 80.0), exp
# The copied images are the dataset's bytes.
tar = tarfile.open("ret/images-00000.tar")
for name in set(re.findall(r'src="img/([^"]+)"', page)):
    assert open("page/img/" + name, "rb").read() == tar.extractfile(name).read(), name
PY
ls -A page | grep -q '\.tmp$' && fail "temporary files left in the report dir"

# Retrieval, image -> text: one image per query, correct texts marked.
"$EVE_PYTHON" "$report" retrieval --data ret --ranks i2t.jsonl --direction i2t -o page-i2t 2>log.txt ||
  fail "retrieval i2t: $(cat log.txt)"
"$EVE_PYTHON" - <<'PY' || fail "retrieval i2t page"
import json
exp = json.load(open("expected.json"))
page = open("page-i2t/index.html", encoding="utf-8").read()
assert page.count("<img ") == 6, page.count("<img ")
assert "R@1 = %.2f%%" % exp["i2t_r1"] in page
sections = page.split('<section class="query">')[1:]
assert sections[0].count('<li class="result correct">') == 5, sections[0]   # image 0: its 5 captions first
assert sections[1].count('<li class="result correct">') == 0, sections[1]   # image 1: image 2's captions
# ... and its own captions, not among the 8 ranked, follow them.
assert "the correct texts: <b>not in the ranked top 8</b>" in sections[1], sections[1]
PY

# Failures first, and what made the scores from the meta file eve-rank writes beside the ranks.
printf '%s\n' '{"format": "eve-rank-meta 1", "rerank": {"bundle": "runs/coco", "model_sha256": "0123456789abcdef", "k_test": 16},' \
  '"model_sha256": {"queries": ["fedcba9876543210"], "gallery": ["fedcba9876543210"]}}' >t2i.meta.json
"$EVE_PYTHON" "$report" retrieval --data ret --ranks t2i.jsonl -o page-fail --queries 30 --top 3 --failures-first 2>log.txt ||
  fail "retrieval --failures-first: $(cat log.txt)"
grep -qF "scores: ITM logits of the matching head (top 16 re-ranked); bundle runs/coco, weights sha256 0123456789ab" log.txt ||
  fail "no score kind in: $(cat log.txt)"
"$EVE_PYTHON" - <<'PY' || fail "retrieval --failures-first page"
import re
page = open("page-fail/index.html", encoding="utf-8").read()
assert "ITM logits of the matching head (top 16 re-ranked); bundle runs/coco" in page
# Ranks of the first correct image per shown query: the 6 at rank 6 first, then the 6 at
# rank 4, then the 18 at rank 1 (file order kept within each).
ranks = []
for section in page.split('<section class="query">')[1:]:
    m = re.search(r"correct image: <b>rank (\d+)</b>", section)
    ranks.append(int(m.group(1)) if m else 1)
assert ranks == [6] * 6 + [4] * 6 + [1] * 18, ranks
PY
printf '%s\n' '{"rerank": null, "model_sha256": {"queries": ["fedcba9876543210"], "gallery": ["fedcba9876543210"]}}' >t2i.meta.json
"$EVE_PYTHON" "$report" retrieval --data ret --ranks t2i.jsonl -o page-itc --queries 1 2>log.txt || fail "itc: $(cat log.txt)"
grep -qF "ITC cosine similarity (inner product of the L2-normalised embeddings); bundle weights sha256 fedcba987654" log.txt ||
  fail "no ITC score kind in: $(cat log.txt)"
rm t2i.meta.json

# VQA: 8 samples of 24 predictions.
"$EVE_PYTHON" "$report" vqa --data vqa --split val --pred pred.json -o page-vqa --samples 8 2>log.txt ||
  fail "vqa: $(cat log.txt)"
"$EVE_PYTHON" - <<'PY' || fail "vqa page"
import json, re
exp = json.load(open("expected.json"))
page = open("page-vqa/index.html", encoding="utf-8").read()
assert page.count("<img ") == 8, page.count("<img ")
assert re.findall(r'<div class="sample (\w+)">', page) == exp["verdicts"][:8], re.findall(r'<div class="sample (\w+)">', page)
v = exp["verdicts"]
summary = "%d right &middot; %d partly right &middot; %d wrong of all %d predictions" % (
    v.count("right"), v.count("partly"), v.count("wrong"), len(v))
assert summary in page, summary
PY
# The page's accuracy is eve-score's for the same predictions.
official=$("$EVE_BIN/eve-score" vqa --annotations w/vqa/annotations_val.json --questions w/vqa/questions_val.json --pred pred.json |
  "$EVE_PYTHON" -c 'import json, sys; print("%.2f" % json.load(sys.stdin)["overall"])')
grep -qF "VQA accuracy <b class=\"official\">$official</b> over 24 questions" page-vqa/index.html ||
  fail "vqa page: no official accuracy $official: $(grep -o 'VQA accuracy[^/]*' page-vqa/index.html)"
grep -qF "VQA accuracy $official;" log.txt || fail "vqa log: $(cat log.txt)"
[[ $official != 100.00 && $official != 0.00 ]] || fail "vqa fixture: accuracy $official says nothing"

# --version as the C++ programs print it: the same version number.
version=$("$EVE_PYTHON" "$report" --version)
want=$("$EVE_BIN/eve-score" --version | cut -d' ' -f2)
[[ $version =~ ^eve-report\ $want\ \(Python\ [0-9.]+\)$ ]] || fail "--version: '$version', eve-score has $want"

# Curves: two runs, train lines (mlm on every other step) and eval lines.
mkdir run-a run-b
"$EVE_PYTHON" - <<'PY'
import json
for run, scale in (("run-a", 1.0), ("run-b", 0.5)):
    with open(run + "/metrics.jsonl", "w") as f:
        for step in range(1, 41):
            line = {"step": step, "loss": scale * (5 - step / 10), "mim": 1 + (step % 3) / 10, "lr": 1e-4, "expert_load": {"2": [0.5, 0.5]}}
            if step % 2 == 0:
                line["mlm"] = 4 - step / 20
            f.write(json.dumps(line) + "\n")
            if step % 10 == 0:
                f.write(json.dumps({"step": step, "eval": {"split": "val", "accuracy": 40 + step}}) + "\n")
PY
"$EVE_PYTHON" "$report" curves run-a run-b -o curves.svg --keys loss,mim,mlm,nope --title "a & b" 2>log.txt ||
  fail "curves: $(cat log.txt)"
grep -qF "no run has 'nope', skipped" log.txt || fail "curves: no note on the absent key: $(cat log.txt)"
"$EVE_PYTHON" - <<'PY' || fail "curves svg"
import xml.etree.ElementTree as ET
ns = "{http://www.w3.org/2000/svg}"
root = ET.parse("curves.svg").getroot()
assert root.tag == ns + "svg"
panels = [g for g in root.iter(ns + "g") if g.get("class") == "panel"]
assert [p.get("data-key") for p in panels] == ["loss", "mim", "mlm", "eval:val/accuracy"], [p.get("data-key") for p in panels]
def lines(panel, cls):
    return [len(p.get("points").split()) for p in panel.iter(ns + "polyline") if p.get("class") == cls]
for panel, n in zip(panels[:3], (40, 40, 20)):
    assert lines(panel, "raw") == [n, n] and lines(panel, "smooth") == [n, n], (panel.get("data-key"), lines(panel, "raw"))
    assert any(t.get("class") == "tick" for t in panel.iter(ns + "text")), "no tick labels"
markers = [c for c in panels[3].iter(ns + "circle") if c.get("class") == "marker"]
assert len(markers) == 8 and lines(panels[3], "eval") == [4, 4], (len(markers), lines(panels[3], "eval"))
legend = [t.text for g in root.iter(ns + "g") if g.get("class") == "legend" for t in g.iter(ns + "text")]
assert legend == ["run-a", "run-b"], legend
assert root.find(ns + "title").text == "a & b"
PY

# Errors: one line naming file and line, exit 1; usage errors exit 2; nothing written.
sed '3s/"query": "[^"]*#/"query": "nosuch#/' t2i.jsonl >bad-key.jsonl
report_error 1 "bad-key.jsonl:3: query text 'nosuch#2': image 'nosuch' is not in ret/test.jsonl" \
  retrieval --data ret --ranks bad-key.jsonl -o err-page
sed '4s/"results": \[\["[^"]*"/"results": [["gone"/' t2i.jsonl >bad-result.jsonl
report_error 1 "bad-result.jsonl:4: result image 'gone' is not in ret/test.jsonl" \
  retrieval --data ret --ranks bad-result.jsonl -o err-page
report_error 1 "t2i.jsonl:1: query image '$(sed -n 's/.*"query": "\([^"]*\)".*/\1/p;q' t2i.jsonl)' is not in ret/test.jsonl (a text id: is --direction right?)" \
  retrieval --data ret --ranks t2i.jsonl --direction i2t -o err-page
[[ ! -e err-page/index.html ]] || fail "a report was written from bad ranks"
mkdir bad-run && { echo '{"step": 1, "loss": 2.0}'; echo '{"step": 2, "loss": 1.5'; } >bad-run/metrics.jsonl
report_error 1 "bad-run/metrics.jsonl:2: not valid JSON" curves run-a bad-run -o bad.svg
[[ ! -e bad.svg ]] || fail "an SVG was written from a malformed metrics.jsonl"
mkdir empty-run && : >empty-run/metrics.jsonl
report_error 1 "empty-run/metrics.jsonl: empty: no metrics lines" curves empty-run -o bad.svg
report_error 1 "no-run/metrics.jsonl: cannot read the metrics" curves no-run -o bad.svg
printf '{"step": "one", "loss": 1}\n' >bad-run/metrics.jsonl
report_error 1 'bad-run/metrics.jsonl:1: expected a numeric "step"' curves bad-run -o bad.svg
printf '[\n{"question_id": 1, "answer": "yes"}\n]\n' >bad-pred.json
report_error 1 "bad-pred.json:2: question_id 1 is not in vqa/val.jsonl" \
  vqa --data vqa --split val --pred bad-pred.json -o err-page
report_error 2 "--queries: expected a positive integer" retrieval --data ret --ranks t2i.jsonl -o p --queries 0
report_error 2 "required: --ranks" retrieval --data ret -o p

# Headless Chromium opens every page and renders every image; a damaged image is not counted.
command -v chromium >/dev/null ||
  fail "chromium is not installed: run scripts/install-deps.sh (make test does) or apt-get install chromium"
cp -r page-i2t page-broken
first_image=$(ls page-broken/img | head -1)
printf "not an image" >"page-broken/img/$first_image"
for page in page page-i2t page-vqa page-broken; do
  want=$(grep -o '<img ' "$page/index.html" | wc -l)
  [[ $page != page-broken ]] || want=$((want - 1))
  timeout 60 chromium --headless --no-sandbox --disable-gpu --user-data-dir="$tmp/chromium-profile" \
    --virtual-time-budget=5000 --dump-dom "file://$tmp/$page/index.html" >dom.html 2>chromium.log ||
    fail "chromium on $page: $(tail -3 chromium.log)"
  got=$(sed -n 's:.*<title>\([^<]*\)</title>.*:\1:p' dom.html | head -1)
  [[ $got == "eve report: $want images rendered" ]] || fail "chromium on $page: title '$got', expected $want images rendered"
done
echo ok
