#!/usr/bin/python3
"""Straightforward reference for `eve-score retrieval`: ALBEF/X-VLM/EVE's itm_eval, written
from its specification (texts numbered image by image, argsort ranks, R@1/5/10 in percent).
Equal to eve-score whenever no score ties with a ground truth.

usage: retrieval_eval_ref.py --ann TEST.json --i2t I2T.npy --t2i T2I.npy
Prints {"txt_r1", ..., "r_mean", "images", "texts"} as JSON.
"""
import argparse
import json

import numpy as np


def itm_eval(scores_i2t, scores_t2i, txt2img, img2txt):
    ranks = np.zeros(scores_i2t.shape[0])
    for index, score in enumerate(scores_i2t):
        inds = np.argsort(score)[::-1]
        rank = 1e20
        for i in img2txt[index]:
            tmp = np.where(inds == i)[0][0]
            rank = min(rank, tmp)
        ranks[index] = rank
    tr1, tr5, tr10 = (100.0 * len(np.where(ranks < k)[0]) / len(ranks) for k in (1, 5, 10))
    ranks = np.zeros(scores_t2i.shape[0])
    for index, score in enumerate(scores_t2i):
        inds = np.argsort(score)[::-1]
        ranks[index] = np.where(inds == txt2img[index])[0][0]
    ir1, ir5, ir10 = (100.0 * len(np.where(ranks < k)[0]) / len(ranks) for k in (1, 5, 10))
    tr_mean = (tr1 + tr5 + tr10) / 3
    ir_mean = (ir1 + ir5 + ir10) / 3
    return {'txt_r1': tr1, 'txt_r5': tr5, 'txt_r10': tr10, 'txt_r_mean': tr_mean,
            'img_r1': ir1, 'img_r5': ir5, 'img_r10': ir10, 'img_r_mean': ir_mean,
            'r_mean': (tr_mean + ir_mean) / 2}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--ann', required=True)
    ap.add_argument('--i2t', required=True)
    ap.add_argument('--t2i', required=True)
    args = ap.parse_args()
    with open(args.ann, encoding='utf-8') as f:
        entries = json.load(f)
    txt2img, img2txt, t = {}, {}, 0
    for img_id, entry in enumerate(entries):
        img2txt[img_id] = []
        for _ in entry['caption']:
            img2txt[img_id].append(t)
            txt2img[t] = img_id
            t += 1
    result = itm_eval(np.load(args.i2t).astype(np.float32), np.load(args.t2i).astype(np.float32),
                      txt2img, img2txt)
    result = {k: float(v) for k, v in result.items()}
    result['images'] = len(entries)
    result['texts'] = t
    print(json.dumps(result))


if __name__ == '__main__':
    main()
