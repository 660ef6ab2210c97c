#!/usr/bin/env bash
# eve-pretrain beyond msm on the toy world with eve-tiny: the VLMo baseline itc,itm,mlm
# (finite parts in metrics.jsonl, resume to the same weights, a bundle that eve-embed
# embeds), the image stage on records without token ids, the text stage on text-only
# records without an image store, --freeze keeping matched tensors bit-identical while the
# others change, and the usage errors of impossible combinations.
source "$(dirname "$0")/lib.bash"
pre=$EVE_BIN/eve-pretrain
toy_pairs 40 64 3 200
common=(--data "$tmp/d" --tokenizer "$tmp/tok.json" --config eve-tiny --threads 1 --batch-size 8 -q)

# metrics_have FILE LINES KEY... : LINES lines, each with the keys, every number finite.
metrics_have() {
  "$EVE_PYTHON" - "$@" <<'EOF' || fail=1
import json, math, sys
path, lines, keys = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = [json.loads(l) for l in open(path)]
assert len(rows) == lines, (path, len(rows))
for r in rows:
    for k in keys:
        assert k in r, (path, k, r)
        assert isinstance(r[k], (int, float)) and math.isfinite(r[k]), (path, k, r[k])
absent = {"mim", "mlm", "itc", "itm"} - set(keys)
assert not absent & set(rows[-1]), (path, "unexpected parts", absent & set(rows[-1]))
EOF
}
heads() { "$EVE_PYTHON" -c 'import json,sys; print(",".join(json.load(open(sys.argv[1]))["heads"]))' "$1/config.json"; }

# 1. The VLMo baseline: 4 steps with a checkpoint at 2; parts logged; then resume from the
# step-2 checkpoint of a copy ends with the same weights.
"$pre" "${common[@]}" --split ids --objective mlm,itm,itc --out "$tmp/vlmo" --max-steps 4 --save-every 2 --seed 5
metrics_have "$tmp/vlmo/metrics.jsonl" 4 loss itc itm itm_accuracy mlm aux itc_temp
check vlmo-heads "itc,itm,mlm" "$(heads "$tmp/vlmo")"
check vlmo-objective '"itc,itm,mlm"' \
  "$("$EVE_PYTHON" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["options"]["objective"]))' \
     "$tmp/vlmo/checkpoint-00000004/trainer.json")"
# The copy is put back to what a run stopped after step 2 leaves (its final model and the
# later metrics lines removed), so only a resume that trains steps 3 and 4 can pass.
cp -r "$tmp/vlmo" "$tmp/again"
rm -rf "$tmp/again/checkpoint-00000004" "$tmp/again/model.safetensors"
head -n 2 "$tmp/vlmo/metrics.jsonl" >"$tmp/again/metrics.jsonl"
"$pre" "${common[@]}" --split ids --objective itc,itm,mlm --out "$tmp/again" --max-steps 4 --save-every 2 --seed 5 --resume
cmp -s "$tmp/vlmo/model.safetensors" "$tmp/again/model.safetensors" || { echo "FAIL resumed itc,itm,mlm weights differ"; fail=1; }
check vlmo-resumed-metrics "$(cut -d, -f1-5 "$tmp/vlmo/metrics.jsonl")" "$(cut -d, -f1-5 "$tmp/again/metrics.jsonl")"

# eve-embed works on the bundle: unit-norm rows for every image and every caption.
"$EVE_BIN/eve-embed" -q -m "$tmp/vlmo" --images "$tmp/d" -o "$tmp/img" -b 16
"$EVE_BIN/eve-embed" -q -m "$tmp/vlmo" --texts "$tmp/d/ids.jsonl" -o "$tmp/txt" -b 16
"$EVE_PYTHON" - "$tmp" <<'EOF' || fail=1
import json, sys
import numpy as np
t = sys.argv[1]
img, txt = np.load(t + "/img.npy"), np.load(t + "/txt.npy")
keys = {json.loads(l)["image"] for l in open(t + "/d/ids.jsonl")}
assert img.shape == (len(keys), 128), img.shape
assert txt.shape == (sum(1 for _ in open(t + "/d/ids.jsonl")), 128), txt.shape
for a in (img, txt):
    assert np.isfinite(a).all() and abs(np.linalg.norm(a, axis=1) - 1).max() < 1e-4
EOF

# ITC alone, and ITM alone (which keeps the itc heads to draw its negatives).
"$pre" "${common[@]}" --split ids --objective itc --out "$tmp/itc" --max-steps 2
metrics_have "$tmp/itc/metrics.jsonl" 2 loss itc aux itc_temp
check itc-heads "itc" "$(heads "$tmp/itc")"
"$pre" "${common[@]}" --split ids --objective itm --out "$tmp/itm" --max-steps 2
metrics_have "$tmp/itm/metrics.jsonl" 2 loss itm itm_accuracy aux
check itm-heads "itc,itm" "$(heads "$tmp/itm")"

# 2. The image stage reads the records for their images only: train.jsonl has no ids.
"$pre" "${common[@]}" --split train --stage image --out "$tmp/image" --max-steps 2
metrics_have "$tmp/image/metrics.jsonl" 2 loss mim aux
check image-heads "mim" "$(heads "$tmp/image")"

# 3. The text stage on text-only records (no "image", no image store in the dir), one
# record with ids_list, starting from the VLMo bundle with attention and word embedding
# frozen: those tensors stay bit-identical, the text FFNs and the MLM head change.
mkdir "$tmp/t"
"$EVE_PYTHON" - "$tmp/d/ids.jsonl" "$tmp/t/texts.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
with open(sys.argv[2], "w") as f:
    for i, r in enumerate(rows):
        out = {"ids": r["ids"]} if i % 2 else {"image": r["image"], "ids": r["ids"]}
        if i == 0:
            out = {"ids_list": [r["ids"], rows[1]["ids"]]}
        f.write(json.dumps(out) + "\n")
EOF
"$pre" --data "$tmp/t" --split texts --stage text --model "$tmp/vlmo" --threads 1 --batch-size 8 \
  --max-steps 3 --lr 1e-3 --warmup 0 --out "$tmp/text" \
  --freeze 'backbone.encoder.layers.*.attn.*' --freeze 'backbone.word_embedding.?eight' 2>"$tmp/text.log"
metrics_have "$tmp/text/metrics.jsonl" 3 loss mlm aux
check text-heads "mlm" "$(heads "$tmp/text")"
# Started from a bundle without --tokenizer, the run carries the bundle's tokenizer on.
[[ -s $tmp/vlmo/tokenizer.model ]] || flunk "the VLMo run has no tokenizer.model"
cmp -s "$tmp/vlmo/tokenizer.model" "$tmp/text/tokenizer.model" || flunk "the text stage did not keep the bundle's tokenizer.model"
# eve-tiny: 4 layers x (qkv, q_bias, v_bias, proj.weight, proj.bias) = 4 x (3*128*128 + 2*128 + 128*128 + 128).
check freeze-log-attn "1" "$(grep -c -- "--freeze 'backbone.encoder.layers.\*.attn.\*': 20 tensors, 263680 parameters frozen" "$tmp/text.log")"
check freeze-log-words "1" "$(grep -c -- "--freeze 'backbone.word_embedding.?eight': 1 tensors, 25600 parameters frozen" "$tmp/text.log")"
"$EVE_PYTHON" - "$EVE_SOURCE/tests/reference" "$tmp/vlmo/model.safetensors" "$tmp/text/model.safetensors" <<'EOF' || fail=1
import fnmatch, sys
sys.path.insert(0, sys.argv[1])
import eve_ref_io
import torch
before, after = eve_ref_io.load(sys.argv[2]), eve_ref_io.load(sys.argv[3])
frozen = [n for n in after if fnmatch.fnmatchcase(n, "backbone.encoder.layers.*.attn.*")
          or fnmatch.fnmatchcase(n, "backbone.word_embedding.?eight")]
assert len(frozen) == 21, frozen
for n in frozen:
    assert torch.equal(before[n], after[n]), "frozen tensor changed: " + n
for n in ("backbone.encoder.layers.0.mlp_text.fc1.weight", "mlm_head.decoder.weight", "backbone.layer_norm_text.weight"):
    assert not torch.equal(before[n], after[n]), "trainable tensor unchanged: " + n
assert "itc_temp" not in after and "mim_decoder.pred.weight" not in after
print("freeze: %d tensors bit-identical, trained tensors changed" % len(frozen))
EOF

# 4. Usage errors.
set +e
usage() {  # usage NAME MESSAGE ARGS...
  local name=$1 want=$2; shift 2
  local err rc
  local out=(--out "$tmp/x")
  [[ " $* " == *" --out "* ]] && out=()
  err=$("$pre" "${common[@]}" --split ids "${out[@]}" --max-steps 1 "$@" 2>&1); rc=$?
  check "$name-rc" 2 "$rc"
  check "$name-msg" "eve-pretrain: error: $want" "$err"
}
usage msm-plus "--objective msm,itc: msm (masked signal modeling) cannot be combined with other objectives" \
  --objective msm,itc
usage unknown "--objective itc,bogus: unknown objective \"bogus\" (expected msm, or any of itc, itm, mlm separated by commas; mim with --stage image)" \
  --objective itc,bogus
usage twice "--objective mlm,itc,mlm: mlm is given twice" --objective mlm,itc,mlm
usage image-objective "--stage image trains masked image modeling on images alone: --objective must be mim (or left out), not itc,itm,mlm" \
  --stage image --objective itc,itm,mlm
usage text-objective "--stage text trains masked language modeling on text alone: --objective must be mlm (or left out), not msm" \
  --stage text --objective msm
usage mim-vl "--objective mim: mim (masked image modeling alone) needs --stage image; --stage vl trains msm or any of itc, itm, mlm" \
  --objective mim
usage stage "--stage audio: expected vl, image or text" --stage audio
usage weight "loss weights must be >= 0" --objective itc,itm --itm-weight -1
usage freeze-none "--freeze 'backbone.encoder.layer.*' matches no parameter of the model (names are the official state-dict keys, e.g. backbone.encoder.layers.0.attn.qkv.weight)" \
  --freeze 'backbone.encoder.layer.*'
usage freeze-all "--freeze leaves no parameter to train" --freeze '*'
usage resume-objective "cannot resume $tmp/vlmo/checkpoint-00000004: it was trained with objective \"itc,itm,mlm\", this run has \"msm\" (resume with the same options, or use a new --out)" \
  --out "$tmp/vlmo"
usage resume-freeze "cannot resume $tmp/vlmo/checkpoint-00000004: it was trained with freeze [], this run has [\"itc_temp\"] (resume with the same options, or use a new --out)" \
  --out "$tmp/vlmo" --objective itc,itm,mlm --freeze itc_temp
set -e
exit $fail
