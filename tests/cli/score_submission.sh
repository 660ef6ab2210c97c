#!/usr/bin/env bash
# eve-score vqa --check-submission: eve-finetune's predictions for a test split (questions
# without annotations, as the official test files are) pass it once named as the server
# wants; a file with every kind of problem lists them and exits 1; the test-dev subset, the
# split option, normalised answers, bad input and usage errors.
source "$(dirname "$0")/lib.bash"
score=$EVE_BIN/eve-score

# A world whose test questions carry the official data_subtype, and a test-dev subset.
"$EVE_BIN/eve-prep" synth --out w --count 24 --size 32 --nlvr-sets 2 --seed 3 -q
"$EVE_PYTHON" - <<'PY'
import json
q = json.load(open("w/vqa/questions_test.json"))
q["data_subtype"] = "test2015"
json.dump(q, open("test2015.json", "w"))
dev = dict(q, data_subtype="test-dev2015", questions=q["questions"][::2])
json.dump(dev, open("test-dev2015.json", "w"))
PY
"$EVE_BIN/eve-prep" -q vqa --questions train=w/vqa/questions_train.json --annotations train=w/vqa/annotations_train.json \
  --questions test=test2015.json --images w/images --image-name 'COCO_synth_{image_id:012}.jpg' --size 0 --out vqa
"$EVE_BIN/eve-tokenize" train -q w/corpus.txt -o tok.model --vocab-size 200
for s in train test; do "$EVE_BIN/eve-tokenize" encode --tokenizer tok.model vqa/$s.jsonl -o vqa/$s.ids.jsonl; done
OMP_WAIT_POLICY=PASSIVE "$EVE_BIN/eve-finetune" --task vqa --data vqa --config eve-tiny --tokenizer tok.json \
  --image-res 32 --batch-size 8 --max-steps 2 --val none --predict test.ids --threads 2 -q --out ft

# Passes by construction, once named so; the JSON says what was checked.
cp ft/predictions/test.json vqa_test2015_eve-tiny_results.json
out=$("$score" -q vqa --check-submission --questions test2015.json --pred vqa_test2015_eve-tiny_results.json)
n=$("$EVE_PYTHON" -c 'import json; print(len(json.load(open("test2015.json"))["questions"]))')
check "finetune predictions" "{\"submission\":\"vqa_test2015_eve-tiny_results.json\",\"split\":\"test2015\",\"questions\":$n,\"answers\":$n,\"normalised\":0}" "$out"
# The long official form of the name, and --split that agrees with the file.
cp ft/predictions/test.json vqa_OpenEnded_mscoco_test2015_eve_results.json
"$score" -q vqa --check-submission --questions test2015.json --split test2015 --pred vqa_OpenEnded_mscoco_test2015_eve_results.json >/dev/null ||
  { echo "FAIL long name"; fail=1; }
# As written, the name is the only problem.
expect_error --many-lines 1 "ft/predictions/test.json: 1 problem(s): the evaluation server would refuse this file" -- \
  "$score" vqa --check-submission --questions test2015.json --pred ft/predictions/test.json
grep -qF "error: ft/predictions/test.json: the evaluation server wants the file named vqa_test2015_<method>_results.json" "$tmp/err" ||
  { echo "FAIL name problem"; cat "$tmp/err"; fail=1; }

# Against test-dev: it says the server wants all of test2015, and the rest is a warning.
cp ft/predictions/test.json vqa_test-dev2015_eve_results.json
"$score" vqa --check-submission --questions test-dev2015.json --pred vqa_test-dev2015_eve_results.json >"$tmp/out" 2>"$tmp/err" ||
  { echo "FAIL test-dev"; cat "$tmp/err"; fail=1; }
grep -qF "test-dev2015.json holds the test-dev2015 questions, a subset of test2015: the evaluation server wants an answer to every test2015 question" "$tmp/err" ||
  { echo "FAIL test-dev note"; cat "$tmp/err"; fail=1; }
grep -qF "$((n / 2)) answers are for questions not in test-dev2015.json" "$tmp/err" || { echo "FAIL test-dev rest"; cat "$tmp/err"; fail=1; }

# Every kind of problem at once: one line each with counts and first ids, then the summary.
"$EVE_PYTHON" - <<'PY'
import json
p = json.load(open("ft/predictions/test.json"))
p[0]["answer"] = "Two dogs."
bad = p[2:] + [p[2], {"question_id": 123456789, "answer": "yes"}, {"question_id": p[1]["question_id"], "answer": 2}, ["x"]]
json.dump(bad, open("vqa_test2015_bad_results.json", "w"))
PY
rc=0; "$score" vqa --check-submission --questions test2015.json --pred vqa_test2015_bad_results.json >"$tmp/out" 2>"$tmp/err" || rc=$?
check "problems exit" 1 "$rc"
qid0=$("$EVE_PYTHON" -c 'import json; print(json.load(open("ft/predictions/test.json"))[0]["question_id"])')
f=vqa_test2015_bad_results.json
for line in "error: $f: 1 entry is not {\"question_id\": integer, \"answer\": string} ([$((n + 1))])" \
            "error: $f: 1 question is answered more than once" \
            "error: $f: 1 of the $n questions of test2015.json have no answer ($qid0)" \
            "error: $f: 1 answer is not a string, or absent" \
            "error: $f: 1 answer is for questions not in test2015.json (123456789)" \
            "error: $f: 5 problem(s): the evaluation server would refuse this file"; do
  grep -qF -- "$line" "$tmp/err" || { echo "FAIL problems: no line: $line"; cat "$tmp/err"; fail=1; }
done
[[ ! -s $tmp/out ]] || { echo "FAIL problems wrote to stdout"; fail=1; }
# A normalised answer is a warning that shows what the server compares.
"$EVE_PYTHON" -c '
import json; p = json.load(open("ft/predictions/test.json")); p[0]["answer"] = "Two dogs."
json.dump(p, open("vqa_test2015_norm_results.json", "w"))'
"$score" vqa --check-submission --questions test2015.json --pred vqa_test2015_norm_results.json >"$tmp/out" 2>"$tmp/err" ||
  { echo "FAIL normalised"; cat "$tmp/err"; fail=1; }
grep -qF "warning:   question $qid0: \"Two dogs.\" -> \"2 dogs\"" "$tmp/err" || { echo "FAIL normalised line"; cat "$tmp/err"; fail=1; }
grep -qF '"normalised":1' "$tmp/out" || { echo "FAIL normalised count"; cat "$tmp/out"; fail=1; }

# Bad input and usage.
expect_error --many-lines 1 "test2015.json: data_subtype is \"test2015\", but --split is test-dev2015" -- \
  "$score" vqa --check-submission --questions test2015.json --split test-dev2015 --pred vqa_test-dev2015_eve_results.json
expect_error --many-lines 1 "w/vqa/questions_test.json: data_subtype is \"synth\", not test-dev2015 or test2015" -- \
  "$score" vqa --check-submission --questions w/vqa/questions_test.json --pred vqa_test2015_eve-tiny_results.json
echo '{"question_id": 1}' >vqa_test2015_obj_results.json
expect_error 1 "vqa_test2015_obj_results.json: expected a list of {\"question_id\", \"answer\"} objects, found a JSON object" -- \
  "$score" vqa --check-submission --questions test2015.json --pred vqa_test2015_obj_results.json
expect_error 1 "nope.json" -- "$score" vqa --check-submission --questions test2015.json --pred nope.json
expect_error 2 "--split" -- "$score" vqa --check-submission --questions test2015.json --split val2014 --pred x.json
expect_error 2 "--check-submission takes no --annotations" -- \
  "$score" vqa --check-submission --annotations w/vqa/annotations_test.json --questions test2015.json --pred x.json
expect_error 2 "vqa needs --annotations (or --check-submission)" -- "$score" vqa --questions test2015.json --pred x.json
expect_error 2 "--split goes with --check-submission" -- \
  "$score" vqa --annotations w/vqa/annotations_test.json --questions test2015.json --split test2015 --pred x.json
"$score" vqa --help | grep -q -- "--check-submission" || { echo "FAIL --help"; fail=1; }
exit $fail
