#!/usr/bin/env bash
# eve-score retrieval: .npy score matrices (float32 and float16) and rank lists on a
# fixture with 2, 1 and 4 captions per image, checked by hand and against the itm_eval
# reference; shape and usage errors.
source "$(dirname "$0")/lib.bash"
score=$EVE_BIN/eve-score
fx=$EVE_SOURCE/tests/fixtures/score
ref=$EVE_SOURCE/tests/reference

# Texts 0-1 -> image 0, text 2 -> image 1, texts 3-6 -> image 2. Image 0's best text is at
# position 0, image 1's text at position 6 (R@10 only), image 2's best at 3; every text finds
# its image first except text 4 (third).
"$EVE_PYTHON" - "$tmp" <<'PY'
import sys
import numpy as np
d = sys.argv[1]
i2t = np.array([[.9, .1, .8, .7, .6, .5, .4],
                [.9, .8, .3, .7, .6, .5, .4],
                [.9, .8, .7, .6, .5, .4, .3]], dtype=np.float32)
t2i = np.array([[.9, .1, .2], [.9, .1, .2], [.1, .9, .2], [.1, .2, .9],
                [.5, .4, .3], [.1, .2, .9], [.1, .2, .9]], dtype=np.float32)
np.save(d + '/i2t.npy', i2t)
np.save(d + '/t2i.npy', t2i)
np.save(d + '/i2t16.npy', i2t.astype(np.float16))
np.save(d + '/t2i16.npy', t2i.astype(np.float16))
np.save(d + '/wrong.npy', t2i)
PY
expected='{"txt_r1":33.333333333333336,"txt_r5":66.66666666666667,"txt_r10":100.0,"txt_r_mean":66.66666666666667,"img_r1":85.71428571428571,"img_r5":100.0,"img_r10":100.0,"img_r_mean":95.23809523809524,"r_mean":80.95238095238096,"images":3,"texts":7}'
out=$("$score" retrieval --ann "$fx/retrieval_test.json" --i2t "$tmp/i2t.npy" --t2i "$tmp/t2i.npy")
check "float32" "$expected" "$out"
ref=$("$EVE_PYTHON" "$ref/retrieval_eval_ref.py" --ann "$fx/retrieval_test.json" --i2t "$tmp/i2t.npy" --t2i "$tmp/t2i.npy")
check "reference" "$expected" "$(tr -d ' ' <<<"$ref")"
out=$("$score" retrieval --ann "$fx/retrieval_test.json" --i2t "$tmp/i2t16.npy" --t2i "$tmp/t2i16.npy" --threads 1)
check "float16" "$expected" "$out"

# The same ranks as JSONL lists, ids by position and by name.
cat >"$tmp/i2t.jsonl" <<'JL'
{"query": 0, "results": [[0, 0.9], [2, 0.8], [3, 0.7]]}
{"query": "flickr30k-images/10002456.jpg", "results": [[0, 0.9], [1, 0.8], [3, 0.7], [4, 0.6], [5, 0.5], [6, 0.4], [2, 0.3]]}
{"query": 2, "results": [["flickr30k-images/1000092795.jpg#0", 0.9], [1, 0.8], [2, 0.7], ["flickr30k-images/1000268201.jpg#0", 0.6]]}
JL
"$EVE_PYTHON" - "$tmp" <<'PY'
import sys
import numpy as np
d = sys.argv[1]
t2i = np.load(d + '/t2i.npy')
with open(d + '/t2i.jsonl', 'w') as f:
    for t, row in enumerate(t2i):
        f.write('{"query": %d, "results": [%s]}\n' % (t, ', '.join('[%d, %r]' % (i, float(s)) for i, s in enumerate(row))))
PY
out=$("$score" retrieval --ann "$fx/retrieval_test.json" --i2t-ranks "$tmp/i2t.jsonl" --t2i-ranks "$tmp/t2i.jsonl")
check "rank lists" "$expected" "$out"
out=$("$score" --format table retrieval --ann "$fx/retrieval_test.json" --i2t "$tmp/i2t.npy" --t2i "$tmp/t2i.npy")
grep -qE '^r_mean +80\.95238095238096$' <<<"$out" || { echo "FAIL table: $out"; fail=1; }

# Errors.
rc=0; "$score" retrieval --ann "$fx/retrieval_test.json" --i2t "$tmp/wrong.npy" --t2i "$tmp/t2i.npy" 2>"$tmp/err" >/dev/null || rc=$?
check "shape" "1 eve-score: error: $tmp/wrong.npy: score matrix has shape (7, 3), expected (3, 7): images x texts of the annotation" "$rc $(cat "$tmp/err")"
rc=0; "$score" retrieval --ann "$fx/retrieval_test.json" --i2t "$tmp/i2t.npy" --t2i-ranks "$tmp/t2i.jsonl" 2>"$tmp/err" >/dev/null || rc=$?
check "mixed inputs" "2" "$rc"
grep -qF "give either --i2t and --t2i" "$tmp/err" || { echo "FAIL mixed text"; cat "$tmp/err"; fail=1; }
rc=0; "$score" retrieval --ann "$fx/retrieval_test.json" --i2t "$tmp/i2t.npy" 2>"$tmp/err" >/dev/null || rc=$?
check "half a pair" "2 eve-score: error: --i2t and --t2i go together" "$rc $(cat "$tmp/err")"
head -2 "$tmp/t2i.jsonl" >"$tmp/short.jsonl"
rc=0; "$score" retrieval --ann "$fx/retrieval_test.json" --i2t-ranks "$tmp/i2t.jsonl" --t2i-ranks "$tmp/short.jsonl" 2>"$tmp/err" >/dev/null || rc=$?
check "missing queries" "1 eve-score: error: $tmp/short.jsonl: 5 text queries have no line (first positions: 2, 3, 4, 5, 6) (rank every image and every text of $fx/retrieval_test.json)" "$rc $(cat "$tmp/err")"
printf '[{"image": "a.jpg", "caption": "a dog"}]' >"$tmp/train.json"
rc=0; "$score" retrieval --ann "$tmp/train.json" --i2t "$tmp/i2t.npy" --t2i "$tmp/t2i.npy" 2>"$tmp/err" >/dev/null || rc=$?
check "training file" 1 "$rc"
grep -qF "train.json:[0]: \"caption\" is one string" "$tmp/err" || { echo "FAIL training file text"; cat "$tmp/err"; fail=1; }
exit $fail
