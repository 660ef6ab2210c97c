#!/usr/bin/env bash
# The toy world's VQA is learnable from the image in minutes, and needs the image: the tiny
# reference learner (tests/reference/toy_learner.py: a small convolutional network modulated
# by the question) trained for three minutes on the demo's world answers the VG QA
# validation questions well above the best that any constant answer per question form gets,
# and on most forms; the same learner with grey images, trained for as many steps, gets no
# more than the text allows (measured: 44.3 after 3,000 steps, as after 1,500).
source "$(dirname "$0")/lib.bash"
"$EVE_BIN/eve-prep" synth --out world --seed 1 --nlvr-sets 2000 -q
learner=$EVE_SOURCE/tests/reference/toy_learner.py
"$EVE_PYTHON" "$learner" --world world --steps 3000 --json seeing.json 2>/dev/null | tee seeing.txt
"$EVE_PYTHON" "$learner" --world world --steps 3000 --blind --json blind.json 2>/dev/null | tee blind.txt
"$EVE_PYTHON" - <<'PY'
import json, sys
seeing, blind = json.load(open("seeing.json")), json.load(open("blind.json"))
s, b = seeing["all"], blind["all"]
# Forms of at least 100 questions that the seeing learner answers 10 points above the form's
# best constant on vg_val (measured: 11 of 14 forms above it; 7 forms of 100 or more by 10 points).
above = [f for f, r in seeing["forms"].items() if r["n"] >= 100 and r["model"] >= r["best_constant"] + 10]
checks = [
    ("vg_val questions: %d" % s["n"], s["n"] >= 6000),
    ("seeing %.1f vs best constant per form %.1f: at least 15 points above (measured 67.4 vs 45.2)"
     % (s["model"], s["best_constant"]), s["model"] >= s["best_constant"] + 15),
    ("blind %.1f vs best constant per form %.1f: within 2 points (the question alone)" % (b["model"], b["best_constant"]),
     b["model"] <= b["best_constant"] + 2),
    ("seeing %.1f vs blind %.1f: at least 15 points above" % (s["model"], b["model"]), s["model"] >= b["model"] + 15),
    ("forms answered from the image (10 points above their best constant): %d, %s" % (len(above), above), len(above) >= 5),
]
bad = 0
for text, ok in checks:
    print(("ok   " if ok else "FAIL ") + text)
    bad += not ok
sys.exit(1 if bad else 0)
PY
