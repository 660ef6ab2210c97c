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

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eve_ref  # noqa: E402
import eve_ref_io  # noqa: E402
from toy_probe import encode, load_image  # noqa: E402


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
    X = torch.stack([load_image(os.path.join(a.world, "images", "COCO_synth_%012d.jpg" % i), cfg["image_res"])
                     for i in range(1, a.images + 1)])
    texts = pick_texts(a.world, a.texts)
    ids, mask = encode(sp, texts)
    lengths = mask.sum(1)

    # Each layer's attention probabilities, recorded by the reference attention itself.
    attention = []
    for m in model.modules():
        if isinstance(m, eve_ref.SelfAttention):
            m.record = attention

    nv = (X.shape[-1] // cfg["patch_size"]) ** 2 + 1  # vision CLS + patches
    pooled, cls_share, text_share = [], 0, 0
    with torch.no_grad():
        for t in range(len(texts)):
            M = mask[t].expand(len(X), -1)
            attention.clear()
            o = model.backbone("vl", image=X, text_ids=ids[t].expand(len(X), -1), text_mask=M)
            pooled.append(o["pooled"])
            # Attention from the text CLS (row nv) and from every real text token to the image.
            real = M.bool()
            cls_share = cls_share + torch.stack([p[:, :, nv, :nv].sum(-1).mean() for p in attention])
            text_share = text_share + torch.stack(
                [(p[:, :, nv:, :nv].sum(-1).mean(1) * real).sum() / real.sum() for p in attention])
    P = torch.stack(pooled)  # [texts, images, D]
    over_images = P.std(1).mean().item()
    over_texts = P.std(0).mean().item()
    print("bundle %s: %d images x %d texts, pooled norm %.2f" % (a.bundle, len(X), len(texts), P.norm(dim=-1).mean()))
    print("pooled std over images (text fixed) %.4f   over texts (image fixed) %.4f   ratio %.3f"
          % (over_images, over_texts, over_images / max(over_texts, 1e-12)))
    print("attention given to the %d image tokens (uniform would be %.2f):" % (nv, (nv / (nv + lengths)).mean()))
    for l, (c, t) in enumerate(zip(cls_share / len(texts), text_share / len(texts))):
        print("  layer %d: text CLS %.3f, text tokens %.3f" % (l, c, t))


if __name__ == "__main__":
    main()
