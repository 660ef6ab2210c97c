#!/usr/bin/env bash
# What a new user's slips print: a number out of range says what the option accepts, an
# unknown command is named with a suggestion and the list of commands, a near-miss option
# gets a "did you mean", and --help shows defaults and required options plainly. Each is a
# usage error (exit 2) on one line.
source "$(dirname "$0")/lib.bash"
# says NAME WANT -- command...: a usage error (exit 2) whose one line is WANT, exactly.
says() {
  local name=$1 want=$2; shift 3
  expect_error 2 "$want" -- "$@"
  check "$name" "$want" "$(cat "$t/err")"
}
says range-k "eve-rank: error: -k: must be at least 1, got 0 (see --help)" -- \
  "$EVE_BIN/eve-rank" --queries /dev/null --gallery /dev/null -k 0
says range-threads "eve-prep: error: --threads: must be 0 (all cores) or more, got -1 (see --help)" -- \
  "$EVE_BIN/eve-prep" --threads -1 synth --out x
says range-max-bad "eve-tokenize: error: --max-bad: must be between 0 and 1, got 1.5 (see --help)" -- \
  "$EVE_BIN/eve-tokenize" encode --tokenizer tok.model --max-bad 1.5
commands=$("$EVE_BIN/eve-prep" --help | awk '/^Subcommands:/{s=1;next} s&&/^  [a-z]/{print $1}' | paste -sd, | sed 's/,/, /g')
says command "eve-prep: error: unknown command 'sythn' (did you mean 'synth'?); commands: $commands (see --help)" -- \
  "$EVE_BIN/eve-prep" sythn
says no-command "eve-prep: error: a command is required; commands: $commands (see --help)" -- "$EVE_BIN/eve-prep"
says near-miss "eve-pretrain: error: unknown option --max-step (did you mean --max-steps?) (see --help)" -- \
  "$EVE_BIN/eve-pretrain" --data d --tokenizer t.json --max-step 2
says near-miss-sub "eve-score: error: unknown option --gol (did you mean --gold?) (see --help)" -- \
  "$EVE_BIN/eve-score" nlvr2 --gol g.json --pred p.csv

# --help: no flag values in braces, no "=default" after the type, required options marked.
for p in eve-prep eve-tokenize eve-pretrain eve-finetune eve-embed eve-rank eve-score; do
  help=$("$EVE_BIN/$p" --help)
  subs=$(printf '%s\n' "$help" | awk '/^Subcommands:/{s=1;next} s&&/^  [a-z]/{print $1}')
  for s in $subs; do help+=$'\n'"$("$EVE_BIN/$p" "$s" --help)"; done
  if grep -nE -- "--[a-z0-9-]+\{| (TEXT|INT|UINT|FLOAT)[^ ]*=" <<<"$help"; then echo "FAIL $p --help shows CLI11's raw defaults"; fail=1; fi
  grep -q -- "--threads INT  *Worker threads.*(default: 0)" <<<"$help" || { echo "FAIL $p --help: no default for --threads"; fail=1; }
done
# (Here-strings: grep -q stops reading early, and a program writing to a closed pipe fails.)
grep -qE -- "--gold .*\(required\)" <<<"$("$EVE_BIN/eve-score" classify --help)" ||
  { echo "FAIL eve-score classify --help: --gold not marked required"; fail=1; }
grep -qE -- "--no-flip +Turn --flip off" <<<"$("$EVE_BIN/eve-pretrain" --help)" || { echo "FAIL eve-pretrain --help: --no-flip"; fail=1; }
exit $fail
