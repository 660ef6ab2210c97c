#!/usr/bin/env bash
# The demo on the toy world, end to end, exactly as `make demo` runs it: eve-tiny
# pre-trained by masked image modeling on the world's 13,600 training images, then by masked
# signal modeling on the captioned ones; its backbone's linear probe must beat a fresh
# model's by the margins measured over seeds; then fine-tuned on VQA, on colour questions, on
# NLVR2 and on retrieval (both from the colour model). Each number must be within the
# run-to-run spread of what README reports for it, and beat its baseline (majority answer,
# majority label, random ranking) as eve-score measures it; VQA must not fall below the text
# prior (the answer per question form) by more than the spread; searching the test collection
# with eve-embed + eve-rank --rerank must give exactly eve-finetune's own re-ranked recalls;
# zero-shot colour labels from the retrieval model beat chance; the pictures and the
# per-form tables exist.
# Reported, not asserted: VQA on the VG QA validation set against its best constant per form
# (docs/toy-world.md; tests/cli/world_learns.sh shows a tiny convolutional learner beating
# the text prior by 22 points).
source "$(dirname "$0")/lib.bash"
EVE_BIN=$EVE_BIN EVE_PYTHON=$EVE_PYTHON bash "$EVE_SOURCE/scripts/demo.sh" "$tmp/demo" >"$tmp/log" 2>&1 ||
  { tail -n 40 "$tmp/log"; echo "FAIL the demo exited non-zero"; exit 1; }
sed -n '/== Results/,$p' "$tmp/log"
cd "$tmp/demo"
for f in curves-pretrain.svg curves-finetune.svg report-retrieval/index.html report-vqa/index.html \
  vqa_by_form.txt vqa_by_form_vg_val.txt nlvr2_by_kind.txt probe/probe.json pretrain/tokenizer.model; do
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
# The spread: the demo with its former pre-training (300 steps of masked signal modeling
# alone) run with EVE_SEED=0 (the default), 1, 2 and 3 on the same world (`EVE_SEED=S bash
# scripts/demo.sh DIR`), the largest minus the smallest:
#                         seed 0   seed 1   seed 2   seed 3   spread
#   VQA val                43.73    38.70    40.08    40.22     5.03
#   colour questions       98.25    91.35    84.83    93.27    13.42
#   NLVR2 test1            65.44    60.19    61.81    64.44     5.25
#   R@1 (TR@1 + IR@1) / 2  26.90    17.70    18.20    27.90    10.20
#   R mean                 61.27    52.10    52.80    59.87     9.17
#   zero-shot colour       89.00    93.00    97.00    98.00     9.00
# The two-stage pre-training (3,000 masked-image steps first) gives at seed 0 (what README
# quotes) 42.30, 93.32, 60.56, 21.50, 54.30 and 96.00: inside those four seeds' range on every
# row. A bar is README's number less the spread; the default seed is deterministic on a
# given machine. The seed-0 numbers unrounded (README shows two decimals):
README = {"vqa": 42.30, "colour": 93.3167, "nlvr2": 60.5625, "r1": 21.50, "r_mean": 54.30, "zero_shot": 96.00}
SPREAD = {"vqa": 5.03, "colour": 13.42, "nlvr2": 5.25, "r1": 10.20, "r_mean": 9.17, "zero_shot": 9.00}
def near_readme(name, what, value):
    bar = README[name] - SPREAD[name]
    return ("%s %.2f vs README's %.2f less the spread over seeds %.2f: at least %.2f"
            % (what, value, README[name], SPREAD[name], bar), value >= bar - 1e-9)
r1 = (r["img_r1"] + r["txt_r1"]) / 2
z = load("score_classify_colors.json")
checks = [
    near_readme("vqa", "VQA accuracy", v),
    ("VQA accuracy %.2f vs the text prior (answer per question form) %.2f: at most the spread %.2f below"
     % (v, vp, SPREAD["vqa"]), v >= vp - SPREAD["vqa"]),
    ("VQA accuracy %.2f vs majority answer %.2f: at least 15 points above" % (v, vb), v >= vb + 15),
    near_readme("colour", "colour questions", c),
    ("colour questions %.2f vs majority answer %.2f: at least 10 points above" % (c, cb), c >= cb + 10),
    near_readme("nlvr2", "NLVR2 test1 accuracy", n),
    ("NLVR2 test1 accuracy %.2f vs majority label %.2f: at least 8 points above" % (n, nb), n >= nb + 8),
    # R@1 over 100 test images moves by whole points between runs (TR@1 20-36 over the
    # seeds), so it is asserted on both directions together.
    near_readme("r1", "retrieval R@1 of both directions", r1),
    ("retrieval R@1 of both directions %.2f vs chance %.2f: at least 10x" % (r1, chance_ir1), r1 >= 10 * chance_ir1),
    near_readme("r_mean", "retrieval R mean", r["r_mean"]),
    ("retrieval R mean %.2f vs random scores %.2f: at least 8x" % (r["r_mean"], rb), r["r_mean"] >= 8 * rb),
    # The same bundle, candidates and ITM head, but not the same fusion passes: eve-finetune
    # scores each pair once in passes grouped by image, eve-rank each query's candidates in
    # one pass, so a pair's logit differs in its last bits (measured up to 5.5e-6 over the
    # four seeds) and two captions whose scores tie within that can swap places. Recalls were
    # equal on all six for seeds 0 and 3; seeds 1 and 2 moved one image query by a point
    # (TR@1 20 vs 21, TR@5 70 vs 71). So: the rank lists must agree to float rounding (below),
    # and each recall may differ by at most one query (1 point for the 100 image queries, 0.2
    # for the 500 text queries).
    ("eve-embed + eve-rank --rerank recalls %s vs eve-finetune's %s: at most one query apart"
     % ([rr[k] for k in recalls], [r[k] for k in recalls]),
     all(abs(rr[k] - r[k]) <= (1.0 if k.startswith("txt") else 0.2) + 1e-9 for k in recalls)),
    # Zero-shot colour from the retrieval model's ITC heads alone (never trained on the labels),
    # against chance 36.2 (a colour present in the image, by a random class) and 41.0 for the
    # majority colour.
    near_readme("zero_shot", "zero-shot colour top-1", z["top1"]),
    ("zero-shot colour top-1 %.2f vs chance %.2f and majority colour %.2f: at least 25 points above both"
     % (z["top1"], z["chance_top1"], z["majority_top1"]), z["top1"] >= max(z["chance_top1"], z["majority_top1"]) + 25),
]
# The linear probe of the pre-trained backbone against a fresh eve-tiny of the same seed: its
# margin (points over the fresh model) on the background pattern, the colours present and
# the number of shapes, for the demo's seed 0 and three more (`eve-pretrain ... --seed S`
# for both stages, then `eve-finetune --task probe ... --baseline fresh --seed S`; the seed
# also draws the held-out part):
#                         seed 0   seed 1   seed 2   seed 3   spread
#   background pattern     13.77    17.38    18.26    15.53     4.49
#   colours present         7.05     9.07     5.90     9.21     3.31
#   number of shapes        1.08     5.47     2.78     2.24     4.39
#   shapes present          0.10    -0.07     0.51    -0.47     0.98
# The background and colour margins must be at least their seed-0 value less the spread.
# The number of shapes gains too little for that (seed 0 less the spread is below zero) and
# shapes present are not learned: both are reported only.
PROBE = {"background": (13.7725, 4.49), "colors": (7.0459, 3.31)}
probe = load("probe/probe.json")["fields"]
for field, what in (("background", "background pattern"), ("colors", "colours present")):
    f = probe[field]
    margin, bar = f["accuracy"] - f["fresh_accuracy"], PROBE[field][0] - PROBE[field][1]
    checks.append(("probe of the %s %.2f vs fresh eve-tiny %.2f: margin %.2f, at least %.2f (seed 0's %.2f less "
                   "the spread %.2f)" % (what, f["accuracy"], f["fresh_accuracy"], margin, bar, PROBE[field][0],
                                         PROBE[field][1]), margin >= bar - 1e-9))
# The rank lists themselves: every hit in both lists scores the same within 1e-4 (about 20x
# the largest difference measured), the k-th scores agree within 1e-4 at every position, and a
# hit in only one of them scores within 1e-4 of the other's last hit (a near-tie at the edge).
def rank_lists(p): return {d["query"]: d["results"] for d in map(json.loads, open(p))}
worst, pairs = 0.0, 0
for mine, theirs in (("i2t.ranks.jsonl", "ft-retrieval/predictions/test.i2t.ranks.jsonl"),
                     ("t2i.ranks.jsonl", "ft-retrieval/predictions/test.t2i.ranks.jsonl")):
    a, b = rank_lists(mine), rank_lists(theirs)
    if a.keys() != b.keys():
        worst = float("inf"); continue
    for q in a:
        da, db = dict(a[q]), dict(b[q])
        sa, sb = [s for _, s in a[q]], [s for _, s in b[q]]
        diffs = [abs(u - w) for u, w in zip(sa, sb)] + [abs(da[i] - db[i]) for i in set(da) & set(db)]
        diffs += [abs(da.get(i, db.get(i)) - min(sa[-1], sb[-1])) for i in set(da) ^ set(db)]
        worst = max([worst] + diffs + [float("inf")] * (len(sa) != len(sb)))
        pairs += 1
checks.append(("eve-embed + eve-rank --rerank rank lists vs eve-finetune's over %d queries: largest score "
               "difference %.2g, at most 1e-4" % (pairs, worst), worst <= 1e-4))
for field in ("shapes", "count"):
    f = probe[field]
    print("note probe of %s %.2f vs fresh eve-tiny %.2f (reported, not asserted)" % (field, f["accuracy"], f["fresh_accuracy"]))
vg = load("vqa_by_form_vg_val.json")["all"]
print("note VQA on vg_val %.2f vs answer per question form %.2f, best constant per form %.2f (reported, not asserted)"
      % (vg["model"], vg["prior"], vg["best_constant"]))
bad = 0
for text, ok in checks:
    print(("ok   " if ok else "FAIL ") + text)
    bad += not ok
sys.exit(1 if bad else 0)
EOF
