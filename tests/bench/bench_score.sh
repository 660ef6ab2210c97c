#!/usr/bin/env bash
# eve-score vqa against the straightforward Python reference (tests/reference/
# vqa_eval_ref.py) on the same VQA-v2-val-sized synthetic files: 214,354 questions with
# 2,143,540 human answers (tests/reference/vqa_make_synthetic.py, fixed seed). Prints both
# wall times, eve-score's with 1 thread and with all cores, and the ratios; checks that the
# numbers agree. BENCH_SCORE_QUESTIONS overrides the size.
set -euo pipefail
: "${EVE_BIN:?}"
src=${EVE_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}
py=${EVE_PYTHON:-/usr/bin/python3}
n=${BENCH_SCORE_QUESTIONS:-214354}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$py" "$src/tests/reference/vqa_make_synthetic.py" --out "$tmp" --questions "$n" --seed 2024 \
  --tricky-rate 0.05
args=(--annotations "$tmp/annotations.json" --questions "$tmp/questions.json" --pred "$tmp/results.json")
echo "files: $(du -sh "$tmp" | cut -f1) for $n questions"

seconds() { local t0 t1; t0=$(date +%s.%N); "$@" >"$tmp/last.json"; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'; }
"$EVE_BIN/eve-score" -q vqa "${args[@]}" >/dev/null  # warm the page cache
eve1=$(seconds "$EVE_BIN/eve-score" -q --threads 1 vqa "${args[@]}")
eveN=$(seconds "$EVE_BIN/eve-score" -q vqa "${args[@]}")
cp "$tmp/last.json" "$tmp/eve.json"
python=$(seconds "$py" "$src/tests/reference/vqa_eval_ref.py" "${args[@]}")
cp "$tmp/last.json" "$tmp/ref.json"
same=$("$py" -c 'import json,sys; print("identical" if json.load(open(sys.argv[1])) == json.load(open(sys.argv[2])) else "DIFFERENT")' "$tmp/eve.json" "$tmp/ref.json")
printf '%-28s %8s s\n' "eve-score vqa, 1 thread" "$eve1" "eve-score vqa, all cores" "$eveN" "python reference" "$python"
awk -v p="$python" -v a="$eve1" -v b="$eveN" -v s="$same" \
  'BEGIN { printf "python/eve-score: %.1fx (1 thread), %.1fx (all cores); results %s\n", p/a, p/b, s }'
[[ $same == identical ]]
