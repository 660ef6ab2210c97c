#!/usr/bin/env bash
# Encode throughput (lines/s): `eve-tokenize encode --plain` (cleaning included) against
# python3-sentencepiece encoding the same cleaned lines with the same thread count and
# writing the same [CLS] ... [SEP] id lines.
set -euo pipefail
: "${EVE_BIN:?}" "${EVE_SOURCE:?}" "${EVE_PYTHON:=/usr/bin/python3}"
threads=${BENCH_THREADS:-$(nproc)}
copies=${BENCH_COPIES:-100}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tok=$EVE_BIN/eve-tokenize
caps=$EVE_SOURCE/tests/fixtures/text/captions.txt
for ((i = 0; i < copies; i++)); do cat "$caps"; done >"$tmp/raw.txt"
"$tok" clean -q "$tmp/raw.txt" >"$tmp/clean.txt"
"$tok" train -q "$caps" -o "$tmp/tok.model" --vocab-size 1000 2>/dev/null ||
  "$tok" train -q "$caps" -o "$tmp/tok.model" --vocab-size 500
lines=$(wc -l <"$tmp/clean.txt")

now() { date +%s.%N; }
# Python: one timed encode of the whole file (interpreter start and import not counted).
cat >"$tmp/py_encode.py" <<'PY'
import sys, time
import sentencepiece as spm
model, src, dst, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
t0 = time.perf_counter()
sp = spm.SentencePieceProcessor(model_file=model)
with open(src, encoding="utf-8") as f:
    lines = f.read().split("\n")[:-1]
ids = sp.encode(lines, num_threads=threads)
with open(dst, "w") as f:
    f.writelines("2 " + " ".join(map(str, x)) + " 3\n" for x in ids)
print(time.perf_counter() - t0)
PY
# Alternate the two (best of 3 each) so that load from other processes hits both alike.
best_eve= best_py=
min() { if [[ -z $1 ]] || (($(echo "$2 < $1" | bc -l))); then echo "$2"; else echo "$1"; fi; }
for run in 1 2 3; do
  t0=$(now)
  "$tok" encode -q --tokenizer "$tmp/tok.model" --plain --max-tokens 100000 --threads "$threads" "$tmp/clean.txt" >"$tmp/eve.ids"
  best_eve=$(min "$best_eve" "$(echo "$(now) - $t0" | bc -l)")
  best_py=$(min "$best_py" "$("$EVE_PYTHON" "$tmp/py_encode.py" "$tmp/tok.model" "$tmp/clean.txt" "$tmp/py.ids" "$threads")")
done
cmp -s "$tmp/eve.ids" "$tmp/py.ids" || echo "warning: the two outputs differ" >&2
printf '%-34s %10s %12s\n' "encode --plain ($lines lines, $threads threads)" "seconds" "lines/s"
printf '%-34s %10.3f %12.0f\n' "eve-tokenize" "$best_eve" "$(echo "$lines / $best_eve" | bc -l)"
printf '%-34s %10.3f %12.0f\n' "python3-sentencepiece" "$best_py" "$(echo "$lines / $best_py" | bc -l)"
printf 'ratio (eve-tokenize speed / python speed): %.2fx\n' "$(echo "$best_py / $best_eve" | bc -l)"
