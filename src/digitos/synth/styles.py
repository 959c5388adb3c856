"""Ways of writing digits that MNIST hardly holds, drawn onto its own digits.

MNIST's writers were American: their 1 is mostly a bare bar, their 7 uncrossed, their 4 closed
at the top. Much of the world (Spain, where this project's class comes from, among them)
writes a 1 with a flag, or a flag and a base, crosses its 7s, leaves the 4 open, draws the
6's top as one straight stroke and the 9's stem as a straight line. A model that never saw
these reads a flagged 1 as a 7 and a crossed 7 as "not a digit".

Each style here is drawn onto MNIST's own digits, at each digit's own size, slant and pen
width: strokes added (a flag, a bar, a base), or a part of the digit redrawn straight (a 6's
top, a 9's stem, a 4 redrawn open from where its bar and stem lie). No one's drawings are
copied in, and the training digits and the test digits stay apart: `styled` takes whichever
set it is given.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw
from scipy import ndimage

SUPERSAMPLE = 4  # strokes are drawn at 4x and box-filtered down: anti-aliased, as MNIST's
FLAG_LENGTH = (0.2, 0.55)  # of the digit's height: a German 1's flag is half as long as it
FLAG_ANGLE = (25.0, 60.0)  # degrees below the horizontal: flatter, and it becomes a 7's bar
CROSS_AT = (0.45, 0.6)  # a 7's bar crosses the stem this far down the digit's height
CROSS_HALF = (0.15, 0.25)  # half the bar's length, as a share of the digit's height
BASE_HALF = (0.15, 0.3)  # half a 1's base, as a share of its height

Drawer = Callable[[np.ndarray, np.random.Generator], "np.ndarray | None"]


def _extent(mask: np.ndarray) -> tuple[int, int]:
    """The top row of a digit's ink and its height, in rows."""
    rows = np.nonzero(mask.any(1))[0]
    return int(rows[0]), int(rows[-1] - rows[0] + 1)


def _pen_width(mask: np.ndarray) -> float:
    """The pen's width: twice the ink's area over its outline (a stroke of width w and length
    L has area wL and an outline of about 2L)."""
    outline = mask & ~ndimage.binary_erosion(mask)
    return float(np.clip(2 * mask.sum() / max(1, outline.sum()), 1.5, 5.0))


def _strokes(img: np.ndarray, lines: list[list[tuple[float, float]]], width: float) -> np.ndarray:
    """`img` with pen strokes along each polyline (x, y in pixels), drawn at SUPERSAMPLE times
    the size and box-filtered down: anti-aliased, as MNIST's strokes are."""
    s = SUPERSAMPLE
    h, w = img.shape
    big = Image.new("L", (w * s, h * s), 0)
    draw = ImageDraw.Draw(big)
    pen = max(1, int(round(width * s)))
    for line in lines:
        points = [((x + 0.5) * s, (y + 0.5) * s) for x, y in line]
        draw.line(points, fill=255, width=pen, joint="curve")
        for x, y in points:  # round ends and joints, as a pen leaves them
            draw.ellipse([(x - pen / 2, y - pen / 2), (x + pen / 2, y + pen / 2)], fill=255)
    small = np.asarray(big.resize((w, h), Image.BOX))
    return np.maximum(small, img)


def _flag(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 1 with a flag drawn from the top of its stroke, down and to the left."""
    mask = img >= 128
    top, height = _extent(mask)
    x0 = np.nonzero(mask[top])[0].mean()
    length = height * rng.uniform(*FLAG_LENGTH)
    angle = np.radians(rng.uniform(*FLAG_ANGLE))
    x1, y1 = x0 - length * np.cos(angle), top + length * np.sin(angle)
    return _strokes(img, [[(x0, top), (x1, y1)]], _pen_width(mask) * rng.uniform(0.8, 1.1))


def _cross(img: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A 7 with a short bar across the middle of its stem, a little tilted."""
    mask = img >= 128
    top, height = _extent(mask)
    y = int(round(top + height * rng.uniform(*CROSS_AT)))
    xs = np.nonzero(mask[y])[0]
    if len(xs) == 0:  # a gap in the stem at that row: no bar rather than a stray one
        return None
    x = xs.mean()
    half = height * rng.uniform(*CROSS_HALF)
    tilt = rng.uniform(-1.5, 1.5)  # px: a hand's bar is rarely level
    width = _pen_width(mask) * rng.uniform(0.8, 1.1)
    return _strokes(img, [[(x - half, y + tilt), (x + half, y - tilt)]], width)


def _base(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 1 standing on a base, and most times with a flag too (a serif at its top)."""
    mask = img >= 128
    top, height = _extent(mask)
    bottom = top + height - 1
    x = np.nonzero(mask[bottom])[0].mean()
    half = height * rng.uniform(*BASE_HALF)
    tilt = rng.uniform(-1.0, 1.0)
    out = _strokes(img, [[(x - half, bottom + tilt), (x + half, bottom - tilt)]],
                   _pen_width(mask) * rng.uniform(0.8, 1.1))
    return _flag(out, rng) if rng.random() < 0.7 else out


def _stem_line(mask: np.ndarray, rows: np.ndarray) -> tuple[float, float] | None:
    """x = a*y + b through the middle of the ink in these rows (a stem and its slant)."""
    ys, xs = [], []
    for y in rows:
        cols = np.nonzero(mask[y])[0]
        if len(cols):
            ys.append(y)
            xs.append(cols.mean())
    if len(ys) < 3:
        return None
    a, b = np.polyfit(ys, xs, 1)
    return float(np.clip(a, -0.6, 0.6)), float(b)


def _open_four(img: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A 4 redrawn open at the top: an arm down to the bar, the bar, and the stem, found where
    the 4's own bar and stem lie."""
    mask = img >= 128
    top, height = _extent(mask)
    bottom = top + height - 1
    band = np.arange(top + int(0.35 * height), top + int(0.8 * height) + 1)
    bar_y = int(band[np.argmax(mask[band].sum(1))])  # the widest row: the bar
    pen = _pen_width(mask)
    below = np.arange(bar_y + int(np.ceil(pen)) + 1, bottom + 1)
    stem = _stem_line(mask, below)
    if stem is None:
        return None
    a, b = stem
    bar_cols = np.nonzero(mask[bar_y])[0]
    left = float(bar_cols.min())
    stem_at_bar = a * bar_y + b
    if stem_at_bar - left < 0.25 * height:  # no room for an arm left of the stem
        return None
    stem_top = top + height * rng.uniform(0.0, 0.15)
    arm_y = top + height * rng.uniform(0.0, 0.2)
    # The arm leans as the stem does, and stays well left of it: the top is open.
    arm_x = min(left + a * (arm_y - bar_y) + height * rng.uniform(-0.05, 0.15),
                a * arm_y + b - 0.3 * height)
    arm_top = (arm_x, arm_y)
    overhang = height * rng.uniform(0.05, 0.2)
    tilt = rng.uniform(-1.0, 1.0)
    lines = [[arm_top, (left, bar_y + tilt), (stem_at_bar + overhang, bar_y - tilt)],
             [(a * stem_top + b, stem_top), (a * bottom + b, bottom)]]
    return _strokes(np.zeros_like(img), lines, pen * rng.uniform(0.85, 1.1))


def _loop(mask: np.ndarray, height: int) -> np.ndarray | None:
    """The largest hole the ink closes, if it is a loop's (at least a sixth of the digit's
    height across): a boolean mask."""
    holes, n = ndimage.label(ndimage.binary_fill_holes(mask) & ~mask)
    if n == 0:
        return None
    sizes = ndimage.sum(np.ones_like(mask), holes, range(1, n + 1))
    hole = holes == 1 + int(np.argmax(sizes))
    ys, xs = np.nonzero(hole)
    if min(xs.max() - xs.min(), ys.max() - ys.min()) + 1 < height / 6:
        return None
    return hole


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def _flat_six(img: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A 6 whose top is one straight stroke, leaning right, down into the left of its loop."""
    mask = img >= 128
    top, height = _extent(mask)
    hole = _loop(mask, height)
    if hole is None:
        return None
    left, hole_top, _, hole_bottom = _box(hole)
    if (hole_top + hole_bottom) / 2 < top + 0.45 * height:  # no loop below
        return None
    pen = _pen_width(mask)
    if hole_top - pen - top < 0.25 * height:
        return None
    # Only the loop stays: its ring, and everything from the hole's bottom down.
    keep = ndimage.binary_dilation(hole, iterations=int(np.ceil(pen)) + 1)
    keep[hole_bottom:] = True
    out = np.where(keep, img, 0).astype(img.dtype)
    start_x = left - pen / 2
    start = (start_x, hole_top + rng.uniform(0.0, 0.5) * (hole_bottom - hole_top))
    end = (start_x + height * rng.uniform(0.05, 0.4), top + height * rng.uniform(0.0, 0.05))
    return _strokes(out, [[start, end]], pen * rng.uniform(0.85, 1.1))


def _straight_nine(img: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A 9 whose stem is one straight line down from its loop."""
    mask = img >= 128
    top, height = _extent(mask)
    bottom = top + height - 1
    hole = _loop(mask, height)
    if hole is None:
        return None
    loop = _box(hole)
    if (loop[1] + loop[3]) / 2 > top + 0.55 * height:  # no loop above
        return None
    pen = _pen_width(mask)
    right, hole_bottom = loop[2], loop[3]
    cut = hole_bottom + int(np.ceil(pen)) + 1  # the loop's own bottom arc stays
    if bottom - cut < 0.25 * height:
        return None
    out = img.copy()
    out[cut:] = 0
    x0 = right + pen / 2
    start = (x0, (loop[1] + hole_bottom) / 2)
    end = (x0 + height * rng.uniform(-0.2, 0.05), bottom)
    return _strokes(out, [[start, end]], pen * rng.uniform(0.85, 1.1))


# name: (the digit it is a way of writing, how it is drawn)
STYLES: dict[str, tuple[int, Drawer]] = {
    "flagged-ones": (1, _flag),
    "based-ones": (1, _base),
    "open-fours": (4, _open_four),
    "flat-sixes": (6, _flat_six),
    "crossed-sevens": (7, _cross),
    "straight-nines": (9, _straight_nine),
}


def styled(images: torch.Tensor, labels: torch.Tensor, style: str, n: int,
           seed: int = 0) -> torch.Tensor:
    """n of the `style`'s digits among `images` (uint8 (N, 28, 28), MNIST's form), picked with
    `seed`, each redrawn in that style. Fewer when too few of them can be (a 6 drawn without a
    closed loop has no loop to keep)."""
    digit, draw = STYLES[style]
    rng = np.random.default_rng(seed)
    found = torch.nonzero(labels == digit).flatten().numpy()
    out = []
    for i in rng.permutation(found):
        done = draw(images[i].numpy(), rng)
        if done is not None:
            out.append(done)
            if len(out) == n:
                break
    return torch.from_numpy(np.stack(out)) if out else images[:0].clone()


def flagged_ones(images: torch.Tensor, labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """n of the 1s among `images`, each given a flag."""
    return styled(images, labels, "flagged-ones", n, seed)


def crossed_sevens(images: torch.Tensor, labels: torch.Tensor, n: int,
                   seed: int = 0) -> torch.Tensor:
    """n of the 7s among `images`, each crossed with a bar."""
    return styled(images, labels, "crossed-sevens", n, seed)
