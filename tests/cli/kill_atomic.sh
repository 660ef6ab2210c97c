#!/usr/bin/env bash
# SIGKILL at a random moment never leaves a truncated output: for every program that writes
# files, a run killed at several random points (no chance to clean up) leaves each final
# output either absent, as it was before the run, or complete (byte-identical to an
# uninterrupted run's); and a rerun of the same command then finishes with exactly the
# uninterrupted run's bytes (trainers: weights and metrics), whatever the kill left behind.
#
# The delays are drawn from EVE_KILL_SEED (default: the clock) and printed, so a failure
# can be replayed.
source "$(dirname "$0")/lib.bash"
pre=$EVE_BIN/eve-pretrain
toy_pairs 80 64 5 200
B=$EVE_BIN
seed=${EVE_KILL_SEED:-$(date +%s)}
RANDOM=$seed
echo "kill delays drawn with EVE_KILL_SEED=$seed"
reps=4

# timed COMMAND...: run it, print its wall time in ms.
timed() {
  local t0 t1
  t0=$(date +%s%N)
  "$@"
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000000))
}

# kill_at MS COMMAND...: start the command, SIGKILL it after MS milliseconds (if still
# running), wait for it.
kill_at() {
  local ms=$1; shift
  "$@" >/dev/null 2>&1 &
  local pid=$!
  sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# one_of NAME FILE REF [PREV]: FILE is absent, equal to REF, or equal to PREV.
one_of() {
  local name=$1 f=$2 ref=$3 prev=${4:-}
  [[ ! -e $f ]] && return 0
  cmp -s "$f" "$ref" && return 0
  [[ -n $prev ]] && cmp -s "$f" "$prev" && return 0
  echo "FAIL $name: $(basename "$f") is neither absent$([[ -n $prev ]] && echo ", the previous one") nor complete ($(stat -c %s "$f") bytes, complete: $(stat -c %s "$ref"))"
  fail=1
}

# 1. eve-prep: 1,200 images; outputs appear only whole.
"$B/eve-prep" synth --out "$tmp/big" --count 1500 --seed 5 -q
prep=(-q pairs --ann "$tmp/big/pairs_train.json" --images "$tmp/big" --threads 2)
ms=$(timed "$B/eve-prep" "${prep[@]}" --out "$tmp/p.ref")
for r in $(seq 1 $reps); do
  d=$((RANDOM % (ms + 50))); echo "eve-prep killed at $d of $ms ms"
  kill_at "$d" "$B/eve-prep" "${prep[@]}" --out "$tmp/p$r"
  for f in train.jsonl manifest.json images.idx images-00000.tar; do one_of "prep@$d" "$tmp/p$r/$f" "$tmp/p.ref/$f"; done
  "$B/eve-prep" "${prep[@]}" --out "$tmp/p$r"
  for f in train.jsonl images.idx images-00000.tar; do
    cmp -s "$tmp/p$r/$f" "$tmp/p.ref/$f" || { echo "FAIL prep@$d: the rerun's $f differs"; fail=1; }
  done
done

# 2. eve-tokenize encode over an existing output: the old file or the new one, never half.
cat "$tmp"/big/corpus.txt "$tmp"/big/corpus.txt "$tmp"/big/corpus.txt | py -c '
import json, sys
for i, line in enumerate(sys.stdin):
    print(json.dumps({"id": i, "text": line.strip()}))' >"$tmp/many.jsonl"
head -n 10 "$tmp/many.jsonl" >"$tmp/few.jsonl"
"$B/eve-tokenize" encode --tokenizer "$tmp/tok.model" "$tmp/few.jsonl" -o "$tmp/enc.prev"
ms=$(timed "$B/eve-tokenize" encode --tokenizer "$tmp/tok.model" "$tmp/many.jsonl" -o "$tmp/enc.ref")
for r in $(seq 1 $reps); do
  d=$((RANDOM % (ms + 50))); echo "eve-tokenize killed at $d of $ms ms"
  cp "$tmp/enc.prev" "$tmp/enc"
  kill_at "$d" "$B/eve-tokenize" encode --tokenizer "$tmp/tok.model" "$tmp/many.jsonl" -o "$tmp/enc"
  one_of "tokenize@$d" "$tmp/enc" "$tmp/enc.ref" "$tmp/enc.prev"
done

# 3. eve-rank over existing outputs (ranks and the score matrix).
py - "$tmp" <<'EOF'
import numpy as np, sys
rng = np.random.default_rng(3)
for name, n in (("q", 3000), ("g", 10000)):
    x = rng.standard_normal((n, 64)).astype(np.float32)
    np.save(f"{sys.argv[1]}/{name}.npy", x / np.linalg.norm(x, axis=1, keepdims=True))
EOF
rank=(-q --queries "$tmp/q.npy" --gallery "$tmp/g.npy" --threads 2)
"$B/eve-rank" "${rank[@]}" -k 2 -o "$tmp/r.prev.jsonl" --scores-out "$tmp/s.prev.npy"
ms=$(timed "$B/eve-rank" "${rank[@]}" -k 9 -o "$tmp/r.ref.jsonl" --scores-out "$tmp/s.ref.npy")
for r in $(seq 1 $reps); do
  d=$((RANDOM % (ms + 50))); echo "eve-rank killed at $d of $ms ms"
  cp "$tmp/r.prev.jsonl" "$tmp/r.jsonl"; cp "$tmp/s.prev.npy" "$tmp/s.npy"
  kill_at "$d" "$B/eve-rank" "${rank[@]}" -k 9 -o "$tmp/r.jsonl" --scores-out "$tmp/s.npy"
  one_of "rank@$d" "$tmp/r.jsonl" "$tmp/r.ref.jsonl" "$tmp/r.prev.jsonl"
  one_of "rank@$d" "$tmp/s.npy" "$tmp/s.ref.npy" "$tmp/s.prev.npy"
done

# 4. eve-embed: 1,200 images in parts of 300; parts appear whole, the rerun completes them.
"$pre" -q --data "$tmp/d" --split ids --tokenizer "$tmp/tok.json" --config eve-tiny --threads 1 --batch-size 4 \
  --max-steps 1 --objective itc --out "$tmp/itc"
emb=(-q -m "$tmp/itc" --images "$tmp/p.ref" -b 16 --threads 2 --part-size 300)
ms=$(timed "$B/eve-embed" "${emb[@]}" -o "$tmp/e.ref")
for r in $(seq 1 $reps); do
  d=$((RANDOM % (ms + 50))); echo "eve-embed killed at $d of $ms ms"
  kill_at "$d" "$B/eve-embed" "${emb[@]}" -o "$tmp/e$r"
  for p in 00000 00001 00002 00003; do
    for ext in npy ids.jsonl; do one_of "embed@$d" "$tmp/e$r-$p.$ext" "$tmp/e.ref-$p.$ext"; done
  done
  "$B/eve-embed" "${emb[@]}" -o "$tmp/e$r"
  for p in 00000 00001 00002 00003; do
    cmp -s "$tmp/e$r-$p.npy" "$tmp/e.ref-$p.npy" || { echo "FAIL embed@$d: the rerun's part $p differs"; fail=1; }
  done
done

# 5. eve-pretrain and eve-finetune: killed anywhere (in a step, in a checkpoint write, in
# a metrics line), the rerun resumes from what is intact and ends bit for bit where an
# uninterrupted run ends.
same_run() {  # same_run NAME REF RUN: weights equal, metrics equal but timings
  cmp -s "$2/model.safetensors" "$3/model.safetensors" || { echo "FAIL $1: the rerun's weights differ"; fail=1; }
  same_metrics "$1" "$2/metrics.jsonl" "$3/metrics.jsonl"
}
pt=(-q --data "$tmp/d" --split ids --tokenizer "$tmp/tok.json" --config eve-tiny --threads 1 --batch-size 4
    --max-steps 24 --save-every 3 --keep 2 --seed 7)
ms=$(timed "$pre" "${pt[@]}" --out "$tmp/pt.ref")
for r in $(seq 1 $reps); do
  d=$((RANDOM % (ms + 50))); echo "eve-pretrain killed at $d of $ms ms"
  kill_at "$d" "$pre" "${pt[@]}" --out "$tmp/pt$r"
  "$pre" "${pt[@]}" --out "$tmp/pt$r"
  same_run "pretrain@$d" "$tmp/pt.ref" "$tmp/pt$r"
done
toy_vqa
ft=(-q --task vqa --data "$tmp/vqa" --config eve-tiny --tokenizer "$tmp/tok.json" --image-res 64 --threads 1
    --batch-size 4 --max-steps 16 --save-every 3 --eval-every 5 --seed 3)
ms=$(timed "$B/eve-finetune" "${ft[@]}" --out "$tmp/ft.ref")
for r in $(seq 1 $reps); do
  d=$((RANDOM % (ms + 50))); echo "eve-finetune killed at $d of $ms ms"
  kill_at "$d" "$B/eve-finetune" "${ft[@]}" --out "$tmp/ft$r"
  "$B/eve-finetune" "${ft[@]}" --out "$tmp/ft$r"
  same_run "finetune@$d" "$tmp/ft.ref" "$tmp/ft$r"
  cmp -s "$tmp/ft.ref/predictions/val.json" "$tmp/ft$r/predictions/val.json" ||
    { echo "FAIL finetune@$d: the rerun's predictions differ"; fail=1; }
done
exit $fail
