#!/usr/bin/python3
"""Brute-force ranking oracle for eve-rank: numpy matrix product, then for each query the
rows sorted by (-score, row index) computed in float32 like eve-rank."""
import json
import sys

import numpy as np


def ranks(q, g, k):
    s = (q.astype(np.float32) @ g.astype(np.float32).T).astype(np.float32)
    out = []
    for i in range(s.shape[0]):
        order = np.lexsort((np.arange(s.shape[1]), -s[i]))[:k]
        out.append([(int(j), float(s[i, j])) for j in order])
    return s, out


if __name__ == "__main__":
    # rank_ref.py Q.npy G.npy K  -> JSONL with row numbers as ids
    q, g, k = np.load(sys.argv[1]), np.load(sys.argv[2]), int(sys.argv[3])
    for i, r in enumerate(ranks(q, g, k)[1]):
        print(json.dumps({"query": i, "results": [[j, sc] for j, sc in r]}))
