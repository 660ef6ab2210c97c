#!/usr/bin/env bash
# A new user's first hour with the trainers, on a tiny toy world (eve-tiny at 32 px, a few
# steps): every input a run needs is checked before the first step (a validation split that
# only the recipe names, a --predict split, images of the records), a run that fails after
# training started keeps its last step in a checkpoint, a finished run says so on a rerun and
# a resumed one counts only its own steps, a stop by signal says how to resume (and a second
# signal names the checkpoint that is intact), a dataset of another task or an empty split is
# named, and a resolution far above the data's prepared size is warned about.
source "$(dirname "$0")/lib.bash"
ft=$EVE_BIN/eve-finetune
pre=$EVE_BIN/eve-pretrain
run() {  # run NAME CODE ERRFILE -- command...: the command's exit status must be CODE
  local name=$1 code=$2 err=$3; shift 4
  set +e
  "$@" 2>"$err"; local rc=$?
  set -e
  check "$name exit" "$code" "$rc"
}
ck() { printf '%s/checkpoint-%08d' "$1" "$2"; }

# The fixture: 40 images prepared at 32 px; VQA with a train split only (as README's
# eve-prep example), VQA with train and val, caption pairs, NLVR2; every split encoded.
W=$tmp/w
"$EVE_BIN/eve-prep" synth --out "$W" --count 40 --seed 5 -q
"$EVE_BIN/eve-prep" -q vqa --questions train="$W/vqa/questions_train.json" --annotations train="$W/vqa/annotations_train.json" \
  --images "$W/images" --size 32 --out "$tmp/vqa"
"$EVE_BIN/eve-prep" -q vqa --questions train="$W/vqa/questions_train.json" --annotations train="$W/vqa/annotations_train.json" \
  --questions val="$W/vqa/questions_val.json" --annotations val="$W/vqa/annotations_val.json" \
  --images "$W/images" --size 32 --out "$tmp/vqav"
"$EVE_BIN/eve-prep" -q pairs --ann "$W/pairs_train.json" --images "$W" --size 32 --out "$tmp/pairs"
"$EVE_BIN/eve-prep" -q nlvr2 --ann train="$W/nlvr2/train.json" --images "$W/nlvr2/images" --size 32 --out "$tmp/nlvr2"
"$EVE_BIN/eve-tokenize" train -q "$W/corpus.txt" -o "$tmp/tok.model" --vocab-size 200
for f in "$tmp"/vqa/*.jsonl "$tmp"/vqav/*.jsonl "$tmp"/pairs/*.jsonl "$tmp"/nlvr2/*.jsonl; do
  "$EVE_BIN/eve-tokenize" encode --tokenizer "$tmp/tok.model" "$f" -o "${f%.jsonl}.ids.jsonl"
done
py -c 'import json,sys; c=json.load(open(sys.argv[1])); c["image_res"]=32; json.dump(c,open(sys.argv[2],"w"))' \
  "$EVE_SOURCE/share/eve/configs/eve-tiny.json" "$tmp/tiny32.json"
# corrupt DIR KEY: overwrite the image's bytes in its shard (it stays indexed, cannot be decoded).
corrupt() {
  py - "$1" "$2" <<'EOF'
import sys
d, key = sys.argv[1], sys.argv[2]
for line in open(d + "/images.idx").read().splitlines()[3:]:
    k, shard, off, n = line.split("\t")
    if k == key:
        with open(f"{d}/images-{int(shard):05d}.tar", "r+b") as f:
            f.seek(int(off)); f.write(b"x" * int(n))
        sys.exit(0)
sys.exit("no image " + key)
EOF
}
ftb=(--config "$tmp/tiny32.json" --tokenizer "$tmp/tok.json" --image-res 32 --threads 2 --batch-size 4 --lr 1e-3)
preb0=(--config "$tmp/tiny32.json" --tokenizer "$tmp/tok.json" --threads 2)
preb=("${preb0[@]}" --batch-size 4)

# 1. The validation split the recipe names and the dataset lacks fails before the first
# step, naming the recipe default and how to change it; so does a missing --predict split
# and a record whose image is not in the store.
run val-default 1 "$tmp/e1" -- "$ft" --task vqa --data "$tmp/vqa" "${ftb[@]}" --max-steps 3 -o "$tmp/f1"
has val-default "$tmp/e1" "$tmp/vqa/val.ids.jsonl: no such records file (the validation split val.ids is the default of the vqa recipe"
has val-default "$tmp/e1" "give --val SPLIT to validate on another split, or --val none to train without validation; the splits in $tmp/vqa: train, train.ids)"
[[ ! -e $(ck "$tmp/f1" 1) && ! -e $tmp/f1/metrics.jsonl ]] || { echo "FAIL val-default: it trained first"; fail=1; }
run predict-missing 1 "$tmp/e2" -- "$ft" --task vqa --data "$tmp/vqa" "${ftb[@]}" --max-steps 3 --val none --predict test.ids -o "$tmp/f2"
has predict-missing "$tmp/e2" "$tmp/vqa/test.ids.jsonl: no such records file (given by --predict test.ids"
[[ ! -e $tmp/f2/metrics.jsonl ]] || { echo "FAIL predict-missing: it trained first"; fail=1; }
sed 's/"image":"[^"]*"/"image":"not_prepared"/' "$tmp/vqav/val.ids.jsonl" >"$tmp/vqav/stray.ids.jsonl"
run val-image 1 "$tmp/e3" -- "$ft" --task vqa --data "$tmp/vqav" "${ftb[@]}" --max-steps 3 --val stray.ids -o "$tmp/f3"
has val-image "$tmp/e3" "stray.ids.jsonl:1: image \"not_prepared\" is not in the image store of $tmp/vqav"
[[ ! -e $tmp/f3/metrics.jsonl ]] || { echo "FAIL val-image: it trained first"; fail=1; }

# 1. A run that fails after training started keeps its last step: a validation image that
# cannot be decoded stops the run at its first validation (step 2), whose checkpoint stays.
cp -r "$tmp/vqav" "$tmp/vqab"
corrupt "$tmp/vqab" "$(py -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["image"])' "$tmp/vqab/val.ids.jsonl")"
fv=(--task vqa --data "$tmp/vqab" "${ftb[@]}" --max-steps 3 --eval-every 2)
run fails-late 1 "$tmp/e4" -- "$ft" "${fv[@]}" -o "$tmp/f4"
has fails-late "$tmp/e4" "the run failed after step 2: its checkpoint is saved in $tmp/f4; rerun the same command to resume"
has fails-late "$tmp/e4" "cannot be decoded"
[[ -f $(ck "$tmp/f4" 2)/trainer.json ]] || { echo "FAIL fails-late: no checkpoint of step 2"; ls "$tmp/f4"; fail=1; }

# 3. Resumed, the run counts the steps of this process; rerun once finished, it says so and
# changes nothing.
run resumed 0 "$tmp/e5" -- "$ft" "${fv[@]}" --val none -o "$tmp/f4"
has resumed "$tmp/e5" "resuming from $(ck "$tmp/f4" 2) (step 2 of 3)"
has resumed "$tmp/e5" "finetune: 1 steps in "
has resumed "$tmp/e5" "steps/s (resumed at step 2, now 3 of 3), loss "
cp "$(ck "$tmp/f4" 3)/trainer.json" "$tmp/trainer3.json"
run finished 0 "$tmp/e6" -- "$ft" "${fv[@]}" --val none -o "$tmp/f4"
has finished "$tmp/e6" "already complete at step 3 (checkpoint $(ck "$tmp/f4" 3))"
lacks finished "$tmp/e6" "steps/s"
cmp -s "$tmp/trainer3.json" "$(ck "$tmp/f4" 3)/trainer.json" || { echo "FAIL finished: the checkpoint was rewritten"; fail=1; }

# 1 and 3 for eve-pretrain: an image that cannot be decoded stops the run mid-way; the steps
# before it stay, a rerun resumes there, a finished run's rerun says so.
cp -r "$tmp/pairs" "$tmp/pairsb"
corrupt "$tmp/pairsb" images_COCO_synth_000000000007
run pre-fails-late 1 "$tmp/e7" -- "$pre" --data "$tmp/pairsb" --split train.ids "${preb[@]}" --max-steps 40 -o "$tmp/p7"
n=$(sed -n 's/.*the run failed after step \([0-9]*\): its checkpoint is saved in .*/\1/p' "$tmp/e7")
if [[ -z $n || $n -lt 1 ]]; then
  echo "FAIL pre-fails-late: no checkpoint named"; sed 's/^/  | /' "$tmp/e7"; fail=1
else
  [[ -f $(ck "$tmp/p7" "$n")/trainer.json ]] || { echo "FAIL pre-fails-late: no checkpoint of step $n"; fail=1; }
  check pre-fails-late-metrics "$n" "$(wc -l <"$tmp/p7/metrics.jsonl")"
fi
run pre-run 0 "$tmp/e8" -- "$pre" --data "$tmp/pairs" --split train.ids "${preb[@]}" --max-steps 2 -o "$tmp/p8"
cp "$(ck "$tmp/p8" 2)/trainer.json" "$tmp/ptrainer2.json"
run pre-finished 0 "$tmp/e9" -- "$pre" --data "$tmp/pairs" --split train.ids "${preb[@]}" --max-steps 2 -o "$tmp/p8"
has pre-finished "$tmp/e9" "already complete at step 2 (checkpoint $(ck "$tmp/p8" 2))"
lacks pre-finished "$tmp/e9" "steps/s"
cmp -s "$tmp/ptrainer2.json" "$(ck "$tmp/p8" 2)/trainer.json" || { echo "FAIL pre-finished: the checkpoint was rewritten"; fail=1; }
run pre-resumed 0 "$tmp/e10" -- "$pre" --data "$tmp/pairs" --split train.ids "${preb[@]}" --max-steps 3 -o "$tmp/p8"
has pre-resumed "$tmp/e10" "pretrain: 1 steps in "
has pre-resumed "$tmp/e10" "steps/s (resumed at step 2, now 3 of 3), loss "

# 9. SIGINT: the run says at once that it stops after the step, then where it stopped and
# how to resume (not as an error), exit 130. A second SIGINT once the first was taken (steps
# of 4 micro-batches make it land in a step) ends it at once, naming the checkpoint that is
# intact; one landing in the checkpoint write lets the write finish.
sigrun() {  # sigrun OUT ERR TWICE BATCH-FLAGS...: start a long run, wait for checkpoint 2, send SIGINT (twice: 2)
  "$pre" --data "$tmp/pairs" --split train.ids "${preb0[@]}" "${@:4}" --max-steps 400 --save-every 2 -o "$1" 2>"$2" &
  local pid=$!
  for _ in $(seq 1 600); do [[ -d $(ck "$1" 2) ]] && break; sleep 0.05; done
  kill -INT $pid || true
  if [[ $3 == 2 ]]; then
    for _ in $(seq 1 200); do grep -q "stopping after this step" "$2" && break; sleep 0.01; done
    kill -INT $pid 2>/dev/null || echo "note: the run ended before the second SIGINT"
  fi
  set +e
  wait $pid; rc=$?
  set -e
}
sigrun "$tmp/s1" "$tmp/e11" 1 --batch-size 4
check sigint-exit 130 "$rc"
has sigint "$tmp/e11" "stopping after this step and a checkpoint"
n=$(sed -n "s|^eve-pretrain: stopped at step \([0-9]*\); checkpoint saved in $tmp/s1; rerun the same command to resume\$|\1|p" "$tmp/e11")
if [[ -z $n ]]; then echo "FAIL sigint: no resume message"; sed 's/^/  | /' "$tmp/e11"; fail=1
else [[ -f $(ck "$tmp/s1" "$n")/trainer.json ]] || { echo "FAIL sigint: no checkpoint of step $n"; fail=1; }; fi
lacks sigint "$tmp/e11" "error:"
sigrun "$tmp/s2" "$tmp/e12" 2 --batch-size 16 --accumulate 4
check sigint-twice-exit 130 "$rc"
n=$(sed -n "s|.*stopped at once by a second signal; the checkpoint of step \([0-9]*\) ($tmp/s2/checkpoint-[0-9]*) is intact: rerun the same command to resume from it\$|\1|p" "$tmp/e12")
if [[ -n $n ]]; then
  [[ -f $(ck "$tmp/s2" "$n")/trainer.json ]] || { echo "FAIL sigint-twice: the named checkpoint $n is not there"; fail=1; }
elif grep -q "finishing the checkpoint being written" "$tmp/e12"; then
  has sigint-twice "$tmp/e12" "; rerun the same command to resume"
elif ! grep -q "; rerun the same command to resume" "$tmp/e12"; then
  echo "FAIL sigint-twice: no word on the checkpoint"; sed 's/^/  | /' "$tmp/e12"; fail=1
fi

# 10. A dataset of another task: eve-pretrain warns about VQA questions and refuses NLVR2;
# eve-finetune refuses a dataset of another task; an empty split is named as such.
run pre-vqa 0 "$tmp/e13" -- "$pre" --data "$tmp/vqa" --split train.ids "${preb[@]}" --max-steps 1 -o "$tmp/p13"
has pre-vqa "$tmp/e13" "warning: --data $tmp/vqa is a vqa dataset ($tmp/vqa/manifest.json \"task\": \"vqa\"): eve-pretrain will take its questions for captions"
run pre-nlvr2 2 "$tmp/e14" -- "$pre" --data "$tmp/nlvr2" --split train.ids "${preb[@]}" --max-steps 1 -o "$tmp/p14"
has pre-nlvr2 "$tmp/e14" "error: --data $tmp/nlvr2 is an nlvr2 dataset"
run ft-task 2 "$tmp/e15" -- "$ft" --task nlvr2 --data "$tmp/vqa" "${ftb[@]}" --max-steps 1 --val none -o "$tmp/f15"
has ft-task "$tmp/e15" "error: --data $tmp/vqa is a vqa dataset ($tmp/vqa/manifest.json \"task\": \"vqa\"), not one for --task nlvr2 (give the dataset dir eve-prep nlvr2 wrote, or --task vqa)"
: >"$tmp/pairs/empty.ids.jsonl"
: >"$tmp/vqa/empty.ids.jsonl"
run pre-empty 1 "$tmp/e16" -- "$pre" --data "$tmp/pairs" --split empty.ids "${preb[@]}" --max-steps 1 -o "$tmp/p16"
has pre-empty "$tmp/e16" "error: $tmp/pairs/empty.ids.jsonl: the split has no records (the file is empty)"
run ft-empty 1 "$tmp/e17" -- "$ft" --task vqa --data "$tmp/vqa" "${ftb[@]}" --train empty.ids --max-steps 1 --val none -o "$tmp/f17"
has ft-empty "$tmp/e17" "error: $tmp/vqa/empty.ids.jsonl: the split has no records (the file is empty)"

# 11. Leaving --image-res out takes the recipe's, far above the 32 px the data was prepared
# at: a warning names both sizes and the flag; at the data's size there is none.
py -c 'import json,sys; r=json.load(open(sys.argv[1])); r["image_res"]=96; json.dump(r,open(sys.argv[2],"w"))' \
  "$EVE_SOURCE/share/eve/tasks/vqa.json" "$tmp/vqa96.json"
run res 0 "$tmp/e18" -- "$ft" --task vqa --recipe "$tmp/vqa96.json" --data "$tmp/vqa" --config "$tmp/tiny32.json" \
  --tokenizer "$tmp/tok.json" --threads 2 --batch-size 4 --max-steps 1 --val none -o "$tmp/f18"
has res "$tmp/e18" "warning: the model sees 96 px images (image_res 96 of the recipe $tmp/vqa96.json, as --image-res was not given), but the dataset's images were prepared at 32 px ($tmp/vqa/manifest.json \"image_policy\": {\"short_side\": 32})"
has res "$tmp/e18" "give --image-res 32 to train at the data's size"
for e in e5 e8 e13; do lacks "no-res-warning-$e" "$tmp/$e" "prepared at"; done

exit $fail
