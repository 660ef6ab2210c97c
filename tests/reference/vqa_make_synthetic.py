#!/usr/bin/python3
"""Writes a deterministic synthetic VQA v2 evaluation set in the official formats:
DIR/questions.json, DIR/annotations.json, DIR/results.json. Answers mix plain VQA-style
strings with every normalisation case (case, punctuation, number words, articles,
contractions, tabs/newlines, non-ASCII letters and spaces, periods, digit commas), humans
that agree and disagree, and predictions perturbed so that normalisation matters.

usage: vqa_make_synthetic.py --out DIR [--questions N] [--seed S] [--quirks] [--types N]
--quirks adds answer records without answer_id (identical records) and duplicate results;
--types N draws question types from N made-up names instead of ten real ones, so that each
per-question-type value averages only a few questions (a sharp oracle comparison).
VQA v2 val size: --questions 214354 (2,143,540 human answers).
"""
import argparse
import json
import os
import random

PLAIN = ['yes', 'no', '2', '1', '3', '4', 'red', 'white', 'blue', 'black', 'green', 'dog', 'cat',
         'tennis', 'frisbee', 'pizza', 'kitchen', 'left', 'right', 'skateboarding', 'baseball',
         'man', 'woman', 'grass', 'table', 'water', 'snow', 'sitting', 'standing', 'giraffe']
TRICKY = ['Yes', 'YES', 'yes.', 'Yes!', 'no.', 'two', 'Two', 'none', 'zero', 'ten', 'eleven',
          'a dog', 'the dog', 'The Dog', 'an apple', 'dont know', 'cant tell', 'its', 'im',
          'hot-dog', 'hot dog', 'hot - dog', 't-shirt', 'tshirt', '1,000', '1000', '1, 000',
          'red, white', 'red white', 'red,white', 'u.s.a.', 'usa', '3.5', '3. 5', '.5', '5.',
          '10:30', "o'clock", 'oclock', 'Café', 'CAFÉ', 'café', 'ÉCOLE', 'İstanbul', 'ΣΑΣ',
          'yes\t', ' yes ', 'yes\n', 'no\u00a0', '\u3000no', 'yes\u180e', 'a\u2003b', 'a b',
          'left/right', 'left right', '(red)', 'red?', '"red"', "red's", 'what?!', 'x=y+z',
          'a_b', 'back\\slash', '@home', 'home', '<3', 'semi;colon', '[tag]', '{x}', '`tick`',
          'A', 'the', 'a an the', '', '   ', 'one two three', 'One Two Three', 'youre', "you're",
          'yall', "y'all", 'somebody\'d', 'somebodyd', 'Im', 'Ive', 'whats', "what's",
          '.' * 40 + 'x', 'a.b.c.d', '1.5.2', 'x.1', '5 - 3', '5-3', 'none of the above']
QUESTION_TYPES = ['what color is the', 'how many', 'is the', 'what is the', 'are there',
                  'what', 'is this', 'none of the above', 'what sport is', 'where is the']
ANSWER_TYPES = ['yes/no', 'number', 'other']


def perturb(rng, s):
    r = rng.random()
    if r < 0.4:
        return s
    if r < 0.55:
        return s.upper()
    if r < 0.65:
        return s + rng.choice(['.', '!', '?', ' ', '\t', ','])
    if r < 0.75:
        return rng.choice(['the ', 'a ', 'an ', 'The ']) + s
    if r < 0.85:
        return rng.choice(TRICKY)
    return rng.choice(PLAIN)


def human_answers(rng, tricky_rate):
    pool = TRICKY if rng.random() < tricky_rate else PLAIN
    mode = rng.random()
    if mode < 0.3:  # unanimous
        a = rng.choice(pool)
        return [a] * 10
    k = rng.randint(2, 4)
    choices = [rng.choice(pool) for _ in range(k)]
    return [rng.choice(choices) for _ in range(10)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', required=True)
    ap.add_argument('--questions', type=int, default=2000)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--quirks', action='store_true')
    ap.add_argument('--tricky-rate', type=float, default=0.3)
    ap.add_argument('--types', type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    questions, annotations, results = [], [], []
    for i in range(args.questions):
        image_id = 100000 + i // 5
        qid = image_id * 1000 + i % 5
        questions.append({'image_id': image_id, 'question': 'What is shown %d?' % i,
                          'question_id': qid})
        answers = human_answers(rng, args.tricky_rate)
        records = []
        for j, a in enumerate(answers):
            rec = {'answer': a, 'answer_confidence': rng.choice(['yes', 'maybe', 'no'])}
            if not (args.quirks and i % 97 == 3):
                rec['answer_id'] = j + 1
            records.append(rec)
        qtype = ('type %d' % rng.randrange(args.types)) if args.types else rng.choice(QUESTION_TYPES)
        annotations.append({'question_type': qtype,
                            'multiple_choice_answer': answers[0], 'answers': records,
                            'image_id': image_id, 'answer_type': rng.choice(ANSWER_TYPES),
                            'question_id': qid})
        if args.quirks and i % 89 == 5:
            results.append({'question_id': qid, 'answer': 'overridden'})
        results.append({'question_id': qid, 'answer': perturb(rng, rng.choice(answers))})
    rng.shuffle(results)
    meta = {'info': {}, 'license': {}, 'data_type': 'mscoco', 'data_subtype': 'val2014'}
    with open(os.path.join(args.out, 'questions.json'), 'w', encoding='utf-8') as f:
        json.dump(dict(meta, task_type='Open-Ended', questions=questions), f)
    with open(os.path.join(args.out, 'annotations.json'), 'w', encoding='utf-8') as f:
        json.dump(dict(meta, annotations=annotations), f)
    with open(os.path.join(args.out, 'results.json'), 'w', encoding='utf-8') as f:
        json.dump(results, f)


if __name__ == '__main__':
    main()
