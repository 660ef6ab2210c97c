#!/usr/bin/env bash
# eve-rank vs a numpy brute force (matrix product + argpartition per block) on the same
# embeddings, k=10, at 1 and 2 threads: queries/s, ratio, and peak memory of both.
set -euo pipefail
: "${EVE_BIN:?}"
PY=${EVE_PYTHON:-/usr/bin/python3}
NQ=${NQ:-20000} NG=${NG:-50000} DIM=${DIM:-256}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
"$PY" -c "
import numpy as np
rng = np.random.default_rng(0)
for name, n in (('q', $NQ), ('g', $NG)):
    x = rng.standard_normal((n, $DIM)).astype(np.float32)
    np.save('$t/' + name + '.npy', x / np.linalg.norm(x, axis=1, keepdims=True))
"
cat > "$t/peer.py" <<'PYEOF'
import sys, numpy as np
q, g = np.load(sys.argv[1]), np.load(sys.argv[2])
k, out = 10, open(sys.argv[3], "w")
for q0 in range(0, q.shape[0], 256):
    s = q[q0:q0 + 256] @ g.T
    top = np.argpartition(-s, k, axis=1)[:, :k]
    for i in range(s.shape[0]):
        idx = top[i][np.lexsort((top[i], -s[i, top[i]]))]
        out.write('{"query": %d, "results": [%s]}\n' % (q0 + i, ", ".join("[%d, %s]" % (j, s[i, j]) for j in idx)))
PYEOF
measure() { # label cmd... -> "seconds peakMB"
  /usr/bin/time -f '%e %M' -o "$t/time" "$@" >/dev/null 2>"$t/err" || { cat "$t/err" >&2; exit 1; }
  awk '{printf "%s %.0f\n", $1, $2/1024}' "$t/time"
}
printf '%-8s %10s %10s %10s %10s %8s\n' threads "eve q/s" "numpy q/s" "eve MB" "numpy MB" ratio
for th in 1 2; do
  read -r es em < <(measure "$EVE_BIN/eve-rank" --queries "$t/q.npy" --gallery "$t/g.npy" -k 10 --threads "$th" -q -o "$t/eve.jsonl")
  read -r ps pm < <(OMP_NUM_THREADS=$th OPENBLAS_NUM_THREADS=$th measure "$PY" "$t/peer.py" "$t/q.npy" "$t/g.npy" "$t/peer.jsonl")
  awk -v th="$th" -v n="$NQ" -v es="$es" -v ps="$ps" -v em="$em" -v pm="$pm" \
    'BEGIN{printf "%-8s %10.0f %10.0f %10s %10s %7.2fx\n", th, n/es, n/ps, em, pm, ps/es}'
done
echo "($NQ queries x $NG gallery rows, dim $DIM, k=10; ratio = numpy time / eve-rank time)"
