#!/usr/bin/python3
"""How fast does an EVE model learn to see the toy world? A diagnostic, not a test.

Trains the reference model (eve_ref.py) for a few hundred steps on one of three probe tasks
built from the images and captions of `eve-prep synth`, and prints held-out accuracy every
50 steps beside the accuracy of always answering the most frequent label:

  vision  mode 'vision', a linear layer on the pooled vector predicts which colours and
          which shapes an image holds (one yes/no per word; accuracy per group); with
          --cnn a three-layer convolutional network takes the model's place, for comparison
  vl      mode 'vl', "is there a <word> shape?" / "is there a <word>?" answered yes/no from
          the pooled vector of the fused image and question
  pair    two images, one statement ("both images contain ...", "neither image contains
          ...", "exactly one image contains ..."), the NLVR2 pair head on both pooled vectors

Labels come from the captions: a colour or shape is present when any of the image's five
captions names it (whole words, with the generator's synonyms). Start from a fresh model or
from a bundle (--model) to see what pre-training gave.

  /usr/bin/python3 tests/reference/toy_probe.py --world demo-run/world --tokenizer demo-run/tok.model \
      --task vl --words color --model demo-run/pretrain
"""
import argparse
import json
import os
import re
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eve_ref  # noqa: E402
import eve_ref_io  # noqa: E402

COLORS = ["red", "orange", "yellow", "green", "blue", "purple"]
SHAPES = ["circle", "square", "triangle", "star", "diamond"]
SYNONYMS = {"circle": ["circle", "disk", "round shape"], "square": ["square", "block"],
            "diamond": ["diamond", "rhombus"]}
PAIR_KINDS = ["both images contain a {}", "neither image contains a {}", "exactly one image contains a {}"]


def present(captions, word):
    text = " ".join(captions).lower()
    return any(re.search(r"\b%s\b" % w, text) for w in SYNONYMS.get(word, [word]))


def load_image(path, res):
    """An RGB image as the model takes it: res x res (bicubic), [3,res,res] in [-1, 1]."""
    im = Image.open(path).convert("RGB")
    if im.size != (res, res):
        im = im.resize((res, res), Image.BICUBIC)
    a = np.asarray(im, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(a).permute(2, 0, 1).contiguous()


def load_world(world, res):
    rows = json.load(open(os.path.join(world, "pairs_train.json")))
    images, labels = [], []
    for r in rows:
        images.append(load_image(os.path.join(world, r["image"]), res))
        labels.append([float(present(r["caption"], w)) for w in COLORS + SHAPES])
    return torch.stack(images), torch.tensor(labels)


def make_model(cfg, init, seed):
    torch.manual_seed(seed)
    model = eve_ref.EveRef(cfg)
    for name, p in model.named_parameters():  # eve's initialisation (docs/architecture.md)
        if name.endswith("gamma_1") or name.endswith("gamma_2"):
            torch.nn.init.constant_(p, cfg["layer_scale_init"])
        elif p.dim() == 1 and "norm" in name and name.endswith("weight"):
            torch.nn.init.ones_(p)
        elif p.dim() == 1 and name.endswith("bias"):
            torch.nn.init.zeros_(p)
        else:
            torch.nn.init.trunc_normal_(p, std=0.02)
        if name.endswith("qkv.weight"):  # the query and key rows
            with torch.no_grad():
                torch.nn.init.trunc_normal_(p[: 2 * p.shape[1]], std=cfg["qk_init_std"])
    if init:
        weights = eve_ref_io.load(os.path.join(init, "model.safetensors"))
        own = dict(model.named_parameters())
        with torch.no_grad():
            for name, t in weights.items():
                if name in own and own[name].shape == t.shape:
                    own[name].copy_(t.float())
    return model


def encode(sp, texts):
    ids = [[2] + sp.encode(t) + [3] for t in texts]
    T = max(map(len, ids))
    out = torch.zeros(len(ids), T, dtype=torch.long)
    mask = torch.zeros_like(out)
    for i, x in enumerate(ids):
        out[i, :len(x)] = torch.tensor(x)
        mask[i, :len(x)] = 1
    return out, mask


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", required=True, help="directory written by eve-prep synth")
    ap.add_argument("--tokenizer", help="sentencepiece model (tok.model; needed for vl and pair)")
    ap.add_argument("--task", choices=["vision", "vl", "pair"], default="vision")
    ap.add_argument("--words", choices=["color", "shape"], default="color", help="vl and pair: what is asked")
    ap.add_argument("--config", default=os.path.join(os.path.dirname(__file__), "../../share/eve/configs/eve-tiny.json"))
    ap.add_argument("-m", "--model", dest="init", help="bundle to start from (default: a fresh model)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--held-out", type=int, default=100, help="last N images are never trained on")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cnn", action="store_true", help="vision: a small convolutional network instead of EVE")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    cfg = eve_ref.read_config(a.init + "/config.json" if a.init else a.config)
    cfg["heads"] = []
    X, Y = load_world(a.world, cfg["image_res"])
    n_train = len(X) - a.held_out
    D = cfg["vision_width"]
    words = COLORS if a.words == "color" else SHAPES
    cols = list(range(len(COLORS))) if a.words == "color" else list(range(len(COLORS), len(COLORS) + len(SHAPES)))
    noun = "{} shape" if a.words == "color" else "{}"
    if a.task != "vision":
        import sentencepiece
        sp = sentencepiece.SentencePieceProcessor(model_file=a.tokenizer)
        if cfg["vocab_size"] < sp.get_piece_size():
            cfg["vocab_size"] = sp.get_piece_size()
        templates = ["is there a " + noun + "?"] if a.task == "vl" else [k.format(noun) for k in PAIR_KINDS]
        statements = [t.format(w) for t in templates for w in words]
        QI, QM = encode(sp, statements)
    model = make_model(cfg, a.init, a.seed)
    if a.task == "vision" and a.cnn:
        nn = torch.nn
        model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten())
        head = nn.Linear(128, Y.shape[1])
    elif a.task == "vision":
        head = torch.nn.Linear(D, Y.shape[1])
    elif a.task == "vl":
        head = torch.nn.Linear(D, 2)
    else:
        head = torch.nn.Sequential(torch.nn.Linear(2 * D, 2 * D), torch.nn.LayerNorm(2 * D), torch.nn.GELU(),
                                   torch.nn.Linear(2 * D, 2))
    opt = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=a.lr, weight_decay=0.01)

    def draw(gen, lo, hi, n):
        i = torch.randint(lo, hi, (n,), generator=gen)
        j = torch.randint(lo, hi, (n,), generator=gen)
        q = torch.randint(0, len(statements) if a.task != "vision" else 1, (n,), generator=gen)
        return i, j, q

    def target(i, j, q):
        w = torch.tensor(cols)[q % len(words)]
        have_i = Y[i, w].bool()
        if a.task == "vl":
            return have_i.long()
        have_j = Y[j, w].bool()
        kind = q // len(words)
        return torch.where(kind == 0, have_i & have_j, torch.where(kind == 1, ~have_i & ~have_j, have_i ^ have_j)).long()

    def forward(i, j, q, train):
        model.train(train)
        if a.task == "vision":
            return head(model(X[i]) if a.cnn else model.backbone("vision", image=X[i])["pooled"])
        if a.task == "vl":
            return head(model.backbone("vl", image=X[i], text_ids=QI[q], text_mask=QM[q])["pooled"])
        n = len(i)
        o = model.backbone("vl", image=torch.cat([X[i], X[j]]), text_ids=QI[q].repeat(2, 1), text_mask=QM[q].repeat(2, 1))
        return head(torch.cat([o["pooled"][:n], o["pooled"][n:]], -1))

    gen = torch.Generator().manual_seed(a.seed)
    for step in range(1, a.steps + 1):
        i, j, q = draw(gen, 0, n_train, a.batch)
        logits = forward(i, j, q, True)
        if a.task == "vision":
            loss = F.binary_cross_entropy_with_logits(logits, Y[i])
        else:
            loss = F.cross_entropy(logits, target(i, j, q))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == a.steps:
            with torch.no_grad():
                if a.task == "vision":
                    held = torch.arange(n_train, len(X))
                    right = ((forward(held, held, held, False) > 0).float() == Y[held]).float().mean(0)
                    prior = torch.maximum(Y[held].mean(0), 1 - Y[held].mean(0))
                    print("step %4d  loss %.3f  colours %.3f (prior %.3f)  shapes %.3f (prior %.3f)" % (
                        step, loss.item(), right[:6].mean(), prior[:6].mean(), right[6:].mean(), prior[6:].mean()),
                        flush=True)
                else:
                    i, j, q = draw(torch.Generator().manual_seed(1), n_train, len(X), 1000)
                    t = target(i, j, q)
                    acc = (forward(i, j, q, False).argmax(-1) == t).float().mean()
                    prior = max(t.float().mean(), 1 - t.float().mean())
                    print("step %4d  loss %.3f  accuracy %.3f (most frequent label %.3f)" % (
                        step, loss.item(), acc, prior), flush=True)


if __name__ == "__main__":
    main()
