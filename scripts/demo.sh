#!/usr/bin/env bash
# The eve pipeline on the built-in toy world, composed through files and pipes exactly as a
# user would run it. Every stage skips itself when its output is already there, so a rerun
# reuses what is done. Usage: scripts/demo.sh [WORKDIR]   (default: ./demo-run)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
BIN=${EVE_BIN:-$here/build/release/bin}
PY=${EVE_PYTHON:-/usr/bin/python3}
W=${1:-demo-run}
THREADS=${EVE_THREADS:-0}
mkdir -p "$W"
cd "$W"
export PATH=$BIN:$PATH

stage() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
done_or() { [[ -e $1 ]] && { echo "   (done already: $1)" >&2; return 0; }; return 1; }

stage "1. eve-prep synth: the toy world (images, captions, VQA v2, NLVR2, Karpathy splits)"
# 2,000 NLVR2 sets: 12,800 training statements over 12,800 image pairs.
done_or world/synth.json || eve-prep synth --out world --seed 1 --nlvr-sets 2000 --threads "$THREADS"

stage "2. eve-prep: raw annotations + images -> dataset dirs"
done_or data/pairs/manifest.json ||
  eve-prep pairs --ann train=world/pairs_train.json --images world --size 0 --out data/pairs --threads "$THREADS"
done_or data/retrieval/manifest.json ||
  eve-prep retrieval --ann train=world/retrieval_train.json --ann val=world/retrieval_val.json \
    --ann test=world/retrieval_test.json --images world --size 0 --out data/retrieval --threads "$THREADS"
# VQA trains on VQA v2 plus VG QA, as EVE does: here the VG QA file asks the pool's question
# forms about the NLVR2 training images, and vg_val about the NLVR2 dev images.
done_or data/vqa/manifest.json ||
  eve-prep vqa --questions train=world/vqa/questions_train.json --annotations train=world/vqa/annotations_train.json \
    --ann train=world/vqa/vg_qa.json --ann vg_val=world/vqa/vg_qa_val.json \
    --questions val=world/vqa/questions_val.json --annotations val=world/vqa/annotations_val.json \
    --images world/images --vg-images world --size 0 --out data/vqa --threads "$THREADS"
done_or data/colors/manifest.json ||
  eve-prep vqa --ann train=world/vqa/colors_train.json --ann val=world/vqa/colors_val.json \
    --images world --size 0 --out data/colors --threads "$THREADS"
done_or data/nlvr2/manifest.json ||
  eve-prep nlvr2 --ann train=world/nlvr2/train.json --ann dev=world/nlvr2/dev.json --ann test1=world/nlvr2/test1.json \
    --images world/nlvr2/images --size 0 --out data/nlvr2 --threads "$THREADS"

stage "3. eve-tokenize train + encode (a pipe stage: records in, records with ids out)"
done_or tok.model || eve-tokenize train world/corpus.txt --vocab-size 512 -o tok.model
for d in pairs retrieval vqa colors nlvr2; do
  for f in data/$d/*.jsonl; do
    out=${f%.jsonl}.ids.jsonl
    [[ $f == *.ids.jsonl ]] && continue
    done_or "$out" || eve-tokenize encode --tokenizer tok.model --threads "$THREADS" "$f" -o "$out"
  done
done

stage "4. eve-pretrain: the vision backbone first (masked image modeling on 13,600 images), then masked signal modeling on the caption pairs"
# VLMo's image-only stage before the image-text one: the pool's 800 training images and the
# 12,800 NLVR2 training images (pairs_nlvr2_train.json), read for their pixels alone. Masked
# signal modeling on the 800 captioned images alone leaves the backbone seeing no better than
# a random one (the probe below; docs/toy-world.md, "Pre-training and the linear probe").
done_or data/pretrain-images/manifest.json ||
  eve-prep pairs --ann train=world/pairs_train.json --ann train=world/pairs_nlvr2_train.json --images world --size 0 \
    --out data/pretrain-images --threads "$THREADS"
IMAGE_STEPS=${EVE_DEMO_IMAGE_STEPS:-3000}
done_or "pretrain-image/checkpoint-$(printf %08d "$IMAGE_STEPS")" ||
  eve-pretrain --stage image --data data/pretrain-images --tokenizer tok.json --config eve-tiny \
    --out pretrain-image --batch-size 16 --max-steps "$IMAGE_STEPS" --lr 1e-3 --warmup 20 --save-every 1000 \
    --threads "$THREADS"
STEPS=${EVE_DEMO_STEPS:-300}
# The final checkpoint marks the stage done; an interrupted run resumes where it stopped.
done_or "pretrain/checkpoint-$(printf %08d "$STEPS")" ||
  eve-pretrain --model pretrain-image --data data/pairs --split train.ids \
    --out pretrain --batch-size 16 --max-steps "$STEPS" --lr 1e-3 --warmup 20 --save-every 100 \
    --threads "$THREADS"
eve-embed --describe pretrain

stage "4b. eve-finetune --task probe: what pre-training taught the backbone, against a fresh model of its config"
# A linear classifier on the frozen backbone's pooled features of the 3,200 NLVR2 dev and
# test1 images (none seen in pre-training), for each attribute of labels.jsonl.
done_or probe/probe.json ||
  eve-finetune --task probe --model pretrain --labels world/labels.jsonl --images world \
    --split nlvr2_dev --split nlvr2_test1 --field background --field colors --field shapes --field count \
    --baseline fresh --threads "$THREADS" -o probe

FT0=(--image-res 64 --batch-size 32 --threads "$THREADS")
FT=(--model pretrain "${FT0[@]}" --lr 1e-3)
# Questions and statements are learned without crops or RandAugment: a crop or a translation
# of a 64 px image can cut out the one shape an answer is about.
NOAUG=(--crop-scale-min 1 --no-rand-augment --warmup 0)
EXACT=("${NOAUG[@]}" --decay constant)
stage "5. eve-finetune: VQA on VQA v2 + VG QA (54,400 questions, soft targets), picked on vg_val (6,400)"
done_or ft-vqa/results.json ||
  eve-finetune --task vqa --data data/vqa "${FT[@]}" "${NOAUG[@]}" --decay "${EVE_DEMO_VQA_DECAY:-linear}" --lr-mult 1 \
    --max-steps "${EVE_DEMO_VQA_STEPS:-400}" --eval-every 200 --val vg_val.ids --predict val.ids --predict vg_val.ids \
    --out ft-vqa

stage "6. eve-finetune: one skill first, finding a named colour (\"is there a red shape?\", 81,600 questions)"
done_or ft-colors/results.json ||
  eve-finetune --task vqa --data data/colors "${FT[@]}" "${EXACT[@]}" --lr-mult 1 \
    --max-steps "${EVE_DEMO_COLOR_STEPS:-300}" --eval-every 150 --out ft-colors

stage "7. eve-finetune: NLVR2 from the colour model (two fused passes per statement), picked on dev, test1 predicted"
# From the model that finds colours, at a tenth of the learning rate (the new head at x10),
# so that the skill is kept while the head learns to combine the two images' answers.
done_or ft-nlvr2/results.json ||
  eve-finetune --task nlvr2 --data data/nlvr2 --model ft-colors "${FT0[@]}" --lr 1e-4 --lr-mult 10 "${EXACT[@]}" \
    --max-steps "${EVE_DEMO_NLVR2_STEPS:-400}" --eval-every 100 --predict test1.ids --out ft-nlvr2

stage "8. eve-finetune: retrieval from the colour model (contrast + matching with hard negatives), re-ranked test predictions"
# Captions name colours: the model that finds them is the better start (val R mean 31.0 against 20.2
# from the pre-trained model, in docs/toy-world.md).
done_or ft-retrieval/results.json ||
  eve-finetune --task retrieval --data data/retrieval --model ft-colors "${FT0[@]}" --lr 1e-3 "${EXACT[@]}" \
    --max-steps "${EVE_DEMO_RETRIEVAL_STEPS:-400}" \
    --eval-every 100 --k-test 16 --predict test.ids --out ft-retrieval

stage "9. eve-embed + eve-rank: the test collection searched with the fine-tuned retrieval bundle"
done_or data/retrieval-test/manifest.json ||
  eve-prep retrieval --ann test=world/retrieval_test.json --images world --size 0 --out data/retrieval-test -q
done_or t2i.ranks.jsonl || {
  eve-embed -m ft-retrieval --images data/retrieval-test -o test-images --threads "$THREADS"
  eve-embed -m ft-retrieval --texts data/retrieval/test.ids.jsonl -o test-texts --threads "$THREADS"
  rr=(--rerank -m ft-retrieval --images data/retrieval-test --texts data/retrieval/test.ids.jsonl --k-test 16 --threads "$THREADS")
  eve-rank --queries test-images.npy --gallery test-texts.npy -k 10 "${rr[@]}" -o i2t.ranks.jsonl
  eve-rank --queries test-texts.npy --gallery test-images.npy -k 10 "${rr[@]}" -o t2i.ranks.jsonl
}

stage "10. Zero-shot classification: the test images labelled by colour, shape and background through the retrieval model's ITC heads"
# A class is the mean of its prompts' embeddings (eve-embed --group-by); world/labels.jsonl
# says what each image shows, read off the scene it was drawn from.
printf '%s\n' red green blue yellow purple orange > colors.txt
printf '%s\n' circle square triangle star diamond > shapes.txt
printf '%s\n' plain striped checkered dotted > background.txt
zero_shot() {  # zero_shot ATTRIBUTE TEMPLATE... (every class ranked, so chance counts them all)
  local attr=$1 tpl=() t k
  shift
  k=$(wc -l < "$attr.txt")
  for t in "$@"; do tpl+=(--template "$t"); done
  done_or "$attr.ranks.jsonl" && return 0
  eve-embed --classes "$attr.txt" "${tpl[@]}" | eve-tokenize encode --tokenizer ft-retrieval/tokenizer.model |
    eve-embed -m ft-retrieval --texts - --group-by class -o "$attr-classes" --threads "$THREADS"
  eve-rank --queries test-images.npy --gallery "$attr-classes.npy" -k "$k" -o "$attr.ranks.jsonl" --threads "$THREADS"
}
zero_shot colors 'a {} shape' 'there is a {} shape' 'one {} shape'
zero_shot shapes 'a {}' 'there is a {}' 'an image of a {}'
zero_shot background 'a {} background' 'shapes on a {} background' 'a {} pattern'
for attr in colors shapes background; do
  eve-score classify --gold world/labels.jsonl --field "$attr" --ranks "$attr.ranks.jsonl" > "score_classify_$attr.json"
done

stage "11. eve-score: fine-tuned predictions and the baselines they must beat (majority answer, majority label, random ranking)"
EVE_REF="$here/tests/reference" "$PY" - <<'PYEOF'
import collections, json, os, random, sys
sys.path.insert(0, os.environ["EVE_REF"])
from vqa_eval_ref import question_accuracy
# VQA: the most frequent training answer for every val question.
ann = json.load(open("world/vqa/annotations_train.json"))["annotations"]
top = collections.Counter(a["multiple_choice_answer"] for a in ann).most_common(1)[0][0]
qs = json.load(open("world/vqa/questions_val.json"))["questions"]
json.dump([{"question_id": q["question_id"], "answer": top} for q in qs], open("vqa_majority.json", "w"))
# Colour questions: the majority training answer, by the official accuracy (the reference
# evaluator's: each of the ten annotators left out in turn, min(1, matches among the other nine / 3)).
def official(pred, answers):
    return question_accuracy([{"answer": a, "answer_id": j + 1} for j, a in enumerate(answers)], pred, "current")
ctop = collections.Counter(a for q in json.load(open("world/vqa/colors_train.json")) for a in q["answer"]).most_common(1)[0][0]
cval = json.load(open("world/vqa/colors_val.json"))
json.dump({"answer": ctop, "accuracy": 100 * sum(official(ctop, q["answer"]) for q in cval) / len(cval)},
          open("score_colors_majority.json", "w"))
# NLVR2: always the majority training label.
labels = [json.loads(l)["label"] for l in open("world/nlvr2/train.json")]
maj = collections.Counter(labels).most_common(1)[0][0]
for split in ("dev", "test1"):
    with open("nlvr2_majority_%s.csv" % split, "w") as f:
        for l in open("world/nlvr2/%s.json" % split):
            f.write("%s,%s\n" % (json.loads(l)["identifier"], maj))
# Retrieval: random scores (chance level).
import numpy as np
test = json.load(open("world/retrieval_test.json"))
n_img, n_txt = len(test), sum(len(e["caption"]) for e in test)
rng = np.random.default_rng(0)
np.save("i2t_random.npy", rng.random((n_img, n_txt), dtype=np.float32))
np.save("t2i_random.npy", rng.random((n_txt, n_img), dtype=np.float32))
PYEOF
# VQA's stronger baseline: the most frequent training answer of each question form (the
# question with its colour and shape words taken out), what the question alone predicts.
BY_FORM="$here/tests/reference/toy_by_form.py"
"$PY" "$BY_FORM" prior --world world -o vqa_prior.json
VQA=(--annotations world/vqa/annotations_val.json --questions world/vqa/questions_val.json)
eve-score vqa "${VQA[@]}" --pred vqa_majority.json > score_vqa_majority.json
eve-score vqa "${VQA[@]}" --pred vqa_prior.json > score_vqa_prior.json
eve-score vqa "${VQA[@]}" --pred ft-vqa/predictions/val.json > score_vqa.json
# NLVR2: the model is picked on dev, so test1 is the number to quote.
for split in dev test1; do
  eve-score nlvr2 --gold world/nlvr2/$split.json --pred nlvr2_majority_$split.csv > score_nlvr2_majority_$split.json
  eve-score nlvr2 --gold world/nlvr2/$split.json --pred ft-nlvr2/predictions/$split.csv > score_nlvr2_$split.json
done
eve-score retrieval --ann world/retrieval_test.json --i2t i2t_random.npy --t2i t2i_random.npy \
  > score_retrieval_random.json
eve-score retrieval --ann world/retrieval_test.json --i2t ft-retrieval/predictions/test.i2t.npy \
  --t2i ft-retrieval/predictions/test.t2i.npy > score_retrieval.json
eve-score retrieval --ann data/retrieval/test.jsonl --i2t-ranks i2t.ranks.jsonl --t2i-ranks t2i.ranks.jsonl \
  > score_retrieval_rank.json
# Per question form and statement kind: what the model answers from the image.
"$PY" "$BY_FORM" vqa --world world --pred ft-vqa/predictions/val.json > vqa_by_form.txt
"$PY" "$BY_FORM" vqa --world world --split vg_val --pred ft-vqa/predictions/vg_val.json \
  --json vqa_by_form_vg_val.json > vqa_by_form_vg_val.txt
"$PY" "$BY_FORM" nlvr2 --world world --split test1 --pred ft-nlvr2/predictions/test1.csv > nlvr2_by_kind.txt

stage "12. eve-report: loss curves and pages to look at"
REPORT="$here/scripts/eve-report"
"$PY" "$REPORT" curves pretrain --keys loss,mim,mlm -o curves-pretrain.svg
"$PY" "$REPORT" curves ft-vqa ft-colors ft-nlvr2 ft-retrieval --keys loss -o curves-finetune.svg
"$PY" "$REPORT" retrieval --data data/retrieval-test --split test --ranks t2i.ranks.jsonl -o report-retrieval
"$PY" "$REPORT" vqa --data data/vqa --split val --pred ft-vqa/predictions/val.json -o report-vqa
echo "   curves-pretrain.svg, curves-finetune.svg, report-retrieval/index.html, report-vqa/index.html" >&2

stage "Results"
"$PY" - <<'PYEOF'
import json
def load(p): return json.load(open(p))
m = [json.loads(l) for l in open("pretrain/metrics.jsonl")]
def avg(rows, k): return sum(x[k] for x in rows) / len(rows)
first, last = m[:20], m[-20:]
print("pre-training (%d steps): MIM loss %.4f -> %.4f, MLM loss %.3f -> %.3f (first vs last 20 steps)"
      % (len(m), avg(first, "mim"), avg(last, "mim"), avg(first, "mlm"), avg(last, "mlm")))
print()
v, vb, vp = load("score_vqa.json"), load("score_vqa_majority.json"), load("score_vqa_prior.json")
vg = load("vqa_by_form_vg_val.json")["all"]
n, nb = load("score_nlvr2_test1.json"), load("score_nlvr2_majority_test1.json")
nd, ndb = load("score_nlvr2_dev.json"), load("score_nlvr2_majority_dev.json")
c, cb = load("ft-colors/results.json")["splits"]["val"]["accuracy"], load("score_colors_majority.json")["accuracy"]
r, rb, rr = load("score_retrieval.json"), load("score_retrieval_random.json"), load("score_retrieval_rank.json")
rows = [
    ("VQA accuracy (val)", v["overall"], "majority answer", vb["overall"]),
    ("", v["overall"], "answer per question form", vp["overall"]),
    ("VQA accuracy (vg_val)", vg["model"], "answer per question form", vg["prior"]),
    ("", vg["model"], "best constant per form", vg["best_constant"]),
    ("Colour questions (val)", c, "majority answer", cb),
    ("NLVR2 accuracy (dev)", 100 * nd["accuracy"], "majority label", 100 * ndb["accuracy"]),
    ("NLVR2 accuracy (test1)", 100 * n["accuracy"], "majority label", 100 * nb["accuracy"]),
    ("Retrieval TR@1 (test)", r["txt_r1"], "random scores", rb["txt_r1"]),
    ("Retrieval IR@1 (test)", r["img_r1"], "random scores", rb["img_r1"]),
    ("Retrieval R mean (test)", r["r_mean"], "random scores", rb["r_mean"]),
    ("  via eve-embed + eve-rank", rr["img_r1"], "(IR@1 from rank lists)", rb["img_r1"]),
]
for attr, name in (("colors", "colour"), ("shapes", "shape"), ("background", "background")):
    z = load("score_classify_%s.json" % attr)
    rows += [("Zero-shot %s (test)" % name, z["top1"], "chance (%d classes)" % z["classes"], z["chance_top1"]),
             ("", z["top1"], "majority (%s)" % z["majority_class"], z["majority_top1"])]
print("%-28s %10s   %-24s %8s" % ("metric", "eve-tiny", "baseline", "value"))
p = load("probe/probe.json")["fields"]
for attr, name in (("background", "background"), ("colors", "colours present"), ("shapes", "shapes present"),
                   ("count", "number of shapes")):
    rows += [("Probe: %s" % name, p[attr]["accuracy"], "fresh eve-tiny", p[attr]["fresh_accuracy"]),
             ("", p[attr]["accuracy"], "majority", p[attr]["majority"])]
for name, x, b, y in rows:
    print("%-28s %10.2f   %-24s %8.2f" % (name, x, b, y))
print("\nFine-tuned from the pre-trained bundle in ./pretrain (NLVR2 through the colour model in ./ft-colors);")
print("numbers by eve-score on the toy world, except the colour questions' (eve-finetune's own, official formula).")
print("VQA on vg_val (6,400 questions about the NLVR2 dev images, which pick the model) by the reference")
print("evaluator in tests/reference; 'best constant per form' is the most one answer per question form gets there.")
print("Per question form and statement kind: vqa_by_form_vg_val.txt, vqa_by_form.txt, nlvr2_by_kind.txt.")
print("Zero-shot: top-1 from the retrieval model's image and prompt embeddings, never trained on the labels; a hit is")
print("a colour or shape the image has (per class and the most confused pairs in score_classify_*.json).")
PYEOF
