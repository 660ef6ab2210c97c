#!/usr/bin/python3
"""Straightforward reference for `eve-score nlvr2`: accuracy and consistency as the official
NLVR2 script defines them, written from its specification (a missing prediction exits 1).

usage: nlvr2_eval_ref.py --gold LABELS.jsonl --pred PREDICTIONS.csv
Prints {"accuracy", "consistency", "examples", "groups"} as JSON.
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--gold', required=True)
    ap.add_argument('--pred', required=True)
    args = ap.parse_args()
    predictions = {}
    with open(args.pred, encoding='utf-8') as f:
        for n, line in enumerate(f):
            fields = line.strip().split(',')
            if fields == [''] or (n == 0 and fields[0] == 'identifier'):
                continue
            predictions[fields[0]] = fields[1]
    with open(args.gold, encoding='utf-8') as f:
        examples = [json.loads(line) for line in f if line.strip()]
    missing = [e['identifier'] for e in examples if e['identifier'] not in predictions]
    if missing:
        sys.exit('missing predictions: %s' % missing[:5])
    correct, consistent = 0., {}
    for e in examples:
        fields = e['identifier'].split('-')
        fields[2] = ''
        group = '-'.join(fields)
        label = e['label'] if isinstance(e['label'], str) else str(e['label'])
        ok = predictions[e['identifier']].lower() == label.lower()
        correct += ok
        consistent[group] = consistent.get(group, True) and ok
    print(json.dumps({
        'accuracy': correct / len(examples),
        'consistency': sum(1. for v in consistent.values() if v) / len(consistent),
        'examples': len(examples),
        'groups': len(consistent),
    }))


if __name__ == '__main__':
    main()
