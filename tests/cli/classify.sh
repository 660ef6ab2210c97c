#!/usr/bin/env bash
# Zero-shot classification end to end: the README's commands, as they stand there, on a small
# toy world with a random bundle in the demo's file names; eve-score classify against an
# independent Python count of the same ranks and labels; the labels' ids are eve-embed's row
# ids; bad inputs give one-line errors naming the file, exit 1 or 2.
source "$(dirname "$0")/lib.bash"

# The demo's names: world/, data/retrieval-test, ft-retrieval (a bundle with its tokenizer).
eve-prep synth --out world --count 80 --size 48 --nlvr-sets 2 --seed 3 -q
eve-prep -q retrieval --ann test=world/retrieval_test.json --images world --out data/retrieval-test
eve-tokenize train -q world/corpus.txt -o tok.model --vocab-size 300
make_bundle ft-retrieval
cp tok.model ft-retrieval/tokenizer.model

# 1. The README block, verbatim.
awk '/zero-shot commands: tests\/cli\/classify.sh/ {on = 1; next} on && /^```sh/ {next} on && /^```/ {exit} on' \
  "$EVE_SOURCE/README.md" > readme.sh
[[ $(wc -l < readme.sh) -ge 5 ]] || fail "README block not found: $(cat readme.sh)"
bash -euo pipefail readme.sh > table.txt 2> readme.err || fail "README commands: $(cat readme.err)"
grep -q '^top1 ' table.txt || fail "no top1 row: $(cat table.txt)"
grep -q '^per_class$' table.txt || fail "no per_class section: $(cat table.txt)"
[[ $(cat colors.ids.jsonl | tr '\n' ' ') == '"red" "green" "blue" "yellow" "purple" "orange" ' ]] ||
  fail "class ids: $(cat colors.ids.jsonl)"

# 2. The JSON result against an independent count; the class rows are unit vectors.
eve-score classify --gold world/labels.jsonl --field colors --ranks colors.ranks.jsonl > score.json
"$PY" - <<'PYEOF' || fail "classify scores differ from the Python count"
import collections, json
import numpy as np
c = np.load("colors.npy")
assert c.shape[0] == 6 and abs(np.linalg.norm(c, axis=1) - 1).max() < 1e-5, c.shape
gold = {r["id"]: r["colors"] for r in map(json.loads, open("world/labels.jsonl"))}
ranks = [json.loads(l) for l in open("colors.ranks.jsonl")]
test_ids = [json.loads(l) for l in open("test-images.ids.jsonl")]
assert [r["query"] for r in ranks] == test_ids, "every test image is ranked, by its labels id"
assert set(test_ids) <= set(gold), "labels name every image by eve-embed's id"
top1 = 100 * sum(r["results"][0][0] in gold[r["query"]] for r in ranks) / len(ranks)
top5 = 100 * sum(any(x[0] in gold[r["query"]] for x in r["results"][:5]) for r in ranks) / len(ranks)
have = collections.Counter(c for r in ranks for c in gold[r["query"]])
s = json.load(open("score.json"))
assert abs(s["top1"] - top1) < 1e-9 and abs(s["top5"] - top5) < 1e-9, (s, top1, top5)
assert s["images"] == len(ranks) and s["classes"] == 6 and s["multi_label"] is True, s
assert abs(s["chance_top1"] - 100 * sum(len(gold[r["query"]]) for r in ranks) / 6 / len(ranks)) < 1e-9, s
assert s["majority_top1"] == 100 * max(have.values()) / len(ranks), s
for name, n in have.items():
    hits = sum(r["results"][0][0] in gold[r["query"]] for r in ranks if name in gold[r["query"]])
    assert s["per_class"][name] == {"images": n, "top1": 100 * hits / n}, (name, s["per_class"][name])
print("scores match:", s["top1"], s["top5"])
PYEOF

# 3. A single-label attribute through the same pipe, numbers as classes (the shape count).
printf '%s\n' 1 2 3 4 > counts.txt
eve-embed --classes counts.txt --template 'there are {} shapes' | eve-tokenize encode -m tok.model |
  eve-embed -q -m ft-retrieval --texts - --group-by class -o counts
eve-rank -q --queries test-images.npy --gallery counts.npy -k 4 -o counts.ranks.jsonl
eve-score -q classify --gold world/labels.jsonl --field count --ranks counts.ranks.jsonl > counts.json
"$PY" -c 'import json,sys; s=json.load(open("counts.json")); assert s["multi_label"] is False and s["classes"] == 4 and s["top5"] == 100, s'

# 4. Bad inputs: one line on stderr naming the file (and line), exit 1 or 2.
{ head -n 1 colors.ranks.jsonl; echo '{"query": "no-such-image", "results": [["red", 0.5]]}'; } > unknown.jsonl
expect_error 1 'unknown.jsonl:2: image "no-such-image" has no record in world/labels.jsonl' -- \
  eve-score classify --gold world/labels.jsonl --field colors --ranks unknown.jsonl
expect_error 1 'world/labels.jsonl:1: no "colours" field' -- \
  eve-score classify --gold world/labels.jsonl --field colours --ranks colors.ranks.jsonl
: > empty.jsonl
expect_error 1 'empty.jsonl: no ranked images' -- eve-score classify --gold world/labels.jsonl --field colors --ranks empty.jsonl
expect_error 1 'empty.jsonl: no gold records' -- eve-score classify --gold empty.jsonl --field colors --ranks colors.ranks.jsonl
expect_error 2 '--field is required' -- eve-score classify --gold world/labels.jsonl --ranks colors.ranks.jsonl
expect_error 1 'no-such-file.txt' -- eve-embed --classes no-such-file.txt
expect_error 1 'empty.jsonl: no class names' -- eve-embed --classes empty.jsonl
expect_error 2 "--template 'a shape' has no {}" -- eve-embed --classes colors.txt --template 'a shape'
expect_error 2 '--template goes with --classes' -- eve-embed -m ft-retrieval --texts x --template 'a {}' -o x
printf '{"class": "red", "ids": [2, 3]}\n{"name": "blue", "ids": [2, 3]}\n' > nogroup.jsonl
expect_error 1 'nogroup.jsonl:2: no id field "class" (pick another with --group-by)' -- \
  eve-embed -m ft-retrieval --texts nogroup.jsonl --group-by class -o x
expect_error 2 '--group-by writes one output' -- \
  eve-embed -m ft-retrieval --texts nogroup.jsonl --group-by class -o x --part-size 5
echo "classify: ok"
