#!/usr/bin/python3
"""Which questions and statements of the toy world does a model answer from the image?
A diagnostic for worlds written by `eve-prep synth`, not a test and not an evaluator
(eve-score gives the official numbers).

  vqa    per question form (the question with its colour words replaced by C, its shape
         words by S, and paraphrases of the same question merged), the accuracy of the
         predictions, the accuracy of the form's text prior (the most frequent training
         answer of that form: what the question alone can get), the accuracy of the form's
         best constant answer on the split itself (best-c: the most one answer per form
         gets there), and how many different answers the model gives to the form. Splits: the
         pool's official files (train, val, test) and the VG QA about the NLVR2 images
         (vg_train, vg_val).
  prior  writes the text prior's predictions ([{question_id, answer}]) for eve-score: the
         baseline that a model answering from the question alone reaches.
  nlvr2  per statement kind, the accuracy of the predictions, the share of true statements,
         and the accuracy of the best constant label per kind (what the sentence alone can
         get, since every sentence of a set is true for two image pairs and false for two).

A model that gives one answer per form, at the prior's accuracy, answers from the text; one
above the form's best constant uses the image for that form.

  /usr/bin/python3 tests/reference/toy_by_form.py vqa --world demo-run/world \\
      --pred demo-run/ft-vqa/predictions/val.json
  /usr/bin/python3 tests/reference/toy_by_form.py nlvr2 --world demo-run/world \\
      --pred demo-run/ft-nlvr2/predictions/dev.csv

VQA accuracy here is the official one, computed by the reference evaluator beside this file
(vqa_eval_ref.py: its answer normalisation and its per-question accuracy).
"""
import argparse
import collections
import csv
import json
import os
import re
import sys

from vqa_eval_ref import clean, process_digit_article, process_punctuation, question_accuracy

COLORS = ["red", "green", "blue", "yellow", "purple", "orange"]
SHAPES = ["circle", "square", "triangle", "star", "diamond"]
COLOR_RE = re.compile(r"\b(%s)\b" % "|".join(COLORS))
SHAPE_RE = re.compile(r"\b(%s)s?\b" % "|".join(SHAPES))
# Paraphrases that do not change what is asked.
SAME = [(" in the image?", "?"), (" can you see?", " are there?"), ("is there an ", "is there a "),
        ("what is the pattern of the background?", "what is the background pattern?"),
        ("how many objects are in the picture?", "how many shapes are there?"),
        ("what shape is the C object?", "what shape is the C shape?")]

# Statement kinds by their wording in eve-prep synth, most specific first.
KINDS = [("more shapes", lambda s: "more shapes than" in s),
         ("same number", lambda s: "same number of shapes" in s or "equally many" in s),
         ("count in total", lambda s: s.endswith(" in total")),
         ("left has, right has", lambda s: s.startswith("the left image contains") and "the right image contains" in s),
         ("neither has", lambda s: s.startswith("neither image") or s.endswith(" in either image")),
         ("exactly one has", lambda s: s.startswith("exactly one image") or s.startswith("only one of the images")),
         ("both have", lambda s: s.startswith("both images contain") or s.startswith("each image has"))]


def fail(msg):
    sys.exit("toy_by_form: " + msg)


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        fail("%s: %s" % (path, e))


def normalise(answer):
    """An answer as the official evaluator compares it (to group the prior's answers)."""
    return process_digit_article(process_punctuation(clean(answer)))


def vqa_accuracy(pred, answers):
    """The official accuracy of one prediction against the ten human answers."""
    return question_accuracy(answers, pred, "current")


def question_form(question):
    q = SHAPE_RE.sub("S", COLOR_RE.sub("C", question.strip().lower()))
    for a, b in SAME:
        q = q.replace(a, b)
    return q


def statement_kind(sentence):
    s = sentence.strip().lower()
    for name, test in KINDS:
        if test(s):
            return name
    return "other"


# VQA splits: the pool's official files (train, val, test) and the VG QA files about the
# NLVR2 images (vg_train: vqa/vg_qa.json, vg_val: vqa/vg_qa_val.json).
VG_FILES = {"vg_train": "vg_qa.json", "vg_val": "vg_qa_val.json"}


def majority(answers):
    """The most frequent of the ten answers (ties: the first given), as VQA v2 annotates it."""
    counts = collections.Counter(answers)
    return max(answers, key=lambda a: (counts[a], -answers.index(a)))


def read_vqa(world, split):
    """[(question_id, form, annotation)] with the annotation in the official form, plus the
    question's "question" and its "image" (a path under the world)."""
    if split in VG_FILES:
        path = os.path.join(world, "vqa", VG_FILES[split])
        out = []
        for i, q in enumerate(load_json(path)):
            try:
                answers = [{"answer": a, "answer_id": j + 1} for j, a in enumerate(q["answer"])]
                out.append((q["question_id"], question_form(q["question"]),
                            {"answers": answers, "multiple_choice_answer": majority(q["answer"]),
                             "question": q["question"], "image": q["image"]}))
            except (KeyError, TypeError, AttributeError):
                fail("%s: entry %d is not {question_id, question, answer: [...]}" % (path, i))
        return out
    qs = load_json(os.path.join(world, "vqa", "questions_%s.json" % split))["questions"]
    ann = load_json(os.path.join(world, "vqa", "annotations_%s.json" % split))["annotations"]
    by_id = {a["question_id"]: a for a in ann}
    out = []
    for q in qs:
        a = by_id.get(q["question_id"])
        if a is None:
            fail("%s split %s: question %s has no annotation" % (world, split, q["question_id"]))
        a = dict(a, question=q["question"], image="images/COCO_synth_%012d.jpg" % q["image_id"])
        out.append((q["question_id"], question_form(q["question"]), a))
    return out


def form_prior(world):
    """The most frequent training answer of every question form (ties: the first seen), and
    of all training questions (for a form that training never asks). Training is the pool's
    train split and, where the world has it, the VG QA about the NLVR2 training images."""
    counts = collections.defaultdict(collections.Counter)
    overall = collections.Counter()
    train = read_vqa(world, "train")
    if os.path.exists(os.path.join(world, "vqa", VG_FILES["vg_train"])):
        train += read_vqa(world, "vg_train")
    for _, form, a in train:
        answer = normalise(a["multiple_choice_answer"])
        counts[form][answer] += 1
        overall[answer] += 1
    if not overall:
        fail("%s: the training split has no questions" % world)
    top = overall.most_common(1)[0][0]
    return collections.defaultdict(lambda: top, {form: c.most_common(1)[0][0] for form, c in counts.items()})


def cmd_prior(args):
    prior = form_prior(args.world)
    out = [{"question_id": qid, "answer": prior[form]} for qid, form, _ in read_vqa(args.world, args.split)]
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(out, f)
    os.replace(tmp, args.out)


def cmd_vqa(args):
    prior = form_prior(args.world)
    preds = {}
    for i, p in enumerate(load_json(args.pred)):
        try:
            if not isinstance(p["answer"], str):
                raise TypeError
            preds[p["question_id"]] = p["answer"]
        except (KeyError, TypeError, AttributeError):
            fail("%s: entry %d is not {\"question_id\", \"answer\"}" % (args.pred, i))
    rows = collections.defaultdict(lambda: [0, 0.0, 0.0, collections.Counter()])
    answers_of = collections.defaultdict(list)  # per form, every question's ten answers
    missing = 0
    for qid, form, a in read_vqa(args.world, args.split):
        if qid not in preds:
            missing += 1
            continue
        answers = a["answers"]
        r = rows[form]
        r[0] += 1
        r[1] += vqa_accuracy(preds[qid], answers)
        r[2] += vqa_accuracy(prior[form], answers)
        r[3][normalise(preds[qid])] += 1
        answers_of[form].append(answers)
    if missing:
        fail("%s: %d questions of split %s have no prediction" % (args.pred, missing, args.split))
    # The best constant answer of each form on this split itself (picked knowing the split's
    # answers): a model clearly above it on a form answers that form from the image.
    best = {}
    for form, questions in answers_of.items():
        candidates = {normalise(x["answer"]) for answers in questions for x in answers}
        best[form] = max(sum(vqa_accuracy(c, answers) for answers in questions) for c in candidates)
    total = [sum(r[i] for r in rows.values()) for i in range(3)] + [sum(best.values())]
    print("%-40s %6s %8s %8s %8s %8s  %s" % ("question form", "n", "model", "prior", "best-c", "answers", "most given"))
    summary = {"split": args.split, "forms": {}}
    for form, r in sorted(rows.items(), key=lambda kv: (-kv[1][0], kv[0])):
        top, top_n = r[3].most_common(1)[0]
        print("%-40s %6d %7.1f%% %7.1f%% %7.1f%% %8d  %s (%.0f%%)" % (
            form, r[0], 100 * r[1] / r[0], 100 * r[2] / r[0], 100 * best[form] / r[0], len(r[3]), top,
            100.0 * top_n / r[0]))
        summary["forms"][form] = {"n": r[0], "model": 100 * r[1] / r[0], "prior": 100 * r[2] / r[0],
                                  "best_constant": 100 * best[form] / r[0], "answers": len(r[3])}
    print("%-40s %6d %7.1f%% %7.1f%% %7.1f%%" % ("all", total[0], 100 * total[1] / total[0],
                                                 100 * total[2] / total[0], 100 * total[3] / total[0]))
    summary["all"] = {"n": total[0], "model": 100 * total[1] / total[0], "prior": 100 * total[2] / total[0],
                      "best_constant": 100 * total[3] / total[0]}
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)
        os.replace(tmp, args.json)


def cmd_nlvr2(args):
    gold = {}
    path = os.path.join(args.world, "nlvr2", args.split + ".json")
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                    gold[d["identifier"]] = (statement_kind(d["sentence"]), d["label"] == "True")
                except (ValueError, KeyError, TypeError) as e:
                    fail("%s:%d: %s" % (path, n, e))
    except OSError as e:
        fail("%s: %s" % (path, e))
    preds = {}
    try:
        with open(args.pred, newline="", encoding="utf-8") as f:
            for n, row in enumerate(csv.reader(f), 1):
                if not row:
                    continue
                if len(row) != 2 or row[1] not in ("True", "False"):
                    fail("%s:%d: expected identifier,True|False" % (args.pred, n))
                preds[row[0]] = row[1] == "True"
    except OSError as e:
        fail("%s: %s" % (args.pred, e))
    missing = [k for k in gold if k not in preds]
    if missing:
        fail("%s: %d statements of %s have no prediction, e.g. %s" % (args.pred, len(missing), path, missing[0]))
    rows = collections.defaultdict(lambda: [0, 0, 0, 0])  # n, right, true, predicted true
    for ident, (kind, label) in gold.items():
        r = rows[kind]
        r[0] += 1
        r[1] += preds[ident] == label
        r[2] += label
        r[3] += preds[ident]
    print("%-22s %6s %8s %8s %10s %10s" % ("statement kind", "n", "model", "prior", "true", "said true"))
    for kind, r in sorted(rows.items(), key=lambda kv: (-kv[1][0], kv[0])):
        print("%-22s %6d %7.1f%% %7.1f%% %9.1f%% %9.1f%%" % (
            kind, r[0], 100.0 * r[1] / r[0], 100.0 * max(r[2], r[0] - r[2]) / r[0], 100.0 * r[2] / r[0],
            100.0 * r[3] / r[0]))
    n = sum(r[0] for r in rows.values())
    print("%-22s %6d %7.1f%% %7.1f%%" % ("all", n, 100.0 * sum(r[1] for r in rows.values()) / n,
                                          100.0 * sum(max(r[2], r[0] - r[2]) for r in rows.values()) / n))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("vqa", help="accuracy per question form against the form's text prior")
    v.add_argument("--world", required=True, help="directory written by eve-prep synth")
    v.add_argument("--pred", required=True, help="[{question_id, answer}] (eve-finetune's predictions)")
    v.add_argument("--split", default="val", help="train, val, test, vg_train or vg_val")
    v.add_argument("--json", help="also write the table as JSON here")
    v.set_defaults(func=cmd_vqa)
    p = sub.add_parser("prior", help="write the text prior's VQA predictions (for eve-score)")
    p.add_argument("--world", required=True, help="directory written by eve-prep synth")
    p.add_argument("--split", default="val", help="train, val, test, vg_train or vg_val")
    p.add_argument("-o", "--out", required=True, help="[{question_id, answer}] JSON to write")
    p.set_defaults(func=cmd_prior)
    n = sub.add_parser("nlvr2", help="accuracy per statement kind against the best constant label")
    n.add_argument("--world", required=True, help="directory written by eve-prep synth")
    n.add_argument("--pred", required=True, help="identifier,True|False lines (eve-finetune's predictions)")
    n.add_argument("--split", default="dev")
    n.set_defaults(func=cmd_nlvr2)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
