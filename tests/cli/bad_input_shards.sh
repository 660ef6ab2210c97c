#!/usr/bin/env bash
# Per-sample problems in tar shards never stop a shard: eve-prep webdataset skips a sample
# with two images, a .json that is not a JSON object with a string caption, a member name
# that is not UTF-8, no image or no caption, each under its own reason, named shard:member
# in the manifest and counted toward --max-bad; eve-embed keeps the first member of a
# repeated id in a tar (duplicate-key) and skips names that are not UTF-8 (name-not-utf8),
# so every .ids.jsonl line is valid UTF-8 and unique per archive. Annotation fields of the
# wrong type and out-of-range flags are one-line errors naming the file and field.
source "$(dirname "$0")/lib.bash"
prep=$EVE_BIN/eve-prep
embed=$EVE_BIN/eve-embed
# Runs a command with stderr in ./err and its exit status in $rc.
run() {
  set +e
  "$@" 2>err
  rc=$?
  set -e
}
no_library_text() {  # name: stderr holds no exception text of a library
  ! grep -q 'json.exception\|type_error\|parse_error\|stoi\|filesystem error\|terminate called' err ||
    flunk "$1: library message on stderr: $(cat err)"
}

"$PY" - <<'PY'
from PIL import Image
for i, c in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
    Image.new("RGB", (24, 16), c).save("c%d.jpg" % i, quality=95)
    Image.new("RGB", (24, 16), c).save("c%d.png" % i)
PY
# make_shard OUT SPEC...: SPEC is "member=text" or "member=@file"; \xNN in a member name is
# that byte.
make_shard() {
  "$PY" - "$@" <<'PY'
import io, re, sys, tarfile
out, specs = sys.argv[1], sys.argv[2:]
with tarfile.open(out, "w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape") as t:
    for spec in specs:
        name, value = spec.split("=", 1)
        name = re.sub(r"\\x([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]).decode("utf-8", "surrogateescape"), name)
        data = open(value[1:], "rb").read() if value.startswith("@") else value.encode()
        ti = tarfile.TarInfo(name); ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
PY
}

# ---- eve-prep webdataset: one shard, one sample per problem, the good ones around them ----
make_shard s.tar 000.jpg=@c0.jpg 000.txt=first \
  001.jpg=@c1.jpg 001.png=@c1.png 001.txt=two \
  002.jpg=@c2.jpg '002.json={"caption": "cut' \
  003.jpg=@c0.jpg '003.json=["a list"]' \
  004.jpg=@c1.jpg '004.json={"caption": 7}' \
  005.txt=lonely \
  006.jpg=@c2.jpg '006.json={"url": "http://x"}' \
  '00\xff.jpg=@c0.jpg' '00\xff.txt=odd name' \
  007.jpg=@c1.jpg '007.json={"caption": null, "url": "u"}' 007.txt=last
run "$prep" webdataset --input s.tar --out wds
[[ $rc == 3 ]] || flunk "prep past --max-bad: exit $rc: $(cat err)"
no_library_text "prep webdataset"
grep -q 'skipped 7 of 9 images (3 bad-json, 1 name-not-utf8, 1 no-image, 1 no-text, 1 two-images) and 7 records' err ||
  flunk "prep summary: $(cat err)"
"$PY" - <<'PY' || flunk "prep manifest or records"
import json
m = json.load(open("wds/manifest.json"))
assert m["skipped_by_reason"] == {"bad-json": 3, "name-not-utf8": 1, "no-image": 1, "no-text": 1, "two-images": 1}, m["skipped_by_reason"]
assert m["counts"]["records"] == 2 and m["counts"]["records_skipped"] == 7, m["counts"]
got = [(e["image"], e["reason"], e["message"], e["records"]) for e in m["skipped"]]
want = [
    ("s.tar:001.png", "two-images", "the sample has two images, 001.jpg and 001.png"),
    ("s.tar:002.json", "bad-json", "invalid JSON: parse error at line 1, column 17: syntax error while parsing value - invalid string: missing closing quote; last read: '\"cut'"),
    ("s.tar:003.json", "bad-json", "expected a JSON object, got array"),
    ("s.tar:004.json", "bad-json", 'field "caption" must be a string, got number'),
    ("s.tar:005.txt", "no-image", "the sample has no .jpg, .jpeg, .png or .webp member"),
    ("s.tar:006.jpg", "no-text", 'the sample has no .txt member and no "caption" in a .json member'),
    ("s.tar:00\ufffd.jpg", "name-not-utf8", "the member name '00\\xff.jpg' is not valid UTF-8"),
]
assert [g[:3] for g in got] == want, got
assert [g[3] for g in got] == [["s.tar: " + w[0][6:]] for w in want], got
recs = [json.loads(l) for l in open("wds/train.jsonl")]
assert recs == [{"image": "000", "text": "first"}, {"image": "007", "text": "last", "url": "u"}], recs
src = m["sources"][0]
assert (src["samples"], src["samples_without_image"], src["samples_without_text"]) == (9, 1, 1), src
PY
run "$prep" -q webdataset --input s.tar --out wds2 --max-bad 0.8
[[ $rc == 0 ]] || flunk "prep within --max-bad: exit $rc: $(cat err)"
cmp -s wds/train.jsonl wds2/train.jsonl || flunk "records differ with --max-bad"

# ---- eve-embed: a tar with a repeated id and a member name that is not UTF-8 ----
make_bundle bundle
make_shard e.tar a.jpg=@c0.jpg a.png=@c1.png a.txt=caption b.jpg=@c2.jpg 'c\xff.jpg=@c0.jpg' \
  notes.json='{}' b.png=@c0.png
run "$embed" -m bundle --images e.tar -o e
[[ $rc == 3 ]] || flunk "embed past --max-bad: exit $rc: $(cat err)"
no_library_text "embed tar"
grep -q 'skipped 3 of 5 images (2 duplicate-key, 1 name-not-utf8)' err || flunk "embed summary: $(cat err)"
grep -qF "e.tar:a.png: duplicate-key: the id 'a' is a.jpg's, an earlier member of this archive; the first is kept" err ||
  flunk "embed a.png: $(cat err)"
grep -qF "e.tar:b.png: duplicate-key: the id 'b' is b.jpg's" err || flunk "embed b.png: $(cat err)"
grep -qF "e.tar:c\\xff.jpg: name-not-utf8: the member name 'c\\xff' is not valid UTF-8, so no id can name it" err ||
  flunk "embed c\\xff.jpg: $(cat err)"
[[ $(cat e.ids.jsonl | tr '\n' ' ') == '"a" "b" ' ]] || flunk "embed ids: $(cat e.ids.jsonl)"
"$PY" -c 'import numpy; assert numpy.load("e.npy").shape[0] == 2' || flunk "embed rows"
run "$embed" -q -m bundle --images e.tar -o e2 --max-bad 0.6
[[ $rc == 0 ]] || flunk "embed within --max-bad: exit $rc: $(cat err)"
# A path list naming a file whose name is not UTF-8: skipped, not written as U+FFFD.
cp c0.jpg "$(printf 'p\xff.jpg')"
printf 'c1.jpg\np\xff.jpg\n' >list.txt
run "$embed" -m bundle --images list.txt -o l --max-bad 0.5
[[ $rc == 0 ]] || flunk "embed list: exit $rc: $(cat err)"
grep -qF "skipped p\\xff.jpg: name-not-utf8: the path 'p\\xff.jpg' is not valid UTF-8" err || flunk "embed list: $(cat err)"
[[ $(cat l.ids.jsonl) == '"c1.jpg"' ]] || flunk "embed list ids: $(cat l.ids.jsonl)"

# ---- one-line errors for annotation fields and flags a library would have refused ----
"$prep" synth --out w --count 4 --size 32 --nlvr-sets 1 --seed 3 -q
echo '{"data_subtype": 2014, "questions": [{"image_id": 1, "question": "q?", "question_id": 1}]}' >q.json
run "$prep" vqa --questions val=q.json --images w/images --size 0 --out v
[[ $rc == 1 && $(cat err) == 'eve-prep: error: q.json:data_subtype: field "data_subtype" must be a string' ]] ||
  flunk "vqa data_subtype: exit $rc: $(cat err)"
echo '{"data_subtype": "synth", "questions": [{"image_id": 1, "question": "q?", "question_id": 1}]}' >q.json
run "$prep" vqa --questions val=q.json --images w/images --size 0 --out v --image-name 'x{image_id:99999999999}.jpg'
[[ $rc == 2 && $(cat err) == 'eve-prep: error: bad width in --image-name field {image_id:99999999999} (a number of digits up to 64)' ]] ||
  flunk "--image-name width: exit $rc: $(cat err)"

[[ $fail == 0 ]] || exit 1
echo "bad_input_shards: ok"
