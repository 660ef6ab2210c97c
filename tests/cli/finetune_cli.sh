#!/usr/bin/env bash
# eve-finetune end to end on a small toy world with eve-tiny from scratch: usage errors, the
# recipe with flags applied, the run dir (best bundle, answers, predictions, results,
# metrics), predictions that eve-score reads and agrees with, --eval-only reproducing them,
# a rerun that resumes instead of training again, retrieval bundles that eve-embed uses, bad records.
source "$(dirname "$0")/lib.bash"
ft=$EVE_BIN/eve-finetune

# The fixture: 80 images, every task prepared and encoded.
W=$tmp/w
"$EVE_BIN/eve-prep" synth --out "$W" --count 80 --seed 5 -q
"$EVE_BIN/eve-prep" -q vqa --questions train="$W/vqa/questions_train.json" --annotations train="$W/vqa/annotations_train.json" \
  --questions val="$W/vqa/questions_val.json" --annotations val="$W/vqa/annotations_val.json" \
  --images "$W/images" --size 0 --out "$tmp/vqa"
"$EVE_BIN/eve-prep" -q nlvr2 --ann train="$W/nlvr2/train.json" --ann dev="$W/nlvr2/dev.json" \
  --images "$W/nlvr2/images" --size 0 --out "$tmp/nlvr2"
"$EVE_BIN/eve-prep" -q retrieval --ann train="$W/retrieval_train.json" --ann val="$W/retrieval_val.json" \
  --ann test="$W/retrieval_test.json" --images "$W" --size 0 --out "$tmp/ret"
"$EVE_BIN/eve-tokenize" train -q "$W/corpus.txt" -o "$tmp/tok.model" --vocab-size 200
for f in "$tmp"/vqa/*.jsonl "$tmp"/nlvr2/*.jsonl "$tmp"/ret/*.jsonl; do
  "$EVE_BIN/eve-tokenize" encode --tokenizer "$tmp/tok.model" "$f" -o "${f%.jsonl}.ids.jsonl"
done
base=(--config eve-tiny --tokenizer "$tmp/tok.json" --image-res 64 --threads 2 -q)

# Usage errors.
expect_error 2 "--task is required" -- "$ft" --data "$tmp/vqa" --out "$tmp/x"
expect_error 2 "--task nope: unknown (vqa, nlvr2, retrieval or probe)" -- "$ft" --task nope --data "$tmp/vqa" --out "$tmp/x"
expect_error 2 "is for task nlvr2, not vqa" -- "$ft" --task vqa --recipe nlvr2 --data "$tmp/vqa" --out "$tmp/x"
echo '{"task": "vqa", "lr": 1e-4, "learning_rate": 3}' >"$tmp/bad_recipe.json"
expect_error 1 "unknown recipe key \"learning_rate\"" -- "$ft" --task vqa --recipe "$tmp/bad_recipe.json" --data "$tmp/vqa" --out "$tmp/x"
expect_error 2 "--eval-only needs --model" -- "$ft" --task vqa --eval-only --predict val.ids --data "$tmp/vqa" --out "$tmp/x"
expect_error 1 "no such records file" -- "$ft" --task vqa --train nope.ids --data "$tmp/vqa" --out "$tmp/x" "${base[@]}"
expect_error 2 "--head x: expected pair or biattn" -- "$ft" --task nlvr2 --head x --data "$tmp/nlvr2" --out "$tmp/x"
[[ ! -e $tmp/x ]] || { echo "FAIL a failed run left $tmp/x"; fail=1; }

# The recipe with flags applied.
got=$("$ft" --task vqa --lr 0.001 --image-res 64 --show-recipe | py -c 'import json,sys; r=json.load(sys.stdin); print(r["recipe"], r["lr"], r["image_res"], r["batch_size"], r["lr_mult"], r["decay"], r["val"])')
check show-recipe "vqa 0.001 64 128 10.0 linear val.ids" "$got"
got=$("$ft" --task retrieval --show-recipe | py -c 'import json,sys; r=json.load(sys.stdin); print(r["recipe"], r["batch_size"], r["k_test"])')
check show-recipe-retrieval "retrieval-coco 256 256" "$got"
# A directory named like a recipe (a work dir called "vqa") does not hide the recipe.
mkdir -p "$tmp/cwd/vqa"
got=$(cd "$tmp/cwd" && "$ft" --task vqa --show-recipe | py -c 'import json,sys; print(json.load(sys.stdin)["recipe"])')
check show-recipe-dir-named-vqa "vqa" "$got"

# Bad records name file and line.
head -n 3 "$tmp/vqa/train.ids.jsonl" >"$tmp/vqa/broken.ids.jsonl"
py -c 'import json,sys; r=json.loads(open(sys.argv[1]).readline()); del r["ids"]; print(json.dumps(r))' "$tmp/vqa/train.ids.jsonl" >>"$tmp/vqa/broken.ids.jsonl"
expect_error 1 "broken.ids.jsonl:4: record has no token ids" -- "$ft" --task vqa --data "$tmp/vqa" --train broken.ids --out "$tmp/x" "${base[@]}"

# VQA: 6 steps, validation every 3, the val split predicted by the best model.
vqa=(--task vqa --data "$tmp/vqa" "${base[@]}" --batch-size 8 --max-steps 6 --eval-every 3 --lr 1e-3)
"$ft" "${vqa[@]}" --out "$tmp/v"
for f in config.json model.safetensors answers.json tokenizer.model best/config.json best/model.safetensors \
         best/answers.json predictions/val.json results.json metrics.jsonl checkpoint-00000006/trainer.json; do
  [[ -f $tmp/v/$f ]] || { echo "FAIL vqa run lacks $f"; fail=1; }
done
check vqa-heads '["vqa"]' "$(py -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["heads"]))' "$tmp/v/config.json")"
cmp -s "$tmp/v/best/model.safetensors" "$tmp/v/model.safetensors" || { echo "FAIL the final bundle is not the best one"; fail=1; }
py - "$tmp/v" <<'EOF' || fail=1
import json, sys
d = sys.argv[1]
rows = [json.loads(l) for l in open(d + "/metrics.jsonl")]
train = [r for r in rows if "eval" not in r]
evals = [r for r in rows if "eval" in r]
assert [r["step"] for r in train] == [1, 2, 3, 4, 5, 6], [r["step"] for r in train]
assert [r["step"] for r in evals] == [3, 6] and all("accuracy" in r["eval"] for r in evals), evals
for k in ("loss", "bce", "aux", "lr", "grad_norm", "samples_per_s"):
    assert k in train[-1], k
res = json.load(open(d + "/results.json"))
best = max(evals, key=lambda r: (r["eval"]["accuracy"], -r["step"]))
assert res["best_step"] == best["step"], (res["best_step"], best)
assert abs(res["splits"]["val"]["accuracy"] - best["eval"]["accuracy"]) < 1e-9, (res, best)
answers = json.load(open(d + "/answers.json"))
pred = json.load(open(d + "/predictions/val.json"))
assert all(set(p) == {"question_id", "answer"} and p["answer"] in answers for p in pred)
EOF
score=$("$EVE_BIN/eve-score" vqa --annotations "$W/vqa/annotations_val.json" --questions "$W/vqa/questions_val.json" --pred "$tmp/v/predictions/val.json" |
        py -c 'import json,sys; print(json.load(sys.stdin)["overall"])')
mine=$(py -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["splits"]["val"]["accuracy"], 2))' "$tmp/v/results.json")
check vqa-score-agrees "$score" "$mine"

# A rerun resumes at the last checkpoint: no training, the same predictions.
cp "$tmp/v/predictions/val.json" "$tmp/val_before.json"
lines=$(wc -l <"$tmp/v/metrics.jsonl")
"$ft" "${vqa[@]}" --out "$tmp/v"
check rerun-metrics "$lines" "$(wc -l <"$tmp/v/metrics.jsonl")"
cmp -s "$tmp/val_before.json" "$tmp/v/predictions/val.json" || { echo "FAIL rerun changed the predictions"; fail=1; }

# --eval-only with the fine-tuned bundle gives the same predictions.
"$ft" --task vqa --data "$tmp/vqa" --model "$tmp/v" --eval-only --predict val.ids --out "$tmp/ev" --threads 2 -q
cmp -s "$tmp/v/predictions/val.json" "$tmp/ev/predictions/val.json" || { echo "FAIL --eval-only predictions differ"; fail=1; }

# --model at another resolution: the position table is resized, the VQA head dropped, the
# retrieval heads new (and they alone take lr x lr_mult).
"$ft" --task retrieval --data "$tmp/ret" --model "$tmp/v" --image-res 48 --threads 2 --batch-size 8 --max-steps 1 \
  --val none --k-test 0 --out "$tmp/r48" 2>"$tmp/r48.err"
grep -q "position table resized: backbone.pos_embed_vision \[65,128\] -> \[37,128\]" "$tmp/r48.err" ||
  { echo "FAIL no resize message"; cat "$tmp/r48.err"; fail=1; }
grep -q "5 parameter tensors newly initialised (learning rate x10), 6 ignored" "$tmp/r48.err" ||
  { echo "FAIL new/ignored tensor counts"; cat "$tmp/r48.err"; fail=1; }
check r48-config "48 ['itc', 'itm']" "$(py -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c["image_res"], c["heads"])' "$tmp/r48/config.json")"

# --model from a VQA bundle: VQA keeps its answer list and head; another answer list of the
# same length (--answers), or --num-answers, gives a fresh classifier; NLVR2, whose head has
# the same name, gets a whole fresh head even where shapes fit (output.1, the LayerNorm).
one_step=(--data "$tmp/vqa" --model "$tmp/v" --image-res 64 --threads 2 --batch-size 8 --max-steps 1 --val none)
"$ft" --task vqa "${one_step[@]}" --out "$tmp/vk" 2>"$tmp/vk.err"
grep -q " 0 parameter tensors newly initialised" "$tmp/vk.err" || { echo "FAIL vqa from vqa: head not kept"; cat "$tmp/vk.err"; fail=1; }
cmp -s "$tmp/v/answers.json" "$tmp/vk/answers.json" || { echo "FAIL vqa from vqa: answer list not kept"; fail=1; }
grep -q "answers from $tmp/v/answers.json; " "$tmp/vk.err" || { echo "FAIL the log does not name the kept list"; cat "$tmp/vk.err"; fail=1; }
if grep -q "most training questions have no answer" "$tmp/vk.err"; then echo "FAIL warned about a list that fits"; fail=1; fi
# A bundle whose list answers none of these questions is kept too, with a warning naming the way out.
echo '["an answer nobody gave"]' > "$tmp/alien.json"
"$ft" --task vqa "${one_step[@]}" --answers "$tmp/alien.json" --out "$tmp/va" 2>/dev/null
"$ft" --task vqa --data "$tmp/vqa" --model "$tmp/va" --image-res 64 --threads 2 --batch-size 8 --max-steps 1 --val none \
  --out "$tmp/vaa" 2>"$tmp/vaa.err"
grep -q "warning: most training questions have no answer in $tmp/va/answers.json: --num-answers N" "$tmp/vaa.err" ||
  { echo "FAIL no warning for a bundle's list that fits no training question"; cat "$tmp/vaa.err"; fail=1; }
py -c 'import json,sys; a=json.load(open(sys.argv[1])); json.dump(a[::-1], open(sys.argv[2], "w"))' "$tmp/v/answers.json" "$tmp/rev.json"
"$ft" --task vqa "${one_step[@]}" --answers "$tmp/rev.json" --out "$tmp/vr" 2>"$tmp/vr.err"
grep -q " 2 parameter tensors newly initialised" "$tmp/vr.err" || { echo "FAIL another answer list kept the classifier"; cat "$tmp/vr.err"; fail=1; }
"$ft" --task vqa "${one_step[@]}" --num-answers 3 --out "$tmp/v3" 2>"$tmp/v3.err"
check num-answers-replaces-init 3 "$(py -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$tmp/v3/answers.json")"
"$ft" --task nlvr2 --data "$tmp/nlvr2" --model "$tmp/v" --image-res 64 --threads 2 --batch-size 8 --max-steps 1 --val none --out "$tmp/nv" 2>"$tmp/nv.err"
grep -q " 6 parameter tensors newly initialised" "$tmp/nv.err" || { echo "FAIL nlvr2 from a vqa bundle kept part of its head"; cat "$tmp/nv.err"; fail=1; }

# Stopping and resuming (SIGINT, SIGTERM, bit-identical resume) is tested in interrupt.sh.

# NLVR2: the CSV eve-score reads.
"$ft" --task nlvr2 --data "$tmp/nlvr2" "${base[@]}" --batch-size 8 --max-steps 4 --lr 1e-3 --out "$tmp/n"
py - "$tmp/n/predictions/dev.csv" "$tmp/nlvr2/dev.jsonl" <<'EOF' || fail=1
import json, sys
rows = [l.rstrip("\n").split(",") for l in open(sys.argv[1])]
ids = [json.loads(l)["identifier"] for l in open(sys.argv[2])]
assert [r[0] for r in rows] == ids, "identifiers in record order"
assert all(len(r) == 2 and r[1] in ("True", "False") for r in rows)
EOF
acc=$("$EVE_BIN/eve-score" nlvr2 --gold "$W/nlvr2/dev.json" --pred "$tmp/n/predictions/dev.csv" | py -c 'import json,sys; print(round(100*json.load(sys.stdin)["accuracy"], 6))')
mine=$(py -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["splits"]["dev"]["accuracy"], 6))' "$tmp/n/results.json")
check nlvr2-score-agrees "$acc" "$mine"
# A bi-attention NLVR2 bundle is evaluated with its own head, no --head needed.
"$ft" --task nlvr2 --head biattn --data "$tmp/nlvr2" "${base[@]}" --batch-size 8 --max-steps 2 --lr 1e-3 --out "$tmp/nb"
"$ft" --task nlvr2 --data "$tmp/nlvr2" --model "$tmp/nb" --eval-only --predict dev.ids --out "$tmp/nbe" --threads 2 -q
cmp -s "$tmp/nb/predictions/dev.csv" "$tmp/nbe/predictions/dev.csv" || { echo "FAIL --eval-only of a biattn bundle differs"; fail=1; }

# Retrieval: score matrices and ranks for test, recall as eve-score computes it, a bundle
# eve-embed uses.
"$ft" --task retrieval --data "$tmp/ret" "${base[@]}" --batch-size 8 --max-steps 4 --lr 1e-3 --k-test 3 \
  --predict test.ids --out "$tmp/r"
"$EVE_BIN/eve-score" retrieval --ann "$W/retrieval_test.json" --i2t "$tmp/r/predictions/test.i2t.npy" \
  --t2i "$tmp/r/predictions/test.t2i.npy" >"$tmp/r_score.json"
"$EVE_BIN/eve-score" retrieval --ann "$tmp/ret/test.jsonl" --i2t-ranks "$tmp/r/predictions/test.i2t.ranks.jsonl" \
  --t2i-ranks "$tmp/r/predictions/test.t2i.ranks.jsonl" >"$tmp/r_rank_score.json"
py - "$tmp/r" "$tmp/r_score.json" "$tmp/r_rank_score.json" "$W/retrieval_test.json" <<'EOF' || fail=1
import json, sys
import numpy as np
d = sys.argv[1]
test = json.load(open(sys.argv[4]))
ni, nt = len(test), sum(len(e["caption"]) for e in test)
i2t, t2i = np.load(d + "/predictions/test.i2t.npy"), np.load(d + "/predictions/test.t2i.npy")
assert i2t.shape == (ni, nt) and t2i.shape == (nt, ni), (i2t.shape, t2i.shape)
# k_test 3: each image row keeps 3 re-ranked texts, every other entry -100.
assert ((i2t != -100).sum(1) == 3).all() and ((t2i != -100).sum(1) == 3).all()
mine = json.load(open(d + "/results.json"))["splits"]["test"]
# eve-score on the matrices agrees with results.json; on the top-10 rank lists too at R@1
# (R@5 and R@10 can differ: entries beyond k_test tie at -100 and the lists cut ties).
s = json.load(open(sys.argv[2]))
for k in ("txt_r1", "txt_r5", "txt_r10", "img_r1", "img_r5", "img_r10", "r_mean"):
    assert abs(s[k] - mine[k]) < 1e-9, (k, s[k], mine[k])
s = json.load(open(sys.argv[3]))
for k in ("txt_r1", "img_r1"):
    assert abs(s[k] - mine[k]) < 1e-9, (k, s[k], mine[k])
EOF
"$EVE_BIN/eve-embed" --model "$tmp/r" --images "$tmp/ret" -o "$tmp/emb" --threads 2 -q
check embed-rows "$(sed -n 's/^images //p' "$tmp/ret/images.idx")" "$(wc -l <"$tmp/emb.ids.jsonl")"

exit $fail
