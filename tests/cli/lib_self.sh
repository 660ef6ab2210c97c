#!/usr/bin/env bash
# lib.bash itself: every CLI test leans on its verdicts, so a helper that passes what it
# should refuse would turn tests green silently. Each case runs a small script that sources
# lib.bash in a child bash and checks the child's exit status and what it said.
source "$(dirname "$0")/lib.bash"
lib=$EVE_SOURCE/tests/cli/lib.bash

# case NAME WANT-STATUS WANT-STDERR-TEXT BODY: BODY, after sourcing lib.bash, exits with
# WANT-STATUS and its stderr holds WANT-STDERR-TEXT (empty: says nothing on stderr).
case_() {
  local name=$1 want=$2 text=$3 rc=0
  printf 'source %q\n%s\n' "$lib" "$4" >"$name.sh"
  bash "$t/$name.sh" >"$name.out" 2>"$name.err" || rc=$?
  check "$name: exit status" "$want" "$rc"
  if [[ -z $text ]]; then
    [[ ! -s $name.err ]] || flunk "$name: said on stderr: $(cat "$name.err")"
  else
    grep -qF -- "$text" "$name.err" || flunk "$name: stderr lacks \"$text\": $(cat "$name.err")"
  fi
}

# fail stops at once; flunk and check go on, and the exit turns what they recorded into 1.
case_ fail-stops 1 "FAIL: broken" 'fail broken; echo "after fail" >&2'
grep -q "after fail" fail-stops.err && flunk "fail did not stop the test"
case_ flunk-goes-on 1 "after flunk" 'flunk broken; echo "after flunk" >&2'
case_ check-equal 0 "" 'check same a a'
case_ check-differs 1 "  want: a" 'check differs a b; echo "after check" >&2'
grep -q "after check" check-differs.err || flunk "check stopped the test"
case_ flag-kept 1 "" 'fail=1'
case_ skip-kept 77 "" 'fail=1; exit 77'

# expect_error: the status, the text, one line, nothing on stdout; each miss is named.
err_line() { printf 'expect_error 3 "bad thing" -- bash -c %q' "$1"; }
case_ expect-ok 0 "" "$(err_line 'echo "x: bad thing" >&2; exit 3')"
case_ expect-code 1 "exit 1, want 3" "$(err_line 'echo "x: bad thing" >&2; exit 1')"
case_ expect-success 1 "exit 0, want 3" "$(err_line 'echo "x: bad thing" >&2')"
case_ expect-text 1 'stderr lacks "bad thing"' "$(err_line 'echo "x: other thing" >&2; exit 3')"
case_ expect-lines 1 "stderr is not one line" "$(err_line 'printf "x: bad thing\nmore\n" >&2; exit 3')"
case_ expect-many 0 "" "expect_error --many-lines 3 'bad thing' -- bash -c 'printf \"log\nx: bad thing\n\" >&2; exit 3'"
case_ expect-stdout 1 "wrote to stdout: out" "$(err_line 'echo out; echo "x: bad thing" >&2; exit 3')"
case_ expect-goes-on 1 "after expect" "$(err_line 'exit 0'); echo 'after expect' >&2"
case_ expect-usage 1 "want CODE TEXT -- COMMAND" 'expect_error 3 "bad thing" true'

# The scratch dir is the current dir and goes on exit, after what on_exit registered ran
# (in it: the registered command still sees the dir), also when the test fails.
case_ scratch 0 "" 'echo "$t $tmp $PWD" >"$0.dirs"; on_exit "[[ -d \$t ]] && echo ran >>$0.dirs"'
read -r a b c <scratch.sh.dirs
[[ $a == "$b" && $a == "$c" ]] || flunk "t, tmp and the current dir differ: $a $b $c"
[[ ! -e $a ]] || flunk "the scratch dir $a is left"
[[ $(tail -n 1 scratch.sh.dirs) == ran ]] || flunk "on_exit did not run before the clean-up"
case_ scratch-fail 1 "" 'echo "$t" >"$0.dirs"; on_exit "echo ran >>$0.dirs"; false'
read -r a <scratch-fail.sh.dirs
[[ ! -e $a && $(tail -n 1 scratch-fail.sh.dirs) == ran ]] || flunk "a failing test left $a or skipped on_exit"

# A test that reuses the names t and tmp still gets its own scratch dir removed, and only that.
case_ renamed 0 "" 'echo "$t" >"$0.dirs"; t=$0.keep; tmp=$t; mkdir -p "$t"'
read -r a <renamed.sh.dirs
[[ ! -e $a && -d renamed.sh.keep ]] || flunk "reusing t removed the wrong dir or left $a"

# The environment: the programs on PATH, EVE_PYTHON's default, a missing EVE_BIN named.
case_ path 0 "" '[[ $(command -v eve-prep) == "$EVE_BIN/eve-prep" && $PY == "$EVE_PYTHON" ]] || exit 5'
rc=0; env -u EVE_PYTHON bash -c "source '$lib'; [[ \$PY == /usr/bin/python3 ]]" || rc=$?
check python-default 0 "$rc"
rc=0; env -u EVE_BIN bash -c "source '$lib'" 2>nobin.err || rc=$?
[[ $rc != 0 ]] && grep -q EVE_BIN nobin.err || flunk "no EVE_BIN: exit $rc: $(cat nobin.err)"
exit $fail
