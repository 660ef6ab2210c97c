#!/usr/bin/env bash
# eve-finetune --task probe on a toy whose answers are known: images filled with one of four
# colours (a random eve-tiny backbone's pooled features tell flat colours apart), two
# colours in halves (a multi-label field) and a class that is pure noise. Checks probe.json,
# the stderr summary, --features, --baseline fresh, --split, determinism and bad input.
source "$(dirname "$0")/lib.bash"
ft=$EVE_BIN/eve-finetune

# A random eve-tiny bundle from the reference model, and 160 images with their labels.
mkdir -p "$tmp/bundle" "$tmp/root/img"
py - "$EVE_SOURCE" "$tmp" <<'PY'
import json, random, sys
sys.path.insert(0, sys.argv[1] + "/tests/reference")
import numpy as np
from PIL import Image
import eve_ref, eve_ref_io
src, tmp = sys.argv[1], sys.argv[2]
cfg = json.load(open(src + "/share/eve/configs/eve-tiny.json"))
json.dump(cfg, open(tmp + "/bundle/config.json", "w"))
m = eve_ref.EveRef(eve_ref.read_config(tmp + "/bundle/config.json"))
eve_ref.init_weights(m, 3)
eve_ref_io.save(tmp + "/bundle/model.safetensors", dict(m.named_parameters()))
colours = {"red": (200, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 200), "yellow": (220, 210, 40)}
names = sorted(colours)
rng = random.Random(1)
npr = np.random.default_rng(1)
with open(tmp + "/labels.jsonl", "w") as f:
    for i in range(160):
        bg = names[i % 4]
        left, right = rng.choice(names), rng.choice(names)
        a = np.empty((48, 48, 3), np.float32)
        a[:, :] = colours[bg]
        a[16:32, 4:24] = colours[left]
        a[16:32, 24:44] = colours[right]
        a += npr.normal(0, 12, a.shape)
        path = f"img/{i:04d}.png"
        Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(tmp + "/root/" + path)
        rec = {"id": f"toy-{i}", "image": path, "split": "dev" if i < 10 else "train",
               "background": bg, "colors": sorted({left, right}), "noise": rng.randrange(3), "one": "x"}
        f.write(json.dumps(rec) + "\n")
PY
L=$tmp/labels.jsonl
probe=("$ft" --task probe --model "$tmp/bundle" --labels "$L" --images "$tmp/root" --threads 2 --batch-size 32)

# Both features, every kind of field, with the fresh baseline.
"${probe[@]}" --field background --field colors --field noise --baseline fresh --seed 4 -o "$tmp/p" 2>"$tmp/p.err"
grep -Eq '^eve-finetune: background: probe [0-9.]+ % \(fresh [0-9.]+ %, majority [0-9.]+ %\), [0-9]+/[0-9]+ images$' "$tmp/p.err" \
  || { echo "FAIL summary line"; cat "$tmp/p.err"; fail=1; }
py - "$tmp/p/probe.json" <<'PY' || fail=1
import json, sys
j = json.load(open(sys.argv[1])); f = j["fields"]; bad = []
b, c, n = f["background"], f["colors"], f["noise"]
if j["format"] != "eve-probe 1" or j["features"] != "both" or j["feature_dim"] != 256: bad.append("header")
if b["kind"] != "single" or b["classes"] != ["blue", "green", "red", "yellow"]: bad.append("background classes")
if b["train"] + b["test"] != 160 or not 25 <= b["test"] <= 60: bad.append("split sizes")
if b["accuracy"] < 95 or b["majority"] > 45: bad.append("background accuracy")
if b["fresh_accuracy"] < 90: bad.append("fresh background accuracy")
if c["kind"] != "multi" or c["values"] != ["blue", "green", "red", "yellow"] or c["constant_values"] != []:
    bad.append("colors values")
if c["accuracy"] <= c["majority"] or set(c["per_value"]) != set(c["values"]) or "fresh_per_value" not in c:
    bad.append("colors accuracy")
if n["classes"] != ["0", "1", "2"] or n["accuracy"] > 70: bad.append("noise")  # a 32-image test part is noisy
print("probe:", {k: (round(v["accuracy"], 1), round(v["majority"], 1)) for k, v in f.items()})
if bad: print("FAIL probe.json:", bad); sys.exit(1)
PY

# The same run again gives the same file; one feature kind at a time has the width of one.
"${probe[@]}" --field background --field colors --field noise --baseline fresh --seed 4 -q -o "$tmp/p2"
cmp -s "$tmp/p/probe.json" "$tmp/p2/probe.json" || { echo "FAIL a second run differs"; fail=1; }
for feat in cls mean; do
  "${probe[@]}" --field background --features $feat -q -o "$tmp/$feat"
  check "features $feat" "$feat 128 no-fresh" "$(py -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["fields"]["background"]["features"], j["feature_dim"], "fresh_accuracy" in j["fields"]["background"] and "fresh" or "no-fresh")' "$tmp/$feat/probe.json")"
done

# Bad input: one line naming the file (and line), nothing written.
expect_error 2 "--features pooled: expected cls, mean or both" -- "${probe[@]}" --field background --features pooled -o "$tmp/x"
expect_error 2 "--baseline old: expected fresh" -- "${probe[@]}" --field background --baseline old -o "$tmp/x"
expect_error 2 "needs at least one --field" -- "${probe[@]}" -o "$tmp/x"
# Flags only fine-tuning reads are refused, not ignored.
expect_error 2 "--task probe takes no --lr: the probe fits a linear classifier" -- \
  "${probe[@]}" --field background --lr 0.1 -o "$tmp/x"
expect_error 2 "--task probe takes no --flip/--no-flip" -- "${probe[@]}" --field background --no-flip -o "$tmp/x"
expect_error 2 "--task probe has no recipe" -- "$EVE_BIN/eve-finetune" --task probe --show-recipe
expect_error 2 "--holdout must lie strictly between 0 and 1" -- "${probe[@]}" --field background --holdout 1 -o "$tmp/x"
expect_error 1 "labels.jsonl:1: the record has no field \"shape\"" -- "${probe[@]}" --field shape -o "$tmp/x"
expect_error 1 "field \"one\" has one class only (x)" -- "${probe[@]}" --field one -o "$tmp/x"
expect_error 1 "10 records in the --split splits; a probe needs at least 20" -- "${probe[@]}" --field background --split dev -o "$tmp/x"
sed 's#img/0007.png#img/gone.png#' "$L" >"$tmp/gone.jsonl"
expect_error 1 "gone.jsonl:8: image $tmp/root/img/gone.png does not exist" -- \
  "${probe[@]/$L/$tmp/gone.jsonl}" --field background -o "$tmp/x"
sed '5s#"colors": \[[^]]*\]#"colors": "red"#' "$L" >"$tmp/mixed.jsonl"
expect_error 1 "mixed.jsonl:5: \"colors\" is a single value here and a list in earlier records" -- \
  "${probe[@]/$L/$tmp/mixed.jsonl}" --field colors -o "$tmp/x"
[[ ! -e $tmp/x/probe.json ]] || { echo "FAIL a failed run wrote probe.json"; fail=1; }

exit $fail
