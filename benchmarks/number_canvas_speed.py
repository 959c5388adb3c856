"""How long reading a 4-digit number drawn on a 400x300 canvas takes (the page's wide pad).

    python benchmarks/number_canvas_speed.py --data-dir ../shared/data/mnist [--repeat 50]

Four MNIST test digits drawn dark on a white 400x300 canvas as the page sends it (PNG), apart
and pushed together until their ink touches; each read whole by `read_image` with the shipped
models, with and without the line reader. The median of --repeat reads.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import numpy as np
from PIL import Image

from digitos.datasets import load_dataset
from digitos.predict import load_reader, read_image


def canvas(digits: list[np.ndarray], touching: bool) -> bytes:
    """The digits, 80 px tall, side by side on a 400x300 white canvas."""
    page = np.zeros((300, 400), bool)
    x = 40
    for d in digits:
        ys, xs = np.nonzero(d > 40)
        crop = Image.fromarray(d[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1])
        ink = np.asarray(crop.resize((max(1, crop.width * 80 // crop.height), 80))) > 100
        while touching and x > 40 and not (page[110:190, x - 1: x - 1 + ink.shape[1]] & ink).any():
            x -= 1
        page[110:190, x: x + ink.shape[1]] |= ink
        x += ink.shape[1] + (0 if touching else 20)
    out = io.BytesIO()
    Image.fromarray(np.where(page, 0, 255).astype(np.uint8)).save(out, "PNG")
    return out.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()
    test = load_dataset("mnist", args.data_dir, progress=False).test
    digits = [test.images[i].numpy() for i in (1, 0, 1, 4)]  # 2 7 2 4
    for lines in (True, False):
        reader = load_reader(lines=lines)
        for touching in (False, True):
            data = canvas(digits, touching)
            read_image(reader, data)  # warm up
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                number = read_image(reader, data).number
                times.append(time.perf_counter() - t0)
            print(f"line reader {'on ' if lines else 'off'}  {'touching' if touching else 'apart   '}"
                  f"  read {number!r:8}  {1000 * statistics.median(times):.1f} ms")


if __name__ == "__main__":
    main()
