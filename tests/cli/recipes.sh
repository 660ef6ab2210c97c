#!/usr/bin/env bash
# The real-dataset recipes in scripts/recipes/ end to end on tiny inputs laid out exactly as
# the real datasets are (built from the toy world: COCO and Flickr30k Karpathy files,
# VQA v2 official files + VG QA, NLVR2 JSON lines with PNG-named images in train/<dir>/,
# img2dataset webdataset shards, a .pth checkpoint): every recipe runs, writes its outputs and
# prints its metrics table; a rerun skips every stage; a missing input is named and exits 1;
# usage errors exit 2; --dry-run prints the commands and creates nothing.
source "$(dirname "$0")/lib.bash"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
R=$EVE_SOURCE/scripts/recipes
exists() {  # exists NAME PATH...
  local name=$1 p
  shift
  for p in "$@"; do [[ -e $p ]] || { echo "FAIL $name: $p was not written"; fail=1; }; done
}
recipe() {  # recipe NAME SCRIPT ARGS...: run, stdout in NAME.out, stderr in NAME.err, exit in rc
  local name=$1 script=$2
  shift 2
  set +e
  "$R/$script" "$@" >"$name.out" 2>"$name.err"
  rc=$?
  set -e
}
ok() {  # ok NAME SCRIPT ARGS...: the recipe exits 0
  recipe "$@"
  [[ $rc == 0 ]] || { echo "FAIL $1: exit $rc"; sed 's/^/  | /' "$1.err"; fail=1; }
}
rerun_skips() {  # rerun_skips NAME STAGE... -- SCRIPT ARGS...: a rerun runs nothing, skips each stage
  local name=$1 stages=()
  shift
  while [[ $1 != -- ]]; do stages+=("$1"); shift; done
  shift
  ok "$name" "$@"
  for s in "${stages[@]}"; do has "$name" "$name.err" "skip $s: done already"; done
  ! grep -q ": run " "$name.err" || { echo "FAIL $name: a stage ran again"; grep ": run " "$name.err"; fail=1; }
}
PRE=(-- --max-steps 2 --batch-size 8 --threads 2 --seed 1)
TINY=("${PRE[@]}" --image-res 32)

# Real layouts from the toy world.
"$EVE_BIN/eve-prep" synth --out w --count 40 --seed 3 -q
"$EVE_PYTHON" - <<'EOF'
import io, json, os, shutil, tarfile
def img(iid):
    return "w/images/COCO_synth_%012d.jpg" % iid
def put(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copy(src, dst)
def iid_of(path):
    return int(path.rsplit("_", 1)[1].split(".")[0])
# COCO and Flickr30k Karpathy files, image paths relative to the root.
for split in ("train", "val", "test"):
    entries = json.load(open("w/retrieval_%s.json" % split))
    coco, flickr = json.loads(json.dumps(entries)), json.loads(json.dumps(entries))
    folder = "train2014" if split == "train" else "val2014"
    for c, f in zip(coco, flickr):
        iid = iid_of(c["image"])
        c["image"] = "%s/COCO_%s_%012d.jpg" % (folder, folder, iid)
        f["image"] = "flickr30k-images/%d.jpg" % (1000000 + iid)
        put(img(iid), "coco/" + c["image"])
        put(img(iid), "flickr/" + f["image"])
    json.dump(coco, open("coco/coco_%s.json" % split, "w"))
    json.dump(flickr, open("flickr/flickr30k_%s.json" % split, "w"))
# VQA v2 official files (real subtypes and image names) and VG QA in the EVE form.
for split, subtype, folder, ann in (("train", "train2014", "train2014", True), ("val", "val2014", "val2014", True),
                                    ("test", "test-dev2015", "test2015", False)):
    q = json.load(open("w/vqa/questions_%s.json" % split))
    q["data_subtype"] = subtype
    os.makedirs("vqa", exist_ok=True)
    json.dump(q, open("vqa/v2_OpenEnded_mscoco_%s_questions.json" % subtype, "w"))
    for x in q["questions"]:
        put(img(x["image_id"]), "vqa/%s/COCO_%s_%012d.jpg" % (folder, folder, x["image_id"]))
    if ann:
        a = json.load(open("w/vqa/annotations_%s.json" % split))
        a["data_subtype"] = subtype
        json.dump(a, open("vqa/v2_mscoco_%s_annotations.json" % subtype, "w"))
questions = {x["question_id"]: x for x in json.load(open("w/vqa/questions_train.json"))["questions"]}
vg = []
for a in json.load(open("w/vqa/annotations_train.json"))["annotations"][:24]:
    put(img(a["image_id"]), "vg/VG_100K/%d.jpg" % a["image_id"])
    vg.append({"dataset": "vg", "question": questions[a["question_id"]]["question"],
               "answer": a["multiple_choice_answer"], "image": "VG_100K/%d.jpg" % a["image_id"]})
json.dump(vg, open("vg/vg_qa.json", "w"))
# NLVR2: JSON lines, train images in train/<directory>/, JPEG bytes under .png names.
for split in ("train", "dev", "test1"):
    os.makedirs("nlvr2", exist_ok=True)
    with open("nlvr2/%s.json" % split, "w") as out:
        for line in open("w/nlvr2/%s.json" % split):
            r = json.loads(line)
            stem = r["identifier"].rsplit("-", 1)[0]
            folder = split
            if split == "train":
                r["directory"] = int(stem.split("-")[1]) % 3
                folder = "train/%d" % r["directory"]
            for k in ("img0", "img1"):
                put("w/nlvr2/images/%s/%s-%s.jpg" % (split, stem, k), "nlvr2/images/%s/%s-%s.png" % (folder, stem, k))
            out.write(json.dumps(r) + "\n")
# img2dataset webdataset shards: <key>.jpg, <key>.json, <key>.txt, float mtimes (pax headers).
os.makedirs("wds")
pairs = json.load(open("w/pairs_train.json"))
for shard in range(2):
    with tarfile.open("wds/%05d.tar" % shard, "w") as t:
        for row, e in enumerate(pairs[16 * shard:16 * (shard + 1)]):
            key = "%05d%04d" % (shard, row)
            caption = e["caption"][0]
            for ext, data in (("jpg", open("w/" + e["image"], "rb").read()),
                              ("json", json.dumps({"key": key, "caption": caption, "status": "success"}).encode()),
                              ("txt", caption.encode())):
                info = tarfile.TarInfo("%s.%s" % (key, ext))
                info.size, info.mtime = len(data), 1700000000.25
                t.addfile(info, io.BytesIO(data))
    open("wds/%05d_stats.json" % shard, "w").write('{"count": 16, "successes": 16}\n')
EOF

# Pre-training from webdataset shards, the tokenizer trained on their captions.
ok pre pretrain-webdataset.sh --shards 'wds/{00000..00001}.tar' --work pw --config eve-tiny --vocab-size 150 "${PRE[@]}"
exists pre pw/data/manifest.json pw/data/train.ids.jsonl pw/tok.model pw/tok.json pw/pretrain/model.safetensors \
  pw/pretrain/tokenizer.model pw/.done/pretrain
check pre-pairs 32 "$(wc -l <pw/data/train.jsonl)"
has pre pre.out "vocabulary 150"
rerun_skips pre-rerun prep tokenizer "encode train" pretrain -- pretrain-webdataset.sh --shards wds --work pw \
  --config eve-tiny --vocab-size 150 "${PRE[@]}"
INIT=pw/pretrain

# Retrieval on COCO and Flickr30k layouts.
ok coco retrieval.sh --dataset coco --root coco --model "$INIT" --work rc "${TINY[@]}"
exists coco rc/data/test.ids.jsonl rc/finetune/results.json rc/finetune/predictions/test.i2t.npy rc/metrics-test.txt
has coco coco.out "coco retrieval, Karpathy test"
has coco coco.out "r_mean"
has coco coco.out "images      4"
has coco coco.err "recipe /"  # the recipe file by path
rerun_skips coco-rerun prep "encode train" "encode val" "encode test" finetune "score test" -- \
  retrieval.sh --dataset coco --root coco --model "$INIT" --work rc "${TINY[@]}"
has coco-rerun coco-rerun.out "txt_r1"
ok flickr retrieval.sh --dataset flickr --root flickr --model "$INIT" --work rf "${TINY[@]}"
has flickr flickr.out "img_r10"
check flickr-recipe retrieval-flickr.json "$("$EVE_PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["recipe"]["recipe"].split("/")[-1])' rf/finetune/results.json)"

# VQA v2 + VG: val scored, test-dev predicted as the EvalAI submission.
ok vqa vqa.sh --root vqa --vg vg --model "$INIT" --work vw "${TINY[@]}"
sub=vw/v2_OpenEnded_mscoco_test-dev2015_eve_results.json
exists vqa vw/data/vg.ids.jsonl vw/data-test-dev/test-dev.ids.jsonl vw/finetune/predictions/val.json vw/metrics-val.txt "$sub"
has vqa vqa.out "VQA v2 val accuracy"
has vqa vqa.out "perAnswerType"
has vqa vqa.err "EvalAI submission (test-dev2015): $sub"
has vqa vqa.err "--train train.ids --train vg.ids --val val.ids"
"$EVE_PYTHON" - "$sub" vqa/v2_OpenEnded_mscoco_test-dev2015_questions.json <<'EOF' || fail=1
import json, sys
pred = json.load(open(sys.argv[1]))
want = sorted(q["question_id"] for q in json.load(open(sys.argv[2]))["questions"])
assert sorted(p["question_id"] for p in pred) == want, "the submission answers every test-dev question"
assert all(set(p) == {"question_id", "answer"} and isinstance(p["answer"], str) for p in pred)
EOF
rerun_skips vqa-rerun prep "prep test-dev" "encode vg" "encode test-dev" finetune "predict test-dev" submission \
  "score val" -- vqa.sh --root vqa --vg vg --model "$INIT" --work vw "${TINY[@]}"

# NLVR2: dev and test-P scored.
ok nlvr2 nlvr2.sh --root nlvr2 --model "$INIT" --work nw "${TINY[@]}" --head biattn
exists nlvr2 nw/finetune/predictions/dev.csv nw/finetune/predictions/test1.csv nw/metrics-dev.txt nw/metrics-test1.txt
has nlvr2 nlvr2.out "NLVR2 test-P"
has nlvr2 nlvr2.out "consistency"
check nlvr2-test1 "examples     8" "$(grep examples nw/metrics-test1.txt)"
rerun_skips nlvr2-rerun prep "encode test1" finetune "score dev" "score test1" -- \
  nlvr2.sh --root nlvr2 --model "$INIT" --work nw "${TINY[@]}" --head biattn

# Official-style .pth files (module. prefix, a 'model' dict, an integer position-id buffer)
# made from fine-tuned bundles: converted back, they predict what the bundles predicted.
make_pth() {  # make_pth BUNDLE OUT.pth
  "$EVE_PYTHON" - "$1" "$2" <<'EOF'
import json, struct, sys
import numpy as np, torch
raw = open(sys.argv[1] + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
sd = {}
for name, info in json.loads(raw[8:8 + n]).items():
    if name != "__metadata__":
        a, b = info["data_offsets"]
        sd["module." + name] = torch.from_numpy(np.frombuffer(raw[8 + n + a:8 + n + b], "<f4").reshape(info["shape"]).copy())
sd["module.backbone.position_ids_text"] = torch.arange(64).unsqueeze(0)
torch.save({"model": sd, "epoch": 9}, sys.argv[2])
EOF
}
make_pth rc/finetune ckpt.pth
# --compat eve: the bundle's own behaviour, so the converted checkpoint must predict exactly
# what the bundle predicted (compat official, the converter's default, is tested in
# official_eval.sh).
official=(--checkpoint ckpt.pth --config rc/finetune/config.json --tokenizer rc/finetune/tokenizer.model
          --task retrieval --data rc/data --work ow --compat eve -- --threads 2)
ok official official-checkpoint.sh "${official[@]}"
exists official ow/bundle/model.safetensors ow/describe.txt ow/data/test.ids.jsonl ow/eval/predictions/test.t2i.npy ow/metrics-test.txt
has official official.out "heads        itc,itm"
has official official.out "retrieval test, official checkpoint ckpt.pth"
has official official.err "evaluation path: eve, sparse dispatch, deterministic at inference"
for f in test.i2t.npy test.t2i.npy; do
  cmp -s rc/finetune/predictions/$f ow/eval/predictions/$f || { echo "FAIL official: $f differs from the bundle's own"; fail=1; }
done
cmp -s rc/metrics-test.txt ow/metrics-test.txt || { echo "FAIL official: other metrics than the bundle's own"; fail=1; }
rerun_skips official-rerun convert describe data "encode test" "predict test" "score test" -- \
  official-checkpoint.sh "${official[@]}"

# An NLVR2 checkpoint with the bi-attention head is predicted with it.
make_pth nw/finetune nlvr2.pth
ok official-nlvr2 official-checkpoint.sh --checkpoint nlvr2.pth --config nw/finetune/config.json \
  --tokenizer nw/finetune/tokenizer.model --task nlvr2 --data nw/data --work on --compat eve -- --threads 2
has official-nlvr2 official-nlvr2.err "--head biattn --eval-only"
cmp -s nw/finetune/predictions/dev.csv on/eval/predictions/dev.csv || { echo "FAIL official-nlvr2: other predictions"; fail=1; }
cmp -s nw/metrics-dev.txt on/metrics-dev.txt || { echo "FAIL official-nlvr2: other metrics"; fail=1; }

# Missing inputs: every one named, exit 1, nothing created.
rm coco/coco_val.json
mv coco/val2014 coco/val2014.away
recipe miss-coco retrieval.sh --dataset coco --root coco --model "$INIT" --work mc
check miss-coco-exit 1 "$rc"
has miss-coco miss-coco.err "missing coco/coco_val.json"
has miss-coco miss-coco.err "missing coco/val2014/"
has miss-coco miss-coco.err "COCO val2014 images"
has miss-coco miss-coco.err "2 expected input(s) missing"
[[ ! -e mc ]] || { echo "FAIL miss-coco created its work dir"; fail=1; }
recipe miss-vqa vqa.sh --root vqa --vg nowhere --model w --work mv
check miss-vqa-exit 1 "$rc"
has miss-vqa miss-vqa.err "missing nowhere/vg_qa.json"
has miss-vqa miss-vqa.err "missing w/tokenizer.model"
rm nlvr2/test1.json
recipe miss-nlvr2 nlvr2.sh --root nlvr2 --model "$INIT" --work mn
check miss-nlvr2-exit 1 "$rc"
has miss-nlvr2 miss-nlvr2.err "missing nlvr2/test1.json"
recipe miss-shard pretrain-webdataset.sh --shards 'wds/{00000..00002}.tar' --work mp
check miss-shard-exit 1 "$rc"
has miss-shard miss-shard.err "missing wds/00002.tar"
recipe miss-pth official-checkpoint.sh --checkpoint nope.pth --config rc/finetune/config.json \
  --tokenizer rc/finetune/tokenizer.model --task nlvr2 --data rc/data --work mo
check miss-pth-exit 1 "$rc"
has miss-pth miss-pth.err "missing nope.pth"
has miss-pth miss-pth.err "missing rc/data/dev.jsonl"

# Usage errors: exit 2 with the reason.
usage() {  # usage NAME MESSAGE SCRIPT ARGS...
  local name=$1 msg=$2
  shift 2
  recipe "$name" "$@"
  check "$name-exit" 2 "$rc"
  has "$name" "$name.err" "$msg"
}
usage no-root "--root is required" retrieval.sh --dataset coco --model "$INIT" --work x
usage bad-dataset "--dataset mscoco: expected one of: coco flickr" retrieval.sh --dataset mscoco --root flickr --model "$INIT" --work x
usage unknown-opt "unknown option '--epochs'" nlvr2.sh --root nlvr2 --model "$INIT" --work x --epochs 3
usage no-value "--work needs a value" vqa.sh --root vqa --model "$INIT" --work
usage gpus "--gpus 0: expected a positive number of GPUs" nlvr2.sh --root nlvr2 --model "$INIT" --work x --gpus 0
usage no-answers "--task vqa needs --answers" official-checkpoint.sh --checkpoint ckpt.pth --config c --tokenizer t \
  --task vqa --data vw/data --work x
usage preset "--config eve-huge: no such preset" pretrain-webdataset.sh --shards wds --work x --config eve-huge
[[ ! -e x ]] || { echo "FAIL a usage error created x"; fail=1; }
recipe help vqa.sh --help
check help-exit 0 "$rc"
has help help.out "v2_OpenEnded_mscoco_test-dev2015_questions.json"

# --dry-run: the commands on stdout, nothing created; --gpus N reaches the trainers.
mv coco/val2014.away coco/val2014
"$EVE_PYTHON" -c 'import json; json.dump(json.load(open("w/retrieval_val.json")), open("coco/coco_val.json", "w"))'
ok dry retrieval.sh --dataset coco --root coco --model "$INIT" --work dw --gpus 2 --dry-run -- --epochs 1
[[ ! -e dw ]] || { echo "FAIL --dry-run created dw"; fail=1; }
check dry-lines 6 "$(wc -l <dry.out)"
has dry dry.out "eve-prep retrieval --ann train=coco/coco_train.json"
has dry dry.out "eve-tokenize encode --tokenizer $INIT/tokenizer.model dw/data/test.jsonl -o dw/data/test.ids.jsonl"
has dry dry.out "--out dw/finetune --device cuda --nproc-per-node 2 --epochs 1"
has dry dry.out "eve-score --format table retrieval --ann coco/coco_test.json"
ok dry-tok pretrain-webdataset.sh --shards wds/00000.tar --tokenizer pw/tok.model --work dt --dry-run
[[ ! -e dt ]] || { echo "FAIL --dry-run created dt"; fail=1; }
has dry-tok dry-tok.out "eve-tokenize info --tokenizer dt/tok.model > dt/tok.json"
has dry-tok dry-tok.out "share/eve/configs/eve-base.json --out dt/pretrain"
ok dry-trainval vqa.sh --root vqa --model "$INIT" --work dv --trainval --dry-run
has dry-trainval dry-trainval.out "--train train.ids --train val.ids --val none"
! grep -q "eve-score" dry-trainval.out || { echo "FAIL --trainval scores val"; fail=1; }
# With the full test2015 question file the submission answers all of it.
cp vqa/v2_OpenEnded_mscoco_test-dev2015_questions.json vqa/v2_OpenEnded_mscoco_test2015_questions.json
ok dry-test2015 vqa.sh --root vqa --model "$INIT" --work dv --dry-run
has dry-test2015 dry-test2015.out "--questions test=vqa/v2_OpenEnded_mscoco_test2015_questions.json"
has dry-test2015 dry-test2015.out "dv/predict-test/predictions/test.json > dv/v2_OpenEnded_mscoco_test2015_eve_results.json"
# Programs that are not there are named like the other missing inputs.
EVE_BIN=$tmp/nobin recipe no-bin nlvr2.sh --root nlvr2 --model "$INIT" --work x
check no-bin-exit 1 "$rc"
has no-bin no-bin.err "missing $tmp/nobin/eve-finetune"

exit $fail
