"""Lines of handwriting made from MNIST digits: what a line reader learns to read whole.

A line is 1-8 digits written side by side, each its own size, baseline, slant and pen, with
gaps from overlapping to wide; sometimes on ruled paper, underlined or boxed; sometimes a line
of letters and doodles, whose reading is empty. `line_ink` returns the ink of one line (float,
0 paper to 1 ink) and the x-range of each digit in it, for training and for checking an
alignment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

HEIGHT = 48  # the digits' height as lines are drawn (a reader scales them to its own)


@dataclass
class Line:
    ink: np.ndarray  # float32 (H, W), 0 paper to 1 ink
    text: str  # the digits written, left to right ("" for a line of no digits)
    spans: list[tuple[int, int]]  # each digit's [left, right) columns in `ink`


def _crop(img: np.ndarray) -> np.ndarray:
    """A 28x28 uint8 image cropped to its ink, as floats in [0, 1]."""
    ys, xs = np.nonzero(img > 30)
    return img[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1].astype(np.float32) / 255


def _scaled(piece: np.ndarray, height: int, stretch: float, slant: float) -> np.ndarray:
    """A piece of ink scaled to `height` rows, its width times `stretch`, sheared by `slant`
    (x moves by slant * rows from the bottom)."""
    w = max(2, round(piece.shape[1] * height / piece.shape[0] * stretch))
    img = Image.fromarray((piece * 255).astype(np.uint8)).resize((w, height), Image.BILINEAR)
    if slant:
        extra = int(np.ceil(abs(slant) * height))
        wide = w + extra
        # PIL's affine maps output (x, y) to input (a x + b y + c, ...).
        shift = -slant * height if slant > 0 else 0.0
        img = img.transform((wide, height), Image.AFFINE, (1, slant, shift, 0, 1, 0),
                            resample=Image.BILINEAR)
    return np.asarray(img, dtype=np.float32) / 255


def line_ink(pieces: list[np.ndarray], text: str, rng: np.random.Generator,
             touch: float = 0.25) -> Line:
    """Digits (or other marks: uint8 28x28 images, ink 255) written as one line.

    Each gets its own height (±15% of the line's), baseline (±8%), width (0.8-1.25x) and a
    slant shared by the line (writers lean one way) with a little of its own; a gap of -0.15
    to 0.7 of the height before it, or, with probability `touch`, pushed left until its ink
    meets its neighbour's.
    """
    height = HEIGHT
    slant = float(rng.uniform(-0.25, 0.35))
    drawn = []
    for img in pieces:
        h = max(6, round(height * rng.uniform(0.85, 1.15)))
        s = slant + float(rng.uniform(-0.08, 0.08))
        drawn.append(_scaled(_crop(img), h, float(rng.uniform(0.8, 1.25)), s))
    margin = height // 2
    width = 2 * margin + sum(p.shape[1] for p in drawn) + height * len(drawn)
    canvas = np.zeros((int(height * 1.6) + 2 * margin, width), np.float32)
    x, spans = margin, []
    base = margin + int(height * 1.3)
    for i, p in enumerate(drawn):
        y = int(np.clip(base - p.shape[0] + rng.normal(0, 0.08 * height), 0,
                        canvas.shape[0] - p.shape[0]))
        if i and rng.random() < touch:  # slide left until the ink meets the neighbour's
            while x > 0:
                region = canvas[y: y + p.shape[0], x - 1: x - 1 + p.shape[1]]
                if (np.minimum(region, p) > 0.3).any():
                    break
                x -= 1
        region = canvas[y: y + p.shape[0], x: x + p.shape[1]]
        np.maximum(region, p, out=region)
        cols = np.nonzero((p > 0.3).any(0))[0]
        spans.append((x + int(cols[0]), x + int(cols[-1]) + 1))
        x += p.shape[1] + int(rng.uniform(-0.15, 0.7) * height)
    ys, xs = np.nonzero(canvas > 0.05)
    top, left = max(0, ys.min() - 2), max(0, xs.min() - 2)
    ink = canvas[top: ys.max() + 3, left: xs.max() + 3]
    return Line(ink, text, [(a - left, b - left) for a, b in spans])
