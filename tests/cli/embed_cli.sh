#!/usr/bin/env bash
# eve-embed end to end: a random bundle written by the Python reference model, a dataset dir
# from eve-prep, texts piped from eve-tokenize; rows equal the reference forward (Pillow
# decode + bicubic resize), parts, resume, shards, tar input, bad images and exit codes.
source "$(dirname "$0")/lib.bash"
embed=$EVE_BIN/eve-embed

make_bundle bundle
make_dataset

# 1. --describe still works.
"$embed" --describe bundle | grep -q "heads" || fail "--describe"

# 2. The dataset dir in parts of 7 (18 images -> 3 parts), two threads.
"$embed" -q -m bundle --images ret -o img --part-size 7 -b 4 --threads 2
[[ -f img-00002.npy && ! -f img-00003.npy && ! -f img.npy ]] || fail "parts: $(ls)"
# Texts piped from eve-tokenize (ids_list rows get "<image>#<k>").
"$EVE_BIN/eve-tokenize" encode --tokenizer tok.model --max-tokens 16 < ret/test.jsonl | "$embed" -q -m bundle --texts - -o txt -b 3
[[ $(head -n 2 txt.ids.jsonl | tr '\n' ' ') == "\"images_COCO_synth_000000000019#0\" \"images_COCO_synth_000000000019#1\" " ]] ||
  fail "text ids: $(head -n 2 txt.ids.jsonl)"
"$EVE_BIN/eve-tokenize" encode --tokenizer tok.model --max-tokens 16 < ret/test.jsonl > test.ids.jsonl

# Oracle: the reference model on Pillow-decoded images and on the same token ids.
"$PY" - "$EVE_SOURCE/tests/reference" <<PYEOF || exit 1
$ORACLE_PRELUDE
with torch.no_grad():
    want = F.normalize(m.itc_vision_proj_head(m.backbone("vision", image=pixels(store_keys))["pooled"]), dim=-1).numpy()
got = np.concatenate([np.load("img-%05d.npy" % p) for p in range(3)])
ids = [json.loads(l) for p in range(3) for l in open("img-%05d.ids.jsonl" % p)]
assert ids == store_keys, (ids, store_keys)
assert got.dtype == np.float32 and got.shape == want.shape, (got.shape, want.shape)
assert abs(np.linalg.norm(got, axis=1) - 1).max() < 1e-5
err = abs(got - want).max()
assert err < 2e-4, err
# Texts: padded to max_text_len.
rows = [ids for r in map(json.loads, open("test.ids.jsonl")) for ids in r["ids_list"]]
idt, mask = text_batch(rows)
with torch.no_grad():
    want = F.normalize(m.itc_text_proj_head(m.backbone("text", text_ids=idt, text_mask=mask)["pooled"]), dim=-1).numpy()
got = np.load("txt.npy")
assert got.shape == want.shape and abs(got - want).max() < 1e-4, abs(got - want).max()
PYEOF

# 3. Same rows for one thread and one batch; a rerun does nothing; shards 0/2 + 1/2 = all.
"$embed" -q -m bundle --images ret -o one --part-size 7 -b 18 --threads 1
for p in 0 1 2; do
  cmp -s "one-0000$p.ids.jsonl" "img-0000$p.ids.jsonl" || fail "ids differ by threads/batch"
done
"$PY" -c "
import numpy as np
for p in range(3):
    a, b = np.load('one-%05d.npy' % p), np.load('img-%05d.npy' % p)
    assert abs(a - b).max() < 1e-5, p"
before=$(stat -c %Y.%s img-00001.npy)
err=$("$embed" -m bundle --images ret -o img --part-size 7 2>&1)
[[ $(stat -c %Y.%s img-00001.npy) == "$before" ]] || fail "rerun rewrote a finished part"
grep -q "3 part(s) already done" <<<"$err" || fail "rerun summary: $err"
"$embed" -q -m bundle --images ret -o sh --part-size 7 --shard 1/2
[[ -f sh-00001.npy && ! -f sh-00000.npy && ! -f sh-00002.npy ]] || fail "shard 1/2 parts: $(ls sh-*)"
"$embed" -q -m bundle --images ret -o sh --part-size 7 --shard 0/2
for p in 0 1 2; do cmp -s "sh-0000$p.ids.jsonl" "img-0000$p.ids.jsonl" || fail "shard ids $p"; done

# 4. Tar shards and a path list from stdin with a broken image: skipped, reported, exit 3
#    past --max-bad, every row that exists listed.
"$embed" -q -m bundle --images ret/images-00000.tar -o tar
cmp -s <(cat img-0000{0,1,2}.ids.jsonl) tar.ids.jsonl || fail "tar ids"
cp w/images/COCO_synth_000000000001.jpg good.jpg
head -c 300 good.jpg > cut.jpg
printf 'good.jpg\nnope.jpg\n\ncut.jpg\ngood.jpg\n' > list.txt
set +e
err=$("$embed" -m bundle --images - -o bad < list.txt 2>&1); rc=$?
set -e
[[ $rc == 3 ]] || fail "bad images: exit $rc ($err)"
grep -q "skipped 2 of 4 images (1 missing, 1 truncated)" <<<"$err" || fail "report: $err"
grep -q "eve-embed: error: 2 of 4 images were bad (0.5000 > --max-bad 0.001)" <<<"$err" || fail "exit 3 message: $err"
[[ $(cat bad.ids.jsonl | tr '\n' ' ') == '"good.jpg" "good.jpg" ' ]] || fail "bad ids: $(cat bad.ids.jsonl)"
rm bad.npy bad.ids.jsonl
"$embed" -q -m bundle --images list.txt -o bad --max-bad 0.5 || fail "--max-bad 0.5 should pass"

# 5. Usage errors and bad records.
set +e
err=$("$embed" -m bundle --images ret --texts txt.ids.jsonl -o x 2>&1); rc=$?
set -e
[[ $rc == 2 && $err == "eve-embed: error: give either --images or --texts" ]] || fail "both sources: $rc $err"
set +e
err=$(printf '{"text": "a"}\n' | "$embed" -m bundle --texts - -o x 2>&1); rc=$?
set -e
[[ $rc == 1 && $err == 'eve-embed: error: <stdin>:1: record has no "ids" or "ids_list" (encode the texts first: eve-tokenize encode -m tok.model | eve-embed --texts -)' ]] ||
  fail "no ids: $rc $err"
set +e
err=$("$embed" -m bundle --images ret -o x --shard 3/2 --part-size 4 2>&1); rc=$?
set -e
[[ $rc == 2 && $err == "eve-embed: error: --shard 3/2: need 0 <= I < N" ]] || fail "shard: $rc $err"
echo ok
