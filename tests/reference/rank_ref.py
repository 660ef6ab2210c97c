#!/usr/bin/python3
"""Brute-force ranking oracle for eve-rank: numpy matrix product, then for each query the
rows sorted by (-score, row index). By default the scores are computed in float32 like the
matrix products eve-rank finds candidates with; with --exact they are the float64 inner
products rounded to float32, the scores eve-rank orders and writes, so rows tie exactly
when eve-rank must break the tie by the lower row."""
import json
import sys

import numpy as np


def ranks(q, g, k, exact=False):
    if exact:
        s = (q.astype(np.float64) @ g.astype(np.float64).T).astype(np.float32)
    else:
        s = (q.astype(np.float32) @ g.astype(np.float32).T).astype(np.float32)
    out = []
    for i in range(s.shape[0]):
        order = np.lexsort((np.arange(s.shape[1]), -s[i]))[:k]
        out.append([(int(j), float(s[i, j])) for j in order])
    return s, out


if __name__ == "__main__":
    # rank_ref.py [--exact] Q.npy G.npy K  -> JSONL with row numbers as ids
    args = sys.argv[1:]
    exact = "--exact" in args
    args = [a for a in args if a != "--exact"]
    q, g, k = np.load(args[0]), np.load(args[1]), int(args[2])
    for i, r in enumerate(ranks(q, g, k, exact)[1]):
        print(json.dumps({"query": i, "results": [[j, sc] for j, sc in r]}))
