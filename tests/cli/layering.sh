#!/usr/bin/env bash
# The layers point one way: every #include "eve/<folder>/..." in lib/ and cmd/ must name the
# including file's own folder or one on an earlier line of lib/eve/LAYERS (cmd/ is above them
# all). Each include against that order is named with its file, line and edge.
source "$(dirname "$0")/lib.bash"
cd "$EVE_SOURCE"
layers=lib/eve/LAYERS
[[ -f $layers ]] || { echo "missing $layers"; exit 1; }
# Every folder of lib/eve must have a place in the order.
for d in lib/eve/*/; do
  d=${d%/}; d=${d##*/}
  if ! grep -v '^#' "$layers" | grep -qw -- "$d"; then
    echo "lib/eve/$d: folder not in $layers"; fail=1
  fi
done
files=$(find lib cmd -type f \( -name '*.h' -o -name '*.cpp' -o -name '*.inc' \) | sort)
# shellcheck disable=SC2086
awk -v layers="$layers" '
  BEGIN {
    n = 0
    while ((getline line < layers) > 0) {
      sub(/#.*/, "", line)
      if (line ~ /^[ \t]*$/) continue
      ++n
      k = split(line, names, /[ \t]+/)
      for (i = 1; i <= k; ++i) if (names[i] != "") { level[names[i]] = n; row[n] = row[n] " " names[i] }
    }
    level["cmd"] = n + 1
    bad = 0
  }
  FNR == 1 {
    split(FILENAME, p, "/")
    from = (p[1] == "cmd") ? "cmd" : p[3]
  }
  /^[ \t]*#[ \t]*include[ \t]*["<]eve\// {
    s = $0
    sub(/^[ \t]*#[ \t]*include[ \t]*["<]eve\//, "", s)
    to = s; sub(/\/.*/, "", to)
    if (to == from) next
    if (!(to in level)) {
      printf "%s:%d: %s -> %s: %s is not a layer (%s)\n", FILENAME, FNR, from, to, to, layers
      bad = 1
    } else if (!(from in level)) {
      printf "%s:%d: %s -> %s: %s is not a layer (%s)\n", FILENAME, FNR, from, to, from, layers
      bad = 1
    } else if (level[to] >= level[from]) {
      why = (level[to] == level[from]) ? "siblings on one layer" : "an upward include"
      printf "%s:%d: %s -> %s: %s (order: %s)\n", FILENAME, FNR, from, to, why, layers
      bad = 1
    }
  }
  END { exit bad }
' $files || fail=1
[[ $fail == 0 ]] && echo "layering: $(wc -w <<<"$files") files follow $layers"
exit $fail
