#!/usr/bin/python3
"""Are the toy world's questions and statements learnable from the images in minutes, and do
they need the images?

A diagnostic for worlds written by `eve-prep synth`, with a model built for small images: a
four-layer convolutional network whose channels the text modulates (FiLM-style), and a GRU
over the text's words; 0.26 M parameters.

  --task vqa    trains on the pool's training questions and the VG QA about the NLVR2
                training images, answers vg_val (the VG QA about the NLVR2 dev images), and
                prints per question form its accuracy beside the form's text prior and best
                constant (tests/reference/toy_by_form.py's table)
  --task nlvr2  the same network on both images of a pair, conditioned on the statement;
                trains on NLVR2 train, prints dev accuracy per statement kind

With --blind every image is grey before it is seen: the same model, trained the same way,
can then only learn what the text says. With --one-image (NLVR2) only the left image is
seen. The world's questions need the image when the seeing model clearly beats the blind
one; its statements need both images when the model that sees both clearly beats the one
that sees one.

  /usr/bin/python3 tests/reference/toy_learner.py --world demo-run/world --json learner.json

eve-tiny, a ViT, learns the same VQA questions much more slowly (docs/toy-world.md).
"""
import argparse
import collections
import json
import os
import re
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import toy_by_form  # noqa: E402

WORD_RE = re.compile(r"[a-z]+")


def fail(msg):
    sys.exit("toy_learner: " + msg)


def words(text):
    return WORD_RE.findall(text.lower())


def load_questions(world, splits):
    """[(image path relative to the world, question, ten answers, question_id)] of toy_by_form
    VQA splits."""
    return [(a["image"], a["question"], [x["answer"] for x in a["answers"]], qid)
            for split in splits for qid, _, a in toy_by_form.read_vqa(world, split)]


def load_images(world, paths):
    index, arrays = {}, []
    for p in paths:
        if p in index:
            continue
        try:
            img = Image.open(os.path.join(world, p)).convert("RGB")
        except OSError as e:
            fail("%s: %s" % (os.path.join(world, p), e))
        index[p] = len(arrays)
        arrays.append(np.asarray(img, dtype=np.uint8))
    return index, torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


class FilmBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1)
        self.norm = nn.BatchNorm2d(cout, affine=False)

    def forward(self, x, gamma, beta):
        return F.relu(self.norm(self.conv(x)) * (1 + gamma[:, :, None, None]) + beta[:, :, None, None])


class TinyVqa(nn.Module):
    def __init__(self, vocab, answers, width=48, qdim=128):
        super().__init__()
        self.embed = nn.Embedding(vocab, 64)
        self.gru = nn.GRU(64, qdim, batch_first=True)
        # 64 px in, 32 after the stem, 16 and 8 after the first two modulated blocks.
        self.stem = nn.Sequential(nn.Conv2d(5, width, 3, 2, 1), nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.ModuleList([FilmBlock(width + 2, width, 2), FilmBlock(width + 2, width, 2),
                                     FilmBlock(width + 2, width, 1)])
        self.film = nn.Linear(qdim, 2 * width * len(self.blocks))
        self.head = nn.Sequential(nn.Linear(2 * width + qdim, 256), nn.ReLU(), nn.Linear(256, answers))
        self.width = width

    @staticmethod
    def coords(x):
        b, _, h, w = x.shape
        ys = torch.linspace(-1, 1, h).view(1, 1, h, 1).expand(b, 1, h, w)
        xs = torch.linspace(-1, 1, w).view(1, 1, 1, w).expand(b, 1, h, w)
        return torch.cat([x, xs, ys], 1)

    def question(self, tokens, lengths):
        """The GRU's last state, and the per-block channel scales and shifts it sets."""
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(tokens), lengths, batch_first=True,
                                                   enforce_sorted=False)
        q = self.gru(packed)[1][0]
        return q, self.film(q).view(q.size(0), len(self.blocks), 2, self.width)

    def image_features(self, images, film):
        x = self.stem(self.coords(images))
        for i, block in enumerate(self.blocks):
            x = block(self.coords(x), film[:, i, 0], film[:, i, 1])
        return torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1)

    def forward(self, images, tokens, lengths):
        q, film = self.question(tokens, lengths)
        return self.head(torch.cat([self.image_features(images, film), q], 1))


class TinyNlvr2(TinyVqa):
    """The same network on each image of a pair, conditioned on the statement; both pooled
    vectors and the statement decide True or False."""

    def __init__(self, vocab, width=48, qdim=128):
        super().__init__(vocab, 2, width, qdim)
        self.head = nn.Sequential(nn.Linear(4 * width + qdim, 256), nn.ReLU(), nn.Linear(256, 2))

    def forward(self, left, right, tokens, lengths):
        q, film = self.question(tokens, lengths)
        return self.head(torch.cat([self.image_features(left, film), self.image_features(right, film), q], 1))


def load_statements(world, split):
    """[(left image, right image, sentence, label, identifier)] of an NLVR2 split."""
    path = os.path.join(world, "nlvr2", split + ".json")
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                try:
                    r = json.loads(line)
                    stem = "nlvr2/images/%s/%s" % (split, r["identifier"].rsplit("-", 1)[0])
                    out.append((stem + "-img0.jpg", stem + "-img1.jpg", r["sentence"], r["label"] == "True",
                                r["identifier"]))
                except (ValueError, KeyError, AttributeError):
                    fail("%s:%d: not an NLVR2 record" % (path, n))
    except OSError as e:
        fail("%s: %s" % (path, e))
    return out


def tokens_of(texts, vocab):
    toks = [[vocab.get(w, 1) for w in words(t)] or [1] for t in texts]
    lengths = torch.tensor([len(t) for t in toks])
    tokens = torch.zeros(len(texts), int(lengths.max()), dtype=torch.long)
    for i, t in enumerate(toks):
        tokens[i, :len(t)] = torch.tensor(t)
    return tokens, lengths


def pixels_of(paths, index, pixels, grey):
    """Images in [-1, 1], or grey (all zero)."""
    imgs = pixels[[index[p] for p in paths]].float().div_(127.5).sub_(1)
    return imgs.zero_() if grey else imgs


def batches(records, index, pixels, vocab, answer_ids, blind):
    """Tensors for a list of records: images in [-1, 1] (grey when blind), padded word ids,
    lengths and soft answer targets (min(1, n / 3) per answer, as VQA scores them)."""
    imgs = pixels_of([r[0] for r in records], index, pixels, blind)
    tokens, lengths = tokens_of([r[1] for r in records], vocab)
    target = torch.zeros(len(records), len(answer_ids))
    for i, r in enumerate(records):
        for a, n in collections.Counter(toy_by_form.normalise(x) for x in r[2]).items():
            if a in answer_ids:
                target[i, answer_ids[a]] = min(1.0, n / 3)
    return imgs, tokens, lengths, target


def train(model, args, n, step_fn):
    """args.steps Adam steps (one-cycle schedule) over shuffled batches of range(n)."""
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.1)
    rng = np.random.default_rng(args.seed)
    order, pos, start = rng.permutation(n), 0, time.time()
    model.train()
    for step in range(args.steps):
        if pos + args.batch_size > len(order):
            order, pos = rng.permutation(n), 0
        loss = step_fn(order[pos:pos + args.batch_size])
        pos += args.batch_size
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 250 == 0:
            print("step %d loss %.4f (%.0f s)" % (step + 1, loss.item(), time.time() - start), file=sys.stderr)
    model.eval()


def report(args, write, header, command, **namespace):
    """Writes the predictions (to --pred, or to a temp file removed after), prints the header
    and the toy_by_form table that `command` makes of them."""
    if args.pred:
        path = args.pred
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            write(f)
        os.replace(path + ".tmp", path)
    else:
        fd, path = tempfile.mkstemp(prefix="toy_learner_")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            write(f)
    print(header)
    sys.stdout.flush()
    try:
        command(argparse.Namespace(world=args.world, pred=path, **namespace))
    finally:
        if not args.pred:
            os.remove(path)


def run_vqa(args, start):
    train_set, val = load_questions(args.world, ["train", "vg_train"]), load_questions(args.world, ["vg_val"])
    if not train_set or not val:
        fail("%s: no training or vg_val questions (a world from eve-prep synth has both)" % args.world)
    index, pixels = load_images(args.world, [r[0] for r in train_set + val])
    counts = collections.Counter(w for r in train_set for w in words(r[1]))
    vocab = {w: i + 2 for i, w in enumerate(sorted(counts))}  # 0 pad, 1 unknown
    answer_counts = collections.Counter(toy_by_form.normalise(a) for r in train_set for a in r[2])
    answers = [a for a, _ in answer_counts.most_common()]
    answer_ids = {a: i for i, a in enumerate(answers)}
    model = TinyVqa(len(vocab) + 2, len(answers))

    def step(ids):
        imgs, tokens, lengths, target = batches([train_set[i] for i in ids], index, pixels, vocab, answer_ids,
                                                args.blind)
        logits = model(imgs, tokens, lengths)
        return -(target * F.log_softmax(logits, 1)).sum(1).div(target.sum(1).clamp(min=1)).mean()

    train(model, args, len(train_set), step)
    preds = []
    with torch.no_grad():
        for i in range(0, len(val), 256):
            recs = val[i:i + 256]
            imgs, tokens, lengths, _ = batches(recs, index, pixels, vocab, answer_ids, args.blind)
            best = model(imgs, tokens, lengths).argmax(1)
            preds += [{"question_id": r[3], "answer": answers[int(b)]} for r, b in zip(recs, best)]
    report(args, lambda f: json.dump(preds, f),
           "%s model, %d steps of %d in %.0f s on %d threads; vg_val by question form:" % (
               "blind" if args.blind else "seeing", args.steps, args.batch_size, time.time() - start, args.threads),
           toy_by_form.cmd_vqa, split="vg_val", json=args.json)


def run_nlvr2(args, start):
    train_set, dev = load_statements(args.world, "train"), load_statements(args.world, "dev")
    index, pixels = load_images(args.world, [p for r in train_set + dev for p in r[:2]])
    counts = collections.Counter(w for r in train_set for w in words(r[2]))
    vocab = {w: i + 2 for i, w in enumerate(sorted(counts))}
    model = TinyNlvr2(len(vocab) + 2)

    def forward(recs):
        tokens, lengths = tokens_of([r[2] for r in recs], vocab)
        left = pixels_of([r[0] for r in recs], index, pixels, args.blind)
        right = pixels_of([r[1] for r in recs], index, pixels, args.blind or args.one_image)
        return model(left, right, tokens, lengths)

    def step(ids):
        recs = [train_set[i] for i in ids]
        return F.cross_entropy(forward(recs), torch.tensor([int(r[3]) for r in recs]))

    train(model, args, len(train_set), step)
    lines = []
    with torch.no_grad():
        for i in range(0, len(dev), 256):
            recs = dev[i:i + 256]
            best = forward(recs).argmax(1)
            lines += ["%s,%s\n" % (r[4], "True" if int(b) else "False") for r, b in zip(recs, best)]
    seen = "blind" if args.blind else "left image only" if args.one_image else "both images"
    report(args, lambda f: f.writelines(lines),
           "%s, %d steps of %d in %.0f s on %d threads; NLVR2 dev by statement kind:" % (
               seen, args.steps, args.batch_size, time.time() - start, args.threads),
           toy_by_form.cmd_nlvr2, split="dev")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", required=True, help="directory written by eve-prep synth")
    ap.add_argument("--task", choices=["vqa", "nlvr2"], default="vqa")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--blind", action="store_true", help="grey images: learn from the text alone")
    ap.add_argument("--one-image", action="store_true", help="NLVR2: the right image grey, the left one seen")
    ap.add_argument("--pred", help="write the predictions here (VQA: vg_val JSON; NLVR2: dev CSV)")
    ap.add_argument("--json", help="VQA: write the per-form table here (toy_by_form.py's JSON)")
    args = ap.parse_args()
    if args.one_image and args.task != "nlvr2":
        fail("--one-image is for --task nlvr2")
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    (run_vqa if args.task == "vqa" else run_nlvr2)(args, time.time())


if __name__ == "__main__":
    main()
