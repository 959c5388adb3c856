"""How well digitos reads digits with lines and frames around them, as people write them.

    python benchmarks/lines_and_frames.py --data-dir ../shared/data/mnist [-n 200] [--checkpoint CKPT]

MNIST *test* digits drawn dark on a light page (168 px for the 28x28 field), then: sitting on
one ruled line that crosses the whole image (a tight crop of lined paper), over a long
underline, over an underline as wide as the digit, inside a circle, inside a box clear of
the digit, inside a box that touches it. Numbers of 2-6 test digits (the numbers benchmark's
drawings) with a line under them, numbers written in a form's row of boxes (one digit in each,
clear of the walls or as tall as the box), and rows of tall 1s drawn across most of a canvas.
A digit is right when exactly it is read.
"""

from __future__ import annotations

import argparse
import io

import numpy as np
from PIL import Image, ImageDraw

from digitos.datasets import load_dataset
from digitos.predict import load_reader, read_image
from digitos.preprocess import ImageError
from digitos.synth.drawings import render_number

SETTINGS = ("plain", "on one ruled line", "long underline", "short underline", "circled",
            "boxed", "boxed, touching")


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def digit_with(digit, setting: str, rng: np.random.Generator) -> bytes:
    """One MNIST digit on a 500x400 page with `setting` drawn around it."""
    big = Image.fromarray(255 - digit.numpy()).resize((168, 168), Image.BICUBIC)
    page = Image.new("L", (500, 400), 245)
    page.paste(big, (166, 116))
    a = np.asarray(page) < 128
    rows, cols = np.nonzero(a.any(1))[0], np.nonzero(a.any(0))[0]
    left, top, right, bottom = cols[0], rows[0], cols[-1], rows[-1]
    w, h = right - left, bottom - top
    cx, cy = (left + right) / 2, (top + bottom) / 2
    pen = int(rng.integers(3, 8))
    draw = ImageDraw.Draw(page)
    if setting == "on one ruled line":
        draw.line([(0, bottom - 2), (499, bottom - 2)], fill=110, width=max(2, pen // 2))
    elif setting == "long underline":
        draw.line([(cx - 1.2 * h, bottom + 15), (cx + 1.2 * h, bottom + 15)], fill=0, width=pen)
    elif setting == "short underline":
        draw.line([(left - 15, bottom + 15), (right + 15, bottom + 15)], fill=0, width=pen)
    elif setting == "circled":
        draw.ellipse([(cx - 0.8 * w - 12, cy - 0.8 * h), (cx + 0.8 * w + 12, cy + 0.8 * h)],
                     outline=0, width=pen)
    elif setting == "boxed":
        m = h / 6
        draw.rectangle([(left - m, top - m), (right + m, bottom + m)], outline=0, width=pen)
    elif setting == "boxed, touching":
        draw.rectangle([(left + 2, top + 2), (right - 2, bottom - 2)], outline=0, width=pen)
    return _png(page)


def underlined_number(images, labels, rng: np.random.Generator) -> tuple[bytes, str]:
    k = int(rng.integers(2, 7))
    pick = rng.choice(len(images), size=k, replace=False)
    drawn = render_number(images[pick], labels[pick].tolist(), rng)
    img = Image.open(io.BytesIO(drawn.data)).convert("L")
    a = np.asarray(img) < 128
    rows, cols = np.nonzero(a.any(1))[0], np.nonzero(a.any(0))[0]
    ImageDraw.Draw(img).line([(cols[0] - 5, rows[-1] + 10), (cols[-1] + 5, rows[-1] + 10)],
                             fill=20, width=int(rng.integers(2, 6)))
    return _png(img), drawn.number


def number_in_boxes(images, labels, touching: bool, rng: np.random.Generator
                    ) -> tuple[bytes, str]:
    """2-6 test digits written in a form's row of boxes, one in each (neighbours share a
    wall): boxes 40-140 px, a pen of 1-4 px, each digit 0.6-0.8 of its box tall, or as tall
    as its box and more (touching: its strokes meet the sides)."""
    k = int(rng.integers(2, 7))
    pick = rng.choice(len(images), size=k, replace=False)
    cell, pen, margin = int(rng.integers(40, 141)), int(rng.integers(1, 5)), int(rng.integers(8, 41))
    page = Image.new("L", (2 * margin + k * cell + 1, 2 * margin + cell + 1), 245)
    for j, i in enumerate(pick):
        # The 28x28 field is 1.4 times the ink's height: 0.85-1.1 of it for a digit as tall
        # as its box (touching), 0.45-0.6 for one clear of it.
        size = int(cell * (rng.uniform(1.2, 1.5) if touching else rng.uniform(0.85, 1.1)))
        big = Image.fromarray(255 - images[i].numpy()).resize((size, size), Image.BICUBIC)
        at = (margin + j * cell + (cell - size) // 2, margin + (cell - size) // 2)
        page.paste(Image.fromarray(np.minimum(np.asarray(page.crop((*at, at[0] + size, at[1] + size))),
                                              np.asarray(big))), at)
    draw = ImageDraw.Draw(page)
    for j in range(k):
        draw.rectangle([(margin + j * cell, margin), (margin + (j + 1) * cell, margin + cell)],
                       outline=0, width=pen)
    return _png(page), "".join(str(int(labels[i])) for i in pick)


def tall_ones(k: int, rng: np.random.Generator) -> bytes:
    page = Image.new("L", (400, 300), 255)
    draw = ImageDraw.Draw(page)
    top, pen = int(rng.integers(20, 60)), int(rng.integers(6, 16))
    for i in range(k):
        x = 60 + i * 280 // k + int(rng.integers(-10, 10))
        draw.line([(x, top), (x + int(rng.integers(-15, 15)), 280)], fill=0, width=pen)
    return _png(page)


def read(reader, data: bytes) -> str:
    try:
        result = read_image(reader, data)
    except ImageError:
        return "?"
    return "?" if result.not_a_digit else result.number


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--checkpoint", default=None, help="default: the shipped model")
    ap.add_argument("-n", type=int, default=200, help="digits per setting (default: %(default)s)")
    args = ap.parse_args()

    test = load_dataset("mnist", args.data_dir, progress=False).test
    reader = load_reader(args.checkpoint)
    print(f"model: {reader.meta['model']}  digits per setting: {args.n}")
    for setting in SETTINGS:
        rng = np.random.default_rng(0)
        right = sum(read(reader, digit_with(test.images[i], setting, rng)) == str(int(test.labels[i]))
                    for i in range(args.n))
        print(f"  {setting:<22} {100 * right / args.n:6.2f}%  ({right}/{args.n})")
    rng = np.random.default_rng(1)
    numbers = [underlined_number(test.images, test.labels, rng) for _ in range(args.n // 2)]
    right = sum(read(reader, data) == number for data, number in numbers)
    print(f"  {'underlined numbers':<22} {100 * right / len(numbers):6.2f}%  ({right}/{len(numbers)})")
    for touching, name in ((False, "numbers in boxes"), (True, "… as tall as the boxes")):
        rng = np.random.default_rng(3 + touching)
        numbers = [number_in_boxes(test.images, test.labels, touching, rng)
                   for _ in range(args.n // 2)]
        right = sum(read(reader, data) == number for data, number in numbers)
        print(f"  {name:<22} {100 * right / len(numbers):6.2f}%  ({right}/{len(numbers)})")
    rng = np.random.default_rng(2)
    right = sum(read(reader, tall_ones(k, rng)) == "1" * k for k in range(2, 5) for _ in range(10))
    print(f"  {'tall 1s, 2-4 of them':<22} {100 * right / 30:6.2f}%  ({right}/30)")


if __name__ == "__main__":
    main()
