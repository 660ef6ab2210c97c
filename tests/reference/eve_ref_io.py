"""safetensors for the EVE reference model, with numpy only (Debian has no
python3-safetensors): read a file into torch tensors, write torch tensors into one."""
import json
import struct

import numpy as np
import torch

_NP = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "U8": np.uint8}


def load(path):
    """Returns {name: torch.Tensor}; BF16 is widened to float32."""
    with open(path, "rb") as f:
        blob = f.read()
    size = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + size])
    header.pop("__metadata__", None)
    base = 8 + size
    result = {}
    for name, info in header.items():
        start, stop = info["data_offsets"]
        raw = blob[base + start:base + stop]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(_NP[info["dtype"]]).newbyteorder("<"))
        result[name] = torch.from_numpy(arr.copy().reshape(info["shape"]))
    return result


_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.int64: "I64", torch.int32: "I32",
          torch.uint8: "U8", torch.bool: "U8"}


def save(path, tensors, metadata=None):
    """Writes {name: torch.Tensor} (float32, float16, int64, int32, uint8, bool)."""
    entries = {}
    chunks = []
    offset = 0
    for name in tensors:
        t = tensors[name].detach().cpu().contiguous()
        kind = _NAMES[t.dtype]
        if t.dtype == torch.bool:
            t = t.to(torch.uint8)
        data = t.numpy().astype(np.dtype(_NP[kind]).newbyteorder("<"), copy=False).tobytes()
        entries[name] = {"dtype": kind, "shape": list(t.shape),
                         "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata:
        entries["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    head = json.dumps(entries, separators=(",", ":")).encode("utf-8")
    head += b" " * ((8 - len(head) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for c in chunks:
            f.write(c)
