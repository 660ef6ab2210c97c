# Sourced first by every CLI test (`source "$(dirname "$0")/lib.bash"`), never run. One
# preamble and one set of helpers, so that the tests differ only in what they check.
#
# At source time: strict mode; EVE_BIN and EVE_SOURCE required (made absolute, since the
# test moves away from where it was started); EVE_PYTHON defaulting to /usr/bin/python3
# (also as PY, and `py ARGS` runs it); the programs first on PATH; a scratch dir, both $t
# and $tmp (the tests grew up with both names), that is the current directory and is
# removed on exit.
#
# Failing: `fail MSG` stops the test at once. flunk, check, has, lacks, expect_error and any
# `fail=1` only record the failure and let the test go on, so one run names every broken
# expectation; the exit handler turns a recorded failure into exit status 1, so nothing
# recorded is lost even where a test forgets to `exit $fail`. (`fail` the function and `fail`
# the flag live in bash's separate namespaces for functions and variables.)
#
# Fixtures: the toy world as caption pairs with a tokenizer (toy_pairs, toy_vqa), a small
# retrieval dataset dir (make_dataset), tiny random bundles written by the Python reference
# model (make_bundle, make_image_bundle, widen_weights), and comparisons of runs
# (same_metrics, same_weights). ORACLE_PRELUDE is Python that loads ./bundle for oracles.

set -euo pipefail
: "${EVE_BIN:?set EVE_BIN to the folder of the built programs}"
: "${EVE_SOURCE:?set EVE_SOURCE to the source tree}"
EVE_BIN=$(cd "$EVE_BIN" && pwd)
EVE_SOURCE=$(cd "$EVE_SOURCE" && pwd)
: "${EVE_PYTHON:=/usr/bin/python3}"
PY=$EVE_PYTHON
export EVE_BIN EVE_SOURCE EVE_PYTHON PATH="$EVE_BIN:$PATH"
py() { "$EVE_PYTHON" "$@"; }

fail=0
t=$(mktemp -d)
tmp=$t
cd "$t"
# The exit handler removes its own copy of the path: a test that reuses the name t or tmp
# must not turn the clean-up onto another directory.
_eve_scratch=$t

# on_exit COMMAND: run COMMAND (with eval) when the test ends, before the scratch dir goes.
# A test that needs its own clean-up registers it here: a second `trap ... EXIT` would
# replace this one and leave the scratch dir behind.
_eve_on_exit=()
on_exit() { _eve_on_exit+=("$1"); }
_eve_exit() {
  local rc=$? c
  for c in "${_eve_on_exit[@]}"; do eval "$c" || true; done
  cd /
  rm -rf "$_eve_scratch"
  [[ $rc != 0 || $fail == 0 ]] || rc=1
  exit "$rc"
}
trap _eve_exit EXIT

# fail MSG...: the test cannot go on; says why and exits 1.
fail() { echo "FAIL: $*" >&2; exit 1; }

# flunk MSG...: one expectation does not hold; says why, records it and goes on.
flunk() { echo "FAIL: $*" >&2; fail=1; }

# check NAME WANT GOT: the two strings are equal; records a failure otherwise.
check() {
  [[ "$2" == "$3" ]] || flunk "$1
  want: $2
  got:  $3"
}

# has NAME FILE TEXT: FILE holds TEXT (a literal substring); lacks NAME FILE TEXT: it does
# not. Both record a failure showing the file otherwise.
has() {
  grep -qF -- "$3" "$2" || { flunk "$1: no \"$3\" in $2:"; sed 's/^/  | /' "$2" >&2; }
}
lacks() {
  if grep -qF -- "$3" "$2"; then flunk "$1: \"$3\" in $2:"; sed 's/^/  | /' "$2" >&2; fi
}

# expect_error [--many-lines] CODE TEXT -- COMMAND...: COMMAND exits with status CODE,
# writes nothing on stdout, and its stderr is one line holding TEXT (a literal substring):
# an error is one line that names what is wrong. --many-lines allows more lines around it,
# for programs that log before they fail or print their usage. Records a failure, saying what
# the command did, otherwise. stdout and stderr stay in $t/out and $t/err for further checks.
expect_error() {
  local lines=one
  if [[ $1 == --many-lines ]]; then lines=many; shift; fi
  local code=$1 text=$2 rc=0
  [[ ${3-} == -- ]] || fail "expect_error: want CODE TEXT -- COMMAND..., got: $*"
  shift 3
  "$@" >"$t/out" 2>"$t/err" || rc=$?
  local err
  err=$(cat "$t/err")
  if [[ $rc != "$code" ]]; then
    flunk "$*: exit $rc, want $code; stderr: $err"
  elif [[ $err != *"$text"* ]]; then
    flunk "$*: stderr lacks \"$text\": $err"
  elif [[ $lines == one && $(wc -l <"$t/err") != 1 ]]; then
    flunk "$*: stderr is not one line: $err"
  elif [[ -s $t/out ]]; then
    flunk "$*: wrote to stdout: $(head -c 600 "$t/out")"
  fi
}

# ---- fixtures ----

# toy_pairs COUNT SIZE SEED VOCAB: the toy world in $tmp/w, its caption pairs as a dataset dir
# $tmp/d with ids.jsonl (encoded) and train.jsonl (text only), and $tmp/tok.model (+ tok.json).
toy_pairs() {
  "$EVE_BIN/eve-prep" synth --out "$tmp/w" --count "$1" --size "$2" --seed "$3" -q
  "$EVE_BIN/eve-prep" -q pairs --ann "$tmp/w/pairs_train.json" --images "$tmp/w" --out "$tmp/d"
  "$EVE_BIN/eve-tokenize" train -q "$tmp/d/train.jsonl" -o "$tmp/tok.model" --vocab-size "$4"
  "$EVE_BIN/eve-tokenize" encode --tokenizer "$tmp/tok.model" "$tmp/d/train.jsonl" >"$tmp/d/ids.jsonl"
}

# toy_vqa: $tmp/vqa, the VQA train and val splits of the world toy_pairs made, with token ids.
toy_vqa() {
  "$EVE_BIN/eve-prep" -q vqa --questions train="$tmp/w/vqa/questions_train.json" \
    --annotations train="$tmp/w/vqa/annotations_train.json" --questions val="$tmp/w/vqa/questions_val.json" \
    --annotations val="$tmp/w/vqa/annotations_val.json" --images "$tmp/w/images" --size 0 --out "$tmp/vqa"
  for f in "$tmp"/vqa/*.jsonl; do "$EVE_BIN/eve-tokenize" encode --tokenizer "$tmp/tok.model" "$f" -o "${f%.jsonl}.ids.jsonl"; done
}

# make_dataset: in the current dir, w/ (eve-prep synth), ret/ (retrieval dataset dir: 18
# images, test.jsonl with 2 records of 5 captions) and tok.model.
make_dataset() {
  "$EVE_BIN/eve-prep" synth --out w --count 20 --size 48 --nlvr-sets 2 --seed 4 -q
  "$EVE_BIN/eve-prep" -q retrieval --ann train=w/retrieval_train.json --ann test=w/retrieval_test.json \
    --images w --out ret
  "$EVE_BIN/eve-tokenize" train -q w/corpus.txt -o tok.model --vocab-size 300
}

# make_bundle DIR: a tiny config with the retrieval heads and weights drawn by the Python
# reference model, so the programs are checked against an implementation they do not share.
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

# make_image_bundle DIR: the tiny bundle of make_bundle with weights that let the image
# content through. At the usual small initialisation (std 0.02, small layer scales) the
# vision CLS barely attends to the patches and every image embeds to almost one vector
# (cosines above 0.99999 between unrelated images); with weights of std 1/sqrt(fan-in)
# and layer scales of 1 it behaves like a random-feature model: copies of one image stay
# close and different images do not.
make_image_bundle() {
  make_bundle "$1"
  "$PY" - "$EVE_SOURCE/tests/reference" "$1" <<'PYEOF'
import math, sys, torch
sys.path.insert(0, sys.argv[1])
import eve_ref, eve_ref_io
m = eve_ref.EveRef(eve_ref.read_config(sys.argv[2] + "/config.json"))
eve_ref.init_weights(m, 5)
g = torch.Generator().manual_seed(5)
with torch.no_grad():
    for n, p in m.named_parameters():
        if n.endswith(("gamma_1", "gamma_2")):
            p.fill_(1.0)
        elif (p.dim() >= 2 and "embed" not in n) or n.endswith("patch_embed.weight"):
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))
eve_ref_io.save(sys.argv[2] + "/model.safetensors", dict(m.named_parameters()))
PYEOF
}

# widen_weights BUNDLE_DIR: redraws every matrix of the bundle from N(0, 0.3), seed 0. With
# a tiny model's own initialisation every ITC feature is nearly the same, the contrastive
# loss sits at ln(batch) and its gradient is float noise; wide weights make pairs differ.
widen_weights() {
  "$EVE_PYTHON" - "$1/model.safetensors" <<'PY'
import json, struct, sys
import numpy as np
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); d = bytearray(b[8 + n:])
rng = np.random.default_rng(0)
for k, v in h.items():
    if k != "__metadata__" and len(v["shape"]) >= 2:
        s, e = v["data_offsets"]
        d[s:e] = rng.normal(0, 0.3, (e - s) // 4).astype(np.float32).tobytes()
open(sys.argv[1], "wb").write(b[:8 + n] + bytes(d))
PY
}

# Python preamble for oracles (argv[1]: tests/reference): the reference model `m` of
# ./bundle, `pixels(keys)`, the evaluation transform of ret/'s images (Pillow decode +
# bicubic resize), and `text_batch(rows)`, padded ids and mask.
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

# same_metrics NAME A B: two metrics.jsonl files agree line by line but for timings
# (samples_per_s, an evaluation's seconds).
same_metrics() {
  "$EVE_PYTHON" - "$2" "$3" <<'EOF' || { echo "FAIL $1: metrics differ from the reference run"; fail=1; }
import json, sys
def rows(path):
    out = []
    for line in open(path):
        r = json.loads(line)
        r.pop("samples_per_s", None)
        if "eval" in r:
            r["eval"].pop("seconds", None)
        out.append(r)
    return out
a, b = rows(sys.argv[1]), rows(sys.argv[2])
if a != b:
    print(f"  {len(a)} vs {len(b)} lines")
    for x, y in zip(a, b):
        if x != y:
            print("  first difference:", x, "|", y)
            break
    sys.exit(1)
EOF
}

# same_weights LABEL ONE TWO MAX FRACTION: the model.safetensors of bundle dirs ONE and TWO
# have the same tensors, whose float32 values differ by less than MAX, and at most FRACTION
# of them by more than 1e-6. Records a failure (and says why) when they do not.
same_weights() {
  "$EVE_PYTHON" - "$@" <<'PY' || fail=1
import json, struct, sys
import numpy as np
def load(p):
    b = open(p + "/model.safetensors", "rb").read(); n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n]); d = b[8 + n:]
    return {k: np.frombuffer(d[v["data_offsets"][0]:v["data_offsets"][1]], dtype=np.float32)
            for k, v in h.items() if k != "__metadata__"}
label, x, y, most, fraction = sys.argv[1], load(sys.argv[2]), load(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
if x.keys() != y.keys():
    print(f"FAIL {label}: the bundles hold different tensors"); sys.exit(1)
d = np.concatenate([np.abs(x[k] - y[k]) for k in sorted(x)])
print(f"{label}: max |1 process - 2 processes| = {d.max():.3g}; {(d > 1e-6).mean():.2e} of {d.size} weights differ by more than 1e-6")
if not (d.max() < most and (d > 1e-6).mean() <= fraction): print(f"FAIL {label}: weights differ"); sys.exit(1)
PY
}
