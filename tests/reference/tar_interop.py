#!/usr/bin/python3
"""Interop oracle for eve's tar reader and writer (Python's tarfile and GNU tar).

  tar_interop.py write DIR   write archives the way Python's tarfile (pax, gnu, ustar
                             formats, webdataset-style float mtimes) and GNU tar (gnu and
                             posix formats) do, plus DIR/manifest.json: for each archive the
                             regular-file members in order as [name, data hex]
  tar_interop.py check DIR   read DIR/ours.tar with tarfile and compare it with
                             DIR/manifest.json ("ours.tar" entry); also check that every
                             member is a regular file with mode 0644, mtime 0, uid/gid 0
"""
import io
import json
import os
import subprocess
import sys
import tarfile

LONG_DIR = "d" * 120
FILES = [
    ("000000001.jpg", b"\xff\xd8\xff\xe0 fake jpeg \x00\x01\x02\xff\xd9"),
    ("000000001.txt", "a caption with ünïcödé".encode()),
    ("000000002.json", b'{"key": "000000002"}'),
    ("empty.bin", b""),
    ("blocks.bin", bytes(range(256)) * 4),  # exactly two blocks
    ("odd.bin", b"x" * 513),
    (LONG_DIR + "/" + "n" * 110 + ".jpg", b"long name"),
    ("caf\u00e9/\u00fcber.txt", b"non-ascii path"),
]


def write_tarfile(path, fmt, float_mtime):
    with tarfile.open(path, "w", format=fmt) as tf:
        d = tarfile.TarInfo("somedir")
        d.type = tarfile.DIRTYPE
        d.mode = 0o755
        tf.addfile(d)
        for name, data in FILES:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o444
            ti.uname = ti.gname = "bigdata"
            ti.mtime = 1700000000.25 if float_mtime else 1700000000
            tf.addfile(ti, io.BytesIO(data))


def write_gnu_tar(d, name, fmt):
    src = os.path.join(d, "src-" + fmt)
    for rel, data in FILES:
        p = os.path.join(src, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
    # Sorted names and fixed metadata make the member order predictable.
    subprocess.run(["tar", "--format=" + fmt, "--sort=name", "--owner=0", "--group=0",
                    "--mtime=@0", "-cf", os.path.join(d, name), "-C", src, "."], check=True)
    return sorted(FILES, key=lambda f: f[0])


def write(d):
    manifest = {}
    for name, fmt, float_mtime in [("pax.tar", tarfile.PAX_FORMAT, True),
                                   ("gnu.tar", tarfile.GNU_FORMAT, False)]:
        write_tarfile(os.path.join(d, name), fmt, float_mtime)
        manifest[name] = [[n, data.hex()] for n, data in FILES]
    # ustar cannot hold the >255-byte name or (as tarfile writes it) the non-ASCII one.
    ustar_files = [f for f in FILES if len(f[0]) < 100 and f[0].isascii()]
    with tarfile.open(os.path.join(d, "ustar.tar"), "w", format=tarfile.USTAR_FORMAT) as tf:
        for n, data in ustar_files:
            ti = tarfile.TarInfo("x" * 90 + "/" + n)  # needs the prefix field
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    manifest["ustar.tar"] = [["x" * 90 + "/" + n, data.hex()] for n, data in ustar_files]
    for name, fmt in [("gnutar-gnu.tar", "gnu"), ("gnutar-posix.tar", "posix")]:
        order = write_gnu_tar(d, name, fmt)
        manifest[name] = [[n, data.hex()] for n, data in order]
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump(manifest, f)


def check(d):
    with open(os.path.join(d, "manifest.json")) as f:
        want = json.load(f)["ours.tar"]
    got, bad = [], 0
    with tarfile.open(os.path.join(d, "ours.tar"), "r:") as tf:
        for ti in tf:
            if not ti.isreg() or ti.mode != 0o644 or ti.mtime != 0 or ti.uid or ti.gid:
                print(f"{ti.name}: type {ti.type!r} mode {ti.mode:o} mtime {ti.mtime} "
                      f"uid {ti.uid} gid {ti.gid}")
                bad += 1
            got.append([ti.name, tf.extractfile(ti).read().hex()])
    if got != want:
        print(f"members differ:\n got  {got}\n want {want}")
        bad += 1
    print(f"checked {len(want)} members, {bad} bad")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        sys.exit(__doc__)
    sys.exit(write(sys.argv[2]) or 0 if sys.argv[1] == "write" else check(sys.argv[2]))
