#!/usr/bin/env bash
# eve-prep decode -> resize -> encode -> shard on 640x480 JPEGs against a Pillow pipeline
# doing the same on the same files with the same number of threads. Prints images/s and
# the ratio. BENCH_PREP_IMAGES (default 300) and BENCH_PREP_THREADS (default 2).
set -euo pipefail
: "${EVE_BIN:?}" "${EVE_PYTHON:?}"
n=${BENCH_PREP_IMAGES:-300}
threads=${BENCH_PREP_THREADS:-2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Photo-like inputs: smooth gradients, shapes and mild noise, quality 90, 4:2:0.
"$EVE_PYTHON" - "$tmp" "$n" <<'PY'
import json, random, sys
from PIL import Image, ImageDraw, ImageFilter
d, n = sys.argv[1], int(sys.argv[2])
random.seed(0)
base = Image.linear_gradient("L").resize((640, 480))
ann = []
for i in range(n):
    img = Image.merge("RGB", [base.rotate(random.randrange(360)).point(lambda v, k=k: (v * (k + 1) // 3 + i) % 256)
                              for k in range(3)])
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x, y = random.randrange(640), random.randrange(480)
        draw.ellipse([x, y, x + random.randrange(20, 200), y + random.randrange(20, 200)],
                     fill=tuple(random.randrange(256) for _ in range(3)))
    img = img.filter(ImageFilter.GaussianBlur(1.5))
    noise = Image.effect_noise((640, 480), 12).convert("RGB")
    img = Image.blend(img, noise, 0.08)
    img.save("%s/%04d.jpg" % (d, i), quality=90)
    ann.append({"image": "%04d.jpg" % i, "caption": "image %d" % i})
json.dump(ann, open(d + "/pairs.json", "w"))
PY

cat >"$tmp/pil_prep.py" <<'PY'
# The same pipeline with Pillow: open, EXIF transpose, RGB, bicubic resize of the shorter
# side (with JPEG draft downscaling when the target is at least 2x smaller, as eve-prep
# does), encode at quality 95, append to a tar shard in input order.
import io, json, sys, tarfile, time
from concurrent.futures import ThreadPoolExecutor
from PIL import Image, ImageOps
root, size, threads, out, draft = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5] == "draft"
ann = json.load(open(root + "/pairs.json"))
def work(entry):
    img = Image.open(root + "/" + entry["image"])
    w, h = img.size
    s = min(w, h)
    if draft and s >= 2 * size:
        img.draft("RGB", (w * size // s, h * size // s))
    img = ImageOps.exif_transpose(img).convert("RGB")
    if s > size:
        tw, th = (size, h * size // w) if w <= h else (w * size // h, size)
        img = img.resize((tw, th), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    return entry["image"], buf.getvalue()
t0 = time.time()
with ThreadPoolExecutor(threads) as pool, tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tar:
    for name, data in pool.map(work, ann):
        ti = tarfile.TarInfo(name); ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
print(len(ann) / (time.time() - t0))
PY

# Runs a command; prints "<images/s wall> <CPU ms per image>" (CPU = user + sys, which
# stays meaningful on a loaded machine).
measure() {
  local t0 t1 cpu
  t0=$(date +%s.%N)
  /usr/bin/time -o "$tmp/cpu" -f "%U %S" "$@" >/dev/null 2>&1
  cpu=$(tail -1 "$tmp/cpu")
  t1=$(date +%s.%N)
  echo "$n / ($t1 - $t0)" | bc -l | tr '\n' ' '
  echo "$cpu" | awk -v n="$n" '{printf "%.2f\n", ($1 + $2) * 1000 / n}'
}
eve() {  # size threads
  rm -rf "$tmp/out"
  measure "$EVE_BIN/eve-prep" -q pairs --ann "$tmp/pairs.json" --images "$tmp" --out "$tmp/out" --size "$1" --threads "$2"
}
pil() {  # size threads mode
  measure "$EVE_PYTHON" "$tmp/pil_prep.py" "$tmp" "$1" "$2" "$tmp/pil.tar" "$3"
}

printf '%-34s %9s %9s %7s %12s %12s\n' "case ($n 640x480 JPEGs)" "eve img/s" "PIL img/s" "ratio" "eve CPU ms" "PIL CPU ms"
row() {  # label "eve_rate eve_cpu" "pil_rate pil_cpu"
  read -r er ec <<<"$2"
  read -r pr pc <<<"$3"
  printf '%-34s %9.1f %9.1f %6.2fx %12s %12s\n' "$1" "$er" "$pr" "$(echo "$er / $pr" | bc -l)" "$ec" "$pc"
}
row "size 224, $threads threads, PIL plain" "$(eve 224 "$threads")" "$(pil 224 "$threads" plain)"
row "size 224, $threads threads, PIL draft" "$(eve 224 "$threads")" "$(pil 224 "$threads" draft)"
row "size 384, $threads threads" "$(eve 384 "$threads")" "$(pil 384 "$threads" plain)"
row "size 384, 1 thread" "$(eve 384 1)" "$(pil 384 1 plain)"
# libjpeg-turbo's own full-size decode rate on one core, through Pillow.
decode=$(measure "$EVE_PYTHON" -c "
from PIL import Image
for i in range($n): Image.open('$tmp/%04d.jpg' % i).load()")
row "size 384, 1 thread vs decode only" "$(eve 384 1)" "$decode"
