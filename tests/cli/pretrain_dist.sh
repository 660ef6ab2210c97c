#!/usr/bin/env bash
# eve-pretrain data parallelism: 2 local workers (Gloo on loopback) end with the weights of
# one process with the same global batch (within 1e-5); a rank whose peer never arrives
# fails within --dist-timeout instead of hanging.
source "$(dirname "$0")/pretrain_common.bash"
toy_pairs 20 48 4 120
# No randomness inside the model (dropout, drop-path, routing noise) and no token dropping,
# so the only difference between the runs is how the global batch is split.
"$EVE_PYTHON" - "$EVE_SOURCE/share/eve/configs/eve-tiny.json" "$tmp/det.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.update(drop_path_rate=0.0, text_dropout=0.0, moe_noise=False, moe_capacity_factor=2.0, moe_lossweight=0.0)
json.dump(c, open(sys.argv[2], "w"))
PY
a=(--data "$tmp/d" --split ids --tokenizer "$tmp/tok.json" --config "$tmp/det.json" --threads 1 -q
   --batch-size 4 --max-steps 3 --seed 1)
"$pre" "${a[@]}" --out "$tmp/one"
MASTER_PORT=$((29600 + RANDOM % 200)) "$pre" "${a[@]}" --out "$tmp/two" --nproc-per-node 2 --dist-timeout 30
"$EVE_PYTHON" - "$tmp/one/model.safetensors" "$tmp/two/model.safetensors" <<'PY' || fail=1
import json, struct, sys
import numpy as np
def load(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); d = b[8 + n:]
    return {k: np.frombuffer(d[v["data_offsets"][0]:v["data_offsets"][1]], dtype=np.float32)
            for k, v in h.items() if k != "__metadata__"}
x, y = load(sys.argv[1]), load(sys.argv[2])
assert x.keys() == y.keys()
diff = max(float(np.abs(x[k] - y[k]).max()) for k in x)
print(f"max |1 process - 2 processes| = {diff:.3g}")
if not diff < 1e-5: print("FAIL weights differ"); sys.exit(1)
PY
# Rank 0 of 2 alone: the rendezvous gives up after the timeout with exit 1.
set +e
start=$SECONDS
RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$((29800 + RANDOM % 100)) \
  "$pre" "${a[@]}" --out "$tmp/lonely" --dist-timeout 3 2>"$tmp/err"; rc=$?
set -e
[[ $rc == 1 ]] || { echo "FAIL lonely rank exit $rc"; cat "$tmp/err"; fail=1; }
(( SECONDS - start < 30 )) || { echo "FAIL lonely rank took $((SECONDS - start)) s"; fail=1; }
grep -q "cannot join the process group" "$tmp/err" || { echo "FAIL error text"; cat "$tmp/err"; fail=1; }
exit $fail
