#!/usr/bin/env bash
# eve-prep end to end: the toy world through every subcommand, byte-identical reruns,
# thread-count independence, error lines and exit codes.
source "$(dirname "$0")/lib.bash"
prep=$EVE_BIN/eve-prep

# The toy world: same seed, same bytes; another seed, other bytes.
"$prep" synth --out "$tmp/w" --count 20 --size 32 --nlvr-sets 4 --seed 5 -q
"$prep" synth --out "$tmp/w2" --count 20 --size 32 --nlvr-sets 4 --seed 5 --threads 1 -q
"$prep" synth --out "$tmp/w3" --count 20 --size 32 --nlvr-sets 4 --seed 6 -q
diff -r "$tmp/w" "$tmp/w2" >/dev/null || fail "synth is not deterministic"
diff -q "$tmp/w/corpus.txt" "$tmp/w3/corpus.txt" >/dev/null && fail "another seed gave the same corpus"
w=$tmp/w

# Every subcommand on it.
"$prep" -q retrieval --ann train="$w/retrieval_train.json" --ann test="$w/retrieval_test.json" --images "$w" --out "$tmp/ret"
[[ $(wc -l <"$tmp/ret/train.jsonl") == 16 && $(wc -l <"$tmp/ret/test.jsonl") == 2 ]] || fail "retrieval record counts"
# VQA v2 files and the VG QA file into one training split, as EVE trains VQA.
"$prep" -q vqa --questions train="$w/vqa/questions_train.json" --annotations train="$w/vqa/annotations_train.json" \
  --ann train="$w/vqa/vg_qa.json" --vg-images "$w" \
  --questions test="$w/vqa/questions_test.json" --images "$w/images" --out "$tmp/vqa" --size 16
# 16 pool images and 16 NLVR2 training images (2 sets of 4 pairs), 4 questions each.
[[ $(wc -l <"$tmp/vqa/train.jsonl") == 128 ]] || fail "vqa train records"
[[ $(grep -c '"image":"vg_nlvr2_images_train_' "$tmp/vqa/train.jsonl") == 64 ]] || fail "vg qa records"
grep -q '"answers":\[' "$tmp/vqa/train.jsonl" || fail "vqa answers missing"
grep -q '"answers"' "$tmp/vqa/test.jsonl" && fail "test questions without annotations got answers"
"$prep" -q nlvr2 --ann train="$w/nlvr2/train.json" --ann dev="$w/nlvr2/dev.json" --images "$w/nlvr2/images" --out "$tmp/nlvr"
[[ $(wc -l <"$tmp/nlvr/dev.jsonl") == 8 ]] || fail "nlvr2 dev records"
"$EVE_PYTHON" - "$tmp/nlvr" <<'PY' || fail "nlvr2 dataset dir"
import json, sys, tarfile
d = sys.argv[1]
m = json.load(open(d + "/manifest.json"))
assert m["counts"]["images_skipped"] == 0, m
assert m["task"] == "nlvr2"
keys = {l.split("\t")[0] for l in open(d + "/images.idx").read().splitlines()[3:]}
names = {n[:-4] for n in tarfile.open(d + "/images-00000.tar").getnames()}
assert keys == names, (len(keys), len(names))
for line in open(d + "/dev.jsonl"):
    r = json.loads(line)
    assert all(k in keys for k in r["images"]) and r["label"] in ("True", "False") and r["identifier"].startswith("dev-")
PY

# Output bytes do not depend on --threads.
"$prep" -q pairs --ann "$w/pairs_train.json" --images "$w" --size 20 --out "$tmp/p1" --threads 1
"$prep" -q pairs --ann "$w/pairs_train.json" --images "$w" --size 20 --out "$tmp/p2" --threads 3
diff -r "$tmp/p1" "$tmp/p2" >/dev/null || fail "output depends on --threads"
[[ $(wc -l <"$tmp/p1/train.jsonl") == 80 ]] || fail "pairs records"

# A webdataset shard as webdataset's TarWriter writes it (pax headers, float mtimes).
"$EVE_PYTHON" - "$w" "$tmp/00000.tar" <<'PY'
import io, json, sys, tarfile, time
w, out = sys.argv[1], sys.argv[2]
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
    for i in range(3):
        key = "%09d" % i
        for ext, data in (("jpg", open(w + "/images/COCO_synth_%012d.jpg" % (i + 1), "rb").read()),
                          ("json", json.dumps({"url": "u%d" % i, "key": key}, indent=4).encode()),
                          ("txt", ("caption %d" % i).encode())):
            ti = tarfile.TarInfo(key + "." + ext); ti.size = len(data); ti.mtime = time.time(); ti.mode = 0o444
            t.addfile(ti, io.BytesIO(data))
PY
"$prep" -q webdataset --input "$tmp/00000.tar" --out "$tmp/wds"
[[ $(head -1 "$tmp/wds/train.jsonl") == '{"image":"000000000","text":"caption 0","key":"000000000","url":"u0"}' ]] ||
  fail "webdataset record: $(head -1 "$tmp/wds/train.jsonl")"

# Broken images: skipped, counted, in the manifest; past --max-bad exit 3 after writing it.
cp "$w/images/COCO_synth_000000000001.jpg" "$tmp/good.jpg"
head -c 300 "$tmp/good.jpg" >"$tmp/trunc.jpg"
echo '[{"image":"good.jpg","caption":"a"},{"image":"trunc.jpg","caption":"b"},{"image":"gone.jpg","caption":"c"}]' >"$tmp/bad.json"
set +e
"$prep" pairs --ann "$tmp/bad.json" --images "$tmp" --out "$tmp/bad" 2>"$tmp/err"
rc=$?
set -e
[[ $rc == 3 ]] || fail "expected exit 3 past --max-bad, got $rc"
grep -q 'skipped 2 of 3 images (1 missing, 1 truncated)' "$tmp/err" || fail "no stderr summary: $(cat "$tmp/err")"
grep -q 'error: .*manifest.json: 2 of 3 images were bad' "$tmp/err" || fail "no exit-3 error line: $(cat "$tmp/err")"
[[ -f $tmp/bad/manifest.json && $(wc -l <"$tmp/bad/train.jsonl") == 1 ]] || fail "manifest/records not written"
"$prep" -q pairs --ann "$tmp/bad.json" --images "$tmp" --out "$tmp/bad2" --max-bad 0.7 || fail "--max-bad 0.7 should pass"

# Malformed annotations: one error line naming file and JSON path, nothing written.
echo '[{"image":"good.jpg","caption":"a"},{"image":"good.jpg"}]' >"$tmp/malformed.json"
set +e
"$prep" pairs --ann "$tmp/malformed.json" --out "$tmp/m" 2>"$tmp/err"
rc=$?
set -e
[[ $rc == 1 ]] || fail "malformed annotations: exit $rc"
[[ $(cat "$tmp/err") == "eve-prep: error: $tmp/malformed.json:[1]: missing field \"caption\"" ]] ||
  fail "error line: $(cat "$tmp/err")"
[[ ! -e $tmp/m/manifest.json && ! -e $tmp/m/train.jsonl ]] || fail "files written for malformed input"

# Usage errors exit 2.
set +e
"$prep" pairs --ann "$tmp/bad.json" --out "$tmp/u" --shard 2/2 2>"$tmp/err"
rc=$?
set -e
[[ $rc == 2 ]] || fail "bad --shard: exit $rc"
grep -q -- "--shard 2/2: need 0 <= I < N" "$tmp/err" || fail "shard message: $(cat "$tmp/err")"
echo "prep_cli: ok"
