#!/usr/bin/env bash
# Progress off a terminal (stderr to a file, as under nohup or Slurm): a plain line every
# --progress-every seconds with the count of the total, the loss of the last logging step
# (trainers), the throughput and the ETA; --progress-every 0 prints none; the bar on a
# terminal shows the loss as well. The number of lines depends on the machine's speed, so
# the test checks that lines appear and parse.
source "$(dirname "$0")/lib.bash"
pre=$EVE_BIN/eve-pretrain
toy_pairs 24 64 4 120
has_lines() {  # has_lines NAME LOG REGEX: at least one line, and every progress line matches
  local lines
  lines=$(grep -E "$4" "$2" || true)
  [[ -n $lines ]] || { echo "FAIL $1: no progress line in"; sed 's/^/  | /' "$2"; fail=1; return; }
  if grep -E "$3" "$2" | grep -vE "$4"; then echo "FAIL $1: a line above does not parse"; fail=1; fi
}
num='[0-9]+(\.[0-9]+)?'
eta='ETA ([0-9.]+s|[0-9]+m[0-9]{2}s|[0-9]+h[0-9]{2}m|\?)'
# 60 steps that take a few seconds; a line every 0.05 s. --log-every 5: the loss shown is
# the one read on the last logging step; the first lines come before any.
"$pre" --data "$tmp/d" --split ids --tokenizer "$tmp/tok.json" --threads 2 --batch-size 4 --max-steps 60 \
  --log-every 5 --out "$tmp/run" --progress-every 0.05 2>"$tmp/pre.log"
has_lines pretrain "$tmp/pre.log" '^eve-pretrain: pretrain: [0-9]+/' \
  "^eve-pretrain: pretrain: [0-9]+/60 steps \\([0-9]+%\\)(, loss $num)?, $num steps/s, $eta\$"
grep -qE "^eve-pretrain: pretrain: [0-9]+/60 steps \\([0-9]+%\\), loss $num, " "$tmp/pre.log" ||
  { echo "FAIL pretrain: no progress line shows the loss"; sed 's/^/  | /' "$tmp/pre.log"; fail=1; }
# The loss a line shows is one that was logged in metrics.jsonl (the progress reads none).
"$EVE_PYTHON" - "$tmp/pre.log" "$tmp/run/metrics.jsonl" <<'PY' || fail=1
import json, re, sys
logged = {f"{json.loads(l)['loss']:.4f}" for l in open(sys.argv[2])}
for line in open(sys.argv[1]):
    m = re.search(r"pretrain: \d+/60 steps \(\d+%\), loss ([0-9.]+),", line)
    if m and m.group(1) not in logged:
        print("FAIL pretrain: a progress line shows loss", m.group(1), "that no logging step read"); sys.exit(1)
PY
# On a terminal (script(1) gives the run one) the bar shows the loss too.
if command -v script >/dev/null; then
  script -qec "'$pre' --data '$tmp/d' --split ids --tokenizer '$tmp/tok.json' --threads 2 --batch-size 4 \
    --max-steps 60 --log-every 5 --out '$tmp/tty'" /dev/null >"$tmp/tty.log"
  grep -qaE "pretrain \[[#.]+\] [0-9]+/60 loss $num $num steps/s ETA " "$tmp/tty.log" ||
    { echo "FAIL the bar on a terminal shows no loss"; tr '\r' '\n' <"$tmp/tty.log" | sed 's/^/  | /'; fail=1; }
fi
# eve-prep: images, no loss.
"$EVE_BIN/eve-prep" pairs --ann "$tmp/w/pairs_train.json" --images "$tmp/w" --out "$tmp/p" --threads 1 \
  --progress-every 0.0001 2>"$tmp/prep.log"
has_lines prep "$tmp/prep.log" '^eve-prep: prep: [0-9]+/' "^eve-prep: prep: [0-9]+/[0-9]+ img \\([0-9]+%\\), $num img/s, $eta\$"
# 0: none, only the summary.
"$pre" --data "$tmp/d" --split ids --tokenizer "$tmp/tok.json" --threads 2 --batch-size 4 --max-steps 10 \
  --out "$tmp/run0" --progress-every 0 2>"$tmp/zero.log"
if grep -E '^eve-pretrain: pretrain: [0-9]+/' "$tmp/zero.log"; then echo "FAIL --progress-every 0 printed lines"; fail=1; fi
grep -q "^eve-pretrain: pretrain: 10 steps in " "$tmp/zero.log" || { echo "FAIL no summary"; cat "$tmp/zero.log"; fail=1; }
exit $fail
