#!/usr/bin/env bash
# The op census of one training step (EVE_OP_CENSUS, lib/eve/model/op_census.h): aten ops,
# compute ops, host syncs with their top sites and the optimizer's ops, for eve-pretrain
# (msm and itc,itm,mlm) and eve-finetune (vqa and retrieval) at eve-small and eve-base
# shapes (64 px, 32 experts), 1 thread. Each run takes 4 steps and logs at the 4th; the
# first two are skipped (first-step allocations), step 3 is the non-logging step and step 4
# the logging one. On a GPU every sync stalls the device and every kernel is a launch: the
# counts are the step's GPU overheads, measured on the CPU.
#
# "before" is the census recorded on commit b44374b (the base of the census) on the same
# settings; "now" is measured. BENCH_STEP_OPS_CONFIGS (default "eve-small eve-base"),
# _SMALL_BATCH (8), _BASE_BATCH (4).
set -euo pipefail
: "${EVE_BIN:?}" "${EVE_SOURCE:?}"
PY=${EVE_PYTHON:-/usr/bin/python3}
configs=${BENCH_STEP_OPS_CONFIGS:-eve-small eve-base}
small_batch=${BENCH_STEP_OPS_SMALL_BATCH:-8} base_batch=${BENCH_STEP_OPS_BASE_BATCH:-4}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The recorded baseline: config kind step(3 = no log, 4 = log) ops compute syncs optimizer-ops.
baseline() {
  cat <<'EOF'
# commit b44374b, this bench unchanged (EVE_OP_CENSUS added to it)
eve-small msm 3 124369 52365 633 16698
eve-small msm 4 124645 52441 699 16698
eve-small itc,itm,mlm 3 257217 94111 691 15734
eve-small itc,itm,mlm 4 257405 94141 758 15734
eve-small vqa 3 70868 33411 561 15574
eve-small vqa 4 71144 33487 627 15574
eve-small retrieval 3 212720 78469 643 15554
eve-small retrieval 4 212996 78545 709 15554
eve-base msm 3 121061 51418 633 16698
eve-base msm 4 121343 51494 699 16698
eve-base itc,itm,mlm 3 256097 93535 687 15734
eve-base itc,itm,mlm 4 256281 93561 754 15734
eve-base vqa 3 70706 33344 557 15574
eve-base vqa 4 71071 33470 623 15574
eve-base retrieval 3 211504 77846 639 15554
eve-base retrieval 4 211962 78012 705 15554
EOF
}

# The toy world: caption pairs, VQA and retrieval, with token ids.
W=$tmp/w
"$EVE_BIN/eve-prep" synth --out "$W" --count 80 --size 96 --seed 1 -q
"$EVE_BIN/eve-prep" -q pairs --ann "$W/pairs_train.json" --images "$W" --out "$tmp/pairs"
"$EVE_BIN/eve-prep" -q vqa --questions train="$W/vqa/questions_train.json" \
  --annotations train="$W/vqa/annotations_train.json" --images "$W/images" --out "$tmp/vqa"
"$EVE_BIN/eve-prep" -q retrieval --ann train="$W/retrieval_train.json" --images "$W" --out "$tmp/ret"
"$EVE_BIN/eve-tokenize" train -q "$W/corpus.txt" -o "$tmp/tok.model" --vocab-size 300
for f in "$tmp"/pairs/train.jsonl "$tmp"/vqa/train.jsonl "$tmp"/ret/train.jsonl; do
  "$EVE_BIN/eve-tokenize" encode --tokenizer "$tmp/tok.model" "$f" -o "${f%.jsonl}.ids.jsonl"
done

# A preset at 64 px with 32 experts.
shape() {
  "$PY" -c 'import json,sys; c=json.load(open(sys.argv[1])); c["image_res"]=64
c.setdefault("moe_param", {})["num_experts"]=32; json.dump(c, open(sys.argv[2], "w"))' \
    "$EVE_SOURCE/share/eve/configs/$1.json" "$tmp/$1.json"
}

common=(--tokenizer "$tmp/tok.json" --threads 1 -q --max-steps 4 --log-every 4 --save-every 0)
census() {  # census CONFIG KIND BATCH: runs it, its census lines in $tmp/census-CONFIG-KIND.jsonl
  local out=$tmp/census-$1-$2.jsonl args
  case $2 in
    msm|itc,itm,mlm) args=("$EVE_BIN/eve-pretrain" --data "$tmp/pairs" --split train.ids --objective "$2") ;;
    vqa|retrieval) args=("$EVE_BIN/eve-finetune" --task "$2" --data "$tmp/${2/retrieval/ret}" --train train.ids --val none --image-res 64) ;;
  esac
  EVE_OP_CENSUS=$out "${args[@]}" --config "$tmp/$1.json" --batch-size "$3" "${common[@]}" --out "$tmp/run-$1-$2"
}

start=$(date +%s)
for c in $configs; do
  shape "$c"
  batch=$small_batch
  [[ $c == eve-base ]] && batch=$base_batch
  for k in msm itc,itm,mlm vqa retrieval; do census "$c" "$k" "$batch"; done
done
wall=$(( $(date +%s) - start ))

baseline >"$tmp/baseline.txt"
"$PY" - "$tmp" "$tmp/baseline.txt" $configs <<'EOF'
import json, os, sys
tmp, base_file, configs = sys.argv[1], sys.argv[2], sys.argv[3:]
before = {}
for line in open(base_file):
    f = line.split()
    if len(f) == 7 and not line.startswith("#"):
        before[(f[0], f[1], int(f[2]))] = [int(x) for x in f[3:]]
def cell(b, n):
    return "%9s %9d" % ("-" if b is None else b, n)
print("%-9s %-12s %-5s | %19s | %19s | %19s | %19s | %s" % ("config", "step", "log", "ops before/now",
      "compute before/now", "syncs before/now", "optimizer before/now", "top sync sites (now)"))
recorded = []
for c in configs:
    for k in ["msm", "itc,itm,mlm", "vqa", "retrieval"]:
        path = os.path.join(tmp, "census-%s-%s.jsonl" % (c, k))
        for line in open(path):
            j = json.loads(line)
            if j["step"] <= 2:
                continue
            t = j["total"]
            opt = j["phases"].get("optimizer", {}).get("ops", 0)
            now = [t["ops"], t["compute"], t["syncs"], opt]
            b = before.get((c, k, j["step"]), [None] * 4)
            sites = ", ".join("%s x%d" % (s, n) for s, n in j["sync_sites"][:3])
            print("%-9s %-12s %-5s | %s | %s | %s | %s | %s" % (c, k, "yes" if j["logging"] else "no",
                  cell(b[0], now[0]), cell(b[1], now[1]), cell(b[2], now[2]), cell(b[3], now[3]), sites))
            recorded.append("%s %s %d %d %d %d %d" % (c, k, j["step"], *now))
            ops = ", ".join("%s %d" % kv for kv in sorted(j["sync_ops"].items(), key=lambda kv: -kv[1]))
            print("%-30s syncs by op: %s; kernels %d, to_cpu %d" % ("", ops, t["kernels"], t["to_cpu"]))
if os.environ.get("BENCH_STEP_OPS_RECORD"):
    with open(os.environ["BENCH_STEP_OPS_RECORD"], "w") as f:
        f.write("\n".join(recorded) + "\n")
EOF
echo "(batch $small_batch for eve-small, $base_batch for eve-base; 64 px, 32 experts, 1 thread; steps 3 and 4 of 4;" \
     "before = commit b44374b; all runs ${wall}s)"
