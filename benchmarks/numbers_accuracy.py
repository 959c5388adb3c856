"""How well digitos reads whole numbers: 2-6 MNIST *test* digits written as one drawing.

    python benchmarks/numbers_accuracy.py --data-dir ../shared/data/mnist [-n 1000] [--checkpoint CKPT]

Each number is drawn by digitos.synth.drawings.render_number: its own size and baseline for every
digit, varied gaps, one in five neighbours pushed together until their ink touches, dark ink
on white paper with noise, PNG or JPEG. A number counts as right only when every digit is
read and in the right order (exact match). The digits come from MNIST's test files, which no
training sees.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np

from digitos.datasets import load_dataset
from digitos.predict import load_reader, read_image
from digitos.preprocess import ImageError
from digitos.synth.drawings import render_number


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--checkpoint", default=None, help="default: the shipped model")
    ap.add_argument("-n", type=int, default=1000, help="numbers to draw (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--errors", action="store_true", help="list the numbers read wrong")
    args = ap.parse_args()

    reader = load_reader(args.checkpoint)
    test = load_dataset("mnist", args.data_dir, progress=False).test
    rng = np.random.default_rng(args.seed)
    right: dict[str, list[bool]] = defaultdict(list)
    seconds = 0.0
    for i in range(args.n):
        k = int(rng.integers(2, 7))
        pick = rng.choice(len(test), size=k, replace=False)
        drawing = render_number(test.images[pick], test.labels[pick].tolist(), rng)
        t0 = time.perf_counter()
        try:
            number = read_image(reader, drawing.data).number
        except ImageError as e:
            number = f"error: {e}"
        seconds += time.perf_counter() - t0
        ok = number == drawing.number
        for key in ("all", f"{k} digits", "touching" if drawing.touching else "apart",
                    drawing.format):
            right[key].append(ok)
        if args.errors and not ok:
            print(f"  #{i}: {drawing.number} read as {number}"
                  f"{' (touching)' if drawing.touching else ''}")
    print(f"model: {reader.meta['model']}  numbers: {args.n}")
    for key in ["all", *sorted(k for k in right if k != "all")]:
        r = right[key]
        print(f"  {key:10} {100 * sum(r) / len(r):6.2f}%  ({sum(r)}/{len(r)})")
    print(f"{1000 * seconds / args.n:.1f} ms per number (decode, segmentation, model)")


if __name__ == "__main__":
    main()
