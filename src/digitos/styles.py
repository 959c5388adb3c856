"""Ways of writing digits that MNIST hardly holds, made from its own digits.

MNIST's writers were American: their 1 is mostly a bare bar. Much of the world (Spain, where
this project's class comes from, among them) writes a 1 with a flag, a short stroke down and
to the left from its top, and a model that never saw one reads it as a 7. `flagged_ones`
draws that flag onto MNIST's own 1s, at the pen width of each, so that the model learns
the style without anyone's drawings being copied in. The same hands cross their 7s with a
short bar through the middle of the stem (`crossed_sevens`), which MNIST holds few of.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw

SUPERSAMPLE = 4  # the flag is drawn at 4x and box-filtered down: an anti-aliased stroke as MNIST's
FLAG_LENGTH = (0.2, 0.4)  # of the digit's height
FLAG_ANGLE = (30.0, 60.0)  # degrees below the horizontal: flatter, and it becomes a 7's bar
CROSS_AT = (0.45, 0.6)  # a 7's bar crosses the stem this far down the digit's height
CROSS_HALF = (0.15, 0.25)  # half the bar's length, as a share of the digit's height


def flagged_ones(images: torch.Tensor, labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """n of the 1s among `images` (uint8 (N, 28, 28), MNIST's form), each given a flag."""
    return _styled(images, labels, 1, n, seed, _flag)


def crossed_sevens(images: torch.Tensor, labels: torch.Tensor, n: int,
                   seed: int = 0) -> torch.Tensor:
    """n of the 7s among `images` (uint8 (N, 28, 28), MNIST's form), each crossed with a bar."""
    return _styled(images, labels, 7, n, seed, _cross)


def _styled(images: torch.Tensor, labels: torch.Tensor, digit: int, n: int, seed: int,
            draw: Callable[[np.ndarray, np.random.Generator], np.ndarray]) -> torch.Tensor:
    """n of the `digit`s among `images`, picked with `seed`, each redrawn by `draw`."""
    rng = np.random.default_rng(seed)
    found = torch.nonzero(labels == digit).flatten().numpy()
    pick = rng.choice(found, size=min(n, len(found)), replace=False)
    out = [draw(images[i].numpy(), rng) for i in pick]
    return torch.from_numpy(np.stack(out)) if out else images[:0].clone()


def _extent(mask: np.ndarray) -> tuple[int, int]:
    """The top row of a digit's ink and its height, in rows."""
    rows = np.nonzero(mask.any(1))[0]
    return int(rows[0]), int(rows[-1] - rows[0] + 1)


def _pen_width(mask: np.ndarray, top: int, height: int) -> float:
    """The pen's width: the ink across a row, in the middle third of the digit."""
    middle = mask[top + height // 3: top + 2 * height // 3]
    return max(1.5, float(middle.sum(1).mean()))


def _stroke(img: np.ndarray, start: tuple[float, float], end: tuple[float, float],
            width: float) -> np.ndarray:
    """`img` with a pen stroke from start to end (x, y in pixels), drawn at SUPERSAMPLE times
    the size and box-filtered down: anti-aliased, as MNIST's strokes are."""
    s = SUPERSAMPLE
    big = Image.fromarray(img).resize((28 * s, 28 * s), Image.BILINEAR)
    draw = ImageDraw.Draw(big)
    w = int(round(width * s))
    a, b = ((start[0] + 0.5) * s, (start[1] + 0.5) * s), ((end[0] + 0.5) * s, (end[1] + 0.5) * s)
    draw.line([a, b], fill=255, width=w)
    for x, y in (a, b):  # round ends, as a pen leaves them
        draw.ellipse([(x - w / 2, y - w / 2), (x + w / 2, y + w / 2)], fill=255)
    small = np.asarray(big.resize((28, 28), Image.BOX))
    return np.maximum(small, img)


def _flag(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One 1 with a flag drawn from the top of its stroke, down and to the left."""
    mask = img >= 128
    top, height = _extent(mask)
    x0 = np.nonzero(mask[top])[0].mean()
    width = _pen_width(mask, top, height)
    length = height * rng.uniform(*FLAG_LENGTH)
    angle = np.radians(rng.uniform(*FLAG_ANGLE))
    x1, y1 = x0 - length * np.cos(angle), top + length * np.sin(angle)
    return _stroke(img, (x0, top), (x1, y1), width * rng.uniform(0.8, 1.1))


def _cross(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One 7 with a short bar across the middle of its stem, a little tilted."""
    mask = img >= 128
    top, height = _extent(mask)
    y = int(round(top + height * rng.uniform(*CROSS_AT)))
    xs = np.nonzero(mask[y])[0]
    if len(xs) == 0:  # a gap in the stem at that row: no bar rather than a stray one
        return img.copy()
    x = xs.mean()
    half = height * rng.uniform(*CROSS_HALF)
    tilt = rng.uniform(-1.5, 1.5)  # px: a hand's bar is rarely level
    width = _pen_width(mask, top, height) * rng.uniform(0.8, 1.1)
    return _stroke(img, (x - half, y + tilt), (x + half, y - tilt), width)
