#!/usr/bin/env bash
# The demo on the toy world, end to end, exactly as `make demo` runs it: eve-tiny
# pre-trained by masked signal modeling, then fine-tuned on VQA, on colour questions, on
# NLVR2 and on retrieval (both from the colour model), must beat the majority-answer,
# majority-label and random-ranking baselines by clear margins, as eve-score measures them;
# searching the test collection with eve-embed + eve-rank --rerank must agree with
# eve-finetune's own re-ranked predictions; zero-shot colour labels from the retrieval
# model beat chance; the pictures and the per-form tables exist.
# Reported, not asserted: VQA against the answer per question form and each form's best
# constant, on val and on the VG QA validation set (the text prior, which the demo's eve-tiny
# does not beat; docs/toy-world.md; tests/cli/world_learns.sh shows a tiny convolutional
# learner beating it by 22 points).
source "$(dirname "$0")/lib.bash"
EVE_BIN=$EVE_BIN EVE_PYTHON=$EVE_PYTHON bash "$EVE_SOURCE/scripts/demo.sh" "$tmp/demo" >"$tmp/log" 2>&1 ||
  { tail -n 40 "$tmp/log"; echo "FAIL the demo exited non-zero"; exit 1; }
sed -n '/== Results/,$p' "$tmp/log"
cd "$tmp/demo"
for f in curves-pretrain.svg curves-finetune.svg report-retrieval/index.html report-vqa/index.html \
  vqa_by_form.txt vqa_by_form_vg_val.txt nlvr2_by_kind.txt; do
  [[ -s $f ]] || { echo "FAIL the demo did not write $f"; exit 1; }
done
"$EVE_PYTHON" - <<'EOF'
import json, sys
def load(p): return json.load(open(p))
v, vb = load("score_vqa.json")["overall"], load("score_vqa_majority.json")["overall"]
vp = load("score_vqa_prior.json")["overall"]
n, nb = 100 * load("score_nlvr2_test1.json")["accuracy"], 100 * load("score_nlvr2_majority_test1.json")["accuracy"]
c, cb = load("ft-colors/results.json")["splits"]["val"]["accuracy"], load("score_colors_majority.json")["accuracy"]
r, rr = load("score_retrieval.json"), load("score_retrieval_rank.json")
rb = load("score_retrieval_random.json")["r_mean"]
chance_ir1 = 100.0 / r["images"]
recalls = ("txt_r1", "txt_r5", "txt_r10", "img_r1", "img_r5", "img_r10")
checks = [
    ("VQA accuracy %.2f vs majority answer %.2f: at least 15 points above" % (v, vb), v >= vb + 15),
    # The demo measures 98.25 against 70.92, NLVR2 65.44 against 50.94 (docs/toy-world.md).
    ("colour questions %.2f vs majority answer %.2f: at least 20 points above" % (c, cb), c >= cb + 20),
    ("NLVR2 test1 accuracy %.2f vs majority label %.2f: at least 8 points above" % (n, nb), n >= nb + 8),
    # R@1 over 100 test images moves by whole points between runs, so it is asserted on both
    # directions together (the demo: TR@1 36, IR@1 17.8); R mean (the demo: 12.6x random) is
    # the steadier measure.
    ("retrieval R@1 of both directions %.2f vs chance %.2f: at least 10x" % ((r["img_r1"] + r["txt_r1"]) / 2, chance_ir1),
     (r["img_r1"] + r["txt_r1"]) / 2 >= 10 * chance_ir1),
    ("retrieval R mean %.2f vs random scores %.2f: at least 8x" % (r["r_mean"], rb), r["r_mean"] >= 8 * rb),
    # The same bundle, the same ITC candidates and the same ITM logits: the rank lists of
    # eve-embed + eve-rank --rerank score exactly what eve-finetune's own re-rank does (equal
    # on all six recalls in the demo runs measured).
    ("eve-embed + eve-rank --rerank recalls %s equal eve-finetune's %s"
     % ([rr[k] for k in recalls], [r[k] for k in recalls]), all(rr[k] == r[k] for k in recalls)),
]
# Zero-shot colour from the retrieval model's ITC heads alone (never trained on the labels):
# measured 89.0 top-1 (86.0 and 91.0 at the fine-tune's steps 100 and 200) against chance
# 36.2 (a colour present in the image, by a random class) and 41.0 for the majority colour.
z = load("score_classify_colors.json")
checks.append(("zero-shot colour top-1 %.2f vs chance %.2f and majority colour %.2f: at least 25 points above both"
               % (z["top1"], z["chance_top1"], z["majority_top1"]),
               z["top1"] >= max(z["chance_top1"], z["majority_top1"]) + 25))
vg = load("vqa_by_form_vg_val.json")["all"]
print("note VQA accuracy %.2f vs answer per question form %.2f (reported, not asserted)" % (v, vp))
print("note VQA on vg_val %.2f vs answer per question form %.2f, best constant per form %.2f (reported, not asserted)"
      % (vg["model"], vg["prior"], vg["best_constant"]))
bad = 0
for text, ok in checks:
    print(("ok   " if ok else "FAIL ") + text)
    bad += not ok
sys.exit(1 if bad else 0)
EOF
