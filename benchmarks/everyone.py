"""How well a model reads everyone's handwriting: every measure of the reader, with its goal.

    python benchmarks/everyone.py --data-dir ../shared/data/mnist [--checkpoint CKPT] [-n 500]
        [--wild-dir ../shared/data/wild-dev] [--json FILE]

Each image is read through the whole reading path (`read_image`), as `digitos predict` reads
a file. MNIST *test* digits only, rendered with seeds from `synth.BENCHMARK_SEEDS` up, which
no training uses:

- styles: n test digits of each style's class redrawn in it (synth/styles.py: flagged and
  based 1s, open 4s, straight-topped 6s, crossed 7s, straight-stemmed 9s), saved as drawings;
- small: each digit cropped to its ink, shrunk to 8x8 (12x12), enlarged bicubic to 64 px on a
  96 px white canvas, as a thumbnail or a low-resolution scan is; and the 28x28 field saved as
  a crisp 16x16 drawing (Paint's pencil on a tiny canvas);
- tilted: turned 30 degrees, half clockwise, half anticlockwise, saved as drawings;
- drawings: ordinary saved drawings (synth/drawings.py), and the share read "not a digit";
- MNIST test (the 28x28s as they are), wild-dev (real drawings by other people: measured on,
  never trained on), the UCI writers' digits (scikit-learn's 8x8 `load_digits`, enlarged
  bicubic to 64 px on a 96 px white canvas, and again enlarged 4-15x by repeating each pixel;
  needs `pip install scikit-learn`);
- not a digit: Fashion-MNIST *test* clothes as pictures, letters in the STIX fonts and shapes
  of an unseen seed, as in benchmarks/not_a_digit.py (the mean of the three).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from digitos.datasets import load_dataset
from digitos.evaluate import read_classes
from digitos.predict import load_reader, read_image
from digitos.preprocess import ImageError
from digitos.synth import BENCHMARK_SEEDS, STYLES, styled
from digitos.synth.drawings import render, render_small
from digitos.synth.negatives import fashion_images, held_out_fonts, letters, shapes

# measure: (goal, True when higher is better)
GOALS = {
    **{f"style: {name}": (98.0 if name in ("flagged-ones", "crossed-sevens") else 97.0, True)
       for name in STYLES},
    "small: 8x8 enlarged": (93.0, True),
    "small: 12x12 enlarged": (98.0, True),
    "small: 16x16 crisp": (97.0, True),
    "tilted 30 degrees": (97.0, True),
    "drawings": (99.0, True),
    "drawings read 'not a digit'": (0.1, False),
    "MNIST test": (99.7, True),
    "wild-dev": (99.2, True),
    "UCI digits": (97.0, True),
    "UCI digits, pixels repeated": (97.0, True),
    "not a digit: rejected": (95.0, True),
}


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def shrunk(digit: torch.Tensor, side: int) -> bytes:
    """A digit cropped to its ink, shrunk to side x side and enlarged bicubic to 64 px on a
    96 px white canvas: a thumbnail, or a low-resolution scan, blown up."""
    d = digit.numpy()
    ys, xs = np.nonzero(d > 0)
    crop = d[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    n = max(crop.shape)
    square = np.zeros((n, n), dtype=np.uint8)
    top, left = (n - crop.shape[0]) // 2, (n - crop.shape[1]) // 2
    square[top: top + crop.shape[0], left: left + crop.shape[1]] = crop
    small = Image.fromarray(255 - square).resize((side, side), Image.Resampling.BOX)
    canvas = Image.new("L", (96, 96), 255)
    canvas.paste(small.resize((64, 64), Image.Resampling.BICUBIC), (16, 16))
    return png(canvas)


def turned(digit: torch.Tensor, degrees: float) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.fromarray(digit.numpy()).rotate(
        -degrees, Image.Resampling.BILINEAR)))


def uci_digits(repeated: bool = False) -> list[tuple[bytes, int]]:
    """The UCI writers' 8x8 digits enlarged bicubic to 64 px on a 96 px white canvas; or
    (`repeated`) enlarged 4-15 times by repeating each pixel, as an image editor's "nearest
    neighbour" does, on a canvas of 12 of their pixels a side."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(BENCHMARK_SEEDS + 600)
    out = []
    for img, label in zip(digits.images, digits.target, strict=True):
        grey = Image.fromarray(255 - (img / 16.0 * 255).astype(np.uint8))
        if repeated:
            k = int(rng.integers(4, 16))
            canvas = Image.new("L", (12 * k, 12 * k), 255)
            canvas.paste(grey.resize((8 * k, 8 * k), Image.Resampling.NEAREST), (2 * k, 2 * k))
        else:
            canvas = Image.new("L", (96, 96), 255)
            canvas.paste(grey.resize((64, 64), Image.Resampling.BICUBIC), (16, 16))
        out.append((png(canvas), int(label)))
    return out


class Tally:
    def __init__(self, reader):
        self.reader = reader
        self.seconds = 0.0
        self.images = 0

    def read(self, data: bytes) -> tuple[str, bool]:
        """The number read (or "?" for not a digit or no ink), and whether it is not a digit."""
        t0 = time.perf_counter()
        try:
            result = read_image(self.reader, data)
            out = ("?" if result.not_a_digit else result.number), result.not_a_digit
        except ImageError:
            out = "?", True
        self.seconds += time.perf_counter() - t0
        self.images += 1
        return out

    def right(self, items) -> float:
        """Percent of (data, label) read exactly as their label."""
        items = list(items)
        return 100 * sum(self.read(d)[0] == str(label) for d, label in items) / len(items)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--checkpoint", default=None, help="default: the shipped model")
    ap.add_argument("-n", type=int, default=500, help="images per measure (drawings: 4n)")
    ap.add_argument("--wild-dir", default="../shared/data/wild-dev")
    ap.add_argument("--skip", nargs="*", default=[], choices=["wild", "uci", "negatives"])
    ap.add_argument("--json", default=None, metavar="FILE", help="also save the figures here")
    args = ap.parse_args()

    reader = load_reader(args.checkpoint)
    test = load_dataset("mnist", args.data_dir, progress=False).test
    n, tally, seed = args.n, Tally(reader), BENCHMARK_SEEDS
    got: dict[str, float] = {}
    t_start = time.perf_counter()

    def report(name: str, value: float) -> None:
        got[name] = value
        goal, higher = GOALS.get(name, (None, True))
        mark = "" if goal is None else ("  ok" if (value >= goal if higher else value <= goal)
                                        else f"  (goal {'≥' if higher else '≤'} {goal:g}%)")
        print(f"{name:32} {value:7.2f}%{mark}", flush=True)

    for k, name in enumerate(STYLES):
        digit = STYLES[name][0]
        made = styled(test.images, test.labels, name, n, seed + k)
        rng = np.random.default_rng(seed + 100 + k)
        report(f"style: {name}", tally.right((render(d, digit, rng).data, digit) for d in made))

    images, labels = test.images[:n], test.labels[:n].tolist()
    for side in (8, 12):
        report(f"small: {side}x{side} enlarged",
               tally.right((shrunk(d, side), c) for d, c in zip(images, labels, strict=True)))
    report("small: 16x16 crisp", tally.right(
        (render_small(d, c, 16, crisp=True).data, c) for d, c in zip(images, labels, strict=True)))
    rng = np.random.default_rng(seed + 200)
    report("tilted 30 degrees", tally.right(
        (render(turned(d, 30 if i % 2 else -30), c, rng).data, c)
        for i, (d, c) in enumerate(zip(images, labels, strict=True))))

    rng = np.random.default_rng(seed + 300)
    many = 4 * n
    read = [tally.read(render(d, c, rng).data)
            for d, c in zip(test.images[n: n + many], test.labels[n: n + many].tolist(), strict=True)]
    truth = test.labels[n: n + many].tolist()
    report("drawings", 100 * sum(r[0] == str(c) for r, c in zip(read, truth, strict=True)) / many)
    report("drawings read 'not a digit'", 100 * sum(r[1] for r in read) / many)

    probabilities = reader.probabilities(test.images)
    best = read_classes(probabilities, reader.classes)
    report("MNIST test", 100 * float((best == test.labels).float().mean()))

    if "wild" not in args.skip and Path(args.wild_dir, "labels.csv").exists():
        rows = list(csv.DictReader(Path(args.wild_dir, "labels.csv").open()))
        report("wild-dev", tally.right((Path(args.wild_dir, r["file"]).read_bytes(), r["label"])
                                        for r in rows))
    if "uci" not in args.skip:
        try:
            report("UCI digits", tally.right(uci_digits()))
            report("UCI digits, pixels repeated", tally.right(uci_digits(repeated=True)))
        except ImportError:
            print("UCI digits: pip install scikit-learn to measure them")
    if "negatives" not in args.skip:
        fashion = fashion_images("test")
        kinds = [letters(n, seed=1_000_003, fonts=held_out_fonts()), shapes(n, seed=1_000_033)]
        rates = []
        rng = np.random.default_rng(seed + 400)
        if fashion is not None:
            rates.append(picture_rejected(tally, fashion[:n], rng))
            report("not a digit: clothes", rates[-1])
        for name, images in zip(("letters", "shapes"), kinds, strict=True):
            rates.append(100 * sum(tally.read(render(img, -1, rng).data)[1] for img in images)
                         / len(images))
            report(f"not a digit: {name}", rates[-1])
        report("not a digit: rejected", sum(rates) / len(rates))

    met = sum((got[k] >= g if hi else got[k] <= g) for k, (g, hi) in GOALS.items() if k in got)
    print(f"goals met: {met} of {sum(k in got for k in GOALS)}; model {reader.meta['model']}, "
          f"{1000 * tally.seconds / max(1, tally.images):.1f} ms per image read, "
          f"{time.perf_counter() - t_start:.0f} s in all")
    if args.json:
        Path(args.json).write_text(json.dumps(got, indent=1))


def picture_rejected(tally: Tally, images: torch.Tensor, rng: np.random.Generator) -> float:
    """Percent of 28x28 grey pictures (clothes), enlarged dark onto a white canvas, that are
    read as not a digit."""
    count = 0
    for img in images:
        side = int(rng.integers(84, 400))
        big = Image.fromarray(255 - img.numpy()).resize((side, side), Image.Resampling.BICUBIC)
        canvas = Image.new("L", (side + int(rng.integers(20, 400)),
                                 side + int(rng.integers(20, 300))), 255)
        canvas.paste(big, (int(rng.integers(0, canvas.width - side)),
                           int(rng.integers(0, canvas.height - side))))
        count += tally.read(png(canvas))[1]
    return 100 * count / len(images)


if __name__ == "__main__":
    main()
