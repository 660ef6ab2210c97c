#!/usr/bin/env bash
# eve-tokenize clean must match EVE's Python pre_caption / pre_question character for
# character: on every Unicode code point (in runs of 48), on random mixes of letters,
# punctuation, whitespace and Greek sigma contexts, and with word limits.
source "$(dirname "$0")/lib.bash"

"$EVE_PYTHON" - "$tmp" <<'PY'
import random, re, sys
d = sys.argv[1]
def pre_caption(caption, max_words):
    caption = re.sub(r"([,.'!?\"()*#:;~`])", '', caption.lower()).replace('-', ' ').replace('/', ' ').replace('<person>', 'person')
    caption = re.sub(r"\s{2,}", ' ', caption)
    caption = caption.rstrip('\n').strip(' ')
    words = caption.split(' ')
    if len(words) > max_words:
        caption = ' '.join(words[:max_words])
    return caption
def pre_question(question, max_words):
    question = re.sub(r"([,.'!?\"()*#:;~])", '', question.lower()).replace('-', ' ').replace('/', ' ')
    question = question.rstrip(' ')
    words = question.split(' ')
    if len(words) > max_words:
        question = ' '.join(words[:max_words])
    return question
lines = []
cps = [c for c in range(0x110000) if not (0xD800 <= c < 0xE000) and c not in (0x00, 0x0A, 0x0D)]
# (NUL is excluded: a NUL byte inside a line is an input error.)
for i in range(0, len(cps), 48):
    lines.append('x' + ''.join(chr(c) for c in cps[i:i + 48]))
r = random.Random(3)
alphabet = list("AbCdΣσΑΒΓΔΕΖΗΘИЖÉİ'.,!?\"()*#:;~`-/<>person  \t\u00a0\u3000\u0301\u00ad") + ["<person>", "<PERSON>"]
for _ in range(3000):
    lines.append('x' + ''.join(r.choice(alphabet) for _ in range(r.randint(1, 40))))
with open(f"{d}/in.txt", "w", encoding="utf-8", newline="") as f:
    f.write("\n".join(lines) + "\n")
for name, fn in (("caption", pre_caption), ("question", pre_question)):
    for mw, tag in ((10**9, "all"), (5, "5")):
        with open(f"{d}/{name}.{tag}.want", "w", encoding="utf-8", newline="") as f:
            f.write("".join(fn(l, mw) + "\n" for l in lines))
PY

fail=0
for mode in caption question; do
  "$EVE_BIN/eve-tokenize" clean --clean "$mode" --max-words 0 --threads 2 "$tmp/in.txt" >"$tmp/$mode.all.got"
  "$EVE_BIN/eve-tokenize" clean --clean "$mode" --max-words 5 <"$tmp/in.txt" >"$tmp/$mode.5.got"
  for tag in all 5; do
    if ! cmp -s "$tmp/$mode.$tag.want" "$tmp/$mode.$tag.got"; then
      echo "clean --clean $mode (max words $tag) differs from Python:"
      diff <(cat -A "$tmp/$mode.$tag.want") <(cat -A "$tmp/$mode.$tag.got") | head -10
      fail=1
    fi
  done
done
[[ $(wc -l <"$tmp/caption.all.got") -gt 20000 ]] || { echo "too few lines compared"; fail=1; }
exit $fail
