#!/usr/bin/env bash
# eve-pretrain data parallelism: 2 local workers (Gloo on loopback) end with the weights of
# one process with the same global batch (within 1e-5); the contrastive objectives (itc, and
# itc,itm,mlm with global hard negatives) compute the 1-process losses, gradient norms and
# weights (within the bars stated below); a rank whose peer never arrives fails within
# --dist-timeout instead of hanging.
source "$(dirname "$0")/lib.bash"
pre=$EVE_BIN/eve-pretrain
toy_pairs 20 48 4 120
# No randomness inside the model (dropout, drop-path, routing noise) and no token dropping,
# so the only difference between the runs is how the global batch is split.
"$EVE_PYTHON" - "$EVE_SOURCE/share/eve/configs/eve-tiny.json" "$tmp/det.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.update(drop_path_rate=0.0, text_dropout=0.0, moe_noise=False, moe_capacity_factor=2.0, moe_lossweight=0.0)
json.dump(c, open(sys.argv[2], "w"))
PY
a=(--data "$tmp/d" --split ids --tokenizer "$tmp/tok.json" --config "$tmp/det.json" --threads 1 -q
   --batch-size 4 --max-steps 3 --seed 1)
"$pre" "${a[@]}" --out "$tmp/one"
MASTER_PORT=$((29600 + RANDOM % 200)) "$pre" "${a[@]}" --out "$tmp/two" --nproc-per-node 2 --dist-timeout 30
same_weights msm "$tmp/one" "$tmp/two" 1e-5 1  # every weight within 1e-5
# The contrastive runs start from a bundle with wide random weights (widen_weights): with
# eve-tiny's own initialisation every ITC feature is nearly the same and the ITC gradient is
# float noise everywhere, which Adam's normalisation would turn into full steps.
"$pre" --data "$tmp/d" --split ids --tokenizer "$tmp/tok.json" --config "$tmp/det.json" --threads 1 -q \
  --batch-size 4 --max-steps 1 --objective itc --out "$tmp/wide"
widen_weights "$tmp/wide"
# same_steps OBJECTIVE KEY...: 3 steps of OBJECTIVE on 1 process and on 2 workers log the same
# loss and KEYs (within 1e-5) and gradient norm (0.1 % at step 1, 1 % later: later steps start
# from weights apart by float noise; the bug this guards against, each rank keeping only its
# own gradient, gives several times the norm) at every step, and end with the same weights:
# Adam moves every weight by about +-lr whatever the size of its gradient, so a weight whose
# gradient is ~0 moves as float noise of the summation order says; the bar is that at most
# 0.1 % of the weights differ by more than 1e-6 and none by more than 2e-4 (measured: 1.2e-4
# of the weights, max 5.3e-5; a rank that leaves one gradient buffer un-averaged gives 97 %
# and 6e-4).
same_steps() {
  local objective=$1 name=${1//,/-}; shift
  local c=(--data "$tmp/d" --split ids --tokenizer "$tmp/tok.json" --model "$tmp/wide" --threads 1 -q
           --batch-size 4 --max-steps 3 --seed 1 --objective "$objective")
  "$pre" "${c[@]}" --out "$tmp/$name-1"
  MASTER_PORT=$((29600 + RANDOM % 200)) "$pre" "${c[@]}" --out "$tmp/$name-2" --nproc-per-node 2 --dist-timeout 30
  "$EVE_PYTHON" - "$tmp/$name-1/metrics.jsonl" "$tmp/$name-2/metrics.jsonl" "$objective" "$@" <<'PY' || fail=1
import json, sys
one = [json.loads(l) for l in open(sys.argv[1])]
two = [json.loads(l) for l in open(sys.argv[2])]
objective, keys = sys.argv[3], ["loss"] + sys.argv[4:]
assert len(one) == len(two) == 3
for a, b in zip(one, two):
    print(f"{objective} step {a['step']}: " + ", ".join(f"{k} {a[k]:.6f} / {b[k]:.6f}" for k in keys) +
          f", grad norm {a['grad_norm']:.6g} / {b['grad_norm']:.6g}")
    for k in keys:
        if abs(a[k] - b[k]) > 1e-5: print(f"FAIL {k}: 2 workers do not compute the 1-process value"); sys.exit(1)
    tol = 0.001 if a["step"] == 1 else 0.01
    if abs(a["grad_norm"] - b["grad_norm"]) > tol * a["grad_norm"]:
        print("FAIL 2 workers do not compute the 1-process gradient"); sys.exit(1)
PY
  same_weights "$objective" "$tmp/$name-1" "$tmp/$name-2" 2e-4 1e-3
}
# The contrastive objective gathers features across ranks; the gradient of the gathered rows
# flows back to the rank that owns them, so 2 workers compute the gradient of 1 process with
# the global batch. Keeping only each rank's own gradient, as the official code does, gives
# several times the norm.
same_steps itc
# With matching, hard negatives are drawn from the global batch with a seed that does not
# depend on the rank, and the chosen images/texts of other ranks are fetched: 2 workers draw
# exactly the negatives of 1 process, so the ITM loss and accuracy (over the global batch:
# the logged parts are means over the ranks) are those of 1 process too.
same_steps itc,itm,mlm itc itm itm_accuracy mlm
# Rank 0 of 2 alone: the rendezvous gives up after the timeout with exit 1.
set +e
start=$SECONDS
RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$((29800 + RANDOM % 100)) \
  "$pre" "${a[@]}" --out "$tmp/lonely" --dist-timeout 3 2>"$tmp/err"; rc=$?
set -e
[[ $rc == 1 ]] || { echo "FAIL lonely rank exit $rc"; cat "$tmp/err"; fail=1; }
(( SECONDS - start < 30 )) || { echo "FAIL lonely rank took $((SECONDS - start)) s"; fail=1; }
grep -q "cannot join the process group" "$tmp/err" || { echo "FAIL error text"; cat "$tmp/err"; fail=1; }
exit $fail
