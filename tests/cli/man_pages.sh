#!/usr/bin/env bash
# Every long option printed by a program's --help (and by each subcommand's --help) must
# appear in its man page, and every program and script must have one. (That the pages'
# examples run is man_examples.sh.)
source "$(dirname "$0")/lib.bash"
programs=(eve-prep eve-tokenize eve-pretrain eve-finetune eve-embed eve-rank eve-score)
[[ -f $EVE_SOURCE/man/man7/eve.7 ]] || { echo "missing man/man7/eve.7"; fail=1; }
for s in "$EVE_SOURCE"/scripts/eve-*; do
  [[ -f $EVE_SOURCE/man/man1/$(basename "$s").1 ]] || { echo "missing man page for scripts/$(basename "$s")"; fail=1; }
done
for p in "${programs[@]}"; do
  page=$EVE_SOURCE/man/man1/$p.1
  if [[ ! -f $page ]]; then
    echo "missing man page $page"; fail=1; continue
  fi
  # troff writes a literal hyphen as \- ; compare on the plain text.
  text=$(sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' "$page")
  help=$("$EVE_BIN/$p" --help)
  subs=$(printf '%s\n' "$help" | awk '/^Subcommands:/{s=1;next} s&&/^  [a-z]/{print $1}')
  for s in $subs; do help+=$'\n'"$("$EVE_BIN/$p" "$s" --help)"; done
  opts=$(printf '%s\n' "$help" | grep -oE -- '--[a-z0-9][a-z0-9-]*' | sort -u)
  for o in $opts; do
    [[ $o == --help ]] && continue
    if ! grep -qF -- "$o" <<<"$text"; then
      echo "$p: option $o is in --help but not in man/man1/$p.1"; fail=1
    fi
  done
  for s in $subs; do
    grep -qw -- "$s" <<<"$text" || { echo "$p: subcommand $s is not in man/man1/$p.1"; fail=1; }
  done
done
# eve-rank writes no checkpoint and counts no bad inputs: its exit status must not say so.
status=$(sed -n '/^\.SH EXIT STATUS/,/^\.SH/p' "$EVE_SOURCE/man/man1/eve-rank.1")
if grep -nE 'checkpoint|^3 |; 3 ' <<<"$status"; then echo "eve-rank.1: EXIT STATUS names what eve-rank does not do"; fail=1; fi
exit $fail
