# Sourced by tests/cli/score_*.sh: the environment, a temporary directory and comparisons.
set -euo pipefail
: "${EVE_BIN:?}" "${EVE_SOURCE:?}" "${EVE_PYTHON:=/usr/bin/python3}"
score=$EVE_BIN/eve-score
fx=$EVE_SOURCE/tests/fixtures/score
ref=$EVE_SOURCE/tests/reference
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

check() {  # name expected actual
  if [[ "$2" != "$3" ]]; then
    echo "FAIL $1"; echo "  expected: $2"; echo "  actual:   $3"; fail=1
  fi
}

# Runs the command, which must fail with the exit code, print nothing on stdout and say
# the text on stderr.
expect_error() {  # name exit-code stderr-substring command...
  local name=$1 code=$2 text=$3; shift 3
  local rc=0
  "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  check "$name (exit code)" "$code" "$rc"
  grep -qF -- "$text" "$tmp/err" || { echo "FAIL $name: stderr lacks: $text"; cat "$tmp/err"; fail=1; }
  [[ ! -s $tmp/out ]] || { echo "FAIL $name: wrote to stdout"; fail=1; }
}
