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
done_or world/synth.json || eve-prep synth --out world --seed 1 --threads "$THREADS"

stage "2. eve-prep: raw annotations + images -> dataset dirs"
done_or data/pairs/manifest.json ||
  eve-prep pairs --ann train=world/pairs_train.json --images world --size 0 --out data/pairs --threads "$THREADS"
done_or data/retrieval/manifest.json ||
  eve-prep retrieval --ann train=world/retrieval_train.json --ann val=world/retrieval_val.json \
    --ann test=world/retrieval_test.json --images world --size 0 --out data/retrieval --threads "$THREADS"
done_or data/vqa/manifest.json ||
  eve-prep vqa --questions train=world/vqa/questions_train.json --annotations train=world/vqa/annotations_train.json \
    --questions val=world/vqa/questions_val.json --annotations val=world/vqa/annotations_val.json \
    --images world/images --size 0 --out data/vqa --threads "$THREADS"
done_or data/nlvr2/manifest.json ||
  eve-prep nlvr2 --ann train=world/nlvr2/train.json --ann dev=world/nlvr2/dev.json \
    --images world/nlvr2/images --size 0 --out data/nlvr2 --threads "$THREADS"

stage "3. eve-tokenize train + encode (a pipe stage: records in, records with ids out)"
done_or tok.model || eve-tokenize train world/corpus.txt --vocab-size 512 -o tok.model
for d in pairs retrieval vqa nlvr2; do
  for f in data/$d/*.jsonl; do
    out=${f%.jsonl}.ids.jsonl
    [[ $f == *.ids.jsonl ]] && continue
    done_or "$out" || eve-tokenize encode -m tok.model --threads "$THREADS" "$f" -o "$out"
  done
done

stage "4. eve-pretrain: masked signal modeling (eve-tiny) on the caption pairs"
STEPS=${EVE_DEMO_STEPS:-400}
# The final checkpoint marks the stage done; an interrupted run resumes where it stopped.
done_or "pretrain/checkpoint-$(printf %08d "$STEPS")" ||
  eve-pretrain --data data/pairs --split train.ids --tokenizer tok.json --config eve-tiny \
    --out pretrain --batch-size 16 --max-steps "$STEPS" --lr 1e-3 --warmup 20 --save-every 100 \
    --threads "$THREADS"
eve-embed --describe pretrain

stage "5. eve-score: the baselines a fine-tuned model must beat (majority answer, majority label, random ranking)"
"$PY" - <<'PYEOF'
import collections, json, random
# VQA: the most frequent training answer for every val question.
ann = json.load(open("world/vqa/annotations_train.json"))["annotations"]
top = collections.Counter(a["multiple_choice_answer"] for a in ann).most_common(1)[0][0]
qs = json.load(open("world/vqa/questions_val.json"))["questions"]
json.dump([{"question_id": q["question_id"], "answer": top} for q in qs], open("vqa_majority.json", "w"))
# NLVR2: always the majority training label.
labels = [json.loads(l)["label"] for l in open("world/nlvr2/train.json")]
maj = collections.Counter(labels).most_common(1)[0][0]
with open("nlvr2_majority.csv", "w") as f:
    for l in open("world/nlvr2/dev.json"):
        f.write("%s,%s\n" % (json.loads(l)["identifier"], maj))
# Retrieval: random scores (chance level).
import numpy as np
test = json.load(open("world/retrieval_test.json"))
n_img, n_txt = len(test), sum(len(e["caption"]) for e in test)
rng = np.random.default_rng(0)
np.save("i2t_random.npy", rng.random((n_img, n_txt), dtype=np.float32))
np.save("t2i_random.npy", rng.random((n_txt, n_img), dtype=np.float32))
PYEOF
eve-score vqa --ann world/vqa/annotations_val.json --ques world/vqa/questions_val.json \
  --pred vqa_majority.json > score_vqa_majority.json
eve-score nlvr2 --gold world/nlvr2/dev.json --pred nlvr2_majority.csv > score_nlvr2_majority.json
eve-score retrieval --ann world/retrieval_test.json --i2t i2t_random.npy --t2i t2i_random.npy \
  > score_retrieval_random.json

stage "Results"
"$PY" - <<'PYEOF'
import json
v = json.load(open("score_vqa_majority.json"))
n = json.load(open("score_nlvr2_majority.json"))
r = json.load(open("score_retrieval_random.json"))
m = [json.loads(l) for l in open("pretrain/metrics.jsonl")]
def avg(rows, k): return sum(x[k] for x in rows) / len(rows)
first, last = m[:20], m[-20:]
print("pre-training (%d steps): MIM loss %.4f -> %.4f, MLM loss %.3f -> %.3f (first vs last 20 steps)"
      % (len(m), avg(first, "mim"), avg(last, "mim"), avg(first, "mlm"), avg(last, "mlm")))
print()
rows = [
    ("VQA accuracy (val)", "majority answer", "%.2f" % v["overall"]),
    ("NLVR2 accuracy (dev)", "majority label", "%.2f" % (100 * n["accuracy"])),
    ("Retrieval TR@1 (test)", "random scores", "%.2f" % r["txt_r1"]),
    ("Retrieval IR@1 (test)", "random scores", "%.2f" % r["img_r1"]),
    ("Retrieval R mean (test)", "random scores", "%.2f" % r["r_mean"]),
]
print("%-26s %-24s %8s" % ("metric", "system", "value"))
for name, b, x in rows:
    print("%-26s %-24s %8s" % (name, b, x))
print("\nThe fine-tuned rows (VQA, NLVR2, retrieval) join this table when eve-finetune lands;")
print("eve-embed and eve-rank need a bundle with the retrieval (itc) head it trains.")
PYEOF
