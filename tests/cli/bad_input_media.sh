#!/usr/bin/env bash
# eve-prep on awkward inputs that must not stop a run: a palette PNG with a transparency
# chunk (kept), webdataset captions that are not UTF-8 and samples whose key repeats in a
# shard (skipped, counted and named in the manifest), a shard whose file name is not UTF-8.
source "$(dirname "$0")/lib.bash"
prep=$EVE_BIN/eve-prep
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

# Webdataset shards written with tarfile: SPEC is "member=text" or "member=@image".
"$EVE_PYTHON" - "$tmp" <<'PY'
import io, sys
from PIL import Image
d = sys.argv[1]
for i, c in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]):
    Image.new("RGB", (24, 16), c).save(d + "/c%d.jpg" % i, quality=95)
PY
make_shard() {
  "$EVE_PYTHON" - "$tmp" "$@" <<'PY'
import io, sys, tarfile
d, out, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
    for spec in specs:
        name, value = spec.split("=", 1)
        data = open(d + "/" + value[1:], "rb").read() if value.startswith("@") else value.encode("utf-8", "surrogateescape")
        ti = tarfile.TarInfo(name); ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
PY
}

# 2. Captions that are not UTF-8 (a .txt, a .json's caption): those samples are skipped as
#    text-not-utf8, named by shard and member; the others are written. Past --max-bad exit 3.
bad_txt=$(printf 'caf\xe9 au lait')
bad_json=$(printf '{"caption": "na\xefve"}')
make_shard "$tmp/utf8.tar" 000.jpg=@c0.jpg 000.txt=fine 001.jpg=@c1.jpg "001.txt=$bad_txt" \
  002.jpg=@c2.jpg "002.json=$bad_json" 003.jpg=@c3.jpg '003.json={"caption": "also fine"}'
run_prep webdataset --input "$tmp/utf8.tar" --out "$tmp/utf8"
[[ $rc == 3 ]] || fail "text-not-utf8 past --max-bad: exit $rc: $(cat "$tmp/err")"
grep -q 'json.exception' "$tmp/err" && fail "library message on stderr: $(cat "$tmp/err")"
grep -q 'skipped 2 of 4 images (2 text-not-utf8) and 2 records' "$tmp/err" || fail "utf8 summary: $(cat "$tmp/err")"
grep -q "error: $tmp/utf8/manifest.json: 2 of 4 images were bad" "$tmp/err" || fail "utf8 exit-3 line: $(cat "$tmp/err")"
"$EVE_PYTHON" - "$tmp" <<'PY' || fail "text-not-utf8 manifest or records"
import json, sys
d = sys.argv[1]
m = json.load(open(d + "/utf8/manifest.json"))
assert m["skipped_by_reason"] == {"text-not-utf8": 2}, m["skipped_by_reason"]
assert m["counts"]["records_skipped"] == 2 and m["counts"]["images_skipped"] == 2, m["counts"]
s = m["skipped"]
assert [e["image"] for e in s] == [d + "/utf8.tar:001.txt", d + "/utf8.tar:002.json"], s
assert [e["records"] for e in s] == [[d + "/utf8.tar: 001.txt"], [d + "/utf8.tar: 002.json"]], s
assert s[0]["message"] == "text is not valid UTF-8 (byte 0xe9 at offset 3)", s[0]["message"]
assert s[1]["message"] == "text is not valid UTF-8 (byte 0xef at offset 15)", s[1]["message"]
texts = [json.loads(l)["text"] for l in open(d + "/utf8/train.jsonl")]
assert texts == ["fine", "also fine"], texts
PY
run_prep -q webdataset --input "$tmp/utf8.tar" --out "$tmp/utf8b" --max-bad 0.5
[[ $rc == 0 ]] || fail "text-not-utf8 within --max-bad: exit $rc: $(cat "$tmp/err")"

# 3. A key that repeats in a shard, next to its first sample or far from it: the first
#    sample is kept, every later one skipped as duplicate-key.
make_shard "$tmp/dup.tar" a.jpg=@c0.jpg a.txt=first a.jpg=@c1.jpg a.txt=adjacent \
  b.jpg=@c2.jpg b.txt=other a.jpg=@c3.jpg a.txt=distant
run_prep webdataset --input "$tmp/dup.tar" --out "$tmp/dup"
[[ $rc == 3 ]] || fail "duplicate-key past --max-bad: exit $rc: $(cat "$tmp/err")"
grep -q 'skipped 2 of 4 images (2 duplicate-key) and 2 records' "$tmp/err" || fail "dup summary: $(cat "$tmp/err")"
"$EVE_PYTHON" - "$tmp" <<'PY' || fail "duplicate-key manifest, records or store"
import json, sys
d = sys.argv[1]
m = json.load(open(d + "/dup/manifest.json"))
assert m["skipped_by_reason"] == {"duplicate-key": 2}, m["skipped_by_reason"]
s = m["skipped"]
assert [e["image"] for e in s] == [d + "/dup.tar:a.jpg"] * 2, s
assert [e["records"] for e in s] == [[d + "/dup.tar: a.jpg"]] * 2, s
assert len({e["key"] for e in s}) == 2, s
assert all("the key 'a'" in e["message"] and "first sample is kept" in e["message"] for e in s), s
recs = [json.loads(l) for l in open(d + "/dup/train.jsonl")]
assert recs == [{"image": "a", "text": "first"}, {"image": "b", "text": "other"}], recs
keys = [l.split("\t")[0] for l in open(d + "/dup/images.idx").read().splitlines()[3:]]
assert sorted(keys) == ["a", "b"], keys
PY
run_prep -q webdataset --input "$tmp/dup.tar" --out "$tmp/dupb" --max-bad 0.5
[[ $rc == 0 ]] || fail "duplicate-key within --max-bad: exit $rc: $(cat "$tmp/err")"
cmp -s "$tmp/dup/train.jsonl" "$tmp/dupb/train.jsonl" || fail "records differ with --max-bad"
# In a --shard run each skipped sample is reported by one part, so the merge counts it once.
for i in 0 1; do
  run_prep -q webdataset --input "$tmp/dup.tar" --out "$tmp/dup-part$i" --shard $i/2 --max-bad 1
  [[ $rc == 0 ]] || fail "duplicate-key part $i: exit $rc: $(cat "$tmp/err")"
done
"$prep" -q merge --out "$tmp/dup-merged" "$tmp/dup-part0" "$tmp/dup-part1"
"$EVE_PYTHON" - "$tmp" <<'PY' || fail "duplicate-key skips of a --shard run, merged"
import json, sys
d = sys.argv[1]
parts = [json.load(open(d + "/dup-part%d/manifest.json" % i))["skipped_by_reason"] for i in (0, 1)]
assert parts == [{"duplicate-key": 1}, {"duplicate-key": 1}], parts
m = json.load(open(d + "/dup-merged/manifest.json"))
assert m["skipped_by_reason"] == {"duplicate-key": 2} and m["counts"]["records_skipped"] == 2, m["counts"]
PY

# 4. A shard whose file name is not UTF-8: read and reported, the manifest written with
#    U+FFFD in place of the bad byte.
odd=$tmp/$(printf 'shard\xff').tar
cp "$tmp/utf8.tar" "$odd"
run_prep -q webdataset --input "$odd" --out "$tmp/odd" --max-bad 0.5
[[ $rc == 0 ]] || fail "non-UTF-8 shard name: exit $rc: $(cat "$tmp/err")"
grep -q 'shard\\ufffd.tar\|shard�.tar' "$tmp/odd/manifest.json" || fail "shard name in the manifest"
[[ $(wc -l <"$tmp/odd/train.jsonl") == 2 ]] || fail "records from the oddly named shard"
echo "bad_input_media: ok"
