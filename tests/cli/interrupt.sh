#!/usr/bin/env bash
# Ctrl-C and kill, end to end: eve-pretrain and eve-finetune stopped by SIGINT or SIGTERM
# in the middle of a run exit 130 / 143 with a checkpoint of exactly the step they stopped
# at, and a rerun of the same command ends bit for bit where an uninterrupted run ends (same
# weights, same metrics lines but timings); eve-prep and eve-embed stopped by SIGINT leave
# no final output behind, and their rerun resumes (reusing the work done) to the same bytes.
#
# The signal is sent once the run has logged a few steps (--log-every 1), long before its
# last one, so the stop always lands mid-run; the stop step is read back from the run, not
# assumed.
source "$(dirname "$0")/lib.bash"
pre=$EVE_BIN/eve-pretrain
toy_pairs 80 64 5 200
B=$EVE_BIN

# lines FILE: number of lines, 0 when the file is not there yet.
lines() { if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi; }

# stop_after SIGNAL MIN_LINES METRICS -- command...: start the command, send SIGNAL once
# METRICS has MIN_LINES lines, and print the exit status.
stop_after() {
  local sig=$1 min=$2 metrics=$3; shift 4
  "$@" 2>"$tmp/stop.err" &
  local pid=$! n=0
  until (( $(lines "$metrics") >= min )); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.02
    n=$((n + 1))
    (( n < 6000 )) || { echo "FAIL no metrics after 120 s" >&2; break; }
  done
  kill "-$sig" "$pid" 2>/dev/null || true
  set +e
  wait "$pid"
  echo $?
  set -e
}

# stopped_at RUN: the step of the only checkpoint in RUN, checked against the last training
# step in its metrics (the step the run stopped at).
stopped_at() {
  py - "$1" <<'EOF'
import glob, json, os, sys
run = sys.argv[1]
steps = [json.loads(l)["step"] for l in open(run + "/metrics.jsonl") if "loss" in json.loads(l)]
last = steps[-1]
ck = os.path.join(run, "checkpoint-%08d" % last)
state = json.load(open(ck + "/trainer.json")) if os.path.isdir(ck) else {}
print(last if state.get("step") == last and steps == list(range(1, last + 1)) else f"bad: metrics end at {last}, "
      f"checkpoints {sorted(os.path.basename(p) for p in glob.glob(run + '/checkpoint-*'))}")
EOF
}

# resumed NAME STEP TOTAL: the rerun's log says it went on from the stop checkpoint.
resumed() {
  grep -q "resuming from .*/checkpoint-$(printf %08d "$2") (step $2 of $3)" "$tmp/rerun.err" ||
    { echo "FAIL $1: the rerun did not resume from step $2"; cat "$tmp/rerun.err"; fail=1; }
}

# 1. eve-pretrain: 40 steps, no periodic checkpoint, so the only checkpoint of a stopped run
# is the one its stop wrote.
one=(--data "$tmp/d" --split ids --tokenizer "$tmp/tok.json" --config eve-tiny --threads 1
     --batch-size 4 --max-steps 40 --save-every 0 --log-every 1 --seed 7)
"$pre" -q "${one[@]}" --out "$tmp/full"
for sig in INT TERM; do
  run=$tmp/pre-$sig
  rc=$(stop_after "$sig" 3 "$run/metrics.jsonl" -- "$pre" -q "${one[@]}" --out "$run")
  check "pretrain-$sig-exit" "$([[ $sig == INT ]] && echo 130 || echo 143)" "$rc"
  at=$(stopped_at "$run")
  [[ $at =~ ^[0-9]+$ && $at -ge 3 && $at -lt 40 ]] || { echo "FAIL pretrain-$sig: stop checkpoint: $at"; fail=1; }
  [[ ! -e $run/checkpoint-00000040 ]] || { echo "FAIL pretrain-$sig: the stopped run finished"; fail=1; }
  "$pre" "${one[@]}" --out "$run" 2>"$tmp/rerun.err"
  resumed "pretrain-$sig" "$at" 40
  cmp -s "$tmp/full/model.safetensors" "$run/model.safetensors" ||
    { echo "FAIL pretrain-$sig: resumed weights differ from the uninterrupted run"; fail=1; }
  same_metrics "pretrain-$sig" "$tmp/full/metrics.jsonl" "$run/metrics.jsonl"
done

# 2. eve-finetune (VQA, with evaluation every 10 steps: the after-step work is resumed too).
toy_vqa
ft=(--task vqa --data "$tmp/vqa" --config eve-tiny --tokenizer "$tmp/tok.json" --image-res 64 --threads 1
    --batch-size 4 --max-steps 30 --save-every 0 --log-every 1 --eval-every 10 --seed 3)
"$B/eve-finetune" -q "${ft[@]}" --out "$tmp/ffull"
for sig in INT TERM; do
  run=$tmp/ft-$sig
  rc=$(stop_after "$sig" 3 "$run/metrics.jsonl" -- "$B/eve-finetune" -q "${ft[@]}" --out "$run")
  check "finetune-$sig-exit" "$([[ $sig == INT ]] && echo 130 || echo 143)" "$rc"
  at=$(stopped_at "$run")
  [[ $at =~ ^[0-9]+$ && $at -ge 3 && $at -lt 30 ]] || { echo "FAIL finetune-$sig: stop checkpoint: $at"; fail=1; }
  [[ ! -e $run/results.json ]] || { echo "FAIL finetune-$sig: the stopped run wrote results.json"; fail=1; }
  "$B/eve-finetune" "${ft[@]}" --out "$run" 2>"$tmp/rerun.err"
  resumed "finetune-$sig" "$at" 30
  cmp -s "$tmp/ffull/model.safetensors" "$run/model.safetensors" ||
    { echo "FAIL finetune-$sig: resumed weights differ from the uninterrupted run"; fail=1; }
  cmp -s "$tmp/ffull/predictions/val.json" "$run/predictions/val.json" ||
    { echo "FAIL finetune-$sig: resumed predictions differ"; fail=1; }
  same_metrics "finetune-$sig" "$tmp/ffull/metrics.jsonl" "$run/metrics.jsonl"
done

# 3. eve-prep: stopped while it waits on an image (a FIFO, in its second batch of 512) after
# the first batch is stored, it exits 130 with no final output, and the rerun reuses the
# stored batch and writes the same bytes as an uninterrupted run.
"$B/eve-prep" synth --out "$tmp/big" --count 1500 --seed 5 -q
prep=(pairs --ann "$tmp/big/pairs_train.json" --images "$tmp/big" --threads 2)
"$B/eve-prep" -q "${prep[@]}" --out "$tmp/pfull"
slow=$(py -c 'import json,sys
seen = []
for r in json.load(open(sys.argv[1])):
    if r["image"] not in seen: seen.append(r["image"])
print(seen[700])' "$tmp/big/pairs_train.json")
mv "$tmp/big/$slow" "$tmp/slow.jpg"
mkfifo "$tmp/big/$slow"
"$B/eve-prep" "${prep[@]}" --out "$tmp/pint" 2>"$tmp/pint.err" &
pid=$!
for _ in $(seq 1 6000); do [[ -e $tmp/pint/.prep-work/batch-00000.idx ]] && break; sleep 0.02; done
kill -INT $pid
cat "$tmp/slow.jpg" >"$tmp/big/$slow"  # let the waiting reader go on
set +e; wait $pid; rc=$?; set -e
check prep-int-exit 130 "$rc"
for f in train.jsonl manifest.json images.idx images-00000.tar; do
  [[ ! -e $tmp/pint/$f ]] || { echo "FAIL prep-int: $f exists after the stop"; fail=1; }
done
rm "$tmp/big/$slow"
mv "$tmp/slow.jpg" "$tmp/big/$slow"
"$B/eve-prep" "${prep[@]}" --out "$tmp/pint" 2>"$tmp/pint2.err"
grep -Eq "\(([1-9][0-9]*) from an interrupted run\)" "$tmp/pint2.err" ||
  { echo "FAIL prep-int: the rerun did not reuse the stored images"; cat "$tmp/pint2.err"; fail=1; }
for f in train.jsonl images.idx images-00000.tar; do
  cmp -s "$tmp/pfull/$f" "$tmp/pint/$f" || { echo "FAIL prep-int: resumed $f differs"; fail=1; }
done

# 4. eve-embed: the 1,200 images with a contrastive bundle, in parts of 200; stopped mid-way,
# no part is left half written, and the rerun keeps the finished parts and writes the same
# bytes as an uninterrupted run.
"$pre" -q "${one[@]:0:12}" --max-steps 1 --objective itc --out "$tmp/itc"
emb=(-m "$tmp/itc" --images "$tmp/pfull" -b 8 --threads 1 --part-size 200)
"$B/eve-embed" -q "${emb[@]}" -o "$tmp/efull"
"$B/eve-embed" "${emb[@]}" -o "$tmp/eint" 2>"$tmp/eint.err" &
pid=$!
for _ in $(seq 1 6000); do [[ -e $tmp/eint-00000.npy ]] && break; sleep 0.02; done
kill -INT $pid
set +e; wait $pid; rc=$?; set -e
check embed-int-exit 130 "$rc"
[[ ! -e $tmp/eint-00005.npy ]] || { echo "FAIL embed-int: the stopped run wrote its last part"; fail=1; }
for f in "$tmp"/eint-*.npy; do
  cmp -s "$f" "$tmp/efull${f#$tmp/eint}" || { echo "FAIL embed-int: $f after the stop is not the finished part"; fail=1; }
done
"$B/eve-embed" "${emb[@]}" -o "$tmp/eint" 2>"$tmp/eint2.err"
grep -Eq " [1-9] part\(s\) already done" "$tmp/eint2.err" ||
  { echo "FAIL embed-int: the rerun did not keep the finished parts"; cat "$tmp/eint2.err"; fail=1; }
for p in 00000 00001 00002 00003 00004 00005; do
  for ext in npy ids.jsonl; do
    cmp -s "$tmp/efull-$p.$ext" "$tmp/eint-$p.$ext" || { echo "FAIL embed-int: rerun part $p.$ext differs"; fail=1; }
  done
done
exit $fail
