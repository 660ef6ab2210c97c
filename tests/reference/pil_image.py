#!/usr/bin/python3
"""Pillow oracle for eve's image tests (Debian python3-pil).

  pil_image.py resize IN.ppm W H OUT.ppm     Image.resize((W, H), BICUBIC) of a PPM
  pil_image.py decode IN OUT.ppm             open, exif_transpose, convert("RGB"), save as PPM
  pil_image.py many "CMD ARGS" "CMD ARGS"... several of these commands in one process
  pil_image.py make KIND OUT                 write a test input made by Pillow:
      gray.jpg, cmyk.jpg, exif6.jpg .. exif8.jpg (orientation tag), rgba.png, gray16.png,
      palette.png, rgb.jpg
"""
import sys

from PIL import Image, ImageOps


def pattern(w, h, mode="RGB"):
    img = Image.new("RGB", (w, h))
    px = img.load()
    for y in range(h):
        for x in range(w):
            px[x, y] = ((x * 7 + y * 3) % 256, (x * x + 5 * y) % 256, (x ^ y) * 3 % 256)
    return img if mode == "RGB" else img.convert(mode)


def make(kind, out):
    base = pattern(37, 23)
    if kind == "rgb.jpg":
        base.save(out, quality=90)
    elif kind == "gray.jpg":
        base.convert("L").save(out, quality=90)
    elif kind == "cmyk.jpg":
        base.convert("CMYK").save(out, quality=90)
    elif kind.startswith("exif") and kind.endswith(".jpg"):
        exif = Image.Exif()
        exif[0x0112] = int(kind[4:-4])
        base.save(out, quality=90, exif=exif.tobytes())
    elif kind == "rgba.png":
        img = base.convert("RGBA")
        img.putalpha(Image.linear_gradient("L").resize(base.size))
        img.save(out)
    elif kind == "gray16.png":
        Image.new("I;16", base.size, 0x1234).save(out)
    elif kind == "wide.png":
        Image.new("RGB", (70000, 2), (10, 20, 30)).save(out)
    elif kind == "palette.png":
        base.convert("P", palette=Image.ADAPTIVE, colors=16).save(out)
    else:
        sys.exit("unknown kind " + kind)


def run(argv):
    cmd = argv[0]
    if cmd == "resize":
        img = Image.open(argv[1]).convert("RGB")
        img.resize((int(argv[2]), int(argv[3])), Image.BICUBIC).save(argv[4])
    elif cmd == "decode":
        img = ImageOps.exif_transpose(Image.open(argv[1])).convert("RGB")
        img.save(argv[2])
    elif cmd == "make":
        make(argv[1], argv[2])
    elif cmd == "many":
        for c in argv[1:]:
            run(c.split(" "))
    else:
        sys.exit("unknown command " + cmd)


def main():
    run(sys.argv[1:])


if __name__ == "__main__":
    main()
