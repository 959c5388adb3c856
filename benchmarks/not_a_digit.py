"""How well digitos says "not a digit": non-digits no training saw, against real digits.

    python benchmarks/not_a_digit.py --data-dir ../shared/data/mnist [-n 1000] [--checkpoint CKPT]

Non-digits, each saved as a person's drawing (digitos.drawings.render: big canvas, off-centre,
pen changed, PNG / JPEG / transparent PNG) and read through the whole reading path:
- clothes: Fashion-MNIST's *test* files (training uses only its training files);
- letters: letters and signs in the STIX fonts (training uses DejaVu and Computer Modern);
- shapes: scribbles, hatching, grids, stars, spirals... drawn from a seed training never uses.
Digits: MNIST *test* digits drawn the same way; the figure is the share wrongly rejected.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from digitos.datasets import load_dataset
from digitos.drawings import render
from digitos.negatives import clothes, held_out_fonts, letters, shapes
from digitos.predict import load_reader, read_image
from digitos.preprocess import ImageError


def rejected(reader, images: torch.Tensor, seed: int) -> float:
    """Share of the images, each saved as a drawing, that digitos reads as not a digit."""
    rng = np.random.default_rng(seed)
    count = 0
    for img in images:
        try:
            count += read_image(reader, render(img, -1, rng).data).not_a_digit
        except ImageError:  # nothing to read counts as not read as a digit
            count += 1
    return count / len(images)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--checkpoint", default=None, help="default: the shipped model")
    ap.add_argument("-n", type=int, default=1000, help="images of each kind (default: %(default)s)")
    args = ap.parse_args()

    reader = load_reader(args.checkpoint)
    n = args.n
    fashion = load_dataset("fashion-mnist", None, progress=False).test.images
    mnist = load_dataset("mnist", args.data_dir, progress=False).test.images
    kinds = {
        "clothes": clothes(fashion[:n]),
        "letters": letters(n, seed=1_000_003, fonts=held_out_fonts()),
        "shapes": shapes(n, seed=1_000_033),
    }
    print(f"model: {reader.meta['model']}  classes: {len(reader.classes)}")
    rates = []
    for i, (kind, images) in enumerate(kinds.items()):
        rates.append(rejected(reader, images, seed=i))
        print(f"  {kind:8} rejected {100 * rates[-1]:6.2f}%  ({len(images)} images)")
    print(f"  non-digits rejected {100 * sum(rates) / len(rates):6.2f}% (mean of the kinds)")
    digits = rejected(reader, mnist[:n], seed=99)
    print(f"  real digits (MNIST test, as drawings) rejected {100 * digits:5.2f}%")


if __name__ == "__main__":
    main()
