#!/usr/bin/env bash
# One spelling per idea: the old spellings still work for one release, do exactly what the
# new ones do (same output, same exit status), and say so in one note on stderr naming the
# new spelling; the new spellings print no note; old spellings are not in --help and are
# never offered as "did you mean"; the training flags the two trainers share read the same
# in both programs' --help.
source "$(dirname "$0")/lib.bash"
note() { echo "$1 is deprecated and will be removed in the next release: use $2"; }

# same NAME NOTE -- OLD... -- NEW...: both commands exit alike and print the same stdout and
# the same stderr, except that OLD's stderr holds the line NOTE (once) and NEW's holds none.
same() {
  local name=$1 want=$2 old=() new=() rc_old=0 rc_new=0
  shift 3
  while [[ $1 != -- ]]; do old+=("$1"); shift; done
  shift
  new=("$@")
  "${old[@]}" >old.out 2>old.err </dev/null || rc_old=$?
  "${new[@]}" >new.out 2>new.err </dev/null || rc_new=$?
  [[ $rc_old == "$rc_new" ]] || { echo "FAIL $name: exit $rc_old with the old spelling, $rc_new with the new"; fail=1; }
  cmp -s old.out new.out || { echo "FAIL $name: stdout differs"; diff old.out new.out | head -5; fail=1; }
  local n
  n=$(grep -cF -- "warning: $want" old.err || true)
  [[ $n == 1 ]] || { echo "FAIL $name: the note '$want' appears $n times"; cat old.err; fail=1; }
  if grep -q "deprecated" new.err; then echo "FAIL $name: a note with the new spelling"; cat new.err; fail=1; fi
  grep -vF -- "$want" old.err | sed "s/old\.//g" >old.rest || true
  sed "s/new\.//g" new.err >new.rest
  cmp -s old.rest new.rest || { echo "FAIL $name: stderr differs beyond the note"; diff old.rest new.rest | head -5; fail=1; }
}

# eve-tokenize: -m/--model is now --tokenizer, --output is -o/--out.
fx=$EVE_SOURCE/tests/fixtures/text
"$EVE_BIN/eve-tokenize" train -q "$fx/captions.txt" -o tok.model --vocab-size 200
same tok-m "$(note -m/--model --tokenizer)" -- "$EVE_BIN/eve-tokenize" encode -m tok.model "$fx/questions.jsonl" \
  -- "$EVE_BIN/eve-tokenize" encode --tokenizer tok.model "$fx/questions.jsonl"
same tok-model "$(note -m/--model --tokenizer)" -- "$EVE_BIN/eve-tokenize" info --model tok.model \
  -- "$EVE_BIN/eve-tokenize" info --tokenizer tok.model
same tok-output "$(note --output --out)" -- \
  "$EVE_BIN/eve-tokenize" encode --tokenizer tok.model "$fx/questions.jsonl" --output old.ids \
  -- "$EVE_BIN/eve-tokenize" encode --tokenizer tok.model "$fx/questions.jsonl" --out new.ids
cmp -s old.ids new.ids && [[ -s new.ids ]] || { echo "FAIL tok-output: the files differ"; fail=1; }
# A required option given by its old spelling only is given.
same tok-required "$(note -m/--model --tokenizer)" -- "$EVE_BIN/eve-tokenize" decode -m tok.model --plain \
  -- "$EVE_BIN/eve-tokenize" decode --tokenizer tok.model --plain

# eve-score vqa: --ques and --ann are --questions and --annotations, as in eve-prep vqa.
sx=$EVE_SOURCE/tests/fixtures/score
same score-ques "$(note --ques --questions)" -- \
  "$EVE_BIN/eve-score" vqa --annotations "$sx/vqa_annotations.json" --ques "$sx/vqa_questions.json" --pred "$sx/vqa_results.json" \
  -- "$EVE_BIN/eve-score" vqa --annotations "$sx/vqa_annotations.json" --questions "$sx/vqa_questions.json" --pred "$sx/vqa_results.json"
same score-ann "$(note --ann --annotations)" -- \
  "$EVE_BIN/eve-score" vqa --ann "$sx/vqa_annotations.json" --questions "$sx/vqa_questions.json" --pred "$sx/vqa_results.json" \
  -- "$EVE_BIN/eve-score" vqa --annotations "$sx/vqa_annotations.json" --questions "$sx/vqa_questions.json" --pred "$sx/vqa_results.json"
grep -q '"overall"' new.out || { echo "FAIL score-ann: no score"; fail=1; }
# eve-score retrieval keeps --ann: there it is the test file in its own format.
"$EVE_BIN/eve-score" retrieval --ann "$sx/retrieval_test.json" --help >/dev/null 2>err || true
if grep -q deprecated err; then echo "FAIL eve-score retrieval --ann is not an old spelling"; fail=1; fi

# eve-finetune: --init is -m/--model; --flip 0|1 and --rand-augment 0|1 are switch pairs.
recipe() { "$EVE_BIN/eve-finetune" --task vqa --show-recipe "$@"; }
same ft-flip0 "$(note "--flip 0" --no-flip)" -- recipe --flip 0 -- recipe --no-flip
same ft-flip1 "$(note "--flip 1" --flip)" -- recipe --no-rand-augment --flip 1 -- recipe --no-rand-augment --flip
same ft-ra0 "$(note "--rand-augment 0" --no-rand-augment)" -- recipe --rand-augment 0 -- recipe --no-rand-augment
"$PY" - <<'EOF' || fail=1
import json, subprocess, os, sys
b = os.environ["EVE_BIN"] + "/eve-finetune"
def r(*a): return json.loads(subprocess.run([b, "--task", "vqa", "--show-recipe", *a], check=True, capture_output=True, text=True).stdout)
base, off, on = r(), r("--no-flip", "--no-rand-augment"), r("--flip", "--rand-augment")
if not (off["flip"] is False and off["rand_augment"] is False and on["flip"] is True and on["rand_augment"] is True):
    print("FAIL the switches do not reach the recipe:", off, on); sys.exit(1)
recipe = json.load(open(os.environ["EVE_SOURCE"] + "/share/eve/tasks/vqa.json"))
if (base["flip"], base["rand_augment"]) != (recipe["flip"], recipe["rand_augment"]):
    print("FAIL without a switch the recipe's values change:", base); sys.exit(1)
EOF
# --init: the bundle is given (a probe without one stops at "needs --model"; with one it
# goes on to read the labels), in both programs the same way.
printf '{"id":"a","image":"a.jpg","f":"x"}\n' >labels.jsonl
probe=(--task probe --labels labels.jsonl --images . --field f -o run)
same ft-init "$(note --init --model)" -- "$EVE_BIN/eve-finetune" "${probe[@]}" --init nobundle \
  -- "$EVE_BIN/eve-finetune" "${probe[@]}" --model nobundle
grep -q "needs at least 20" new.err || { echo "FAIL ft-init: the bundle did not arrive"; cat new.err; fail=1; }
same pt-init "$(note --init --model)" -- "$EVE_BIN/eve-pretrain" --data nodata --init nobundle -o run \
  -- "$EVE_BIN/eve-pretrain" --data nodata -m nobundle -o run
# Both halves of a pair at once are a usage error.
rc=0; "$EVE_BIN/eve-pretrain" --data d --flip --no-flip 2>err || rc=$?
[[ $rc == 2 ]] && grep -q "excludes" err || { echo "FAIL --flip --no-flip: exit $rc"; cat err; fail=1; }
rc=0; "$EVE_BIN/eve-finetune" --task vqa --show-recipe --flip maybe 2>err || rc=$?
[[ $rc == 2 ]] && grep -q -- "takes no value" err || { echo "FAIL --flip maybe: exit $rc"; cat err; fail=1; }

# eve-rank: -k (old: --k).
"$PY" -c 'import numpy as np; r=np.random.default_rng(1); np.save("q.npy", r.standard_normal((4, 8)).astype("f4")); np.save("g.npy", r.standard_normal((30, 8)).astype("f4"))'
rank() {  # eve-rank without its timing line (a rate differs run to run); -q would hide the note too
  local rc=0
  "$EVE_BIN/eve-rank" "$@" 2>rank.err || rc=$?
  grep -v "queries/s" rank.err >&2 || true
  return $rc
}
same rank-k "$(note --k -k)" -- rank --queries q.npy --gallery g.npy --k 3 -o - \
  -- rank --queries q.npy --gallery g.npy -k 3 -o -
[[ $(wc -l <new.out) == 4 ]] || { echo "FAIL rank-k: no ranks"; fail=1; }

# The recipes take the programs' spellings (and the old ones, noted, for one release).
same recipe-init "$(note --init --model)" -- bash "$EVE_SOURCE/scripts/recipes/nlvr2.sh" --root r --init b --work w --dry-run \
  -- bash "$EVE_SOURCE/scripts/recipes/nlvr2.sh" --root r --model b --work w --dry-run

# eve-report: -o/--out (old: --output).
printf '{"step":1,"loss":2.0}\n{"step":2,"loss":1.0}\n' >metrics.jsonl
"$PY" "$EVE_SOURCE/scripts/eve-report" curves . --out new.svg 2>new.err
"$PY" "$EVE_SOURCE/scripts/eve-report" curves . --output old.svg 2>old.err
cmp -s old.svg new.svg && [[ -s new.svg ]] || { echo "FAIL report-output: the pictures differ"; fail=1; }
grep -qF "warning: $(note --output --out)" old.err || { echo "FAIL report-output: no note"; cat old.err; fail=1; }
if grep -q deprecated new.err; then echo "FAIL report --out: a note"; fail=1; fi

# Old spellings are hidden: not in --help, never suggested.
for p in eve-pretrain eve-finetune; do
  if "$EVE_BIN/$p" --help | grep -qE -- "--init\b|--flip 0"; then echo "FAIL $p --help shows an old spelling"; fail=1; fi
done
"$EVE_BIN/eve-tokenize" encode --help | grep -qE -- "--output|-m," && { echo "FAIL eve-tokenize --help shows an old spelling"; fail=1; }
rc=0; "$EVE_BIN/eve-finetune" --task vqa --ini b 2>err || rc=$?
grep -q "did you mean --init" err && { echo "FAIL an old spelling is suggested: $(cat err)"; fail=1; }
[[ $rc == 2 ]] || { echo "FAIL --ini: exit $rc"; fail=1; }

# The shared training flags read the same in both trainers (their defaults aside: eve-finetune's
# come from the task recipe).
lines() {  # the help line of each shared flag, defaults removed
  "$EVE_BIN/$1" --help | grep -E -- "^ +(-m, )?--(model|config|tokenizer|batch-size|accumulate|max-steps|epochs|lr|warmup|decay|clip|weight-decay|grad-checkpoint|crop-scale-min|flip|no-flip|rand-augment|no-rand-augment|keep|resume|log-every|prefetch|nproc-per-node|dist-timeout)( |$)" |
    sed -E 's/ \(default: [^)]*\)//; s/ +/ /g'
}
lines eve-pretrain >pt.help
lines eve-finetune >ft.help
[[ $(wc -l <pt.help) -ge 24 ]] || { echo "FAIL the shared flags are missing from eve-pretrain --help"; cat pt.help; fail=1; }
diff pt.help ft.help || { echo "FAIL the shared flags read differently in eve-pretrain and eve-finetune"; fail=1; }
exit $fail
