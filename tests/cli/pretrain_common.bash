# Shared by the eve-pretrain CLI tests: env checks, a temp dir, check(), and the toy world
# as caption pairs with token ids.
set -euo pipefail
: "${EVE_BIN:?}" "${EVE_SOURCE:?}" "${EVE_PYTHON:?}"
pre=$EVE_BIN/eve-pretrain
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() {  # check NAME WANT GOT
  if [[ "$2" != "$3" ]]; then
    echo "FAIL $1"; echo "  want: $2"; echo "  got:  $3"; fail=1
  fi
}
# toy_pairs COUNT SIZE SEED VOCAB: $tmp/d with ids.jsonl (encoded) and train.jsonl (text
# only), and $tmp/tok.json.
toy_pairs() {
  "$EVE_BIN/eve-prep" synth --out "$tmp/w" --count "$1" --size "$2" --seed "$3" -q
  "$EVE_BIN/eve-prep" -q pairs --ann "$tmp/w/pairs_train.json" --images "$tmp/w" --out "$tmp/d"
  "$EVE_BIN/eve-tokenize" train -q "$tmp/d/train.jsonl" -o "$tmp/tok.model" --vocab-size "$4"
  "$EVE_BIN/eve-tokenize" encode -m "$tmp/tok.model" "$tmp/d/train.jsonl" >"$tmp/d/ids.jsonl"
}

# toy_vqa: $tmp/vqa, the VQA train and val splits of the world toy_pairs made, with token ids.
toy_vqa() {
  "$EVE_BIN/eve-prep" -q vqa --questions train="$tmp/w/vqa/questions_train.json" \
    --annotations train="$tmp/w/vqa/annotations_train.json" --questions val="$tmp/w/vqa/questions_val.json" \
    --annotations val="$tmp/w/vqa/annotations_val.json" --images "$tmp/w/images" --size 0 --out "$tmp/vqa"
  for f in "$tmp"/vqa/*.jsonl; do "$EVE_BIN/eve-tokenize" encode -m "$tmp/tok.model" "$f" -o "${f%.jsonl}.ids.jsonl"; done
}

# same_metrics NAME A B: two metrics.jsonl files agree line by line but for timings
# (samples_per_s, an evaluation's seconds).
same_metrics() {
  "$EVE_PYTHON" - "$2" "$3" <<'EOF' || { echo "FAIL $1: metrics differ from the reference run"; fail=1; }
import json, sys
def rows(path):
    out = []
    for line in open(path):
        r = json.loads(line)
        r.pop("samples_per_s", None)
        if "eval" in r:
            r["eval"].pop("seconds", None)
        out.append(r)
    return out
a, b = rows(sys.argv[1]), rows(sys.argv[2])
if a != b:
    print(f"  {len(a)} vs {len(b)} lines")
    for x, y in zip(a, b):
        if x != y:
            print("  first difference:", x, "|", y)
            break
    sys.exit(1)
EOF
}
