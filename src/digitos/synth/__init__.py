"""Synthetic handwriting: digits written the way the world writes them, made from MNIST's own.

One place for everything training and the benchmarks draw that MNIST does not hold:

- `styles`: ways of writing a digit MNIST's writers hardly used (flagged and based 1s, open
  4s, straight-topped 6s, crossed 7s, straight-stemmed 9s), drawn onto its digits;
- `hands`: how a digit is written and saved (size down to a thumbnail, pen from hairline to
  marker, tilt, crisp or blurred, noise, JPEG), rendered into an image file;
- `drawings`: digits and numbers saved as people save drawings (the benchmarks' renderings);
- `negatives`: images that are not digits (clothes, letters, shapes, pairs of digits).

`written` is what training draws from: digits (and non-digits) written by random hands and
read back through the same path that reads a user's image, so the model learns from exactly
what reading will show it. Training draws from MNIST's training digits with the run's seed;
the benchmarks draw from its test digits with seeds from BENCHMARK_SEEDS up, which no training
uses.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch

from .hands import Hand, random_hand, write, written_image
from .styles import STYLES, styled

__all__ = ["BENCHMARK_SEEDS", "Hand", "STYLES", "random_hand", "styled", "write", "written"]

BENCHMARK_SEEDS = 2_000_000  # benchmark renderings use seeds from here up; training below
STYLE_SHARE = 0.3  # of the written digits that have styles, this share is written in one
CHUNK = 500  # images written per task: the unit of work, each with its own seed


def _read_back(task: tuple[np.ndarray, np.ndarray, int, int]) -> np.ndarray:
    """One chunk of 28x28 images, each written by a random hand and read back as reading would:
    uint8 (n, 28, 28). An image reading cannot take (its ink lost to a hairline and a blur) is
    kept as it was."""
    from ..preprocess import ImageError, to_mnist

    images, labels, seed, chunk = task
    rng = np.random.default_rng([seed, chunk])
    out = np.empty_like(images)
    for i, img in enumerate(images):
        try:
            out[i] = to_mnist(written_image(img, random_hand(rng), rng), "image").pixels.numpy()
        except (ImageError, ValueError):
            out[i] = img
    return out


def written(images: torch.Tensor, labels: torch.Tensor, n: int, seed: int = 0,
            workers: int | None = None,
            progress: Callable[[int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """n images drawn from `images` (uint8 (N, 28, 28), MNIST's form), a STYLE_SHARE of those
    whose digit has styles redrawn in one, each then written by a random hand and read back:
    (uint8 (n, 28, 28), their labels). The same seed gives the same images, whatever the
    number of worker processes (default: one per core). `progress(k)` is told of each k done."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(images), n)
    picked = images[pick].numpy().copy()
    targets = labels[pick].clone()
    # Styles are drawn here, in one process, so the draw does not depend on the workers.
    by_digit: dict[int, list[str]] = {}
    for name, (digit, _) in STYLES.items():
        by_digit.setdefault(digit, []).append(name)
    for i in range(n):
        names = by_digit.get(int(targets[i]), [])
        if names and rng.random() < STYLE_SHARE:
            draw = STYLES[names[int(rng.integers(len(names)))]][1]
            done = draw(picked[i], rng)
            if done is not None:
                picked[i] = done
    tasks = [(picked[s: s + CHUNK], targets[s: s + CHUNK].numpy(), seed, s // CHUNK)
             for s in range(0, n, CHUNK)]
    workers = workers or os.cpu_count() or 1
    import multiprocessing as mp

    if workers > 1 and len(tasks) > 1 and "fork" in mp.get_all_start_methods():
        from concurrent.futures import ProcessPoolExecutor

        # Forked, as PyTorch's DataLoader forks its workers, one thread each: spawning would
        # run the caller's script again in each worker.
        with ProcessPoolExecutor(min(workers, len(tasks)), mp.get_context("fork"),
                                 initializer=torch.set_num_threads, initargs=(1,)) as pool:
            chunks = []
            for task, done in zip(tasks, pool.map(_read_back, tasks), strict=True):
                chunks.append(done)
                if progress:
                    progress(len(task[0]))
    else:
        chunks = []
        for task in tasks:
            chunks.append(_read_back(task))
            if progress:
                progress(len(task[0]))
    out = np.concatenate(chunks) if chunks else picked
    return torch.from_numpy(out), targets
