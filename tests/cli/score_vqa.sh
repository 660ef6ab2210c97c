#!/usr/bin/env bash
# eve-score vqa on hand-checked fixtures: stdout JSON, both evaluators, table output, and
# the error text and exit code of each kind of bad input.
source "$(dirname "$0")/lib.bash"
score=$EVE_BIN/eve-score
fx=$EVE_SOURCE/tests/fixtures/score
args=(--annotations "$fx/vqa_annotations.json" --questions "$fx/vqa_questions.json")

# Q1 unanimous "yes" answered "yes": 100. Q2 unanimous "yes" answered "Yes": 0 (current: no
# normalisation when humans agree), 100 (legacy2017). Q3 "2","2","two"+7x"3" answered "two":
# 90 (all normalised), 60 (legacy: humans only get punctuation). Q4 "red","red","red, white"
# +7x"white" answered "red": 60 in both.
out=$("$score" vqa "${args[@]}" --pred "$fx/vqa_results.json")
check "current" '{"overall":62.5,"perAnswerType":{"number":90.0,"other":60.0,"yes/no":50.0},"perQuestionType":{"how many":90.0,"is the":50.0,"what color is the":60.0},"questions":4,"evaluator":"current"}' "$out"
out=$("$score" vqa "${args[@]}" --pred "$fx/vqa_results.json" --evaluator legacy2017)
check "legacy2017" '{"overall":80.0,"perAnswerType":{"number":60.0,"other":60.0,"yes/no":100.0},"perQuestionType":{"how many":60.0,"is the":100.0,"what color is the":60.0},"questions":4,"evaluator":"legacy2017"}' "$out"
out=$("$score" --format table vqa "${args[@]}" --pred "$fx/vqa_results.json" --threads 2)
grep -qE '^overall +62\.5$' <<<"$out" || { echo "FAIL table: $out"; fail=1; }
grep -qE '^  what color is the +60\.0$' <<<"$out" || { echo "FAIL table rows: $out"; fail=1; }
# Results may come from stdin.
out=$("$score" vqa "${args[@]}" --pred - <"$fx/vqa_results.json" --format json)
check "stdin" 62.5 "$(sed 's/.*"overall":\([0-9.]*\).*/\1/' <<<"$out")"

# Results that miss questions or answer unknown ones.
printf '[{"question_id": 1001, "answer": "yes"}, {"question_id": 5, "answer": "x"}]' >"$tmp/partial.json"
expect_error 1 \
  "partial.json: results do not match the annotated questions: 3 question(s) have no answer (first: 1002, 2001, 2002); 1 answer(s) are for questions not in the annotations (first: 5)" -- \
  "$score" vqa "${args[@]}" --pred "$tmp/partial.json"
# Malformed inputs of each kind name the file and the record or line.
printf '[{"question_id": 1001, "answer": "yes"},\n {"question_id": 1002 "answer": "no"}]' >"$tmp/syntax.json"
expect_error 1 "syntax.json:2: invalid JSON: expected '}' after an object member, found '\"'" -- \
  "$score" vqa "${args[@]}" --pred "$tmp/syntax.json"
printf '[{"question_id": 1001, "answer": 3}]' >"$tmp/type.json"
expect_error 1 'type.json:[0]: "answer" must be a string, found an integer' -- \
  "$score" vqa "${args[@]}" --pred "$tmp/type.json"
sed 's/"answer_type": "other", //' "$fx/vqa_annotations.json" >"$tmp/ann.json"
expect_error 1 'ann.json:annotations[3]: missing "answer_type"' -- \
  "$score" vqa --annotations "$tmp/ann.json" --questions "$fx/vqa_questions.json" --pred "$fx/vqa_results.json"
expect_error 1 \
  'expected an object with a "questions" list, found no "questions" member' -- \
  "$score" vqa --annotations "$fx/vqa_annotations.json" --questions "$fx/vqa_annotations.json" --pred "$fx/vqa_results.json"
expect_error 1 "nope.json" -- "$score" vqa "${args[@]}" --pred "$tmp/nope.json"
# Usage errors exit 2.
expect_error 2 "--evaluator" -- \
  "$score" vqa "${args[@]}" --pred "$fx/vqa_results.json" --evaluator 2017
expect_error 2 "--pred is required" -- "$score" vqa "${args[@]}"
expect_error 2 "a command is required; commands: vqa, " -- "$score"
exit $fail
