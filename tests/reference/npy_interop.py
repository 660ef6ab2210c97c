#!/usr/bin/python3
"""Interop oracle for eve's .npy reader and writer (numpy only).

  npy_interop.py write DIR   save numpy arrays into DIR plus DIR/manifest.json describing
                             each file (dtype, shape, data bytes as hex)
  npy_interop.py check DIR   load every file listed in DIR/manifest.json with numpy, compare
                             dtype, shape and bytes with the manifest and check that np.save
                             of the loaded array gives the same bytes as the file
"""
import io
import json
import os
import sys

import numpy as np


def arrays():
    f32 = np.array([[0.0, -0.0, 1.5, -2.25], [np.inf, -np.inf, 1e-45, 3.4028235e38],
                    [np.pi, np.e, 1e-30, -7.0]], dtype=np.float32)
    f16 = np.array([0.0, -0.0, 1.0, 65504.0, 6e-8, 6.1e-5, np.inf, -np.inf, -3.140625],
                   dtype=np.float16)
    i64 = np.array([[0, -1], [2**62, -2**63], [2**63 - 1, 42]], dtype=np.int64)
    i32 = np.arange(-12, 12, dtype=np.int32).reshape(2, 3, 4)
    u8 = np.arange(256, dtype=np.uint8).reshape(16, 16)
    return {
        "f32.npy": (f32, None),
        "f16.npy": (f16, None),
        "i64.npy": (i64, None),
        "i32.npy": (i32, None),
        "u8.npy": (u8, None),
        "scalar.npy": (np.array(2.5, dtype=np.float32), None),
        "empty.npy": (np.zeros((0, 4), dtype=np.float32), None),
        "v2.npy": (np.arange(10, dtype=np.float32).reshape(5, 2) / 3, (2, 0)),
        "v3.npy": (np.arange(6, dtype=np.int32), (3, 0)),
        # A column slice of a C array is neither C- nor F-contiguous: np.save writes C order.
        "strided.npy": (np.arange(20, dtype=np.float32).reshape(4, 5)[:, 1:3], None),
    }


def describe(a):
    a = np.array(a, order="C")  # (ascontiguousarray would turn a 0-d array into 1-d)
    return {"dtype": a.dtype.str, "shape": list(a.shape), "hex": a.tobytes().hex()}


def write(d):
    manifest = {}
    for name, (a, version) in arrays().items():
        path = os.path.join(d, name)
        if version is None:
            np.save(path, a)
        else:
            with open(path, "wb") as f:
                np.lib.format.write_array(f, a, version=version)
        manifest[name] = describe(a)
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump(manifest, f)


def check(d):
    with open(os.path.join(d, "manifest.json")) as f:
        manifest = json.load(f)
    bad = 0
    for name, want in manifest.items():
        path = os.path.join(d, name)
        a = np.load(path)
        got = describe(a)
        if got != want:
            print(f"{name}: numpy read {got['dtype']} {got['shape']}, expected "
                  f"{want['dtype']} {want['shape']} (or different bytes)")
            bad += 1
            continue
        buf = io.BytesIO()
        np.save(buf, a)
        with open(path, "rb") as f:
            if f.read() != buf.getvalue():
                print(f"{name}: file bytes differ from numpy.save of the same array")
                bad += 1
    print(f"checked {len(manifest)} files, {bad} bad")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        sys.exit(__doc__)
    sys.exit(write(sys.argv[2]) or 0 if sys.argv[1] == "write" else check(sys.argv[2]))
