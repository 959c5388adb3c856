"""How well digitos reads whole numbers: 2-6 MNIST *test* digits written as one drawing.

    python benchmarks/numbers_accuracy.py --data-dir ../shared/data/mnist [-n 1000] [--checkpoint CKPT]
        [--hands | --uci | --stacked] [--lines-checkpoint CKPT | --no-line-reader] [--seed S [S ...]]

Each number is drawn by digitos.synth.drawings.render_number: its own size and baseline for every
digit, varied gaps, one in five neighbours pushed together until their ink touches, dark ink
on white paper with noise, PNG or JPEG. A number counts as right only when every digit is
read and in the right order (exact match). The digits come from MNIST's test files, which no
training sees. `--hands`: the numbers written in the world's styles and hands instead;
`--uci`: numbers of the UCI writers' 8x8 digits (scikit-learn's `load_digits`, which no
training sees either) side by side, enlarged as thumbnails are; `--stacked`: MNIST's test
arrays themselves put side by side as a user stacks them in numpy (white on black, a digit's
width of black between them or none, or cropped to their ink). The benchmark is seed 0;
several seeds pool n numbers from each (`--seed 2 3 4`: 3,000), a surer figure than one
sample of 500 gives.
"""

from __future__ import annotations

import argparse
import io
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from digitos.datasets import load_dataset
from digitos.evaluate import share_with_interval
from digitos.predict import load_reader, read_image
from digitos.preprocess import ImageError
from digitos.synth import BENCHMARK_SEEDS
from digitos.synth.drawings import render_number
from digitos.synth.hands import RESAMPLERS, random_hand
from digitos.synth.lines import random_number, write_line


@dataclass
class HandsNumber:
    data: bytes
    number: str
    touching: bool
    format: str


def hands_number(digits: np.ndarray, labels: np.ndarray, k: int,
                 rng: np.random.Generator) -> HandsNumber:
    """k of the digits written as a number (synth.lines.random_number: some styled, gaps as
    the plain benchmark's), by a random hand, on ruled paper now and then. "Touching": two
    neighbours' columns meet or overlap."""
    line = random_number(digits, labels, rng, k)
    hand = random_hand(rng)
    touch = any(b[0] <= a[1] for a, b in zip(line.spans, line.spans[1:], strict=False))
    return HandsNumber(write_line(line, hand, rng), line.text, touch, hand.format)


def uci_number(images: np.ndarray, labels: np.ndarray, k: int,
               rng: np.random.Generator) -> HandsNumber:
    """k of the UCI writers' 8x8 digits side by side, each in its own frame as the dataset
    holds it (their ink fills it but for a column or so each side), with 2 pixels of paper
    around, enlarged 4-15 times bicubically or by repeating each pixel ("nearest"), saved as
    a PNG. "Touching": two neighbours at most one of their pixels apart (enlarged, the blur
    joins them)."""
    pick = rng.choice(len(images), size=k, replace=False)
    tiles = [images[i] for i in pick]
    grey = np.pad(255 - (np.hstack(tiles) / 16 * 255).astype(np.uint8), 2, constant_values=255)
    scale = int(rng.integers(4, 16))
    how = "nearest" if rng.random() < 0.5 else "bicubic"
    img = Image.fromarray(grey).resize((grey.shape[1] * scale, grey.shape[0] * scale),
                                       RESAMPLERS[how])
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    touch = any(a[:, -1].any() or b[:, 0].any() for a, b in zip(tiles, tiles[1:], strict=False))
    return HandsNumber(buf.getvalue(), "".join(str(labels[i]) for i in pick), touch, how)


def stacked_number(images: np.ndarray, labels: np.ndarray, k: int,
                   rng: np.random.Generator) -> HandsNumber:
    """k MNIST test arrays side by side as a user stacks them (`np.hstack`): each 28x28 as
    MNIST holds it (white on black, its ink centred with 4 or more columns of black each
    side), with 0-40 columns of black between neighbours, or each cropped to its ink and 1-4
    columns apart ("cropped"); a third inverted to black on white; enlarged 1-4 times half of
    the time; saved as a PNG. "Touching": cropped, some neighbours a column apart."""
    pick = rng.choice(len(images), size=k, replace=False)
    cropped = rng.random() < 0.3
    tiles, gaps = [], []
    for i in pick:
        img = images[i]
        if cropped:
            cols = np.nonzero(img.max(0) > 0)[0]
            img = img[:, cols[0]: cols[-1] + 1]
        tiles.append(img)
        gaps.append(int(rng.integers(1, 5)) if cropped else int(rng.integers(0, 41)))
    row = np.hstack([x for tile, gap in zip(tiles, gaps, strict=True)
                     for x in (tile, np.zeros((28, gap), np.uint8))][:-1])
    if rng.random() < 1 / 3:
        row = 255 - row
    img = Image.fromarray(row)
    if rng.random() < 0.5:
        scale = int(rng.integers(2, 5))
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    touch = cropped and min(gaps[:-1]) == 1
    return HandsNumber(buf.getvalue(), "".join(str(labels[i]) for i in pick), touch,
                       "cropped" if cropped else "stacked")


def draws(seeds: list[int], base: int, n: int) -> Iterator[tuple[int, int, np.random.Generator]]:
    """(seed, index, generator) for each number: n from each seed's own draw, in turn."""
    for seed in seeds:
        rng = np.random.default_rng(seed + base)
        for i in range(n):
            yield seed, i, rng


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--checkpoint", default=None, help="default: the shipped model")
    ap.add_argument("--lines-checkpoint", default=None,
                    help="the line reader (default: the shipped one, if any)")
    ap.add_argument("--no-line-reader", action="store_true",
                    help="read numbers digit by digit, cutting touching digits apart")
    ap.add_argument("-n", type=int, default=1000, help="numbers to draw (default: %(default)s)")
    ap.add_argument("--seed", type=int, nargs="+", default=[0],
                    help="the draw's seed (default: 0, the benchmark's); several pool n numbers "
                         "from each, and --errors names a number seed/index")
    ap.add_argument("--errors", action="store_true", help="list the numbers read wrong")
    ap.add_argument("--save-errors", metavar="DIR",
                    help="save the drawings read wrong there, named index-number-read "
                         "(seed-index-number-read with several seeds)")
    ap.add_argument("--hands", action="store_true",
                    help="numbers in the world's styles and hands instead (synth.lines: styled "
                         "digits, slanted, written by random hands: sizes down to thumbnails, "
                         "pens, tilt, blur, JPEG, ruled paper), with seeds from "
                         "synth.BENCHMARK_SEEDS up")
    ap.add_argument("--uci", action="store_true",
                    help="numbers of the UCI writers' 8x8 digits side by side instead, enlarged "
                         "4-15x bicubically or by repeating pixels (needs scikit-learn)")
    ap.add_argument("--stacked", action="store_true",
                    help="MNIST's test arrays side by side instead, as a user stacks them in "
                         "numpy (white on black or inverted, gaps of 0-40 columns, or cropped "
                         "to their ink), some enlarged")
    args = ap.parse_args()
    if args.hands + args.uci + args.stacked > 1:
        ap.error("--hands, --uci and --stacked are different benchmarks: ask for one")

    lines = False if args.no_line_reader else (args.lines_checkpoint or True)
    reader = load_reader(args.checkpoint, lines=lines)
    test = load_dataset("mnist", args.data_dir, progress=False).test
    test_images, test_labels = test.images.numpy(), test.labels.numpy()
    if args.uci:
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise SystemExit("--uci reads the UCI digits from scikit-learn: "
                             "pip install scikit-learn") from None
        uci = load_digits()
    right: dict[str, list[bool]] = defaultdict(list)
    seconds, nothing = 0.0, 0
    seeds = list(dict.fromkeys(args.seed))  # a seed named twice is one draw
    base = (BENCHMARK_SEEDS + 500 if args.hands else BENCHMARK_SEEDS + 700 if args.uci
            else BENCHMARK_SEEDS + 900 if args.stacked else 0)
    count = args.n * len(seeds)
    for seed, i, rng in draws(seeds, base, args.n):
        # One seed names a number by its index, as the benchmark always has; several, seed/index.
        name = f"{i}" if len(seeds) == 1 else f"{seed}/{i}"
        k = int(rng.integers(2, 7))
        pick = rng.choice(len(test), size=k, replace=False)
        if args.hands:
            drawing = hands_number(test_images, test_labels, k, rng)
        elif args.uci:
            drawing = uci_number(uci.images, uci.target, k, rng)
        elif args.stacked:
            drawing = stacked_number(test_images, test_labels, k, rng)
        else:
            drawing = render_number(test.images[pick], test.labels[pick].tolist(), rng)
        t0 = time.perf_counter()
        try:
            result = read_image(reader, drawing.data)
            number, refused = result.number, result.not_a_digit
        except ImageError as e:
            number, refused = f"error: {e}", False
        nothing += refused
        seconds += time.perf_counter() - t0
        ok = number == drawing.number
        for key in ("all", f"{k} digits", "touching" if drawing.touching else "apart",
                    drawing.format):
            right[key].append(ok)
        if args.save_errors and not ok:
            folder = Path(args.save_errors)
            folder.mkdir(parents=True, exist_ok=True)
            ext = "jpg" if drawing.format == "jpeg" else "png"
            stem = f"{i:04d}" if len(seeds) == 1 else f"{seed}-{i:04d}"
            (folder / f"{stem}-{drawing.number}-{number or 'none'}.{ext}").write_bytes(drawing.data)
        if args.errors and not ok:
            print(f"  #{name}: {drawing.number} read as {number}"
                  f"{' (touching)' if drawing.touching else ''}")
    line_reader = "none" if reader.line_model is None else reader.line_meta["model"]
    print(f"model: {reader.meta['model']}  line reader: {line_reader}  numbers: {count}")
    for key in ["all", *sorted(k for k in right if k != "all")]:
        r = right[key]
        print(f"  {key:10} {share_with_interval(sum(r), len(r))}")
    print(f"  answered 'not a digit': {100 * nothing / count:.2f}%  ({nothing}/{count})")
    print(f"{1000 * seconds / count:.1f} ms per number (decode, segmentation, model)")


if __name__ == "__main__":
    main()
