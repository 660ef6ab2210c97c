#!/usr/bin/env bash
# tests/reference/toy_by_form.py on a small toy world: the text prior's predictions score the
# same under eve-score and under the script's own official VQA accuracy; paraphrases share a
# form; the VG QA split and the per-form best constant; every statement eve-prep synth writes
# falls in a known kind; per-kind shares; errors.
source "$(dirname "$0")/lib.bash"
tool=$EVE_SOURCE/tests/reference/toy_by_form.py

"$EVE_BIN/eve-prep" synth --out w --count 200 --size 32 -q
"$EVE_PYTHON" "$tool" prior --world w -o prior.json
"$EVE_PYTHON" - <<'EOF' || fail "prior predictions"
import json
q = json.load(open("w/vqa/questions_val.json"))["questions"]
p = json.load(open("prior.json"))
assert [x["question_id"] for x in p] == [x["question_id"] for x in q], "one prediction per val question, in order"
assert all(isinstance(x["answer"], str) and x["answer"] for x in p)
EOF

# The text prior's accuracy: eve-score's official number equals the script's "all" row, in
# both its columns (predictions = the prior).
official=$("$EVE_BIN/eve-score" vqa --annotations w/vqa/annotations_val.json --questions w/vqa/questions_val.json --pred prior.json |
  "$EVE_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["overall"])')
"$EVE_PYTHON" "$tool" vqa --world w --pred prior.json >vqa.txt
read -r _ n model prior _ < <(grep '^all ' vqa.txt)
[[ $n == $("$EVE_PYTHON" -c 'import json; print(len(json.load(open("prior.json"))))') ]] || fail "count $n"
# (eve-score rounds to two decimals, the table to one)
"$EVE_PYTHON" -c 'import sys; o = float(sys.argv[1]); sys.exit(any(abs(float(v.rstrip("%")) - o) > 0.051 for v in sys.argv[2:]))' \
  "$official" "$model" "$prior" || fail "prior $model / $prior vs eve-score $official"
grep -q '^is there a C S?' vqa.txt || fail "forms: $(cat vqa.txt)"
! cut -c1-40 vqa.txt | grep -qE '\b(red|green|blue|yellow|purple|orange|circle|square|triangle|star|diamond)s?\b' ||
  fail "colour or shape words left in forms"
! grep -qE 'in the image\?|is there an |can you see\?|pattern of the background' vqa.txt ||
  fail "paraphrases not merged"

# A constant answer: one answer per form, and its share is 100%.
"$EVE_PYTHON" -c '
import json; q = json.load(open("w/vqa/questions_val.json"))["questions"]
json.dump([{"question_id": x["question_id"], "answer": "yes"} for x in q], open("yes.json", "w"))'
"$EVE_PYTHON" "$tool" vqa --world w --pred yes.json >yes.txt
awk 'NR > 1 && $1 != "all" && !/ 1  yes \(100%\)$/ { bad = 1 } END { exit bad }' yes.txt || fail "constant answer: $(cat yes.txt)"

# The VG QA validation split (questions about the NLVR2 dev images): the prior's predictions
# cover it; per form, the best constant on the split is at least the prior, the prior's
# predictions score the prior exactly, and --json holds the same numbers as the table.
"$EVE_PYTHON" "$tool" prior --world w --split vg_val -o vgprior.json
"$EVE_PYTHON" "$tool" vqa --world w --split vg_val --pred vgprior.json --json vg.json >vg.txt
"$EVE_PYTHON" - <<'EOF' || fail "vg_val: $(cat vg.txt)"
import json
qs = json.load(open("w/vqa/vg_qa_val.json"))
p = json.load(open("vgprior.json"))
assert len(qs) > 0 and [x["question_id"] for x in p] == [x["question_id"] for x in qs]
s = json.load(open("vg.json"))
assert s["split"] == "vg_val" and s["all"]["n"] == len(qs), s["all"]
for form, r in list(s["forms"].items()) + [("all", s["all"])]:
    assert abs(r["model"] - r["prior"]) < 1e-9, form
    assert r["best_constant"] >= r["prior"] - 1e-9, form
    if form != "all":
        assert r["answers"] == 1, form
row = [l.split() for l in open("vg.txt") if l.startswith("all ")][0]
assert abs(float(row[4].rstrip("%")) - s["all"]["best_constant"]) < 0.051, row
EOF

# NLVR2 (the training split: 21 sets): every statement has a kind; always True gets exactly the share of true statements.
"$EVE_PYTHON" -c '
import json
with open("true.csv", "w") as f:
    for l in open("w/nlvr2/train.json"): f.write(json.loads(l)["identifier"] + ",True\n")'
"$EVE_PYTHON" "$tool" nlvr2 --world w --split train --pred true.csv >nlvr2.txt
! grep -q '^other ' nlvr2.txt || fail "statements of no known kind: $(cat nlvr2.txt)"
[[ $(grep -cE '^(both have|exactly one has|neither has|more shapes|count in total|left has, right has|same number) ' nlvr2.txt) -ge 5 ]] ||
  fail "kinds: $(cat nlvr2.txt)"
awk 'NR > 1 && $1 != "all" { if ($(NF) != "100.0%" || $(NF-3) != $(NF-1)) bad = 1 } END { exit bad }' nlvr2.txt ||
  fail "always True: $(cat nlvr2.txt)"

# Errors name the file.
head -3 true.csv >short.csv
rc=0; "$EVE_PYTHON" "$tool" nlvr2 --world w --split train --pred short.csv 2>err.txt >/dev/null || rc=$?
[[ $rc == 1 ]] && grep -qF "short.csv: " err.txt && grep -qF "have no prediction" err.txt || fail "missing: $rc $(cat err.txt)"
echo "dev-0-0-0 True" >bad.csv
rc=0; "$EVE_PYTHON" "$tool" nlvr2 --world w --pred bad.csv 2>err.txt >/dev/null || rc=$?
[[ $rc == 1 ]] && grep -qF "bad.csv:1: expected identifier,True|False" err.txt || fail "malformed: $rc $(cat err.txt)"
echo '[{"question_id": 1}]' >bad.json
rc=0; "$EVE_PYTHON" "$tool" vqa --world w --pred bad.json 2>err.txt >/dev/null || rc=$?
[[ $rc == 1 ]] && grep -qF "bad.json: entry 0 is not" err.txt || fail "bad vqa entry: $rc $(cat err.txt)"
echo "ok"
