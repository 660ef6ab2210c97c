#!/usr/bin/env bash
# Ids that key a join (VQA question_id, NLVR2 identifier, Karpathy image and image_id,
# retrieval rank queries): a repeated id is one error line naming the file, both positions
# and the id, exit 1, nothing written; VQA questions and annotations that do not match are
# left out, counted in the manifest's sources and named in a warning. eve-score keeps the
# official evaluators' rules where they have one (the last of repeated predictions counts;
# repeated NLVR2 label lines and retrieval images are counted by position) and warns.
source "$(dirname "$0")/lib.bash"
prep=$EVE_BIN/eve-prep
score=$EVE_BIN/eve-score

# Runs a command that must exit with `code` and print exactly `stderr` on standard error.
expect() {  # name code stderr command...
  local name=$1 code=$2 want=$3 rc=0; shift 3
  "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  check "$name: exit status" "$code" "$rc"
  check "$name: stderr" "$want" "$(cat "$tmp/err")"
}
# An eve-prep run that must fail: exit 1, the one error line, no dataset dir files.
expect_prep_error() {  # name message eve-prep-args...
  local name=$1 message=$2; shift 2
  rm -rf "$tmp/d"
  expect "$name" 1 "eve-prep: error: $message" "$prep" "$@" --out "$tmp/d" --size 0
  [[ ! -e $tmp/d/manifest.json ]] && ! compgen -G "$tmp/d/*.jsonl" >/dev/null || flunk "$name: files written"
}

"$prep" synth --out "$tmp/w" --count 6 --size 32 --nlvr-sets 3 --seed 3 -q
w=$tmp/w

# ---- eve-prep vqa, official files ----
q() {  # question ids... -> a question file about image 1
  local out='{"data_subtype":"synth","questions":[' sep=''
  for id in "$@"; do out+="$sep{\"image_id\":1,\"question\":\"q$id?\",\"question_id\":$id}"; sep=,; done
  echo "$out]}"
}
a() {  # question ids... -> an annotation file, each question with four answers "a<id>"
  local out='{"annotations":[' sep='' k answers
  for id in "$@"; do
    answers=''
    for k in 1 2 3 4; do answers+="${answers:+,}{\"answer\":\"a$id\",\"answer_id\":$k}"; done
    out+="$sep{\"question_id\":$id,\"answer_type\":\"other\",\"question_type\":\"what\",\"answers\":[$answers]}"
    sep=,
  done
  echo "$out]}"
}
q 1000 1000 >"$tmp/q_dup.json"
a 1000 1001 >"$tmp/a.json"
expect_prep_error "vqa repeated question_id" "$tmp/q_dup.json: questions[1].question_id 1000 repeats questions[0]" \
  vqa --questions val="$tmp/q_dup.json" --annotations val="$tmp/a.json" --images "$w/images"
q 1000 1001 >"$tmp/q.json"
a 1001 1000 1001 >"$tmp/a_dup.json"
expect_prep_error "vqa repeated annotation" "$tmp/a_dup.json: annotations[2].question_id 1001 repeats annotations[0]" \
  vqa --questions val="$tmp/q.json" --annotations val="$tmp/a_dup.json" --images "$w/images"

# Questions 1001 and 1002 have no annotation, annotation 1003 no question: the two questions
# are left out, all three are counted and named; a split without annotations is not checked.
q 1000 1001 1002 >"$tmp/q3.json"
a 1003 1000 >"$tmp/a3.json"
rm -rf "$tmp/d"
rc=0
"$prep" vqa --questions val="$tmp/q3.json" --annotations val="$tmp/a3.json" --questions test="$tmp/q.json" \
  --images "$w/images" --size 0 --out "$tmp/d" 2>"$tmp/err" || rc=$?
[[ $rc == 0 ]] || flunk "vqa unmatched: exit $rc ($(cat "$tmp/err"))"
want="eve-prep: warning: prep: $tmp/q3.json: 2 question(s) have no annotation in $tmp/a3.json and are left out (first: 1001, 1002)
eve-prep: warning: prep: $tmp/a3.json: 1 annotation(s) match no question in $tmp/q3.json (first: 1003)"
[[ $(grep ': warning: ' "$tmp/err") == "$want" ]] || flunk "vqa unmatched: warnings
  expected: $want
  actual:   $(cat "$tmp/err")"
"$EVE_PYTHON" - "$tmp/d" <<'PY' || flunk "vqa unmatched: manifest or records"
import json, sys
d = sys.argv[1]
m = json.load(open(d + "/manifest.json"))
val, test = m["sources"]
assert val["questions_without_annotation"] == 2 and val["annotations_without_question"] == 1, val
assert "questions_without_annotation" not in test and "annotations_without_question" not in test, test
recs = [json.loads(l) for l in open(d + "/val.jsonl")]
assert [(r["question_id"], r["answers"]) for r in recs] == [(1000, ["a1000"] * 4)], recs
assert len(open(d + "/test.jsonl").readlines()) == 2
PY

# ---- eve-prep vqa, EVE/ALBEF JSON (VG QA) ----
echo '[{"question_id":7,"question":"a?","answer":"x","image":"images/COCO_synth_000000000001.jpg","dataset":"vg"},
{"question_id":8,"question":"b?","answer":"y","image":"images/COCO_synth_000000000002.jpg","dataset":"vg"},
{"question_id":7,"question":"c?","answer":"z","image":"images/COCO_synth_000000000003.jpg","dataset":"vg"}]' >"$tmp/vg.json"
expect_prep_error "vg qa repeated question_id" "$tmp/vg.json: [2].question_id 7 repeats [0]" \
  vqa --ann train="$tmp/vg.json" --vg-images "$w"

# ---- eve-prep nlvr2 ----
# The second dev-0-0-0 takes the other label: two records of one statement.
printf '%s\n' '{"identifier":"dev-0-0-0","sentence":"s","label":"True"}' \
  '{"identifier":"dev-0-1-0","sentence":"s","label":"True"}' '{"identifier":"dev-0-0-0","sentence":"t","label":"False"}' \
  >"$tmp/n.json"
expect_prep_error "nlvr2 repeated identifier" "$tmp/n.json:3: identifier \"dev-0-0-0\" repeats line 1" \
  nlvr2 --ann dev="$tmp/n.json" --images "$w/nlvr2/images"
echo '[{"identifier":"dev-0-0-0","images":["a.jpg","b.jpg"],"sentence":"s","label":"True"},
{"identifier":"dev-0-0-0","images":["c.jpg","d.jpg"],"sentence":"s","label":"False"}]' >"$tmp/n_eve.json"
expect_prep_error "nlvr2 eve json repeated identifier" "$tmp/n_eve.json: [1].identifier \"dev-0-0-0\" repeats [0]" \
  nlvr2 --ann dev="$tmp/n_eve.json" --images "$w"

# ---- eve-prep retrieval (Karpathy) ----
img() { echo "images/COCO_synth_00000000000$1.jpg"; }
echo "[{\"image\":\"$(img 1)\",\"caption\":[\"a\",\"b\"]},{\"image\":\"$(img 2)\",\"caption\":[\"c\"]},
{\"image\":\"$(img 1)\",\"caption\":[\"d\"]}]" >"$tmp/r_test.json"
expect_prep_error "karpathy test image listed twice" "$tmp/r_test.json: [2].image \"$(img 1)\" repeats [0]" \
  retrieval --ann test="$tmp/r_test.json" --images "$w"
echo "[{\"image\":\"$(img 1)\",\"caption\":\"a\",\"image_id\":1},{\"image\":\"$(img 2)\",\"caption\":\"b\",\"image_id\":1}]" \
  >"$tmp/r_id.json"
expect_prep_error "karpathy image_id of two images" \
  "$tmp/r_id.json: [1].image_id 1 repeats [0] (one image_id, one image; that entry's is \"$(img 1)\")" \
  retrieval --ann train="$tmp/r_id.json" --images "$w"
echo "[{\"image\":\"$(img 1)\",\"caption\":\"a\",\"image_id\":1},{\"image\":\"$(img 1)\",\"caption\":\"b\",\"image_id\":2}]" \
  >"$tmp/r_id2.json"
expect_prep_error "karpathy two image_ids of one image" \
  "$tmp/r_id2.json: [1].image_id 2 differs from [0].image_id 1 of the same image" \
  retrieval --ann train="$tmp/r_id2.json" --images "$w"
# A training file lists an image once per caption: that is no repeat.
rm -rf "$tmp/d"
expect "karpathy train" 0 "" "$prep" -q retrieval --ann train="$w/retrieval_train.json" --images "$w" --size 0 --out "$tmp/d"

# ---- eve-score ----
a 1000 1001 >"$tmp/sa.json"
echo '[{"question_id":1000,"answer":"no"},{"question_id":1001,"answer":"a1001"},{"question_id":1000,"answer":"a1000"}]' \
  >"$tmp/pred.json"
expect "score vqa repeated question" 1 "eve-score: error: $tmp/q_dup.json: questions[1].question_id 1000 repeats questions[0]" \
  "$score" vqa --annotations "$tmp/sa.json" --questions "$tmp/q_dup.json" --pred "$tmp/pred.json"
expect "score vqa repeated annotation" 1 \
  "eve-score: error: $tmp/a_dup.json: annotations[2].question_id 1001 repeats annotations[0]" \
  "$score" vqa --annotations "$tmp/a_dup.json" --questions "$tmp/q.json" --pred "$tmp/pred.json"
# A question answered twice: the last answer counts, as in the official evaluator.
expect "score vqa repeated prediction" 0 \
  "eve-score: warning: $tmp/pred.json: 1 question(s) answered more than once; the last answer counts, as in the official evaluator" \
  "$score" vqa --annotations "$tmp/sa.json" --questions "$tmp/q.json" --pred "$tmp/pred.json"
[[ $(cat "$tmp/out") == *'"overall":100.0'* ]] || flunk "score vqa repeated prediction: $(cat "$tmp/out")"

# NLVR2 label lines count one by one, as in the official script; a repeat is named.
printf '%s\n' '{"identifier":"dev-1-0-0","label":"True"}' '{"identifier":"dev-1-1-0","label":"False"}' \
  '{"identifier":"dev-1-0-0","label":"False"}' >"$tmp/gold.jsonl"
printf 'dev-1-0-0,True\ndev-1-1-0,False\n' >"$tmp/pred.csv"
expect "score nlvr2 repeated label" 0 \
  "eve-score: warning: $tmp/gold.jsonl: 1 identifier(s) are labelled more than once (first: dev-1-0-0); every label line counts, as in the official script" \
  "$score" nlvr2 --gold "$tmp/gold.jsonl" --pred "$tmp/pred.csv"
[[ $(cat "$tmp/out") == '{"accuracy":0.6666666666666666,"consistency":0.0,"examples":3,"groups":1}' ]] ||
  flunk "score nlvr2 repeated label: $(cat "$tmp/out")"

# Retrieval: a query ranked twice is an error; an image listed twice is two images by position.
echo '[{"image":"p.jpg","caption":["x"]},{"image":"q.jpg","caption":["y"]}]' >"$tmp/ret.json"
printf '%s\n' '{"query":0,"results":[[0,1]]}' '{"query":1,"results":[[1,1]]}' '{"query":"p.jpg","results":[[0,1]]}' \
  >"$tmp/i2t.jsonl"
printf '%s\n' '{"query":0,"results":[[0,1]]}' '{"query":1,"results":[[1,1]]}' >"$tmp/t2i.jsonl"
expect "score retrieval repeated query" 1 "eve-score: error: $tmp/i2t.jsonl:3: query \"p.jpg\" repeats line 1" \
  "$score" retrieval --ann "$tmp/ret.json" --i2t-ranks "$tmp/i2t.jsonl" --t2i-ranks "$tmp/t2i.jsonl"
echo '[{"image":"p.jpg","caption":["x"]},{"image":"p.jpg","caption":["y"]}]' >"$tmp/ret2.json"
head -2 "$tmp/i2t.jsonl" >"$tmp/i2t2.jsonl"
expect "score retrieval image listed twice" 0 \
  "eve-score: warning: $tmp/ret2.json: 1 image(s) are listed more than once (first: p.jpg); ground truth is by position, so each entry is another image, as in itm_eval" \
  "$score" retrieval --ann "$tmp/ret2.json" --i2t-ranks "$tmp/i2t2.jsonl" --t2i-ranks "$tmp/t2i.jsonl"

[[ $fail == 0 ]] || exit 1
echo "bad_input_ids: ok"
