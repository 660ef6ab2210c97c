#!/usr/bin/env bash
# eve-prep merge: the 3 parts of a --shard run, merged, equal the unsharded run (image keys
# and bytes through the index and tarfile, records as sets, manifest counts and skipped
# images); hard links or copies; up to date on a rerun; a warning for an incomplete set;
# error lines and exit codes.
source "$(dirname "$0")/lib.bash"
prep=$EVE_BIN/eve-prep

# NLVR2 statements (EVE JSON) over the toy world's images, shared between records so that
# several parts need the same image (a right image is often another record's left one),
# plus a missing image needed by records of every part.
"$prep" -q synth --out w --count 40 --size 32
"$EVE_PYTHON" - <<'PY'
import json
img = lambda i: "images/COCO_synth_%012d.jpg" % i
train = [{"images": [img(i + 1), img((i * 7 + 3) % 24 + 1)], "sentence": "s%d" % i,
          "label": ["True", "False"][i % 2], "identifier": "train-%d" % i} for i in range(24)]
train += [{"images": [img(i), "images/gone.jpg"], "sentence": "x", "label": "True"} for i in (1, 4, 2)]
dev = [{"images": [img(25 + i % 6), img(25 + (i + 2) % 9)], "sentence": "d%d" % i, "label": "True"}
       for i in range(10)]
json.dump(train, open("w/nlvr_train.json", "w"))
json.dump(dev, open("w/nlvr_dev.json", "w"))
PY
args=(nlvr2 --ann train=w/nlvr_train.json --ann dev=w/nlvr_dev.json --images w --max-bad 0.5 --shard-bytes 20000
  --size)
"$prep" -q "${args[@]}" 24 --out full
for i in 0 1 2; do
  "$prep" -q "${args[@]}" 24 --shard $i/3 --out p$i
  sed 's/}$/,"ids":[1,2]}/' p$i/train.jsonl >p$i/train.ids.jsonl  # as eve-tokenize encode adds
done

"$prep" merge --out m p0 p1 p2 2>err || fail "merge: $(cat err)"
grep -q 'merge: 3 parts into m: .* images ([1-9][0-9]* found in several parts, stored once), .* hard-linked, 0 copied' err ||
  fail "merge summary: $(cat err)"
cat p0/train.jsonl p1/train.jsonl p2/train.jsonl | cmp -s - m/train.jsonl || fail "train.jsonl is not the parts in order"
cat p0/train.ids.jsonl p1/train.ids.jsonl p2/train.ids.jsonl | cmp -s - m/train.ids.jsonl || fail "train.ids.jsonl"
[[ $(stat -c %i m/images-00000.tar) == $(stat -c %i p0/images-00000.tar) ]] || fail "shard 0 is not a hard link"

"$EVE_PYTHON" - <<'PY' || fail "merged dir differs from the unsharded one"
import json, tarfile

def store(d):
    lines = open(d + "/images.idx").read().splitlines()
    assert lines[0] == "eve-image-index 1", lines[0]
    out = {}
    for line in lines[3:]:
        key, shard, off, size = line.split("\t")
        path = "%s/images-%05d.tar" % (d, int(shard))
        with tarfile.open(path) as t:  # the index points at the member's data in that shard
            member = t.getmember(key + ".jpg")
            assert member.offset_data == int(off) and member.size == int(size), (d, key)
        with open(path, "rb") as f:
            f.seek(int(off))
            out[key] = f.read(int(size))
    return out

full, merged = store("full"), store("m")
assert sorted(full) == sorted(merged), (len(full), len(merged))
assert all(full[k] == merged[k] for k in full), "image bytes differ"
mf, mm = json.load(open("full/manifest.json")), json.load(open("m/manifest.json"))
for split in mf["splits"]:
    a = sorted(open("full/%s.jsonl" % split)); b = sorted(open("m/%s.jsonl" % split))
    assert a == b, split
for k in ("task", "sources", "image_policy", "splits", "counts", "skipped_by_reason", "bad_fraction", "shard"):
    assert mf[k] == mm[k], (k, mf[k], mm[k])
skips = lambda m: {s["key"]: (s["reason"], s["records_total"], sorted(s["records"])) for s in m["skipped"]}
assert skips(mf) == skips(mm) and skips(mm)["images_gone"][1] == 3, (skips(mf), skips(mm))
assert all("images_gone" in skips(json.load(open("p%d/manifest.json" % i))) for i in range(3))
assert mm["duplicate_images"] > 0
assert [(p["path"], p["shard"]) for p in mm["merged_from"]] == [("p%d" % i, {"index": i, "count": 3}) for i in range(3)]
assert sum(int(l.split("\t")[1]) == 0 for l in open("m/images.idx").read().splitlines()[3:]) > 0
assert int(open("m/images.idx").read().splitlines()[1].split()[1]) >= 4, "expected several shards per part"
PY

# A rerun is up to date; a copy instead of links gives the same files.
"$prep" merge --out m p0 p1 p2 2>err || fail "rerun: $(cat err)"
grep -q 'merge: m is up to date' err || fail "rerun not up to date: $(cat err)"
"$prep" -q merge --copy --out m2 p0 p1 p2
diff -r m m2 >/dev/null || fail "--copy gives other files"
[[ $(stat -c %i m2/images-00000.tar) != $(stat -c %i p0/images-00000.tar) ]] || fail "--copy made a hard link"

# A split with fewer images than parts: every part still has a file for it (empty in the
# parts that got none of its records) and lists it in its manifest.
for i in 0 1 2 3 4 5; do
  "$prep" -q retrieval --ann train=w/retrieval_train.json --ann test=w/retrieval_test.json --images w --size 16 \
    --shard $i/6 --out r$i
done
"$prep" -q retrieval --ann train=w/retrieval_train.json --ann test=w/retrieval_test.json --images w --size 16 --out rfull
empty=$(for i in 0 1 2 3 4 5; do [[ -f r$i/test.jsonl ]] || fail "r$i has no test.jsonl"; [[ -s r$i/test.jsonl ]] || echo r$i; done)
[[ -n $empty ]] || fail "every retrieval part has test records; the case is not exercised"
for p in $empty; do
  "$EVE_PYTHON" -c 'import json,sys; s=json.load(open(sys.argv[1] + "/manifest.json"))["splits"]; assert s["test"]["records"] == 0, s' "$p" ||
    fail "$p: manifest does not list the empty test split"
done
"$prep" -q merge --out rm r0 r1 r2 r3 r4 r5 || fail "parts without a test split not merged"
for split in train test; do
  cmp -s <(sort rfull/$split.jsonl) <(sort rm/$split.jsonl) || fail "retrieval $split records differ"
done
"$EVE_PYTHON" -c 'import json; a, b = (json.load(open(d + "/manifest.json")) for d in ("rfull", "rm"))
assert (a["splits"], a["counts"]) == (b["splits"], b["counts"]), (a, b)' || fail "retrieval manifest counts differ"

# Two of three parts: merged, with a warning naming the missing part.
"$prep" merge --out m02 p0 p2 2>err || fail "incomplete merge failed: $(cat err)"
grep -q '^eve-prep: warning: merge: merging 2 of the 3 parts of the --shard run of p0; missing: 1/3$' err ||
  fail "no warning for the missing part: $(cat err)"

# Errors: one line, the exit code, nothing left behind.
expect() {  # expect CODE MESSAGE args...
  local code=$1 msg=$2 rc=0
  shift 2
  "$prep" "$@" 2>err || rc=$?
  [[ $rc == "$code" ]] || fail "eve-prep $* exited $rc, expected $code: $(cat err)"
  [[ $(cat err) == "eve-prep: error: $msg" ]] || fail "eve-prep $*: got '$(cat err)', expected '$msg'"
}
"$prep" -q vqa --questions train=w/vqa/questions_train.json --annotations train=w/vqa/annotations_train.json \
  --images w/images --size 24 --out vqa
"$prep" -q "${args[@]}" 20 --shard 1/3 --out small1
cp -r p2 p2x && rm p2x/train.ids.jsonl
cp -r p2 p2y && rm p2y/dev.jsonl
cp -r p1 p1b
mkdir empty other
expect 2 "--out p0 is one of the parts" merge --out p0 p0 p1
expect 2 "part ./p1 is given twice (also as p1)" merge --out x p1 ./p1
expect 2 "parts is required (see --help)" merge --out x
expect 1 'vqa/manifest.json: "task" is "vqa", but p0/manifest.json has "nlvr2" (merge parts of one task prepared with the same image options)' \
  merge --out x p0 vqa
expect 1 'small1/manifest.json: "image_policy.short_side" is 20, but p0/manifest.json has 24 (merge parts of one task prepared with the same image options)' \
  merge --out x p0 small1
expect 1 "p2x: no train.ids.jsonl, which p0 has (every part must hold the same record files: prepare and encode every part the same way)" \
  merge --out x p0 p1 p2x
expect 1 "p2y: no dev.jsonl, which its manifest.json lists (the dataset dir is incomplete)" merge --out x p0 p1 p2y
expect 1 "p1b/manifest.json:shard: part 1/3 is also p1 (each part of a --shard run is merged once)" merge --out x p0 p1 p1b
expect 1 "empty: no manifest.json (each PART is a dataset dir written by eve-prep, finished)" merge --out x p0 empty
expect 1 "other: already exists and is not a merge of these parts (remove it or give another --out; a merge never overwrites)" \
  merge --out other p0 p1 p2
expect 1 "m: already exists and is not a merge of these parts (remove it or give another --out; a merge never overwrites)" \
  merge --out m p0 p1
[[ ! -e x && -z $(find . -maxdepth 1 -name '*.tmp-*') ]] || fail "a failed merge left files: $(ls)"
echo ok
