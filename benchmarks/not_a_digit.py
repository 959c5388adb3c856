"""How well digitos says "not a digit": non-digits no training saw, against real digits.

    python benchmarks/not_a_digit.py --data-dir ../shared/data/mnist [-n 1000] [--checkpoint CKPT]

Non-digits no training saw, read through the whole reading path:
- clothes: Fashion-MNIST's *test* files (training uses only its training files), each saved as
  a picture (its grey levels enlarged onto a big white canvas, dark on light, PNG or JPEG);
  and the same items as silhouettes, drawn like the digits below (pen made binary);
- letters: letters and signs in the STIX fonts (training uses DejaVu and Computer Modern);
- shapes: scribbles, hatching, grids, stars, spirals... drawn from a seed training never uses.
Letters and shapes are saved as a person's drawing (digitos.synth.drawings.render: big canvas,
off-centre, pen changed, PNG / JPEG / transparent PNG).
Digits: MNIST *test* digits drawn the same way; the figure is the share wrongly rejected.
"""

from __future__ import annotations

import argparse
import io

import numpy as np
import torch
from PIL import Image

from digitos.datasets import load_dataset
from digitos.predict import load_reader, read_image
from digitos.preprocess import ImageError
from digitos.synth.drawings import render
from digitos.synth.negatives import clothes, fashion_images, held_out_fonts, letters, shapes


def picture(img: torch.Tensor, rng: np.random.Generator) -> bytes:
    """A 28x28 grey image as a saved picture: enlarged, dark on a big white canvas."""
    side = int(rng.integers(84, 400))
    big = Image.fromarray(255 - img.numpy()).resize((side, side), Image.BICUBIC)
    canvas = Image.new("L", (side + int(rng.integers(20, 400)), side + int(rng.integers(20, 300))),
                       255)
    canvas.paste(big, (int(rng.integers(0, canvas.width - side)),
                       int(rng.integers(0, canvas.height - side))))
    buf = io.BytesIO()
    canvas.save(buf, format="JPEG" if rng.random() < 0.5 else "PNG")
    return buf.getvalue()


def drawing(img: torch.Tensor, rng: np.random.Generator) -> bytes:
    return render(img, -1, rng).data


def rejected(reader, images: torch.Tensor, seed: int, save=drawing) -> float:
    """Share of the images, each saved as `save` makes it, that digitos reads as not a digit."""
    rng = np.random.default_rng(seed)
    count = 0
    for img in images:
        try:
            count += read_image(reader, save(img, rng)).not_a_digit
        except ImageError:  # nothing to read counts as not read as a digit
            count += 1
    return count / len(images)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--checkpoint", default=None, help="default: the shipped model")
    ap.add_argument("-n", type=int, default=1000, help="images of each kind (default: %(default)s)")
    ap.add_argument("--no-line-reader", action="store_true",
                    help="without the line reader (touching digits cut apart instead)")
    args = ap.parse_args()

    reader = load_reader(args.checkpoint, lines=not args.no_line_reader)
    n = args.n
    fashion = fashion_images("test")
    if fashion is None:
        raise SystemExit("Fashion-MNIST not found: apt-get install dataset-fashion-mnist")
    mnist = load_dataset("mnist", args.data_dir, progress=False).test.images
    kinds = {
        "clothes": (fashion[:n], picture),
        "letters": (letters(n, seed=1_000_003, fonts=held_out_fonts()), drawing),
        "shapes": (shapes(n, seed=1_000_033), drawing),
    }
    print(f"model: {reader.meta['model']}  classes: {len(reader.classes)}")
    rates = []
    for i, (kind, (images, save)) in enumerate(kinds.items()):
        rates.append(rejected(reader, images, seed=i, save=save))
        print(f"  {kind:8} rejected {100 * rates[-1]:6.2f}%  ({len(images)} images)")
    print(f"  non-digits rejected {100 * sum(rates) / len(rates):6.2f}% (mean of the kinds)")
    silhouettes = rejected(reader, clothes(fashion[:n]), seed=7)
    print(f"  (clothes as binary silhouettes, not in the mean: rejected {100 * silhouettes:.2f}%)")
    digits = rejected(reader, mnist[:n], seed=99)
    print(f"  real digits (MNIST test, as drawings) rejected {100 * digits:5.2f}%")


if __name__ == "__main__":
    main()
