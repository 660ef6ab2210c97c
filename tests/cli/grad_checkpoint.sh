#!/usr/bin/env bash
# --grad-checkpoint in eve-pretrain and eve-finetune, and the config key gradient_checkpointing:
# the runs say that the layers are recomputed, their losses and gradient norms equal those of
# the same runs without it (eve-tiny has drop-path, text dropout and routing noise on, so every
# draw is replayed), and a bundle written by a run with the flag keeps the config's value.
source "$(dirname "$0")/lib.bash"
pre=$EVE_BIN/eve-pretrain
toy_pairs 16 48 7 120
common=(--data "$tmp/d" --split ids --tokenizer "$tmp/tok.json" --config eve-tiny --threads 1 --batch-size 4
        --max-steps 3 --seed 3)
note="gradient checkpointing: encoder layers recompute their activations in backward"

# same_steps PLAIN_METRICS CHECKPOINTED_METRICS KEY...: three steps each, every KEY within 1e-5
# relative: gradients that differed would move steps 2 and 3 and the gradient norms.
same_steps() {
  "$EVE_PYTHON" - "$@" <<'PY' || fail=1
import json, sys
a_path, b_path, keys = sys.argv[1], sys.argv[2], sys.argv[3:]
a = [json.loads(l) for l in open(a_path) if "eval" not in l]
b = [json.loads(l) for l in open(b_path) if "eval" not in l]
assert len(a) == len(b) == 3, (len(a), len(b))
for x, y in zip(a, b):
    for k in keys:
        assert abs(x[k] - y[k]) <= 1e-5 * abs(x[k]), f"step {x['step']} {k}: {x[k]} without, {y[k]} with checkpointing"
print(b_path.split('/')[-2], "step 3:", {k: (a[-1][k], b[-1][k]) for k in keys})
PY
}
gc_key() {
  "$EVE_PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["gradient_checkpointing"])' "$1/config.json"
}

# 1. eve-pretrain msm.
"$pre" "${common[@]}" --out "$tmp/p" 2>"$tmp/p.err"
"$pre" "${common[@]}" --grad-checkpoint --out "$tmp/pc" 2>"$tmp/pc.err"
grep -qF "$note" "$tmp/pc.err" || { echo "FAIL --grad-checkpoint is not logged"; cat "$tmp/pc.err"; fail=1; }
! grep -qF "$note" "$tmp/p.err" || { echo "FAIL checkpointing logged without the flag"; fail=1; }
same_steps "$tmp/p/metrics.jsonl" "$tmp/pc/metrics.jsonl" loss mim mlm aux grad_norm
check pretrain-bundle-key False "$(gc_key "$tmp/pc")"

# 2. The config key alone turns it on.
"$EVE_PYTHON" -c 'import json,sys; c=json.load(open(sys.argv[1])); c["gradient_checkpointing"]=True; json.dump(c,open(sys.argv[2],"w"))' \
  "$EVE_SOURCE/share/eve/configs/eve-tiny.json" "$tmp/gc.json"
"$pre" "${common[@]/eve-tiny/$tmp/gc.json}" --out "$tmp/pk" 2>"$tmp/pk.err"
grep -qF "$note" "$tmp/pk.err" || { echo "FAIL gradient_checkpointing: true is not logged"; cat "$tmp/pk.err"; fail=1; }
check pretrain-config-key True "$(gc_key "$tmp/pk")"

# 3. eve-finetune VQA from the pre-trained bundle.
W=$tmp/w
"$EVE_BIN/eve-prep" -q vqa --questions train="$W/vqa/questions_train.json" --annotations train="$W/vqa/annotations_train.json" \
  --images "$W/images" --size 0 --out "$tmp/vqa"
"$EVE_BIN/eve-tokenize" encode --tokenizer "$tmp/tok.model" "$tmp/vqa/train.jsonl" -o "$tmp/vqa/train.ids.jsonl"
f=(--task vqa --data "$tmp/vqa" --model "$tmp/p" --image-res 48 --threads 1 --batch-size 4 --max-steps 3 --seed 1
   --val none --num-answers 20)
"$EVE_BIN/eve-finetune" "${f[@]}" -q --out "$tmp/f"
"$EVE_BIN/eve-finetune" "${f[@]}" --grad-checkpoint --out "$tmp/fc" 2>"$tmp/fc.err"
grep -qF "$note" "$tmp/fc.err" || { echo "FAIL eve-finetune --grad-checkpoint is not logged"; cat "$tmp/fc.err"; fail=1; }
same_steps "$tmp/f/metrics.jsonl" "$tmp/fc/metrics.jsonl" loss bce grad_norm
check finetune-bundle-key False "$(gc_key "$tmp/fc")"
exit $fail
