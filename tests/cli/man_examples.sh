#!/usr/bin/env bash
# Every example in the man pages runs on the toy world.
#
# The convention (also in a comment at the top of each page): each .nf/.fi block of a page's
# EXAMPLES section is a list of shell commands, one per line, a line ending in \e (a
# backslash) continuing on the next. The pages run in pipeline order (eve-prep first, then
# eve-tokenize, eve-pretrain, eve-finetune, eve-embed, eve-rank, eve-score, eve-report, the
# rest by name), block by block, in one scratch directory, so an example may use what an
# earlier one made: world/ (eve-prep synth), data/<task>/ with *.ids.jsonl, tok.model and
# tok.json, the bundles pretrain/ and ft-vqa/, img.npy and txt.npy, t2i.jsonl. Write the
# examples small enough to run in seconds on two cores. A block that cannot run here (real
# datasets, several machines, a GPU) is marked by a roff comment on the line before its .nf:
#   .\" example-skip: needs the COCO images
# and is counted and listed, not run. The first failure names the page and the command
# and ends the test.
source "$(dirname "$0")/lib.bash"
export PATH="$EVE_BIN:$EVE_SOURCE/scripts:$PATH" EVE_THREADS=2

order=(eve-prep eve-tokenize eve-pretrain eve-finetune eve-embed eve-rank eve-score eve-report)
pages=()
for p in "${order[@]}"; do pages+=("$EVE_SOURCE/man/man1/$p.1"); done
for f in "$EVE_SOURCE"/man/man1/*.1 "$EVE_SOURCE"/man/man7/*.7; do
  [[ " ${pages[*]} " == *" $f "* ]] || pages+=("$f")
done

# One line per command: page, skip reason ("" = run), command with roff escapes undone,
# apart by the unit separator (read joins tabs in a row, and an empty field would vanish).
"$EVE_PYTHON" - "${pages[@]}" >"$tmp/examples.txt" <<'PY'
import re, sys
for path in sys.argv[1:]:
    page = re.sub(r".*/(man[17]/)", r"man/\1", path)
    section = skip = None
    in_block = False
    lines = []
    for raw in open(path, encoding="utf-8"):
        line = raw.rstrip("\n")
        if line.startswith(".SH"):
            section = line[3:].strip().strip('"')
            continue
        if section not in ("EXAMPLE", "EXAMPLES"):
            continue
        m = re.match(r'\.\\"\s*example-skip:\s*(.*)', line)
        if m:
            skip = m.group(1).strip() or "marked"
            continue
        if line.startswith(".nf"):
            in_block, lines = True, []
            continue
        if line.startswith(".fi") and in_block:
            text = "\n".join(lines)
            for a, b in ((r"\-", "-"), (r"\(aq", "'"), (r"\(dq", '"'), (r"\&", ""), (r"\fB", ""),
                         (r"\fI", ""), (r"\fR", ""), (r"\fP", ""), (r"\e", "\\"), ("\\\\", "\\")):
                text = text.replace(a, b)
            text = re.sub(r"\\\n\s*", " ", text)  # continued lines
            for cmd in text.split("\n"):
                if cmd.strip():
                    print(f"{page}\x1f{skip or ''}\x1f{cmd.strip()}")
            in_block, skip = False, None
            continue
        if in_block and not line.startswith("."):
            lines.append(line)
PY

cd "$tmp"
fail=0 ran=0 skipped=0
while IFS=$'\x1f' read -r page skip cmd; do
  if [[ -n $skip ]]; then
    skipped=$((skipped + 1)); echo "skip $page ($skip): $cmd"; continue
  fi
  ran=$((ran + 1))
  if ! bash -eo pipefail -c "$cmd" >"$tmp/out.txt" 2>&1 </dev/null; then
    echo "FAIL $page: $cmd"; tail -n 5 "$tmp/out.txt" | sed 's/^/  | /'; fail=1
    # Later examples use what earlier ones made: their failures would only repeat this one.
    break
  fi
done <"$tmp/examples.txt"
echo "$ran examples ran, $skipped skipped$([[ $fail == 0 ]] || echo ", stopped at the first failure")"
[[ $ran -gt 0 ]] || { echo "FAIL no example found"; fail=1; }
exit $fail
