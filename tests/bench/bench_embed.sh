#!/usr/bin/env bash
# eve-embed images/s vs the Python reference model (tests/reference/eve_ref.py) on the same
# bundle, images and threads: the peer decodes with Pillow, resizes bicubic and runs the
# same vision pass + ITC head in batches. Timings include start-up and bundle loading for
# both; peak memory of both.
set -euo pipefail
: "${EVE_BIN:?}" "${EVE_SOURCE:?}"
PY=${EVE_PYTHON:-/usr/bin/python3}
N=${N:-256} CONFIG=${CONFIG:-eve-tiny} RES=${RES:-0} BATCH=${BATCH:-32}  # RES 0 = the preset's
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
cd "$t"
# A bundle of the preset with the retrieval heads and random weights; N JPEGs of 640x480.
"$PY" - "$EVE_SOURCE" "$CONFIG" "$RES" "$N" <<'PYEOF'
import json, os, sys
src, preset, res, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, src + "/tests/reference")
import numpy as np
from PIL import Image
import eve_ref, eve_ref_io
cfg = json.load(open("%s/share/eve/configs/%s.json" % (src, preset)))
cfg.update(heads=["itc", "itm"], drop_path_rate=0.0, text_dropout=0.0)
if res:
    cfg["image_res"] = res
os.makedirs("bundle")
json.dump(cfg, open("bundle/config.json", "w"))
m = eve_ref.EveRef(eve_ref.read_config("bundle/config.json"))
eve_ref.init_weights(m, 0)
eve_ref_io.save("bundle/model.safetensors", dict(m.named_parameters()))
rng = np.random.default_rng(0)
os.makedirs("img")
with open("list.txt", "w") as f:
    for i in range(n):
        base = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
        Image.fromarray(base).resize((640, 480), Image.BILINEAR).save("img/%d.jpg" % i, quality=90)
        f.write("img/%d.jpg\n" % i)
PYEOF
cat > peer.py <<'PYEOF'
import sys
sys.path.insert(0, sys.argv[1] + "/tests/reference")
import numpy as np, torch, torch.nn.functional as F
from PIL import Image
import eve_ref
threads, batch = int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
m = eve_ref.load_model("bundle"); m.eval()
R = m.cfg["image_res"]
paths = open("list.txt").read().split()
rows = []
with torch.no_grad():
    for b in range(0, len(paths), batch):
        px = []
        for p in paths[b:b + batch]:
            a = np.asarray(Image.open(p).convert("RGB").resize((R, R), Image.BICUBIC), dtype=np.float32)
            px.append(torch.from_numpy(a / 127.5 - 1).permute(2, 0, 1))
        cls = m.backbone("vision", image=torch.stack(px))["pooled"]
        rows.append(F.normalize(m.itc_vision_proj_head(cls), dim=-1).numpy())
np.save("peer.npy", np.concatenate(rows))
PYEOF
measure() { # cmd... -> "seconds peakMB"
  /usr/bin/time -f '%e %M' -o time.txt "$@" >/dev/null 2>err.txt || { cat err.txt >&2; exit 1; }
  awk '{printf "%s %.0f\n", $1, $2/1024}' time.txt
}
printf '%-8s %10s %10s %10s %10s %8s\n' threads "eve img/s" "py img/s" "eve MB" "py MB" ratio
for th in 1 2; do
  rm -f eve.npy eve.ids.jsonl
  read -r es em < <(measure "$EVE_BIN/eve-embed" -m bundle --images list.txt -o eve -b "$BATCH" --threads "$th" -q)
  read -r ps pm < <(OMP_NUM_THREADS=$th measure "$PY" peer.py "$EVE_SOURCE" "$th" "$BATCH")
  awk -v th="$th" -v n="$N" -v es="$es" -v ps="$ps" -v em="$em" -v pm="$pm" \
    'BEGIN{printf "%-8s %10.1f %10.1f %10s %10s %7.2fx\n", th, n/es, n/ps, em, pm, ps/es}'
done
"$PY" -c "
import numpy as np
a, b = np.load('eve.npy'), np.load('peer.npy')
print('max |eve - python| = %.2e over %d rows' % (abs(a - b).max(), a.shape[0]))"
echo "($N JPEGs 640x480, $CONFIG at $("$PY" -c "import json; print(json.load(open('bundle/config.json'))['image_res'])")px, batch $BATCH; ratio = python time / eve-embed time)"
