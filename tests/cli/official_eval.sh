#!/usr/bin/env bash
# The released retrieval evaluation, end to end, on an official-style checkpoint: a .pth saved
# by python3-torch ('module.' prefix, a 'model' dict, the vlmo config without eve keys) is
# converted by eve-convert-checkpoint, which records compat official by default. Then, with
# --deterministic-routing, eve-embed's image and text embeddings (CLS before the final
# LayerNorm, texts 256 per pass padded to max_text_len), eve-rank --rerank's ITM logits (each
# query's k_test candidates in one batch, in ITC order) and eve-finetune --task retrieval
# --eval-only's score matrices equal the reference's official evaluation
# (tests/reference/eve_ref.py official_evaluation) to 1e-5, on padded texts and with a
# capacity that drops tokens. Without the switch, routing noise makes two seeds differ;
# with it, they give the same bytes.
source "$(dirname "$0")/lib.bash"
make_dataset
# A larger test split (16 images, 80 captions): the Karpathy training file as "test".
"$EVE_BIN/eve-prep" -q retrieval --ann test=w/retrieval_train.json --images w --out ret2
"$EVE_BIN/eve-tokenize" encode --tokenizer tok.model --max-tokens 16 < ret2/test.jsonl > ret2/test.ids.jsonl

# The checkpoint: a vlmo-style config (official keys only) and a state dict saved by torch.
cat > vlmo.json <<'JSON'
{"vision_width": 32, "patch_size": 8, "num_attention_heads": 2, "intermediate_size": 64,
 "num_hidden_layers": 3, "moeffn_layers": [1, 2], "vlffn_layers": [1, 2],
 "moe_param": {"num_experts": 4, "topk": 2, "type_route": true}, "drop_path_rate": 0.0,
 "vocab_size": 300, "max_text_len": 16, "moe_capacity_factor": 0.5, "moe_min_capacity": 1}
JSON
"$PY" - "$EVE_SOURCE/tests/reference" <<'PYEOF'
import json, sys
sys.path.insert(0, sys.argv[1])
import torch, eve_ref
cfg = eve_ref.read_config("vlmo.json")
cfg.update({"image_res": 32, "text_pos_rows": 16, "heads": ["itc", "itm"], "compat": "official"})
m = eve_ref.EveRef(cfg)
eve_ref.init_weights(m, 7)
torch.save({"model": {"module." + k: v for k, v in m.state_dict().items()}, "epoch": 3}, "ckpt.pth")
PYEOF
"$PY" "$EVE_SOURCE/scripts/eve-convert-checkpoint" ckpt.pth vlmo.json bundle --tokenizer tok.model 2> convert.err
grep -q "compat official" convert.err || fail "the converter did not record compat official: $(cat convert.err)"
"$EVE_BIN/eve-embed" --describe bundle > describe.txt
grep -q "^compat       official, sparse dispatch, gumbel-noise at inference; retrieval embeddings before the final LayerNorm" \
  describe.txt || fail "describe: $(grep compat describe.txt)"

# The tokenizer against the word embedding (300 rows): more pieces is an error, in the
# converter and when a bundle loads; fewer pieces (padding rows) a note; special ids that
# are not the tokenizer's an error.
"$EVE_BIN/eve-tokenize" train -q w/corpus.txt -o tok400.model --vocab-size 400
"$EVE_BIN/eve-tokenize" train -q w/corpus.txt -o tok200.model --vocab-size 200
set +e
err=$("$PY" "$EVE_SOURCE/scripts/eve-convert-checkpoint" ckpt.pth vlmo.json big --tokenizer tok400.model 2>&1); rc=$?
set -e
[[ $rc == 1 && $err == "eve-convert-checkpoint: error: tok400.model has 400 pieces but the word embedding only 300 rows: not this checkpoint's tokenizer" ]] \
  || fail "converter, more pieces: $rc $err"
"$PY" "$EVE_SOURCE/scripts/eve-convert-checkpoint" ckpt.pth vlmo.json small --tokenizer tok200.model 2> small.err
grep -q "note: the word embedding has 300 rows for the tokenizer's 200 pieces" small.err || fail "converter note: $(cat small.err)"
expect_load_error() {  # BUNDLE WANT: eve-embed on BUNDLE exits 1 with WANT
  set +e; err=$("$EVE_BIN/eve-embed" -q -m "$1" --texts ret2/test.ids.jsonl -o x 2>&1); rc=$?; set -e
  [[ $rc == 1 && $err == "eve-embed: error: $2" ]] || fail "load $1: $rc $err"
}
cp -r bundle bad400 && cp tok400.model bad400/tokenizer.model
expect_load_error bad400 "bad400/tokenizer.model: the tokenizer has 400 pieces but the word embedding only 300 rows (this tokenizer was not trained with this model; use the model's own)"
cp -r bundle badpad && sed -i 's/"pad_token_id": 0/"pad_token_id": 7/' badpad/config.json
expect_load_error badpad "badpad/tokenizer.model: config.json's pad_token_id is 7 but the tokenizer's piece for it is id 0 (set the config's special ids from the tokenizer (eve-convert-checkpoint --tokenizer does it))"
"$EVE_BIN/eve-embed" --threads 2 -m small --texts ret2/test.ids.jsonl -o small_txt 2> small_embed.err
grep -q "small/tokenizer.model: the word embedding has 300 rows for the tokenizer's 200 pieces; rows 200 and up are never used" \
  small_embed.err || fail "bundle note: $(cat small_embed.err)"

# Deterministic routing: embeddings, re-rank, eval-only.
D=(--deterministic-routing --threads 2 -q)
"$EVE_BIN/eve-embed" "${D[@]}" -m bundle --images ret2 -o img
"$EVE_BIN/eve-embed" "${D[@]}" -m bundle --texts ret2/test.ids.jsonl -o txt
"$EVE_BIN/eve-embed" "${D[@]}" -m bundle --texts ret2/test.ids.jsonl -o txt_seed9 --seed 9
cmp -s txt.npy txt_seed9.npy || fail "--deterministic-routing: two seeds gave different text embeddings"
"$EVE_BIN/eve-embed" --threads 2 -q -m bundle --texts ret2/test.ids.jsonl -o noisy1 --seed 1
"$EVE_BIN/eve-embed" --threads 2 -q -m bundle --texts ret2/test.ids.jsonl -o noisy2 --seed 2
! cmp -s noisy1.npy noisy2.npy || fail "compat official without --deterministic-routing drew no routing noise"
rr=(--rerank -m bundle --images ret2 --texts ret2/test.ids.jsonl --k-test 6 -k 6 --deterministic-routing --threads 2)
"$EVE_BIN/eve-rank" --queries img.npy --gallery txt.npy "${rr[@]}" > i2t.jsonl 2> i2t.err
"$EVE_BIN/eve-rank" --queries txt.npy --gallery img.npy "${rr[@]}" -q > t2i.jsonl
grep -q "6 pairs per pass, deterministic routing" i2t.err || fail "eve-rank does not report its batching and routing: $(cat i2t.err)"
"$EVE_BIN/eve-finetune" --task retrieval --eval-only --model bundle --data ret2 --predict test.ids \
  --k-test 6 -o ev "${D[@]}"
grep -q '"inference_routing": "deterministic"' ev/results.json || fail "results.json: $(cat ev/results.json)"

# Texts longer than the model's 16 tokens are cut (last id kept) and counted, never refused.
"$EVE_BIN/eve-tokenize" encode --tokenizer tok.model --max-tokens 40 < ret2/test.jsonl > ret2/long.ids.jsonl
"$EVE_BIN/eve-embed" --threads 2 -m bundle --texts ret2/long.ids.jsonl -o long 2> long_embed.err
grep -q "embed: 18 texts were longer than the model's 16 tokens and were cut (last id kept)" long_embed.err \
  || fail "eve-embed truncation: $(cat long_embed.err)"
"$EVE_BIN/eve-rank" --queries img.npy --gallery long.npy --rerank -m bundle --images ret2 --texts ret2/long.ids.jsonl \
  --k-test 6 -k 6 --threads 2 > /dev/null 2> long_rank.err
grep -q "rerank: [0-9]* text passes cut a text longer than the model's tokens (last id kept)" long_rank.err \
  || fail "eve-rank truncation: $(cat long_rank.err)"
"$EVE_BIN/eve-finetune" --task retrieval --eval-only --model bundle --data ret2 --predict long.ids \
  --k-test 6 -o ev_long --threads 2 2> long_ft.err
grep -q "long: 18 of 80 texts are longer than the model's 16 tokens and are cut to them" long_ft.err \
  || fail "eve-finetune truncation: $(cat long_ft.err)"

"$PY" - "$EVE_SOURCE/tests/reference" <<'PYEOF' || exit 1
import io, json, sys, tarfile
sys.path.insert(0, sys.argv[1])
import numpy as np, torch
from PIL import Image
import eve_ref
torch.set_num_threads(2)
m = eve_ref.load_model("bundle"); m.eval()
cfg = m.cfg; R = cfg["image_res"]; T = cfg["max_text_len"]
assert cfg["compat"] == "official"
tar = tarfile.open("ret2/images-00000.tar")
names = {n.rsplit(".", 1)[0]: n for n in tar.getnames()}
def pixels(keys):
    out = []
    for k in keys:
        im = Image.open(io.BytesIO(tar.extractfile(names[k]).read())).convert("RGB")
        a = np.asarray(im.resize((R, R), Image.BICUBIC), dtype=np.float32) / 127.5 - 1
        out.append(torch.from_numpy(a).permute(2, 0, 1))
    return torch.stack(out)
recs = [json.loads(l) for l in open("ret2/test.ids.jsonl")]
image_keys = [r["image"] for r in recs]
text_ids = ["%s#%d" % (r["image"], k) for r in recs for k in range(len(r["ids_list"]))]
rows = [ids for r in recs for ids in r["ids_list"]]
ids = torch.zeros(len(rows), T, dtype=torch.long); mask = torch.zeros_like(ids)
for i, r in enumerate(rows):
    ids[i, :len(r)] = torch.tensor(r); mask[i, :len(r)] = 1
assert int(mask.sum()) < mask.numel(), "no padded text"
images = pixels(image_keys)
img, txt, sims, i2t, t2i = eve_ref.official_evaluation(m, images, ids, mask, k_test=6)
# Capacity drops tokens in these passes, and the batch matters: texts embedded 32 at a
# time give other embeddings.
with torch.no_grad():
    loads = m.backbone("text", text_ids=ids, text_mask=mask)["loads"]
    S = ids.numel()
    assert any(int(k.sum()) < 2 * S for k in loads), "no token was dropped"
    small = eve_ref.official_evaluation(m, images, ids, mask, k_test=6, text_bs=32)[1]
    assert (small - txt).abs().max() > 1e-4, "the text batch makes no difference"

def close(name, got, want, tol=1e-5):
    got = torch.as_tensor(np.asarray(got, dtype=np.float32)); want = want.float()
    assert got.shape == want.shape, (name, got.shape, want.shape)
    err = (got - want).abs().max().item()
    assert err <= tol, "%s differs from the official evaluation by %g" % (name, err)
    print("%s: max |diff| %.2g" % (name, err))

# eve-embed: rows by id.
def by_id(stem, order):
    e = np.load(stem + ".npy"); row = {json.loads(l)["id"] if l.startswith("{") else json.loads(l): i
                                      for i, l in enumerate(open(stem + ".ids.jsonl"))}
    return e[[row[k] for k in order]]
close("eve-embed images", by_id("img", image_keys), img)
close("eve-embed texts", by_id("txt", text_ids), txt)
# The final LayerNorm really is skipped: applying it would give other vectors.
with torch.no_grad():
    after = torch.nn.functional.normalize(m.itc_text_proj_head(m.backbone("text", text_ids=ids, text_mask=mask)["hidden"][:, 0]), dim=-1)
assert (after - txt).abs().max() > 1e-3, "the test cannot tell the two CLS vectors apart"

# eve-finetune --eval-only: the two score matrices.
close("eve-finetune i2t", np.load("ev/predictions/test.i2t.npy"), i2t)
close("eve-finetune t2i", np.load("ev/predictions/test.t2i.npy"), t2i)

# eve-rank --rerank: each query's re-ranked logits.
for name, qids, gids, ref in (("i2t", image_keys, text_ids, i2t), ("t2i", text_ids, image_keys, t2i)):
    n = 0
    for line in open(name + ".jsonl"):
        r = json.loads(line)
        q = qids.index(r["query"])
        for g, s in r["results"]:
            want = ref[q, gids.index(g)].item()
            assert want != -100 and abs(s - want) <= 1e-5, (name, r["query"], g, s, want)
            n += 1
    assert n == 6 * len(qids), (name, n)
    print("eve-rank %s: %d logits equal" % (name, n))
PYEOF
echo ok
