#!/usr/bin/env bash
# Near-duplicates on real pictures: the wallpapers Debian's lxde-common ships (three
# colourings of one design, 1024x768 JPEGs). Two resizes of each wallpaper (one JPEG, one
# PNG) must join the original in one group, and the three wallpapers must stay apart;
# the leakage report finds the resized copies of the one wallpaper that is in "train".
source "$(dirname "$0")/lib.bash"
photos=/usr/share/lxde/wallpapers
for c in blue green red; do
  [[ -f $photos/lxde_$c.jpg ]] ||
    { echo "SKIP: $photos/lxde_$c.jpg is missing (package lxde-common; scripts/install-deps.sh installs it)"; exit 77; }
done
make_image_bundle bundle
"$PY" - "$photos" <<'PYEOF'
import sys
from PIL import Image
for c in ("blue", "green", "red"):
    im = Image.open(f"{sys.argv[1]}/lxde_{c}.jpg").convert("RGB")
    im.resize((800, 600), Image.LANCZOS).save(f"{c}_800.jpg", quality=90)
    im.resize((512, 384), Image.BILINEAR).save(f"{c}_512.png")
PYEOF
"$EVE_BIN/eve-embed" -q -m bundle --images "$photos"/lxde_{blue,green,red}.jpg {blue,green,red}_{800.jpg,512.png} -o all
# The threshold: with this bundle the resizes score 0.99999 and more against their
# original and each other, and different wallpapers at most 0.44 (red against green), so
# any threshold from 0.5 to 0.9999 separates them; 0.9 leaves room on both sides.
"$EVE_BIN/eve-rank" -q --queries all.npy --gallery all.npy --exclude-self --min-score 0.9 -k 10 -o near.jsonl
"$EVE_BIN/eve-rank" dupes -q near.jsonl -o groups.jsonl
"$PY" - "$photos" <<'PYEOF' || fail "groups: $(cat groups.jsonl)"
import json, sys
p = sys.argv[1]
groups = [sorted(json.loads(l)["ids"]) for l in open("groups.jsonl")]  # ids: first-seen order
assert groups == [sorted([f"{p}/lxde_{c}.jpg", f"{c}_800.jpg", f"{c}_512.png"]) for c in ("blue", "green", "red")], groups
PYEOF
# leakage: the resizes ("test") against the blue and red originals ("train")
"$EVE_BIN/eve-embed" -q -m bundle --images "$photos"/lxde_{blue,red}.jpg -o train
"$EVE_BIN/eve-embed" -q -m bundle --images {blue,green}_{800.jpg,512.png} -o test
"$EVE_BIN/eve-rank" -q --queries test.npy --gallery train.npy --min-score 0.9 -k 2 -o leak.jsonl
"$EVE_BIN/eve-rank" leakage -q leak.jsonl -o leakage.json
"$PY" - "$photos" <<'PYEOF' || fail "leakage: $(cat leakage.json)"
import json, sys
r = json.load(open("leakage.json"))
assert (r["queries"], r["leaked_queries"], r["gallery_ids"], r["min_score"]) == (4, 2, 1, 0.9), r  # the threshold of the ranks, from their meta file
blue = f"{sys.argv[1]}/lxde_blue.jpg"
assert [(x["query"], [m[0] for m in x["matches"]]) for x in r["leaks"]] == \
    [("blue_800.jpg", [blue]), ("blue_512.png", [blue])], r
PYEOF
echo ok
