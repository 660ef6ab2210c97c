# Helpers shared by the CLI tests (sourced, not run).

# same_weights LABEL ONE TWO MAX FRACTION: the model.safetensors of bundle dirs ONE and TWO
# have the same tensors, whose float32 values differ by less than MAX, and at most FRACTION
# of them by more than 1e-6. Sets fail=1 (and says why) when they do not.
same_weights() {
  "$EVE_PYTHON" - "$@" <<'PY' || fail=1
import json, struct, sys
import numpy as np
def load(p):
    b = open(p + "/model.safetensors", "rb").read(); n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n]); d = b[8 + n:]
    return {k: np.frombuffer(d[v["data_offsets"][0]:v["data_offsets"][1]], dtype=np.float32)
            for k, v in h.items() if k != "__metadata__"}
label, x, y, most, fraction = sys.argv[1], load(sys.argv[2]), load(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
if x.keys() != y.keys():
    print(f"FAIL {label}: the bundles hold different tensors"); sys.exit(1)
d = np.concatenate([np.abs(x[k] - y[k]) for k in sorted(x)])
print(f"{label}: max |1 process - 2 processes| = {d.max():.3g}; {(d > 1e-6).mean():.2e} of {d.size} weights differ by more than 1e-6")
if not (d.max() < most and (d > 1e-6).mean() <= fraction): print(f"FAIL {label}: weights differ"); sys.exit(1)
PY
}

# widen_weights BUNDLE_DIR: redraws every matrix of the bundle from N(0, 0.3), seed 0. With
# a tiny model's own initialisation every ITC feature is nearly the same, the contrastive
# loss sits at ln(batch) and its gradient is float noise; wide weights make pairs differ.
widen_weights() {
  "$EVE_PYTHON" - "$1/model.safetensors" <<'PY'
import json, struct, sys
import numpy as np
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); d = bytearray(b[8 + n:])
rng = np.random.default_rng(0)
for k, v in h.items():
    if k != "__metadata__" and len(v["shape"]) >= 2:
        s, e = v["data_offsets"]
        d[s:e] = rng.normal(0, 0.3, (e - s) // 4).astype(np.float32).tobytes()
open(sys.argv[1], "wb").write(b[:8 + n] + bytes(d))
PY
}
