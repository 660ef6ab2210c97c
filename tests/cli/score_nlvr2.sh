#!/usr/bin/env bash
# eve-score nlvr2 on hand-checked fixtures: accuracy and consistency, CSV details, errors.
source "$(dirname "$0")/lib.bash"
score=$EVE_BIN/eve-score
fx=$EVE_SOURCE/tests/fixtures/score

# CRLF lines and a header; "false"/"TRUE" match case-insensitively; "dev-850-1-1,False"
# is wrong and " True" (space after the comma) is wrong: 6 of 8 right; of the three
# sentences (dev-850--0, dev-850--1, dev-851--0) only the first is right on every pair.
out=$("$score" nlvr2 --gold "$fx/nlvr2_dev.jsonl" --pred "$fx/nlvr2_pred.csv")
check "scores" '{"accuracy":0.75,"consistency":0.3333333333333333,"examples":8,"groups":3}' "$out"
out=$("$score" nlvr2 --gold "$fx/nlvr2_dev.jsonl" --pred "$fx/nlvr2_pred.csv" --format table)
grep -qE '^accuracy +0\.75$' <<<"$out" || { echo "FAIL table: $out"; fail=1; }

# A missing prediction is an error (the official script prints nothing and exits 0).
head -4 "$fx/nlvr2_pred.csv" >"$tmp/short.csv"
rc=0; "$score" nlvr2 --gold "$fx/nlvr2_dev.jsonl" --pred "$tmp/short.csv" >"$tmp/out" 2>"$tmp/err" || rc=$?
check "missing exit" 1 "$rc"
check "missing text" "eve-score: error: $tmp/short.csv: 5 labelled example(s) have no prediction (first: dev-850-3-0, dev-850-0-1, dev-850-1-1, dev-851-0-0, dev-851-1-0) (predict every identifier of $fx/nlvr2_dev.jsonl)" "$(cat "$tmp/err")"
[[ ! -s $tmp/out ]] || { echo "FAIL: stdout not empty"; fail=1; }
# Duplicates: the later line wins, with a warning.
{ cat "$fx/nlvr2_pred.csv"; echo "dev-851-1-0,True"; } >"$tmp/dup.csv"
out=$("$score" nlvr2 --gold "$fx/nlvr2_dev.jsonl" --pred "$tmp/dup.csv" 2>"$tmp/err")
check "duplicate" '{"accuracy":0.875,"consistency":0.6666666666666666,"examples":8,"groups":3}' "$out"
grep -qF "1 identifier(s) predicted more than once" "$tmp/err" || { echo "FAIL duplicate warning"; fail=1; }
# Malformed lines.
printf 'dev-850-0-0,True\ndev-850-1-0 False\n' >"$tmp/bad.csv"
rc=0; "$score" nlvr2 --gold "$fx/nlvr2_dev.jsonl" --pred "$tmp/bad.csv" 2>"$tmp/err" >/dev/null || rc=$?
check "no comma" "1 eve-score: error: $tmp/bad.csv:2: expected \"identifier,prediction\", found no comma" "$rc $(cat "$tmp/err")"
printf '{"identifier": "dev-1-0-0", "label": "True"}\n{"identifier": "dev-1-1-0"}\n' >"$tmp/gold.jsonl"
rc=0; "$score" nlvr2 --gold "$tmp/gold.jsonl" --pred "$fx/nlvr2_pred.csv" 2>"$tmp/err" >/dev/null || rc=$?
check "no label" "1 eve-score: error: $tmp/gold.jsonl:2: expected a \"label\" (\"True\" or \"False\")" "$rc $(cat "$tmp/err")"
rc=0; "$score" nlvr2 --gold - --pred - </dev/null 2>"$tmp/err" >/dev/null || rc=$?
check "two stdin" "2" "$rc"
exit $fail
