# Shared by the eve-embed and eve-rank --rerank CLI tests (sourced, not run): a random
# bundle written by the Python reference model, and a small retrieval dataset dir from
# eve-prep with a tokenizer trained on its corpus. Expects EVE_BIN, EVE_SOURCE, PY and the
# current directory to be a scratch dir.

# make_bundle DIR: tiny config with the retrieval heads, reference-model weights.
make_bundle() {
  mkdir -p "$1"
  cat >"$1/config.json" <<'JSON'
{"vision_width": 32, "patch_size": 8, "num_attention_heads": 2, "intermediate_size": 64,
 "num_hidden_layers": 3, "moeffn_layers": [2], "moe_param": {"num_experts": 4, "topk": 2, "type_route": true},
 "vocab_size": 300, "image_res": 32, "max_text_len": 16, "text_pos_rows": 16, "drop_path_rate": 0.0,
 "text_dropout": 0.0, "heads": ["itc", "itm"]}
JSON
  "$PY" - "$EVE_SOURCE/tests/reference" "$1" <<'PYEOF'
import sys; sys.path.insert(0, sys.argv[1])
import eve_ref, eve_ref_io
m = eve_ref.EveRef(eve_ref.read_config(sys.argv[2] + "/config.json"))
eve_ref.init_weights(m, 5)
eve_ref_io.save(sys.argv[2] + "/model.safetensors", dict(m.named_parameters()))
PYEOF
}

# make_dataset: w/ (eve-prep synth), ret/ (retrieval dataset dir: 18 images, test.jsonl with
# 2 records of 5 captions), tok.model.
make_dataset() {
  "$EVE_BIN/eve-prep" synth --out w --count 20 --size 48 --nlvr-sets 2 --seed 4 -q
  "$EVE_BIN/eve-prep" -q retrieval --ann train=w/retrieval_train.json --ann test=w/retrieval_test.json \
    --images w --out ret
  "$EVE_BIN/eve-tokenize" train -q w/corpus.txt -o tok.model --vocab-size 300
}

# Python preamble for oracles: the reference model `m` of ./bundle and `pixels(keys)`, the
# evaluation transform of the dataset dir's images (Pillow decode + bicubic resize).
ORACLE_PRELUDE='
import io, json, sys, tarfile
sys.path.insert(0, sys.argv[1])
import numpy as np, torch, torch.nn.functional as F
from PIL import Image
import eve_ref
m = eve_ref.load_model("bundle"); m.eval()
cfg = m.cfg; R = cfg["image_res"]; T = cfg["max_text_len"]
store_keys = [l.split("\t")[0] for l in open("ret/images.idx").read().splitlines()[3:]]
_tar = tarfile.open("ret/images-00000.tar")
def pixels(keys):
    out = []
    for k in keys:
        im = Image.open(io.BytesIO(_tar.extractfile(k + ".jpg").read())).convert("RGB")
        a = np.asarray(im.resize((R, R), Image.BICUBIC), dtype=np.float32) / 127.5 - 1
        out.append(torch.from_numpy(a).permute(2, 0, 1))
    return torch.stack(out)
def text_batch(rows):
    ids = torch.zeros(len(rows), T, dtype=torch.long); mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r); mask[i, :len(r)] = 1
    return ids, mask
'
