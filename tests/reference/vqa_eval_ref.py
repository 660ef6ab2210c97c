#!/usr/bin/python3
"""Straightforward reference for `eve-score vqa`: the official VQA v2 evaluator's algorithm,
written from its specification for Python 3 with the Python 2 behaviour the official
evaluator has (round half away from zero, ASCII \\d, unicode whitespace incl. U+180E, simple
lower-case mappings). Used as the test oracle and as the benchmark peer.

usage: vqa_eval_ref.py --annotations A.json --questions Q.json --pred R.json [--evaluator current|legacy2017]
Prints {"overall", "perAnswerType", "perQuestionType", "questions", "evaluator"} as JSON.
"""
import argparse
import json
import re
import sys
from decimal import ROUND_HALF_UP, Decimal

PUNCT = [';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@',
         '`', ',', '?', '!']
NUMBERS = {'none': '0', 'zero': '0', 'one': '1', 'two': '2', 'three': '3', 'four': '4',
           'five': '5', 'six': '6', 'seven': '7', 'eight': '8', 'nine': '9', 'ten': '10'}
ARTICLES = {'a', 'an', 'the'}
# canonical form <- accepted spellings
_CONTRACTION_GROUPS = {
    "ain't": ["aint"], "aren't": ["arent"], "can't": ["cant"], "could've": ["couldve"],
    "couldn't": ["couldnt"], "couldn't've": ["couldn'tve", "couldnt've"], "didn't": ["didnt"],
    "doesn't": ["doesnt"], "don't": ["dont"], "hadn't": ["hadnt"],
    "hadn't've": ["hadnt've", "hadn'tve"], "hasn't": ["hasnt"], "haven't": ["havent"],
    "he'd": ["hed"], "he'd've": ["hed've", "he'dve"], "he's": ["hes"], "how'd": ["howd"],
    "how'll": ["howll"], "how's": ["hows"], "I'd've": ["Id've", "I'dve"], "I'm": ["Im"],
    "I've": ["Ive"], "isn't": ["isnt"], "it'd": ["itd"], "it'd've": ["itd've", "it'dve"],
    "it'll": ["itll"], "let's": ["let's"], "ma'am": ["maam"], "mightn't": ["mightnt"],
    "mightn't've": ["mightnt've", "mightn'tve"], "might've": ["mightve"],
    "mustn't": ["mustnt"], "must've": ["mustve"], "needn't": ["neednt"], "not've": ["notve"],
    "o'clock": ["oclock"], "oughtn't": ["oughtnt"],
    "'ow's'at": ["ow's'at", "'ows'at", "'ow'sat"], "shan't": ["shant"],
    "she'd've": ["shed've", "she'dve"], "she's": ["she's"], "should've": ["shouldve"],
    "shouldn't": ["shouldnt"], "shouldn't've": ["shouldnt've", "shouldn'tve"],
    "somebodyd": ["somebody'd"], "somebody'd've": ["somebodyd've", "somebody'dve"],
    "somebody'll": ["somebodyll"], "somebody's": ["somebodys"], "someone'd": ["someoned"],
    "someone'd've": ["someoned've", "someone'dve"], "someone'll": ["someonell"],
    "someone's": ["someones"], "something'd": ["somethingd"],
    "something'd've": ["somethingd've", "something'dve"], "something'll": ["somethingll"],
    "that's": ["thats"], "there'd": ["thered"], "there'd've": ["thered've", "there'dve"],
    "there're": ["therere"], "there's": ["theres"], "they'd": ["theyd"],
    "they'd've": ["theyd've", "they'dve"], "they'll": ["theyll"], "they're": ["theyre"],
    "they've": ["theyve"], "'twas": ["twas"], "wasn't": ["wasnt"],
    "we'd've": ["wed've", "we'dve"], "we've": ["weve"], "weren't": ["werent"],
    "what'll": ["whatll"], "what're": ["whatre"], "what's": ["whats"], "what've": ["whatve"],
    "when's": ["whens"], "where'd": ["whered"], "where's": ["wheres"], "where've": ["whereve"],
    "who'd": ["whod"], "who'd've": ["whod've", "who'dve"], "who'll": ["wholl"],
    "who's": ["whos"], "who've": ["whove"], "why'll": ["whyll"], "why're": ["whyre"],
    "why's": ["whys"], "won't": ["wont"], "would've": ["wouldve"], "wouldn't": ["wouldnt"],
    "wouldn't've": ["wouldnt've", "wouldn'tve"], "y'all": ["yall"],
    "y'all'll": ["yall'll", "y'allll"], "y'all'd've": ["yall'd've", "y'alld've", "y'all'dve"],
    "you'd": ["youd"], "you'd've": ["youd've", "you'dve"], "you'll": ["youll"],
    "you're": ["youre"], "you've": ["youve"],
}
CONTRACTIONS = {k: v for v, ks in _CONTRACTION_GROUPS.items() for k in ks}

# Python 2's unicode whitespace: Python 3's plus U+180E.
WHITESPACE = ''.join(chr(c) for c in range(0x110000)
                     if not 0xD800 <= c < 0xE000 and chr(c).isspace()) + '\u180e'
_WS_RUN = re.compile('[%s]+' % re.escape(WHITESPACE))
_DIGIT_COMMA_DIGIT = re.compile(r'[0-9],[0-9]')


def py2_strip(s):
    return s.strip(WHITESPACE)


def py2_lower(s):
    out = []
    for c in s:
        low = c.lower()
        out.append(low if len(low) == 1 else 'i')  # only U+0130 lowers to two code points
    return ''.join(out)


def py2_round(x, ndigits=2):
    return float(Decimal(x).quantize(Decimal(1).scaleb(-ndigits), rounding=ROUND_HALF_UP))


def process_punctuation(s):
    out = s
    comma = _DIGIT_COMMA_DIGIT.search(s) is not None
    for p in PUNCT:
        if p + ' ' in s or ' ' + p in s or comma:
            out = out.replace(p, '')
        else:
            out = out.replace(p, ' ')
    # delete periods not followed by an ASCII digit, at most 32 of them
    chars, deleted = [], 0
    for i, c in enumerate(out):
        if c == '.' and deleted < 32 and not (i + 1 < len(out) and '0' <= out[i + 1] <= '9'):
            deleted += 1
            continue
        chars.append(c)
    return ''.join(chars)


def process_digit_article(s):
    words = []
    for w in _WS_RUN.split(py2_lower(s)):
        if not w:
            continue
        w = NUMBERS.get(w, w)
        if w in ARTICLES:
            continue
        words.append(w)
    return ' '.join(CONTRACTIONS.get(w, w) for w in words)


def clean(s):
    return py2_strip(s.replace('\n', ' ').replace('\t', ' '))


def question_accuracy(records, prediction, evaluator):
    records = [dict(r) for r in records]
    if evaluator == 'current':
        for r in records:
            r['answer'] = clean(r['answer'])
        pred = clean(prediction)
        if len(set(r['answer'] for r in records)) > 1:
            for r in records:
                r['answer'] = process_digit_article(process_punctuation(r['answer']))
            pred = process_digit_article(process_punctuation(pred))
    else:
        pred = process_digit_article(process_punctuation(clean(prediction)))
        if len(set(r['answer'] for r in records)) > 1:
            for r in records:
                r['answer'] = process_punctuation(r['answer'])
    accs = []
    for held_out in records:
        others = [r for r in records if r != held_out]
        matching = [r for r in others if r['answer'] == pred]
        accs.append(min(1, float(len(matching)) / 3))
    return float(sum(accs)) / len(accs)


def evaluate(ann_path, ques_path, pred_path, evaluator):
    with open(ann_path, encoding='utf-8') as f:
        annotations = json.load(f)['annotations']
    with open(ques_path, encoding='utf-8') as f:
        json.load(f)['questions']
    with open(pred_path, encoding='utf-8') as f:
        results = json.load(f)
    answer = {}
    for r in results:
        answer[r['question_id']] = r['answer']
    if set(answer) != set(a['question_id'] for a in annotations):
        sys.exit('results do not correspond to the annotations')
    overall, per_q, per_a = [], {}, {}
    for a in annotations:
        acc = question_accuracy(a['answers'], answer[a['question_id']], evaluator)
        overall.append(acc)
        per_q.setdefault(a['question_type'], []).append(acc)
        per_a.setdefault(a['answer_type'], []).append(acc)

    def pct(values):
        return py2_round(100 * float(sum(values)) / len(values), 2)
    return {
        'overall': pct(overall),
        'perAnswerType': {k: pct(v) for k, v in sorted(per_a.items())},
        'perQuestionType': {k: pct(v) for k, v in sorted(per_q.items())},
        'questions': len(annotations),
        'evaluator': evaluator,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--annotations', required=True)
    ap.add_argument('--questions', required=True)
    ap.add_argument('--pred', required=True)
    ap.add_argument('--evaluator', default='current', choices=['current', 'legacy2017'])
    args = ap.parse_args()
    print(json.dumps(evaluate(args.annotations, args.questions, args.pred, args.evaluator)))


if __name__ == '__main__':
    main()
