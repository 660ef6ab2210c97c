#!/usr/bin/env bash
# eve-rank vs faiss's exact inner-product index (IndexFlatIP), both writing the same JSONL,
# on l2-normalised float32 embeddings, k=10, at THREADS threads (default 2): seconds, peak
# memory, the ratio, and each one's matmul share: the rate it achieved (2*NQ*NG*DIM flops
# over its time) over the machine's matmul rate, a large square sgemm through numpy's BLAS
# on the same threads, measured before and after in the same run (the mean is used).
# Installs nothing: without python3-faiss (scripts/install-deps.sh lists it) it says so
# and exits 0.
set -euo pipefail
: "${EVE_BIN:?}"
PY=${EVE_PYTHON:-/usr/bin/python3}
NQ=${NQ:-20000} NG=${NG:-200000} DIM=${DIM:-256} TH=${THREADS:-2}
if ! "$PY" -c 'import faiss' 2>/dev/null; then
  echo "faiss is not installed for $PY (apt-get install python3-faiss): skipped"
  exit 0
fi
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
"$PY" -c "
import numpy as np
rng = np.random.default_rng(0)
for name, n in (('q', $NQ), ('g', $NG)):
    x = rng.standard_normal((n, $DIM)).astype(np.float32)
    np.save('$t/' + name + '.npy', x / np.linalg.norm(x, axis=1, keepdims=True))
"
cat > "$t/faiss_rank.py" <<'PYEOF'
import sys, numpy as np, faiss
faiss.omp_set_num_threads(int(sys.argv[4]))
q, g = np.load(sys.argv[1]), np.load(sys.argv[2])
index = faiss.IndexFlatIP(g.shape[1])
index.add(g)
D, I = index.search(q, 10)
with open(sys.argv[3], "w") as out:
    for i in range(q.shape[0]):
        out.write('{"query": %d, "results": [%s]}\n'
                  % (i, ", ".join("[%d, %r]" % (j, float(s)) for j, s in zip(I[i], D[i]))))
PYEOF
cat > "$t/sgemm.py" <<'PYEOF'
import time, numpy as np
n = 4096
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32)
b = rng.standard_normal((n, n), dtype=np.float32)
a @ b
best = min((lambda t0: (a @ b, time.perf_counter() - t0)[1])(time.perf_counter()) for _ in range(3))
print("%.1f" % (2 * n ** 3 / best / 1e9))
PYEOF
measure() { # cmd... -> "seconds peakMB"
  /usr/bin/time -f '%e %M' -o "$t/time" "$@" >/dev/null 2>"$t/err" || { cat "$t/err" >&2; exit 1; }
  awk '{printf "%s %.0f\n", $1, $2/1024}' "$t/time"
}
export OMP_NUM_THREADS=$TH OPENBLAS_NUM_THREADS=$TH
rate0=$("$PY" "$t/sgemm.py")
read -r es em < <(measure "$EVE_BIN/eve-rank" --queries "$t/q.npy" --gallery "$t/g.npy" -k 10 \
  --threads "$TH" -q -o "$t/eve.jsonl")
read -r fs fm < <(measure "$PY" "$t/faiss_rank.py" "$t/q.npy" "$t/g.npy" "$t/faiss.jsonl" "$TH")
rate1=$("$PY" "$t/sgemm.py")
agree=$("$PY" -c "
import json, sys
a = [json.loads(l) for l in open('$t/eve.jsonl')]
b = [json.loads(l) for l in open('$t/faiss.jsonl')]
print(sum([r[0] for r in x['results']] == [r[0] for r in y['results']] for x, y in zip(a, b)))
")
printf '%-8s %9s %9s %9s %9s %8s %10s %10s\n' threads "eve s" "faiss s" "eve MB" "faiss MB" ratio "eve mm%" "faiss mm%"
awk -v th="$TH" -v es="$es" -v fs="$fs" -v em="$em" -v fm="$fm" -v r0="$rate0" -v r1="$rate1" \
  -v gf="$(awk -v a="$NQ" -v b="$NG" -v c="$DIM" 'BEGIN{print 2*a*b*c/1e9}')" \
  'BEGIN{r=(r0+r1)/2; printf "%-8s %9.2f %9.2f %9s %9s %7.2fx %9.0f%% %9.0f%%\n", th, es, fs, em, fm, fs/es,
         100*gf/es/r, 100*gf/fs/r}'
echo "($NQ queries x $NG gallery rows, dim $DIM, k=10; ratio = faiss time / eve-rank time;"
echo " matmul rate $rate0 / $rate1 GFLOP/s before / after; top-10 lists equal on $agree of $NQ queries)"
