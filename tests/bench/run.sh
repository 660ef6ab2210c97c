#!/usr/bin/env bash
# make bench: runs every tests/bench/bench_*.sh; each prints a table of timings with the
# ratio against its peer measured in the same run (bench_step_ops and bench_loader print the
# step's op census against its recorded baseline and the loader's rate against the GPU's
# need). tests/bench/gpu_step.sh is the GPU measurement, run on its own. Needs EVE_BIN
# (the build's bin dir).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${EVE_BIN:?set EVE_BIN to the directory holding the eve programs}"
export EVE_BIN EVE_SOURCE=${EVE_SOURCE:-$(cd "$here/../.." && pwd)} EVE_PYTHON=${EVE_PYTHON:-/usr/bin/python3}
status=0
for b in "$here"/bench_*.sh; do
  [[ -e $b ]] || continue
  echo "== $(basename "$b" .sh)"
  bash "$b" || { echo "bench: $(basename "$b") failed" >&2; status=1; }
  echo
done
exit $status
