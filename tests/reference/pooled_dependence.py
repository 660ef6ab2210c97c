#!/usr/bin/python3
"""Does a bundle's fused ('vl') pooled vector look at the image? A diagnostic, not a test.

Every fused head (ITM, VQA, NLVR2) reads the pooled vector: the final-LN output at the
text CLS. This script runs the reference model (eve_ref.py) with a bundle's weights on
`--images` images of an `eve-prep synth` world crossed with `--texts` VQA questions of that
world, and prints:

  - how much the pooled vector varies over the images for a fixed text, against how much
    it varies over the texts for a fixed image (standard deviation per dimension, averaged;
    its norm for scale);
  - per layer, the share of attention that the text CLS, and the text tokens on average,
    give to the image tokens.

A pooled vector that barely changes with the image can only answer from the text, whatever
the head: that is what fine-tuning on the toy world meets when it stays at the text-only
baseline.

  /usr/bin/python3 tests/reference/pooled_dependence.py --bundle demo-run/ft-vqa/best --world demo-run/world
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eve_ref  # noqa: E402
import eve_ref_io  # noqa: E402


def load_model(bundle):
    cfg = eve_ref.read_config(os.path.join(bundle, "config.json"))
    model = eve_ref.EveRef(cfg)
    weights = eve_ref_io.load(os.path.join(bundle, "model.safetensors"))
    own = model.state_dict()
    missing = [k for k in own if k.startswith("backbone.") and k not in weights]
    if missing:
        sys.exit("%s: the bundle lacks %d backbone tensors, e.g. %s" % (bundle, len(missing), missing[0]))
    model.load_state_dict({k: v.float() for k, v in weights.items() if k in own}, strict=False)
    return model.eval(), cfg


def load_images(world, n, res):
    out = []
    for i in range(1, n + 1):
        path = os.path.join(world, "images", "COCO_synth_%012d.jpg" % i)
        im = Image.open(path).convert("RGB")
        if im.size != (res, res):
            im = im.resize((res, res), Image.BICUBIC)
        a = np.asarray(im, dtype=np.float32) / 127.5 - 1.0
        out.append(torch.from_numpy(a).permute(2, 0, 1).contiguous())
    return torch.stack(out)


def pick_texts(world, n):
    qs = json.load(open(os.path.join(world, "vqa", "questions_val.json")))["questions"]
    seen = []
    for q in qs:
        if q["question"] not in seen:
            seen.append(q["question"])
        if len(seen) == n:
            break
    return seen


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, help="bundle dir (config.json, model.safetensors, tokenizer.model)")
    ap.add_argument("--world", required=True, help="directory written by eve-prep synth")
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--texts", type=int, default=16, help="distinct val questions of the world")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    import sentencepiece
    model, cfg = load_model(a.bundle)
    sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(a.bundle, "tokenizer.model"))
    X = load_images(a.world, a.images, cfg["image_res"])
    texts = pick_texts(a.world, a.texts)
    ids = [[2] + sp.encode(t) + [3] for t in texts]
    T = max(map(len, ids))

    # Record each layer's attention probabilities.
    shares = []

    def recording(self, x, pad):
        b, n, d = x.shape
        hd = d // self.heads
        w = self.qkv.weight
        q = torch.nn.functional.linear(x, w[:d], self.q_bias).reshape(b, n, self.heads, hd).transpose(1, 2)
        k = torch.nn.functional.linear(x, w[d:2 * d]).reshape(b, n, self.heads, hd).transpose(1, 2)
        s = torch.einsum("bhqd,bhkd->bhqk", q * hd ** -0.5, k)
        if pad is not None:
            s = s.masked_fill(pad[:, None, None, :], float("-inf"))
        shares.append(s.softmax(-1))
        return original(self, x, pad)

    original = eve_ref.SelfAttention.forward
    eve_ref.SelfAttention.forward = recording

    pooled = []  # [text][image] -> vector
    cls_share, text_share = None, None
    nv = (X.shape[-1] // cfg["patch_size"]) ** 2 + 1  # vision CLS + patches
    with torch.no_grad():
        for t in ids:
            I = torch.tensor([t + [0] * (T - len(t))] * len(X))
            M = torch.tensor([[1] * len(t) + [0] * (T - len(t))] * len(X))
            shares.clear()
            o = model.backbone("vl", image=X, text_ids=I, text_mask=M)
            pooled.append(o["pooled"])
            # Attention from the text CLS (row nv) and from every real text token to the image.
            c = torch.stack([s[:, :, nv, :nv].sum(-1).mean() for s in shares])
            real = M.bool()
            tt = torch.stack([(s[:, :, nv:, :nv].sum(-1).mean(1) * real).sum() / real.sum() for s in shares])
            cls_share = c if cls_share is None else cls_share + c
            text_share = tt if text_share is None else text_share + tt
    eve_ref.SelfAttention.forward = original
    P = torch.stack(pooled)  # [texts, images, D]
    over_images = P.std(1).mean().item()
    over_texts = P.std(0).mean().item()
    print("bundle %s: %d images x %d texts, pooled norm %.2f" % (a.bundle, len(X), len(texts), P.norm(dim=-1).mean()))
    print("pooled std over images (text fixed) %.4f   over texts (image fixed) %.4f   ratio %.3f"
          % (over_images, over_texts, over_images / max(over_texts, 1e-12)))
    print("attention given to the %d image tokens (uniform would be %.2f):" % (nv, nv / (nv + T)))
    for l, (c, t) in enumerate(zip(cls_share / len(ids), text_share / len(ids))):
        print("  layer %d: text CLS %.3f, text tokens %.3f" % (l, c, t))


if __name__ == "__main__":
    main()
