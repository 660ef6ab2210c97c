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
