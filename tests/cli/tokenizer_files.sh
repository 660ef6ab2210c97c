#!/usr/bin/env bash
# Whichever file of a tokenizer the user names is recognised: --tokenizer takes tok.json,
# the sentencepiece model itself (same run as with tok.json) or a bundle directory (its
# tokenizer.model); eve-tokenize --tokenizer takes the model or a bundle directory, and a tok.json
# or a directory without a tokenizer gets a one-line error saying what to pass.
source "$(dirname "$0")/lib.bash"
pre=$EVE_BIN/eve-pretrain
toy_pairs 40 64 3 200
B=$EVE_BIN
one=(--data "$tmp/d" --split ids --config eve-tiny --threads 1 -q --batch-size 4 --max-steps 2 --seed 3)
"$pre" "${one[@]}" --tokenizer "$tmp/tok.json" --out "$tmp/json"
"$pre" "${one[@]}" --tokenizer "$tmp/tok.model" --out "$tmp/model"
cmp -s "$tmp/json/model.safetensors" "$tmp/model/model.safetensors" || { echo "FAIL --tokenizer tok.model trains otherwise"; fail=1; }
"$pre" "${one[@]}" --tokenizer "$tmp/json" --out "$tmp/bundle" 2>/dev/null
cmp -s "$tmp/json/model.safetensors" "$tmp/bundle/model.safetensors" || { echo "FAIL --tokenizer BUNDLE trains otherwise"; fail=1; }
for run in json model bundle; do  # each run dir is a bundle with the tokenizer it used
  cmp -s "$tmp/tok.model" "$tmp/$run/tokenizer.model" || { echo "FAIL $run: no tokenizer.model in the run dir"; fail=1; }
done
set +e
err=$("$pre" "${one[@]}" --tokenizer "$tmp/d" --out "$tmp/x" 2>&1); rc=$?
check dir-rc 1 "$rc"
check dir-msg "eve-pretrain: error: $tmp/d: is a directory without tokenizer.model (pass the tokenizer's .model or tok.json file, or a bundle directory)" "$err"
err=$("$B/eve-tokenize" encode --tokenizer "$tmp/tok.json" "$tmp/d/train.jsonl" 2>&1 >/dev/null); rc=$?
check json-rc 1 "$rc"
check json-msg "eve-tokenize: error: $tmp/tok.json: this is JSON (a tokenizer's tok.json?), not a sentencepiece model (pass the sentencepiece model beside it: $tmp/tok.model)" "$err"
set -e
"$B/eve-tokenize" encode --tokenizer "$tmp/tok.model" "$tmp/d/train.jsonl" -o "$tmp/a.jsonl"
"$B/eve-tokenize" encode --tokenizer "$tmp/json" "$tmp/d/train.jsonl" -o "$tmp/b.jsonl" 2>"$tmp/b.err"
cmp -s "$tmp/a.jsonl" "$tmp/b.jsonl" || { echo "FAIL -m BUNDLE encodes otherwise"; fail=1; }
grep -q "$tmp/json is a bundle: its tokenizer.model is used" "$tmp/b.err" || { echo "FAIL no note for -m BUNDLE"; fail=1; }
exit $fail
