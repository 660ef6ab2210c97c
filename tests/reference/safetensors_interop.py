#!/usr/bin/python3
"""Interop oracle for eve's safetensors reader and writer, written from the format's
description with numpy only (Debian has no python3-safetensors).

  safetensors_interop.py write DIR   write DIR/model.safetensors and DIR/manifest.json
                                     (per tensor: dtype, shape, data bytes as hex; metadata)
  safetensors_interop.py check DIR   read DIR/model.safetensors, validate it as the format
                                     requires and compare it with DIR/manifest.json
"""
import json
import os
import struct
import sys

import numpy as np

# bfloat16 has no numpy dtype: its bits travel as uint16.
DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4", "U8": "|u1"}


def tensors():
    f32 = np.array([[1.0, -2.5, np.inf], [-0.0, 1e-45, 3.0e38]], dtype=np.float32)
    bf16_bits = (np.array([1.0, -3.0, 0.15625, np.inf], dtype=np.float32)
                 .view(np.uint32) >> 16).astype(np.uint16)
    return [
        ("encoder.layer.0.weight", "F32", f32),
        ("encoder.layer.0.bias", "F16", np.array([0.5, -65504.0, 6e-8], dtype=np.float16)),
        ("router.bf16", "BF16", bf16_bits),
        ("step", "I64", np.array(2**40 + 3, dtype=np.int64)),  # 0-d
        ("ids", "I32", np.arange(-3, 9, dtype=np.int32).reshape(3, 2, 2)),
        ("mask", "U8", np.array([[0, 1, 255]], dtype=np.uint8)),
        ("empty", "F32", np.zeros((0, 3), dtype=np.float32)),
    ]


METADATA = {"format": "pt", "config": json.dumps({"hidden": 8, "name": "é"})}


def write(d):
    header, blobs, at = {"__metadata__": METADATA}, [], 0
    manifest = {"tensors": {}, "metadata": METADATA}
    for name, dtype, a in tensors():
        raw = np.ascontiguousarray(a, dtype=DTYPES[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
        manifest["tensors"][name] = {"dtype": dtype, "shape": list(a.shape), "hex": raw.hex()}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump(manifest, f)


def read(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    assert 8 + n <= len(buf), "header runs past the end"
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = buf[8 + n:]
    spans = sorted((info["data_offsets"], name) for name, info in header.items())
    at = 0
    for (b, e), name in spans:
        assert b == at, f"{name}: data not contiguous"
        at = e
    assert at == len(data), "data not fully covered"
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        a = np.frombuffer(data[b:e], dtype=DTYPES[info["dtype"]])
        assert a.size == int(np.prod(info["shape"], dtype=np.int64)), f"{name}: size mismatch"
        a = a.reshape(info["shape"])
        out[name] = {"dtype": info["dtype"], "shape": list(a.shape), "hex": a.tobytes().hex()}
    return out, meta


def check(d):
    with open(os.path.join(d, "manifest.json")) as f:
        want = json.load(f)
    got, meta = read(os.path.join(d, "model.safetensors"))
    bad = 0
    if meta != want["metadata"]:
        print(f"metadata differs: {meta!r}")
        bad += 1
    for name in sorted(set(got) | set(want["tensors"])):
        if got.get(name) != want["tensors"].get(name):
            print(f"{name}: read {got.get(name)!r}, expected {want['tensors'].get(name)!r}")
            bad += 1
    print(f"checked {len(want['tensors'])} tensors, {bad} bad")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        sys.exit(__doc__)
    sys.exit(write(sys.argv[2]) or 0 if sys.argv[1] == "write" else check(sys.argv[2]))
