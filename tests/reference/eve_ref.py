#!/usr/bin/python3
"""Independent PyTorch reference of the EVE model (docs/architecture.md, "The model"), used as
the oracle of eve's libtorch model. It reads the same config.json and model.safetensors as
eve's bundles, and names its parameters with the official state-dict keys.

  eve_ref.py outputs BUNDLE INPUTS OUT [--train]
      run every mode and head on the batch in INPUTS (safetensors) and write OUT
  eve_ref.py step BUNDLE INPUTS OUT --lr LR
      one SGD step (training mode) on the probe loss; OUT holds the updated parameters
  eve_ref.py bench CONFIG [--batch B] [--reps R] [--threads N]
      time a vl forward (inference) and forward + backward (training) on random data
  eve_ref.py init CONFIG PTH INPUTS OUT [--seed S]
      build a model from a config, initialise it, torch.save({'model': state_dict}) to PTH
      (an OrderedDict, as the official checkpoints) and write its eval outputs to OUT

The batch file holds: image [B,3,R,R], image2 (second NLVR2 image), text_ids [B,T],
text_mask [B,T], ids_keep [B,K] and, for `step`, one probe tensor "probe.<output>" per
output: the probe loss is sum(output * probe) + sum(aux).
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eve_ref_io  # noqa: E402

DEFAULTS = {
    "vision_width": 768, "patch_size": 16, "hidden_act": "quick_gelu", "num_attention_heads": 12,
    "attention_dropout": 0.0, "intermediate_size": 3072, "num_hidden_layers": 12,
    "drop_path_rate": 0.1, "vocab_size": 64000, "moeffn_layers": [10, 11],
    "moe_param": {"num_experts": 32, "topk": 2, "type_route": True}, "moe_lossweight": 0.001,
    "image_res": 224, "max_text_len": 40, "text_pos_rows": 196, "compat": "eve",
    "moe_capacity_factor": 1.0, "moe_min_capacity": 4, "moe_noise": True,
    "layer_scale_init": 0.1, "qk_init_std": 0.02, "layer_norm_eps": 1e-6, "text_dropout": 0.1,
    "vision_mask_token": False, "heads": [], "num_answers": 3128, "itc_temp_init": 0.07,
    "mim_decoder": {"width": 512, "depth": 2, "heads": 8, "intermediate_size": 2048},
}


def read_config(path):
    with open(path) as f:
        raw = json.load(f)
    cfg = dict(DEFAULTS)
    cfg.update(raw)
    for key in ("moe_param", "mim_decoder"):
        sub = dict(DEFAULTS[key])
        sub.update(raw.get(key, {}))
        cfg[key] = sub
    return cfg


def act_fn(name):
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    return F.gelu


class Mlp(nn.Module):
    def __init__(self, d, f, act):
        super().__init__()
        self.fc1 = nn.Linear(d, f)
        self.fc2 = nn.Linear(f, d)
        self.act = act_fn(act)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class SelfAttention(nn.Module):
    def __init__(self, d, heads, p):
        super().__init__()
        self.heads, self.p = heads, p
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(d))
        self.v_bias = nn.Parameter(torch.zeros(d))
        self.proj = nn.Linear(d, d)
        self.record = None  # a list to append each forward's attention probabilities to (diagnostics)

    def forward(self, x, pad):
        b, n, d = x.shape
        hd = d // self.heads
        w = self.qkv.weight
        q = F.linear(x, w[:d], self.q_bias)
        k = F.linear(x, w[d:2 * d])
        v = F.linear(x, w[2 * d:], self.v_bias)

        def split(t):
            return t.reshape(b, n, self.heads, hd).transpose(1, 2)
        q, k, v = split(q) * hd ** -0.5, split(k), split(v)
        s = torch.einsum("bhqd,bhkd->bhqk", q.float(), k.float())
        if pad is not None:
            s = s.masked_fill(pad[:, None, None, :], float("-inf"))
        a = s.softmax(-1).type_as(v)
        if self.record is not None:
            self.record.append(a)
        if self.training and self.p > 0:
            a = F.dropout(a, self.p)
        o = torch.einsum("bhqk,bhkd->bhqd", a, v)
        return self.proj(o.transpose(1, 2).reshape(b, n, d))


class Gate(nn.Module):
    def __init__(self, d, e):
        super().__init__()
        self.wg = nn.Linear(d, e, bias=False)


class ExpertList(nn.Module):
    def __init__(self, d, f, e, act):
        super().__init__()
        self.experts = nn.ModuleList([Mlp(d, f, act) for _ in range(e)])


class ModalityMoE(nn.Module):
    """Top-2 routing written as a per-expert loop (independent of eve's tensor program)."""

    def __init__(self, d, f, e, type_route, act, noise=False):
        super().__init__()
        self.e = e
        self.noise = noise  # Gumbel noise on the second choice while training
        self.gate = Gate(d, e)
        self.type_route = type_route
        if type_route:
            self.vision_embed = nn.Parameter(torch.zeros(d))
            self.text_embed = nn.Parameter(torch.zeros(d))
        self.experts = ExpertList(d, f, e, act)

    def forward(self, x, modality, capacity):
        if self.type_route:
            tags = torch.stack([self.vision_embed, self.text_embed])
            x = x + tags[modality]
        logits = x.float() @ self.gate.wg.weight.float().t()
        gates = logits.softmax(-1)
        s = x.shape[0]
        first = gates.argmax(-1)
        masked = logits.detach().clone()
        if self.training and self.noise:
            # The released model draws standard Gumbel noise for every routed token and
            # expert through torch.distributions (a uniform draw, then -log(-log(u))).
            zero, one = torch.tensor(0.0), torch.tensor(1.0)
            masked = masked + torch.distributions.gumbel.Gumbel(zero, one).rsample(masked.shape)
        masked[torch.arange(s), first] = float("-inf")
        second = masked.argmax(-1)
        frac = torch.bincount(first, minlength=self.e).float() / s
        aux = self.e * (gates.mean(0) * frac).sum()
        kept1 = torch.ones(s, dtype=torch.bool)
        kept2 = torch.ones(s, dtype=torch.bool)
        kept = torch.zeros(self.e, dtype=torch.int64)
        for e in range(self.e):
            r1 = (first == e).nonzero().flatten()
            r2 = (second == e).nonzero().flatten()
            slots = torch.arange(len(r1) + len(r2))
            if capacity is not None:
                over = slots >= capacity
                kept1[r1[over[:len(r1)]]] = False
                kept2[r2[over[len(r1):]]] = False
                kept[e] = int((~over).sum())
            else:
                kept[e] = len(slots)
        g1 = gates.gather(1, first[:, None]).squeeze(1) * kept1
        g2 = gates.gather(1, second[:, None]).squeeze(1) * kept2
        total = torch.clamp(g1 + g2, min=torch.finfo(torch.float32).eps)
        g1, g2 = g1 / total, g2 / total
        y = torch.zeros_like(x)
        for e in range(self.e):
            for choice, weight, keep in ((first, g1, kept1), (second, g2, kept2)):
                rows = ((choice == e) & keep).nonzero().flatten()
                if len(rows):
                    out = self.experts.experts[e](x[rows]) * weight[rows, None].type_as(x)
                    y = y.index_put((rows,), out, accumulate=True)
        return y, aux, kept


class MoeHolder(nn.Module):
    def __init__(self, moe):
        super().__init__()
        self.moe = moe


class Layer(nn.Module):
    def __init__(self, d, heads, f, kind, cfg, dp):
        super().__init__()
        eps = cfg["layer_norm_eps"]
        self.kind, self.dp = kind, dp
        self.attn = SelfAttention(d, heads, cfg["attention_dropout"])
        self.norm1 = nn.LayerNorm(d, eps=eps)
        if kind == "modality":
            self.norm2_imag = nn.LayerNorm(d, eps=eps)
            self.mlp_imag = Mlp(d, f, cfg["hidden_act"])
            self.norm2_text = nn.LayerNorm(d, eps=eps)
            self.mlp_text = Mlp(d, f, cfg["hidden_act"])
        elif kind == "moe":
            self.norm2_vl = nn.LayerNorm(d, eps=eps)
            mp = cfg["moe_param"]
            self.mlp_moe = MoeHolder(ModalityMoE(d, f, mp["num_experts"], mp["type_route"],
                                                 cfg["hidden_act"], cfg.get("moe_noise", False)))
        else:
            self.norm2 = nn.LayerNorm(d, eps=eps)
            self.mlp = Mlp(d, f, cfg["hidden_act"])
        self.gamma_1 = nn.Parameter(torch.full((d,), float(cfg["layer_scale_init"])))
        self.gamma_2 = nn.Parameter(torch.full((d,), float(cfg["layer_scale_init"])))

    def drop(self, x):
        if not self.training or self.dp == 0:
            return x
        keep = 1 - self.dp
        return x * torch.empty(x.shape[0], 1, 1).bernoulli_(keep) / keep

    def forward(self, h, ctx):
        h = h + self.drop(self.gamma_1 * self.attn(self.norm1(h), ctx["pad"]))
        stats = None
        if self.kind == "modality":
            is_text = ctx["ffn_text"]  # [L] bool
            y = torch.empty_like(h)
            vi, ti = (~is_text).nonzero().flatten(), is_text.nonzero().flatten()
            if len(vi):
                y[:, vi] = self.mlp_imag(self.norm2_imag(h[:, vi]))
            if len(ti):
                y[:, ti] = self.mlp_text(self.norm2_text(h[:, ti]))
        elif self.kind == "moe":
            n = self.norm2_vl(h)
            b, l, d = n.shape
            flat = n.reshape(b * l, d)
            rows = ctx["route"]
            out, aux, kept = self.mlp_moe.moe(flat[rows], ctx["moe_type"].reshape(-1)[rows],
                                              ctx["capacity"])
            y = torch.zeros_like(flat).index_put((rows,), out).reshape(b, l, d)
            stats = (aux, kept)
        else:
            y = self.mlp(self.norm2(h))
        return h + self.drop(self.gamma_2 * y), stats


class Encoder(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)


class Backbone(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d, eps = cfg["vision_width"], cfg["layer_norm_eps"]
        p = cfg["patch_size"]
        n = (cfg["image_res"] // p) ** 2
        self.patch_embed = nn.Conv2d(3, d, p, stride=p)
        self.class_embedding_vision = nn.Parameter(torch.zeros(d))
        self.type_embed_vision = nn.Parameter(torch.zeros(d))
        self.type_embed_text = nn.Parameter(torch.zeros(d))
        self.pos_embed_vision = nn.Parameter(torch.zeros(n + 1, d))
        if cfg["vision_mask_token"]:
            self.mask_embed_vision = nn.Parameter(torch.zeros(d))
        self.word_embedding = nn.Embedding(cfg["vocab_size"], d)
        self.pos_embed_text = nn.Parameter(torch.zeros(cfg["text_pos_rows"], d))
        self.layer_norm_text = nn.LayerNorm(d, eps=eps)
        self.pre_layrnorm = nn.LayerNorm(d, eps=eps)
        depth = cfg["num_hidden_layers"]
        rates = [cfg["drop_path_rate"] * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]
        self.encoder = Encoder([
            Layer(d, cfg["num_attention_heads"], cfg["intermediate_size"],
                  "moe" if i in cfg["moeffn_layers"] else "modality", cfg, rates[i])
            for i in range(depth)])
        self.norm = nn.LayerNorm(d, eps=eps)

    def forward(self, mode, image=None, text_ids=None, text_mask=None, ids_keep=None):
        cfg = self.cfg
        official = cfg["compat"] == "official"
        seq, kinds, pads = [], [], []
        nv = 0
        grid = 0
        if mode in ("vision", "vl"):
            x = self.patch_embed(image)
            b, d, grid, _ = x.shape
            x = x.flatten(2).transpose(1, 2)
            pos = resize_positions(self.pos_embed_vision, grid)
            x = x + pos[1:]
            if ids_keep is not None:
                x = torch.stack([x[i, ids_keep[i]] for i in range(b)])
            cls = (self.class_embedding_vision + pos[0]).expand(b, 1, d)
            x = torch.cat([cls, x], 1) + self.type_embed_vision
            nv = x.shape[1]
            seq.append(x)
            kinds.append(torch.zeros(x.shape[:2], dtype=torch.int64))
            pads.append(torch.zeros(x.shape[:2], dtype=torch.bool))
        if mode in ("text", "vl"):
            t = self.layer_norm_text(self.word_embedding(text_ids))
            t = F.dropout(t, cfg["text_dropout"], self.training)
            t = t + self.pos_embed_text[:text_ids.shape[1]] + self.type_embed_text
            seq.append(t)
            kinds.append(torch.ones(text_ids.shape, dtype=torch.int64))
            pads.append(text_mask == 0 if text_mask is not None
                        else torch.zeros(text_ids.shape, dtype=torch.bool))
        h = self.pre_layrnorm(torch.cat(seq, 1))
        kind = torch.cat(kinds, 1)
        pad = torch.cat(pads, 1)
        b, l, _ = h.shape
        if official and mode == "vl":
            ffn_text = torch.arange(l) >= l - cfg["max_text_len"]
            n_full = (cfg["image_res"] // cfg["patch_size"]) ** 2
            moe_type = (torch.arange(l) >= n_full + 1).long().expand(b, l)
        else:
            ffn_text = kind[0] == 1
            moe_type = kind
        if official:
            route = torch.arange(b * l)
        else:
            route = (~pad.reshape(-1)).nonzero().flatten()
        mp = cfg["moe_param"]
        capacity = None
        if self.training or official:
            capacity = max(cfg["moe_min_capacity"],
                           math.ceil(len(route) / mp["num_experts"] * cfg["moe_capacity_factor"] * 2))
        ctx = {"pad": pad if bool(pad.any()) else None, "ffn_text": ffn_text,
               "moe_type": moe_type, "route": route, "capacity": capacity}
        auxes, loads = [], []
        for layer in self.encoder.layers:
            h, stats = layer(h, ctx)
            if stats is not None:
                auxes.append(stats[0])
                loads.append(stats[1])
        last = h
        h = self.norm(h)
        aux = torch.stack(auxes).mean() if auxes else torch.zeros(())
        pooled = h[:, nv] if mode == "vl" else h[:, 0]
        return {"hidden": h, "pooled": pooled, "aux": aux, "pad": pad, "nv": nv,
                "grid": grid, "loads": loads, "last": last}


def resize_positions(table, grid):
    rows, w = table.shape
    g0 = int(round(math.sqrt(rows - 1)))
    if g0 == grid:
        return table
    body = table[1:].reshape(1, g0, g0, w).permute(0, 3, 1, 2)
    body = F.interpolate(body, size=(grid, grid), mode="bicubic", align_corners=False)
    return torch.cat([table[:1], body.permute(0, 2, 3, 1).reshape(grid * grid, w)])


class Pool(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(d, 1), nn.ReLU())

    def forward(self, x, pad):
        score = self.fc(x).squeeze(-1).masked_fill(pad, -1e4)
        w = F.dropout(score.softmax(-1), 0.1, self.training)
        return torch.einsum("bl,bld->bd", w, x)


class Transform(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.dense = nn.Linear(d, d)
        self.LayerNorm = nn.LayerNorm(d, eps=1e-12)


class MlmHead(nn.Module):
    def __init__(self, d, v):
        super().__init__()
        self.transform = Transform(d)
        self.decoder = nn.Linear(d, v)

    def forward(self, h):
        return self.decoder(self.transform.LayerNorm(F.gelu(self.transform.dense(h))))


class MimDecoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        md = cfg["mim_decoder"]
        w, p = md["width"], cfg["patch_size"]
        n = (cfg["image_res"] // p) ** 2
        self.embed = nn.Linear(cfg["vision_width"], w)
        self.mask_token = nn.Parameter(torch.zeros(w))
        self.pos_embed = nn.Parameter(torch.zeros(n + 1, w))
        self.layers = nn.ModuleList([Layer(w, md["heads"], md["intermediate_size"], "single", cfg, 0.0)
                                     for _ in range(md["depth"])])
        self.norm = nn.LayerNorm(w, eps=cfg["layer_norm_eps"])
        self.pred = nn.Linear(w, p * p * 3)

    def forward(self, vision, ids_keep, grid):
        y = self.embed(vision)
        b, _, w = y.shape
        n = grid * grid
        if ids_keep is not None:
            full = self.mask_token.expand(b, n, w).clone()
            rows = torch.arange(b)[:, None].expand_as(ids_keep)
            full = full.index_put((rows, ids_keep), y[:, 1:])
            y = torch.cat([y[:, :1], full], 1)
        y = y + resize_positions(self.pos_embed, grid)
        ctx = {"pad": None}
        for layer in self.layers:
            y, _ = layer(y, ctx)
        return self.pred(self.norm(y))[:, 1:]


class EveRef(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d = cfg["vision_width"]
        heads = cfg["heads"]
        self.backbone = Backbone(cfg)
        if "itc" in heads:
            self.itc_vision_proj_head = nn.Linear(d, d, bias=False)
            self.itc_text_proj_head = nn.Linear(d, d, bias=False)
            self.itc_temp = nn.Parameter(torch.tensor(float(cfg["itc_temp_init"])))
        if "itm" in heads:
            self.itm_head = nn.Linear(d, 2)
        if "vqa" in heads or "nlvr2" in heads:
            vqa = "vqa" in heads
            self.output = nn.Sequential(nn.Linear(d if vqa else 2 * d, 2 * d), nn.LayerNorm(2 * d),
                                        nn.GELU(), nn.Linear(2 * d, cfg["num_answers"] if vqa else 2))
        if "nlvr2_biattn" in heads:
            self.attn1 = nn.MultiheadAttention(d, cfg["num_attention_heads"], dropout=0.1)
            self.attn2 = nn.MultiheadAttention(d, cfg["num_attention_heads"], dropout=0.1)
            self.fc = nn.Sequential(nn.Linear(2 * d, d), nn.ReLU(), nn.Dropout(0.1))
            self.attn_pool = Pool(d)
            self.nlvr2_output = nn.Linear(2 * d, 2)
        if "mlm" in heads:
            self.mlm_head = MlmHead(d, cfg["vocab_size"])
        if "mim" in heads:
            self.mim_decoder = MimDecoder(cfg)

    def biattn(self, a, b):
        def cross(mha, q, kv, kv_pad):
            return mha(q.transpose(0, 1), kv.transpose(0, 1), kv.transpose(0, 1),
                       key_padding_mask=kv_pad, need_weights=False)[0].transpose(0, 1)
        left = self.fc(torch.cat([cross(self.attn1, a["hidden"], b["hidden"], b["pad"]), a["hidden"]], -1))
        right = self.fc(torch.cat([cross(self.attn2, b["hidden"], a["hidden"], a["pad"]), b["hidden"]], -1))
        return self.nlvr2_output(torch.cat([self.attn_pool(left, a["pad"]),
                                            self.attn_pool(right, b["pad"])], -1))


def init_weights(model, seed):
    """A random initialisation in the spirit of the model's own (docs/architecture.md,
    "Initialisation"), for the conversion test."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma_1") or name.endswith("gamma_2"):
                p.fill_(0.1)
            elif p.dim() == 1 and ("norm" in name or "LayerNorm" in name) and name.endswith("weight"):
                p.copy_(1 + 0.05 * torch.randn(p.shape, generator=g))
            elif name == "itc_temp":
                p.fill_(0.07)
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))


def outputs(model, batch):
    """Every output the parity tests compare, by name."""
    cfg = model.cfg
    heads = cfg["heads"]
    img, ids, mask = batch["image"], batch["text_ids"], batch.get("text_mask")
    res = {}
    runs = {"vision": model.backbone("vision", image=img),
            "text": model.backbone("text", text_ids=ids, text_mask=mask),
            "vl": model.backbone("vl", image=img, text_ids=ids, text_mask=mask)}
    for mode, r in runs.items():
        res[mode + ".hidden"] = r["hidden"]
        res[mode + ".pooled"] = r["pooled"]
        res[mode + ".aux"] = r["aux"]
        for i, kept in enumerate(r["loads"]):
            res["%s.kept.%d" % (mode, i)] = kept
    vl = runs["vl"]
    if "itc" in heads:
        res["itc.image"] = F.normalize(model.itc_vision_proj_head(runs["vision"]["pooled"]), dim=-1)
        res["itc.text"] = F.normalize(model.itc_text_proj_head(runs["text"]["pooled"]), dim=-1)
        res["itc.logits"] = res["itc.image"] @ res["itc.text"].t() / model.itc_temp
    if "itm" in heads:
        res["itm"] = model.itm_head(vl["pooled"])
    if "vqa" in heads:
        res["vqa"] = model.output(vl["pooled"])
    if "nlvr2" in heads or "nlvr2_biattn" in heads:
        vl2 = model.backbone("vl", image=batch["image2"], text_ids=ids, text_mask=mask)
        if "nlvr2" in heads:
            res["nlvr2"] = model.output(torch.cat([vl["pooled"], vl2["pooled"]], -1))
        if "nlvr2_biattn" in heads:
            res["nlvr2_biattn"] = model.biattn(vl, vl2)
    if "mlm" in heads:
        res["mlm"] = model.mlm_head(vl["hidden"][:, vl["nv"]:])
    if "ids_keep" in batch:
        mae = model.backbone("vl", image=img, text_ids=ids, text_mask=mask, ids_keep=batch["ids_keep"])
        res["mae.hidden"] = mae["hidden"]
        res["mae.aux"] = mae["aux"]
        if "mim" in heads:
            res["mim"] = model.mim_decoder(mae["hidden"][:, :mae["nv"]], batch["ids_keep"], mae["grid"])
    return res


def official_evaluation(model, images, text_ids, text_mask, k_test, image_bs=64, text_bs=256):
    """The released retrieval evaluation, from its documented behaviour: texts embedded
    text_bs at a time (already padded to max_text_len), images image_bs at a time, each
    embedding the l2-normalised projection of the CLS taken *before* the final LayerNorm;
    then, for every image (then every text) query, its k_test best candidates by inner
    product, in that order, form one fusion batch scored by the ITM match logit; every
    other entry is -100. Returns image and text embeddings, the similarity matrix and the
    two re-ranked score matrices (images x texts, texts x images)."""
    def cls(out):
        return out["last"][:, 0]
    with torch.no_grad():
        txt = torch.cat([F.normalize(model.itc_text_proj_head(cls(model.backbone(
            "text", text_ids=text_ids[i:i + text_bs], text_mask=text_mask[i:i + text_bs]))), dim=-1)
            for i in range(0, len(text_ids), text_bs)])
        img = torch.cat([F.normalize(model.itc_vision_proj_head(cls(model.backbone(
            "vision", image=images[i:i + image_bs]))), dim=-1)
            for i in range(0, len(images), image_bs)])
        sims = img @ txt.t()

        def match(image, ids, mask):
            out = model.backbone("vl", image=image, text_ids=ids, text_mask=mask)
            return model.itm_head(out["pooled"])[:, 1]
        i2t = torch.full((len(img), len(txt)), -100.0)
        for i in range(len(img)):
            top = sims[i].topk(min(k_test, len(txt))).indices
            i2t[i, top] = match(images[i:i + 1].expand(len(top), -1, -1, -1), text_ids[top], text_mask[top])
        t2i = torch.full((len(txt), len(img)), -100.0)
        for t in range(len(txt)):
            top = sims[:, t].topk(min(k_test, len(img))).indices
            t2i[t, top] = match(images[top], text_ids[t:t + 1].expand(len(top), -1),
                                text_mask[t:t + 1].expand(len(top), -1))
    return img, txt, sims, i2t, t2i


def load_model(bundle):
    cfg = read_config(os.path.join(bundle, "config.json"))
    model = EveRef(cfg)
    weights = eve_ref_io.load(os.path.join(bundle, "model.safetensors"))
    own = dict(model.named_parameters())
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    if missing or unexpected:
        sys.exit("eve_ref: weights do not match: missing %s unexpected %s" % (missing, unexpected))
    with torch.no_grad():
        for name, p in own.items():
            p.copy_(weights[name].float())
    return model


def bench(cfg, batch, reps):
    import time
    torch.manual_seed(0)
    model = EveRef(cfg)
    init_weights(model, 0)
    res = cfg["image_res"]
    image = torch.randn(batch, 3, res, res)
    ids = torch.randint(5, cfg["vocab_size"], (batch, cfg["max_text_len"]))
    model.eval()
    fwd = float("inf")
    with torch.no_grad():
        for r in range(reps + 1):
            t0 = time.perf_counter()
            model.backbone("vl", image=image, text_ids=ids)
            if r:
                fwd = min(fwd, time.perf_counter() - t0)
    model.train()
    train = float("inf")
    for _ in range(reps):
        model.zero_grad()
        t0 = time.perf_counter()
        out = model.backbone("vl", image=image, text_ids=ids)
        (out["hidden"].mean() + out["aux"]).backward()
        train = min(train, time.perf_counter() - t0)
    print("python forward %.3f s; fwd+bwd %.3f s" % (fwd, train))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["outputs", "step", "init", "bench"])
    ap.add_argument("args", nargs="+")
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--draw-seed", type=int, default=None,
                    help="outputs: seed torch's generator first, so a training pass draws dropout, "
                         "drop-path and routing noise from a known stream")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.command == "bench":
        bench(read_config(a.args[0]), a.batch, a.reps)
        return
    if a.command == "init":
        cfg_path, pth, inputs, out = a.args
        model = EveRef(read_config(cfg_path))
        init_weights(model, a.seed)
        torch.save({"model": model.state_dict()}, pth)
        model.eval()
        with torch.no_grad():
            eve_ref_io.save(out, outputs(model, eve_ref_io.load(inputs)))
        return
    bundle, inputs, out = a.args
    model = load_model(bundle)
    batch = eve_ref_io.load(inputs)
    if a.command == "outputs":
        model.train(a.train)
        if a.draw_seed is not None:
            torch.manual_seed(a.draw_seed)
        with torch.no_grad():
            eve_ref_io.save(out, outputs(model, batch))
        return
    model.train(True)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    res = outputs(model, batch)
    loss = sum((res[k.split("probe.", 1)[1]] * v).sum() for k, v in batch.items() if k.startswith("probe."))
    loss = loss + sum(v for k, v in res.items() if k.endswith(".aux"))
    opt.zero_grad()
    loss.backward()
    opt.step()
    result = {n: p.detach() for n, p in model.named_parameters()}
    result["loss"] = loss.detach()
    eve_ref_io.save(out, result)


if __name__ == "__main__":
    main()
