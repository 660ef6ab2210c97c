#!/usr/bin/env bash
# eve-score against the straightforward Python references in tests/reference on generated
# inputs (every VQA normalisation case, identical records, duplicate results, a thousand
# question types; NLVR2 with case variants and duplicates; retrieval with 1-7 captions per
# image): the results must be identical, number for number. Also checks that the generated
# lower-case table still matches Python's Unicode database.
source "$(dirname "$0")/lib.bash"
score=$EVE_BIN/eve-score
ref=$EVE_SOURCE/tests/reference
same() {  # name eve.json ref.json
  if ! "$EVE_PYTHON" -c 'import json,sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))' "$2" "$3"; then
    echo "FAIL $1: eve-score and the reference differ"; echo "  eve: $(head -c 600 "$2")"; echo "  ref: $(head -c 600 "$3")"; fail=1
  fi
}

"$EVE_PYTHON" "$ref/vqa_make_synthetic.py" --out "$tmp/vqa" --questions 3000 --quirks --types 1000 --seed 11
for evaluator in current legacy2017; do
  args=(--annotations "$tmp/vqa/annotations.json" --questions "$tmp/vqa/questions.json" --pred "$tmp/vqa/results.json" --evaluator "$evaluator")
  "$score" -q vqa "${args[@]}" >"$tmp/eve.json"
  "$EVE_PYTHON" "$ref/vqa_eval_ref.py" "${args[@]}" >"$tmp/ref.json"
  same "vqa $evaluator" "$tmp/eve.json" "$tmp/ref.json"
done

"$EVE_PYTHON" - "$tmp" <<'PY'
import json, random, sys
d = sys.argv[1]
rng = random.Random(5)
with open(d + '/gold.jsonl', 'w') as g, open(d + '/pred.csv', 'w') as p:
    p.write('identifier,prediction\n')
    for s in range(300):
        for pair in range(rng.randint(1, 4)):
            for sent in range(2):
                ident = 'dev-%d-%d-%d' % (s, pair, sent)
                label = rng.choice(['True', 'False'])
                g.write(json.dumps({'identifier': ident, 'sentence': 'x', 'label': label}) + '\n')
                if rng.random() < 0.05:
                    p.write('%s,%s\n' % (ident, rng.choice(['True', 'False'])))  # overridden
                pred = label if rng.random() < 0.8 else rng.choice(['True', 'False', 'true', 'FALSE', ' True', 'yes'])
                p.write('%s,%s%s\n' % (ident, pred, rng.choice(['', ',0.5', '\r'])))
    p.write('dev-9999-0-0,True\n')  # unknown identifier, ignored
PY
"$score" -q nlvr2 --gold "$tmp/gold.jsonl" --pred "$tmp/pred.csv" >"$tmp/eve.json"
"$EVE_PYTHON" "$ref/nlvr2_eval_ref.py" --gold "$tmp/gold.jsonl" --pred "$tmp/pred.csv" >"$tmp/ref.json"
same nlvr2 "$tmp/eve.json" "$tmp/ref.json"

"$EVE_PYTHON" - "$tmp" <<'PY'
import json, sys
import numpy as np
d = sys.argv[1]
rng = np.random.default_rng(3)
counts = rng.integers(1, 8, size=120)
json.dump([{'image': 'img%d.jpg' % i, 'caption': ['c%d_%d' % (i, k) for k in range(c)]}
           for i, c in enumerate(counts)], open(d + '/test.json', 'w'))
n_img, n_txt = len(counts), int(counts.sum())
txt2img = np.repeat(np.arange(n_img), counts)
# Distinct values (no ties), with the ground truth pushed up so that recall is mid-range.
def scores(rows, cols, gt):
    m = rng.permutation(rows * cols).reshape(rows, cols).astype(np.float32) / (rows * cols)
    return np.ascontiguousarray(m + 0.5 * gt, dtype=np.float32)
gt_i2t = (txt2img[None, :] == np.arange(n_img)[:, None])
np.save(d + '/i2t.npy', scores(n_img, n_txt, gt_i2t))
np.save(d + '/t2i.npy', scores(n_txt, n_img, gt_i2t.T))
PY
"$score" -q retrieval --ann "$tmp/test.json" --i2t "$tmp/i2t.npy" --t2i "$tmp/t2i.npy" >"$tmp/eve.json"
"$EVE_PYTHON" "$ref/retrieval_eval_ref.py" --ann "$tmp/test.json" --i2t "$tmp/i2t.npy" --t2i "$tmp/t2i.npy" >"$tmp/ref.json"
same retrieval "$tmp/eve.json" "$tmp/ref.json"

# The table is pinned to the Unicode version in its header; a Python with another Unicode
# database would regenerate another table, so the comparison needs the same version.
table=$EVE_SOURCE/lib/eve/eval/lowercase_table.inc
want_ucd=$(grep -o 'Unicode [0-9.]*' "$table" | head -n 1)
have_ucd="Unicode $("$EVE_PYTHON" -c 'import unicodedata; print(unicodedata.unidata_version)')"
skipped=
if [[ $have_ucd != "$want_ucd" ]]; then
  skipped="lowercase table not compared: $EVE_PYTHON has $have_ucd, the table $want_ucd"
else
  "$EVE_PYTHON" "$ref/vqa_lowercase_table.py" >"$tmp/lower.inc"
  if ! cmp -s "$tmp/lower.inc" "$table"; then
    echo "FAIL lib/eve/eval/lowercase_table.inc differs from tests/reference/vqa_lowercase_table.py's output"; fail=1
  fi
fi
# A check that could not run is a skip (exit 77, shown by ctest), never a pass.
if [[ $fail == 0 && -n $skipped ]]; then echo "SKIP: $skipped"; exit 77; fi
exit $fail
