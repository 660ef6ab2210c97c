#!/usr/bin/env bash
# A worker that dies in the middle of data-parallel training does not leave the others
# hanging: started by hand (the torchrun/Slurm way), the surviving rank exits non-zero
# within --dist-timeout; started by --nproc-per-node, the launcher stops the other worker
# and exits non-zero, naming the worker that died.
source "$(dirname "$0")/lib.bash"
pre=$EVE_BIN/eve-pretrain
toy_pairs 20 48 4 120
a=(--data "$tmp/d" --split ids --tokenizer "$tmp/tok.json" --config eve-tiny --threads 1 -q
   --batch-size 4 --max-steps 1000000 --save-every 1000000 --log-every 1 --dist-timeout 10)
# Waits until rank 0 has logged a training step in run dir $1 (both ranks are past the
# rendezvous and inside the step loop).
training() {
  for _ in $(seq 1 240); do
    [[ -s $1/metrics.jsonl ]] && return 0
    sleep 0.5
  done
  echo "FAIL no training step logged in $1"; exit 1
}

# The pids whose parent is $1 (from /proc, so no procps is needed).
children() {
  local p
  for p in /proc/[0-9]*; do
    [[ $(awk '{print $4}' "$p/stat" 2>/dev/null) == "$1" ]] && echo "${p#/proc/}"
  done
  return 0
}

# fails_soon PID WHAT: PID (a background job) exits non-zero within 40 s (--dist-timeout 10).
fails_soon() {
  local start=$SECONDS rc=0
  wait "$1" || rc=$?
  [[ $rc != 0 ]] || { echo "FAIL $2 exited 0"; fail=1; }
  (( SECONDS - start <= 40 )) || { echo "FAIL $2 took $((SECONDS - start)) s (--dist-timeout 10)"; fail=1; }
}

# 1. Two ranks started by hand; rank 1 is killed with SIGKILL.
port=$((30100 + RANDOM % 150))
env RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
  "$pre" "${a[@]}" --out "$tmp/r" 2>"$tmp/err0" &
p0=$!
env RANK=1 WORLD_SIZE=2 LOCAL_RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
  "$pre" "${a[@]}" --out "$tmp/r" 2>"$tmp/err1" &
p1=$!
training "$tmp/r"
kill -9 "$p1"
fails_soon "$p0" "the surviving rank"
grep -q "^eve-pretrain: error: " "$tmp/err0" || { echo "FAIL no error line from the surviving rank"; cat "$tmp/err0"; fail=1; }

# 2. The local launcher: one of its two workers is killed with SIGKILL.
MASTER_PORT=$((30250 + RANDOM % 150)) "$pre" "${a[@]}" --out "$tmp/l" --nproc-per-node 2 2>"$tmp/errl" &
launcher=$!
training "$tmp/l"
workers=($(children "$launcher"))
(( ${#workers[@]} == 2 )) || { echo "FAIL expected 2 workers under the launcher, found ${#workers[@]}"; exit 1; }
victim=${workers[1]} survivor=${workers[0]}
kill -9 "$victim"
fails_soon "$launcher" "the launcher"
grep -Eq "worker [01] exited with status 137; stopping the others" "$tmp/errl" ||
  { echo "FAIL the launcher did not name the dead worker"; cat "$tmp/errl"; fail=1; }
! kill -0 "$survivor" 2>/dev/null || { echo "FAIL the other worker is still running"; fail=1; }
exit $fail
