#!/usr/bin/env bash
# The op census of one training step (EVE_OP_CENSUS, lib/eve/model/op_census.h): aten ops,
# compute ops, kernels, host syncs with their top sites and the optimizer's ops, for
# eve-pretrain (msm and itc,itm,mlm) and eve-finetune (vqa and retrieval) at eve-small and
# eve-base shapes (64 px, 32 experts), 1 thread. Each run takes 4 steps and logs at the 4th;
# the first two are skipped (first-step allocations), step 3 is the non-logging step and step
# 4 the logging one. On a GPU every sync stalls the device and every kernel is a launch: the
# counts are the step's GPU overheads, measured on the CPU.
#
# Every step runs twice, once per MoE expert layout (EVE_MOE_LAYOUT): "grouped", what the CPU
# runs (one product per expert, its group sizes read on the host), and "capacity", what any
# other device runs (one batched product over a fixed layout, no read).
#
# "before" is the census of commit 6b08cfb (b44374b, the base of the census, with it added),
# counted by today's census code, on the same settings; "now" is measured. The ratio is
# compute now / before (the goal: at most 1/3). BENCH_STEP_OPS_CONFIGS (default "eve-small
# eve-base"), _SMALL_BATCH (8), _BASE_BATCH (4), _LAYOUTS (default "grouped capacity").
# eve-base's shape here has 32 experts in each of its 12 layers, about 1.9 B parameters: its runs
# peak at about 20 GB.
set -euo pipefail
: "${EVE_BIN:?}" "${EVE_SOURCE:?}"
PY=${EVE_PYTHON:-/usr/bin/python3}
configs=${BENCH_STEP_OPS_CONFIGS:-eve-small eve-base}
layouts=${BENCH_STEP_OPS_LAYOUTS:-grouped capacity}
small_batch=${BENCH_STEP_OPS_SMALL_BATCH:-8} base_batch=${BENCH_STEP_OPS_BASE_BATCH:-4}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The recorded baseline: config kind step(3 = no log, 4 = log) ops compute syncs optimizer-ops
# kernels. The MoE had one layout then (grouped, on every device).
baseline() {
  cat <<'EOF'
# commit 6b08cfb, counted by this bench's census
eve-small msm 3 124369 28520 633 16698 17984
eve-small msm 4 124645 28596 699 16698 18054
eve-small itc,itm,mlm 3 257217 35427 691 15734 23208
eve-small itc,itm,mlm 4 257405 35478 758 15734 23258
eve-small vqa 3 70868 22229 561 15574 13632
eve-small vqa 4 71144 22305 627 15574 13702
eve-small retrieval 3 212720 30462 643 15554 19659
eve-small retrieval 4 212996 30538 709 15554 19729
eve-base msm 3 121061 28490 633 16698 17959
eve-base msm 4 121343 28566 699 16698 18029
eve-base itc,itm,mlm 3 256097 35103 687 15734 22944
eve-base itc,itm,mlm 4 256281 35150 754 15734 22994
eve-base vqa 3 70706 22187 557 15574 13595
eve-base vqa 4 71071 22288 623 15574 13685
eve-base retrieval 3 211504 30112 639 15554 19374
eve-base retrieval 4 211962 30236 705 15554 19486
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
census() {  # census CONFIG KIND BATCH LAYOUT: its census lines in $tmp/census-CONFIG-KIND-LAYOUT.jsonl
  local out=$tmp/census-$1-$2-$4.jsonl args
  case $2 in
    msm|itc,itm,mlm) args=("$EVE_BIN/eve-pretrain" --data "$tmp/pairs" --split train.ids --objective "$2") ;;
    vqa|retrieval) args=("$EVE_BIN/eve-finetune" --task "$2" --data "$tmp/${2/retrieval/ret}" --train train.ids --val none --image-res 64) ;;
  esac
  EVE_MOE_LAYOUT=$4 EVE_OP_CENSUS=$out "${args[@]}" --config "$tmp/$1.json" --batch-size "$3" "${common[@]}" \
    --out "$tmp/run-$1-$2-$4"
}

start=$(date +%s)
for c in $configs; do
  shape "$c"
  batch=$small_batch
  [[ $c == eve-base ]] && batch=$base_batch
  for k in msm itc,itm,mlm vqa retrieval; do
    for l in $layouts; do census "$c" "$k" "$batch" "$l"; done
  done
done
wall=$(( $(date +%s) - start ))

baseline >"$tmp/baseline.txt"
"$PY" - "$tmp" "$tmp/baseline.txt" "$layouts" $configs <<'EOF'
import json, os, sys
tmp, base_file, layouts, configs = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4:]
before = {}
for line in open(base_file):
    f = line.split()
    if len(f) == 8 and not line.startswith("#"):
        before[(f[0], f[1], int(f[2]))] = [int(x) for x in f[3:]]
def cell(b, n):
    return "%7s %7d" % ("-" if b is None else b, n)
print("%-9s %-12s %-8s %-3s | %15s | %15s %5s | %15s | %15s | %15s | %s" % (
      "config", "step", "layout", "log", "ops before/now", "compute b/now", "ratio", "kernels b/now",
      "syncs b/now", "optimizer b/now", "top sync sites (now)"))
recorded, worst = [], {}
for c in configs:
    for k in ["msm", "itc,itm,mlm", "vqa", "retrieval"]:
        for lay in layouts:
            path = os.path.join(tmp, "census-%s-%s-%s.jsonl" % (c, k, lay))
            for line in open(path):
                j = json.loads(line)
                if j["step"] <= 2:
                    continue
                t = j["total"]
                opt = j["phases"].get("optimizer", {}).get("ops", 0)
                now = [t["ops"], t["compute"], t["syncs"], opt, t["kernels"]]
                b = before.get((c, k, j["step"]), [None] * 5)
                ratio = "%5.2f" % (now[1] / b[1]) if b[1] else "    -"
                sites = ", ".join("%s x%d" % (s, n) for s, n in j["sync_sites"][:3]) or "none"
                print("%-9s %-12s %-8s %-3s | %s | %s %s | %s | %s | %s | %s" % (
                      c, k, lay, "yes" if j["logging"] else "no", cell(b[0], now[0]), cell(b[1], now[1]),
                      ratio, cell(b[4], now[4]), cell(b[2], now[2]), cell(b[3], now[3]), sites))
                recorded.append("%s %s %s %d %d %d %d %d %d" % (c, k, lay, j["step"], *now))
                if not j["logging"] and b[1]:
                    w = worst.setdefault(lay, [0.0, 0])
                    w[0], w[1] = max(w[0], now[1] / b[1]), max(w[1], now[2])
                if k == "msm" and c == configs[0] and not j["logging"]:
                    kinds = ", ".join("%s %d" % (n, x) for n, x in j["kernel_sites"][:6])
                    print("%-36s most frequent kernels: %s" % ("", kinds))
for lay in layouts:
    if lay in worst:
        print("%s layout, steps that do not log: compute ops at most %.2fx before (goal 0.33x), at most %d host syncs"
              % (lay, worst[lay][0], worst[lay][1]))
if os.environ.get("BENCH_STEP_OPS_RECORD"):
    with open(os.environ["BENCH_STEP_OPS_RECORD"], "w") as f:
        f.write("\n".join(recorded) + "\n")
EOF
echo "(batch $small_batch for eve-small, $base_batch for eve-base; 64 px, 32 experts, 1 thread; steps 3 and 4 of 4;" \
     "before = commit 6b08cfb; all runs ${wall}s)"
