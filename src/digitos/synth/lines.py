"""Lines of handwriting made from MNIST digits: what a line reader learns to read whole.

A line is 1-8 digits written side by side, each its own size, baseline, slant and pen, with
gaps from overlapping to wide; sometimes on ruled paper, underlined or boxed; sometimes a line
of letters and doodles, whose reading is empty. `line_ink` returns the ink of one line (float,
0 paper to 1 ink) and the x-range of each digit in it, for training and for checking an
alignment. `write_line` saves a line as a random hand would (`hands.save`), and `written_lines`
makes a line reader's training set: lines written, saved and read back through the path that
reads a user's image, so the reader learns from what reading will show it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image, ImageDraw
from scipy import ndimage
from skimage.morphology import skeletonize

from .hands import Hand, decoded, random_hand, save
from .styles import STYLES

VERSION = 3  # of the lines written here: lines cached by an earlier version are written again
OVERLAP = 0.4  # two neighbours overlap by at most this share of the narrower one's width
HEIGHT = 48  # the digits' height as lines are drawn (a reader scales them to its own)
WIDEST = 640  # px: a saved line's widest


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
             touch: float = 0.25, gaps: tuple[float, float] = (-0.15, 0.7)) -> Line:
    """Digits (or other marks: uint8 28x28 images, ink 255) written as one line.

    Each gets its own height (±15% of the line's), baseline (±8%), width (0.8-1.25x) and a
    slant shared by the line (writers lean one way) with a little of its own; a gap of
    `gaps` times the height before it (negative: overlapping), or, with probability `touch`,
    pushed left until its ink meets its neighbour's. Two neighbours overlap by at most
    OVERLAP of the narrower one's width: a digit written inside another is read by nobody.
    """
    height = HEIGHT
    slant = float(rng.uniform(-0.25, 0.35))
    drawn = []
    for img in pieces:
        h = max(6, round(height * rng.uniform(0.85, 1.15)))
        s = slant + float(rng.uniform(-0.08, 0.08))
        drawn.append(_scaled(_crop(img), h, float(rng.uniform(0.8, 1.25)), s))
    margin = height // 2
    width = 2 * margin + sum(p.shape[1] for p in drawn) + int(max(1.0, gaps[1]) * height) * len(drawn)
    canvas = np.zeros((int(height * 1.6) + 2 * margin, width), np.float32)
    x, spans = margin, []
    base = margin + int(height * 1.3)
    for i, p in enumerate(drawn):
        y = int(np.clip(base - p.shape[0] + rng.normal(0, 0.08 * height), 0,
                        canvas.shape[0] - p.shape[0]))
        cols = np.nonzero((p > 0.3).any(0))[0]
        if i and rng.random() < touch:  # slide left until the ink meets the neighbour's
            while x > 0:
                region = canvas[y: y + p.shape[0], x - 1: x - 1 + p.shape[1]]
                if (np.minimum(region, p) > 0.3).any():
                    break
                x -= 1
        elif i:  # a gap below zero overlaps the two: never so far that one hides the other
            left, right = spans[-1]
            most = OVERLAP * min(right - left, int(cols[-1] - cols[0]) + 1)
            x += max(0, int(np.ceil(right - (x + int(cols[0])) - most)))
        region = canvas[y: y + p.shape[0], x: x + p.shape[1]]
        np.maximum(region, p, out=region)
        spans.append((x + int(cols[0]), x + int(cols[-1]) + 1))
        x += p.shape[1] + int(rng.uniform(*gaps) * height)
    ys, xs = np.nonzero(canvas > 0.05)
    top, left = max(0, ys.min() - 2), max(0, xs.min() - 2)
    ink = canvas[top: ys.max() + 3, left: xs.max() + 3]
    return Line(ink, text, [(a - left, b - left) for a, b in spans])


def decorate(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The line on ruled paper, underlined or boxed now and then, as forms and exercise books
    hold numbers (reading's ink step is to take those lines away; the reader learns to ignore
    what it leaves)."""
    kind = rng.choice(["none", "ruled", "underline", "box"], p=[0.7, 0.1, 0.1, 0.1])
    if kind == "none":
        return ink
    pad = HEIGHT // 3
    out = np.pad(ink, pad)
    img = Image.fromarray((out * 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    h, w = out.shape
    width = int(rng.integers(1, 4))
    grey = int(rng.integers(120, 256))
    if kind == "ruled":
        step = int(HEIGHT * rng.uniform(1.1, 1.6))
        for y in range(int(rng.integers(0, step)), h, step):
            draw.line([(0, y), (w, y)], fill=grey, width=width)
    elif kind == "underline":
        y = h - pad + int(rng.integers(-pad // 2, pad // 2 + 1))
        draw.line([(pad // 2, y), (w - pad // 2, y)], fill=grey, width=width)
    else:
        draw.rectangle([pad // 3, pad // 3, w - 1 - pad // 3, h - 1 - pad // 3],
                       outline=grey, width=width)
    return np.maximum(out, np.asarray(img, dtype=np.float32) / 255)


def _pen(ink: np.ndarray, pen: float) -> np.ndarray:
    """The line's strokes made `pen` times as wide (a hairline to a marker). A thinner pen
    draws each stroke's middle line (its skeleton) that much narrower, so every stroke stays:
    eroding the line alike wiped out the strokes of a digit written thinner than the others."""
    mask = ink >= 0.5
    if pen == 1.0 or not mask.any():
        return ink
    inside = ndimage.distance_transform_edt(mask)
    width = 4 * float(np.median(inside[mask]))  # across a stroke, depths run 0 to width/2
    if pen > 1:
        return (ndimage.distance_transform_edt(~mask) <= (pen - 1) * width / 2).astype(np.float32)
    middle = skeletonize(mask)
    return (mask & (ndimage.distance_transform_edt(~middle) <= pen * width / 2)).astype(np.float32)


def _sized(line: Line, hand: Hand, rng: np.random.Generator) -> tuple[np.ndarray, Hand]:
    """A line's ink at the hand's height, pen and tilt, decorated now and then; and the hand,
    its enlarging capped so the saved file stays at most WIDEST px wide."""
    ink = _pen(decorate(line.ink, rng), hand.pen)
    img = Image.fromarray((np.clip(ink, 0, 1) * 255).astype(np.uint8))
    tilt = float(np.clip(hand.tilt, -10, 10))
    if tilt:
        img = img.rotate(-tilt, Image.Resampling.BILINEAR, expand=True)
    # Saved at most WIDEST px wide: reading works at a reduced scale whatever the file's size,
    # and writing and reading back a wider file only costs time.
    scale = min(max(hand.height, 8) / HEIGHT, WIDEST / img.width)
    w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
    down = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    small = np.asarray(img.resize((w, h), down), dtype=np.float32) / 255
    if hand.crisp:
        small = (small >= 0.5).astype(np.float32)
    if hand.enlarge * small.shape[1] > WIDEST:
        hand = replace(hand, enlarge=max(1.0, WIDEST / small.shape[1]))
    return small, hand


def write_line(line: Line, hand: Hand, rng: np.random.Generator) -> bytes:
    """A line written with `hand` (its height is the digits', its pen, tilt at most 10 degrees,
    and how the file is saved) and decorated now and then: the bytes of an image file."""
    return save(*_sized(line, hand, rng), rng)


def written_image(line: Line, hand: Hand, rng: np.random.Generator) -> Image.Image:
    """The image reading decodes from the file `write_line` writes with the same draws
    (`hands.decoded`: a PNG is never encoded)."""
    return decoded(*_sized(line, hand, rng), rng)


def read_back(line: Line, hand: Hand, rng: np.random.Generator) -> torch.Tensor | None:
    """A line written with `hand` (`written_image`) and read as reading takes a line: its
    writing's ink in a line reader's form (`preprocess.line_to_input`); None when reading
    refuses the image or finds no writing in it."""
    from ..ink import find_groups, find_ink, group_ink, join
    from ..preprocess import ImageError, line_to_input

    try:
        img = written_image(line, hand, rng)
        ink = find_ink(img, "line")
        groups = find_groups(ink, "line")
    except (ImageError, ValueError):
        return None
    if not groups:
        return None
    return line_to_input(group_ink(ink, join(groups)))


MOST_DIGITS = 8
NO_DIGITS = 0.12  # this share of lines are letters and doodles: their reading is empty
FAR_APART = 0.15  # this share of lines of digits leave gaps of FAR_GAPS heights between them
FAR_GAPS = (0.6, 2.5)  # each digit in its own box of a form, or one canvas beside another
CHUNK = 250  # lines written per task, each task with its own seed


def _styled(digits: np.ndarray, labels: np.ndarray, pick: np.ndarray,
            rng: np.random.Generator) -> list[np.ndarray]:
    """The picked digits, a third of those whose digit has styles redrawn in one."""
    pieces = []
    for i in pick:
        img, label = digits[i], int(labels[i])
        names = [k for k, (d, _) in STYLES.items() if d == label]
        if names and rng.random() < 0.3:
            done = STYLES[names[int(rng.integers(len(names)))]][1](img.copy(), rng)
            img = img if done is None else done
        pieces.append(img)
    return pieces


def random_line(digits: np.ndarray, labels: np.ndarray, others: np.ndarray,
                rng: np.random.Generator, count: int | None = None) -> Line:
    """1-MOST_DIGITS digits (or `count`) drawn from `digits` (uint8 (N, 28, 28)), a third of
    those whose digit has styles redrawn in one, at gaps from overlapping to wide; or,
    NO_DIGITS of the time when `others` are given, 1-4 marks from them (letters, shapes) with
    an empty text; FAR_APART of the lines of digits with the digits far apart. Harder than
    most writing on purpose: a reader learns from the hard cases."""
    if len(others) and rng.random() < NO_DIGITS:
        pick = rng.integers(0, len(others), int(rng.integers(1, 5)))
        return line_ink([others[i] for i in pick], "", rng, touch=0.3)
    n = count or int(rng.integers(1, MOST_DIGITS + 1))
    pick = rng.integers(0, len(digits), n)
    touch = float(rng.choice([0.0, 0.3, 0.7]))
    far = rng.random() < FAR_APART
    return line_ink(_styled(digits, labels, pick, rng),
                    "".join(str(int(labels[i])) for i in pick), rng, 0.0 if far else touch,
                    FAR_GAPS if far else (-0.15, 0.7))


def random_number(digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                  count: int) -> Line:
    """`count` different digits from `digits`, a third of the styled ones redrawn in a style,
    written as people write a number: gaps of 0.1-0.6 of the height, one neighbour in five
    pushed until it touches (as the numbers benchmark's drawings are)."""
    pick = rng.choice(len(digits), size=count, replace=False)
    return line_ink(_styled(digits, labels, pick, rng),
                    "".join(str(int(labels[i])) for i in pick), rng, touch=0.2,
                    gaps=(0.1, 0.6))


def _read_chunk(task: tuple[np.ndarray, np.ndarray, np.ndarray, int, int, int]
                ) -> list[tuple[np.ndarray, str]]:
    """One task's lines, as numpy arrays: tensors sent back from a worker would each hold a
    file descriptor open, and thousands of them exhaust the process's."""
    digits, labels, others, n, seed, chunk = task
    rng = np.random.default_rng([seed, chunk])
    out = []
    while len(out) < n:
        line = random_line(digits, labels, others, rng)
        x = read_back(line, random_hand(rng), rng)
        if x is not None:
            out.append((x.numpy(), line.text))
    return out


def written_lines(digits: torch.Tensor, labels: torch.Tensor, others: torch.Tensor, n: int,
                  seed: int = 0, workers: int | None = None,
                  progress: Callable[[int], None] | None = None,
                  start: int = 0) -> list[tuple[torch.Tensor, str]]:
    """n lines made from `digits` and `others` (uint8 (N, 28, 28)), each written by a random
    hand, saved and read back: (uint8 (32, W) line, its digits). The same seed gives the same
    lines whatever the number of worker processes (default: one per core). Lines are written
    in chunks of CHUNK, each from its own seed, so `start` (a multiple of CHUNK) returns only
    lines start..n-1 of the same n: a set of lines can be grown without writing it again."""
    if start % CHUNK:
        raise ValueError(f"start must be a multiple of {CHUNK}")
    tasks = [(digits.numpy(), labels.numpy(), others.numpy(), min(CHUNK, n - s), seed, s // CHUNK)
             for s in range(start, n, CHUNK)]
    workers = workers or os.cpu_count() or 1
    import multiprocessing as mp

    out: list[tuple[torch.Tensor, str]] = []
    if workers > 1 and len(tasks) > 1 and "fork" in mp.get_all_start_methods():
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(tasks)), mp.get_context("fork"),
                                 initializer=torch.set_num_threads, initargs=(1,)) as pool:
            for done in pool.map(_read_chunk, tasks):
                out.extend((torch.from_numpy(x), text) for x, text in done)
                if progress:
                    progress(len(done))
    else:
        for task in tasks:
            done = _read_chunk(task)
            out.extend((torch.from_numpy(x), text) for x, text in done)
            if progress:
                progress(len(done))
    return out

