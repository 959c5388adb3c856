"""A picture of the synthetic handwriting: each style, and digits written by random hands.

    python benchmarks/synth_grid.py --data-dir ../shared/data/mnist [--out docs/img/synth.png]

Row by row: MNIST *test* digits redrawn in each style of digitos.synth.styles (the first
column is the style's name), then test digits written by random hands and read back as
reading sees them (digitos.synth.written), titled with their labels. For looking at: every
style must still be its digit to a person's eye.
"""

from __future__ import annotations

import argparse

import torch

from digitos import plots
from digitos.datasets import load_dataset
from digitos.synth import BENCHMARK_SEEDS, STYLES, styled, written

COLS = 12


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default="docs/img/synth.png")
    args = ap.parse_args()
    test = load_dataset("mnist", args.data_dir, progress=False).test
    images, titles = [], []
    for k, name in enumerate(STYLES):
        made = styled(test.images, test.labels, name, COLS, BENCHMARK_SEEDS + k)
        images.append(made)
        titles += [name] + [""] * (len(made) - 1)
    hands, labels = written(test.images, test.labels, 3 * COLS, BENCHMARK_SEEDS)
    images.append(hands)
    titles += [f"written: {c}" if i % COLS == 0 else str(c) for i, c in enumerate(labels.tolist())]
    plots.image_grid(torch.cat(images), titles, args.out, cols=COLS,
                     title="Synthetic handwriting: styles (rows 1-6) and random hands (rows 7-9)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
