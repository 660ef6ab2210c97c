#!/usr/bin/env bash
# eve-prep on awkward inputs that must not stop a run: a palette PNG with a transparency
# chunk (kept).
set -euo pipefail
: "${EVE_BIN:?}" "${EVE_PYTHON:?}"
prep=$EVE_BIN/eve-prep
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# Runs eve-prep with stderr in $tmp/err and its exit status in $rc.
run_prep() {
  set +e
  "$prep" "$@" 2>"$tmp/err"
  rc=$?
  set -e
}

# 1. A palette PNG with tRNS (Pillow writes it for transparency=N) is decoded like Pillow's
#    convert("RGB"), not skipped as corrupt.
"$EVE_PYTHON" - "$tmp" <<'PY'
import sys
from PIL import Image
d = sys.argv[1]
img = Image.new("RGB", (64, 32))
img.putdata([((x // 8) * 32, (y // 8) * 64, 255 - (x // 8) * 30) for y in range(32) for x in range(64)])
img.convert("P", palette=Image.ADAPTIVE, colors=16).save(d + "/trns.png", transparency=3)
assert b"tRNS" in open(d + "/trns.png", "rb").read() and Image.open(d + "/trns.png").mode == "P"
Image.open(d + "/trns.png").convert("RGB").save(d + "/trns.ppm")
PY
echo '[{"image":"trns.png","caption":"a palette with transparency"}]' >"$tmp/trns.json"
run_prep -q pairs --ann "$tmp/trns.json" --images "$tmp" --size 0 --quality 100 --out "$tmp/trns"
[[ $rc == 0 ]] || fail "palette+tRNS PNG: exit $rc: $(cat "$tmp/err")"
"$EVE_PYTHON" - "$tmp" <<'PY' || fail "palette+tRNS PNG record or pixels"
import io, json, sys, tarfile
import numpy as np
from PIL import Image
d = sys.argv[1]
m = json.load(open(d + "/trns/manifest.json"))
assert m["counts"]["images_skipped"] == 0 and m["counts"]["records"] == 1, m["skipped"]
rec = json.loads(open(d + "/trns/train.jsonl").read())
assert rec == {"image": "trns", "text": "a palette with transparency"}, rec
stored = Image.open(io.BytesIO(tarfile.open(d + "/trns/images-00000.tar").extractfile("trns.jpg").read()))
# Against Pillow's decode, stored as JPEG the same way (quality 100, 4:2:0).
jpeg = io.BytesIO()
Image.open(d + "/trns.ppm").save(jpeg, "JPEG", quality=100)
want = np.asarray(Image.open(jpeg).convert("RGB"), dtype=float)
got = np.asarray(stored.convert("RGB"), dtype=float)
assert got.shape == want.shape and np.abs(got - want).mean() < 0.5, np.abs(got - want).mean()
PY
echo "bad_input_media: ok"
