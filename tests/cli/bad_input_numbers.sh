#!/usr/bin/env bash
# Numbers that are not finite never reach an output as a bare nan/inf, and inputs that hold
# them are errors naming the file, row and column; each numbered part below says which.
set -euo pipefail
: "${EVE_BIN:?}" "${EVE_SOURCE:?}"
PY=${EVE_PYTHON:-/usr/bin/python3}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
cd "$t"
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_fail NAME CODE MESSAGE -- command...: exit status and message (a literal substring).
expect_fail() {
  local name=$1 code=$2 msg=$3 rc=0; shift 4
  "$@" >out.txt 2>err.txt || rc=$?
  [[ $rc == "$code" ]] || fail "$name: exit $rc, want $code: $(cat err.txt)"
  grep -qF -- "$msg" err.txt || fail "$name: message lacks \"$msg\": $(cat err.txt)"
}
# strict_json FILE...: every line of every file parses with nan/inf refused.
strict_json() {
  "$PY" - "$@" <<'PYEOF' || fail "not strict JSON: $*"
import json, sys
def refuse(c): raise ValueError("bare " + c)
for path in sys.argv[1:]:
    for n, line in enumerate(open(path), 1):
        json.loads(line, parse_constant=refuse)
PYEOF
}

# 1. eve-score: a NaN score is an error naming file, row and column; infinite scores (here
# float16 and float32) still order, and the result is strict JSON.
"$PY" - <<'PYEOF'
import json, numpy as np
json.dump([{"image": "a.jpg", "caption": ["x", "y"]}, {"image": "b.jpg", "caption": ["z"]}], open("ann.json", "w"))
i2t = np.array([[3, 2, 1], [0, 1, np.inf]], np.float16)
t2i = np.ascontiguousarray(i2t.T.astype(np.float32))
np.save("i2t.npy", i2t); np.save("t2i.npy", t2i)
bad = t2i.copy(); bad[2, 0] = np.nan; np.save("t2i_nan.npy", bad)
PYEOF
expect_fail score-nan 1 "t2i_nan.npy: score at row 2, column 0 is NaN" -- \
  "$EVE_BIN/eve-score" retrieval --ann ann.json --i2t i2t.npy --t2i t2i_nan.npy
"$EVE_BIN/eve-score" retrieval --ann ann.json --i2t i2t.npy --t2i t2i.npy > score.json
strict_json score.json
grep -q '"txt_r1":100.0' score.json || fail "score with inf: $(cat score.json)"

echo ok
