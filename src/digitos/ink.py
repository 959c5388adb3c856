"""Ink on paper: tell it from the paper, drop what is not writing, and group it into digits.

A photo of paper is not a clean drawing: the light is uneven, the paper has texture, the
camera adds noise, and ruled or squared lines cross the page. So the paper is estimated
locally (a grey-level closing wider than any pen stroke: what is left when the strokes are
filled in), ink is what differs from it, and the ink is cut into connected components
(scipy.ndimage). Specks far from the writing are dropped; pieces that overlap in x (a 5
whose top bar is detached, a 4 drawn in two strokes, a broken pen line) stay one digit;
the digits come out left to right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageChops
from scipy import ndimage

from .errors import DigitosError

WORK_SIDE = 1024  # px: a larger image is reduced once, right after decoding, to at most this
NOISE_FLOOR = 0.2  # fainter than this (of the ink's full strength) is paper, not ink
INK_LEVEL = 0.5  # a pixel is ink when at least this far from the paper towards the ink
LINE_LEVEL = 0.3  # ruled lines and underlines are sought this far: a pale one is dashes at 0.5
DUST = 0.03  # a component smaller than this share of the writing's height is dust: dropped
SPECK = 0.08  # one smaller than this is a speck or a fragment of a stroke...
NEAR = 0.25  # ...and is kept only when within this share of a digit's height from it
OVERLAP = 0.5  # components whose x-ranges overlap by this share of the narrower are one digit
MOST_GROUPS = 100  # digit-sized marks in one image: more is a page of text or a texture
FLAT = 0.25  # a line under a digit is at most this share of its length, and of the digit, tall
SMALL_GROUP = 0.3  # a group under this share of the tallest group's height is not a digit
STEP_COST = 0.05  # what a cut pays for a sideways step, against 1 for each pixel of ink it crosses
LONE_LINE = 1.5  # a straight level line this many times as long as the rest of the ink is tall
TILTED_LINE = 2.5  # ...and a line at a tilt this many times (a stroke at a tilt is far more
# often a letter's or a picture's than a level one is)
BAR = 1.5  # a bar apart beside a digit's top (a 5's) is this many times as wide as tall...
BAR_GAP = 0.25  # ...at most this share of the digit's height from its side...
TOP_PART = 0.35  # ...with its bottom in this top share of the digit, its top at most as high above
FRAME_HOLDS = 0.5  # a loop around ink this share of its height tall is a frame around it
RULED_THICK = 0.1  # a band of rows (columns) this share of the page thick is no ruled line
BOX_SIDE = 0.8  # a box's sides run along at least this share of its width and height
WALL = 0.95  # a wall between a form's boxes runs straight along this share of their height
CELL = 0.5  # ...and each box of the row is at least this share of its height wide
CROP_MARGIN = 4  # px of paper kept around the writing (the faint rims are within 2 of it)
MARK_WIDE = 0.25  # a mark this share of a loop's width inside it is no dot in a zero
SHADED = 0.1  # wide grey areas, this share of the strokes' area: a picture, not writing


class ImageError(DigitosError):
    """An image that cannot be read as a digit; the message says why."""


class NoInk(ImageError):
    """An image that decodes but holds no writing (blank, or nearly uniform)."""

    def __init__(self, name: str):
        super().__init__(f"{name}: no ink found (a blank or nearly uniform image)")
        self.name = name

    def __reduce__(self):  # pickled by its name (a server's reading process sends it back)
        return NoInk, (self.name,)


@dataclass
class Ink:
    """Where the ink is, at the working scale."""

    strength: np.ndarray  # float32 (H, W) in [0, 1]: 0 = paper, 1 = the ink's full strength
    mask: np.ndarray  # bool (H, W): the pixels that are writing (specks and ruled lines gone)
    polarity: str  # "dark-on-light" or "light-on-dark": what the input looked like
    scale: float  # input pixels per working pixel
    size: tuple[int, int]  # the input's width and height
    offset: tuple[int, int] = (0, 0)  # where strength[0, 0] lies in the working image (x, y)
    shading: float = 0.0  # wide grey areas around the writing, per stroke area (`_shading`)


@dataclass
class Group:
    """The ink of one digit: a mask at the working scale and its bounding box there."""

    mask: np.ndarray  # bool (H, W), the whole working image, only this digit's pixels set
    box: tuple[int, int, int, int]  # left, top, right, bottom (exclusive) at the working scale
    holds_marks: bool = False  # a separate mark lies inside one of its loops (`_marks_inside`)


def working_grey(img: Image.Image) -> tuple[np.ndarray, float, tuple[int, int], tuple[int, int]]:
    """The image as float32 greys in [0, 1] at the working scale, the input pixels per working
    pixel, where the greys' first pixel lies in the whole working image (x, y), and the whole
    working image's (height, width).

    Transparency is composited onto white paper. The image is reduced once, by block means in
    Pillow's C code, so that its longer side is at most WORK_SIDE: the work after this does
    not depend on the canvas. The input's size is `img.info["digitos_size"]` when decoding
    already reduced it (a JPEG's draft mode). A transparent canvas is cropped first to its
    drawing and a margin: the rest is known to be white paper.
    """
    w, h = img.info.get("digitos_size", img.size)
    f = max(1, -(-max(w, h) // WORK_SIDE))  # ceiling division: the reduction from the input
    done = max(1, round(w / img.width))  # what decoding already did
    step = max(1, round(f / done))
    page = (-(-img.height // step), -(-img.width // step))
    # Transparent images: composited = grey * a + white * (1 - a) = white - darkness * a, and
    # block means commute with that, so darkness * a is reduced and turned back afterwards.
    transparent = _darkness_times_alpha(img, step, page)
    if transparent is None:
        grey, inverted, origin = _grey(img), False, (0, 0)
    else:
        (grey, origin), inverted = transparent, True
    if step > 1:
        grey = grey.reduce(step)  # a box filter; the last partial blocks are averaged as they are
    if grey.mode == "L":
        grey = unblocked(grey)
    if inverted:
        grey = ImageChops.invert(grey)
    arr = np.asarray(grey, dtype=np.float32)
    if grey.mode == "L":
        arr = arr / 255.0
    else:  # 16-bit or float data: stretch its own range
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    return arr, w / page[1], origin, page


BLOCK_EDGE = 64  # grey levels: a step this large between neighbours is an edge, not noise
BLOCKS_OTHER = 0.01  # pixels not their block's grey, per pixel not the paper's: not repeated


def unblocked(grey: Image.Image) -> Image.Image:
    """An image enlarged by repeating each pixel (a thumbnail blown up with "nearest
    neighbour", pixel art) as a viewer's smooth zoom would have enlarged it: its pixels'
    blocks taken back to one pixel each, and enlarged again bicubically to the same size.

    Repeated pixels draw every stroke as a staircase of squares, corners touching corners: a
    diagonal stroke breaks into pieces and a digit's edges are steps that no pen makes. The
    models learned strokes. An image is taken for one enlarged so when all its sharp edges
    (BLOCK_EDGE) lie on one grid of blocks at least 2 px a side and nearly every pixel is the
    grey of its block; any other image is returned as it is.
    """
    a = np.asarray(grey, dtype=np.int16)
    across = np.abs(np.diff(a, axis=1))
    sx, ox = _block_grid(np.where(across >= BLOCK_EDGE, across, 0).sum(0))
    if sx < 2:  # most images: rows are not asked
        return grey
    down = np.abs(np.diff(a, axis=0))
    sy, oy = _block_grid(np.where(down >= BLOCK_EDGE, down, 0).sum(1))
    if sy < 2:
        return grey
    # Whole blocks: the partial ones at the edges are padded with their own pixels.
    before_y, before_x = (sy - oy) % sy, (sx - ox) % sx
    h, w = a.shape
    after_y = -(before_y + h) % sy
    after_x = -(before_x + w) % sx
    whole = np.pad(a, ((before_y, after_y), (before_x, after_x)), mode="edge")
    small = whole[::sy, ::sx]  # each block's first pixel
    # Every block one grey: sharp edges of a few crisp shapes can lie on a grid by chance (a
    # box drawn around a digit enlarged smoothly), but then the blocks hold the digit's greys.
    # Counted against the pixels that are not the paper's grey: the paper is alike anyway.
    other = np.repeat(np.repeat(small, sy, axis=0), sx, axis=1) != whole
    paper = np.bincount(a.ravel()).argmax()  # greys 0-255: the commonest is the paper's
    if other.sum() > BLOCKS_OTHER * (a != paper).sum():
        return grey
    big = Image.fromarray(small.astype(np.uint8)).resize(
        (small.shape[1] * sx, small.shape[0] * sy), Image.Resampling.BICUBIC)
    return big.crop((before_x, before_y, before_x + w, before_y + h))


def _block_grid(edges: np.ndarray) -> tuple[int, int]:
    """Where the sharp edges along one axis lie (their strength between each position and the
    next): the block size of a grid that holds them all, and the first block's start; (1, 0)
    for none (fewer than 4 edges, or more than a trace of their strength off the grid)."""
    if not edges.any():
        return 1, 0
    strong = edges > 0.05 * edges.max()
    at = np.nonzero(strong)[0]
    if len(at) < 4 or edges[~strong].sum() > 0.05 * edges.sum():
        return 1, 0
    size = int(np.gcd.reduce(np.diff(at)))
    return (size, int(at[0] + 1) % size) if size > 1 else (1, 0)


def _darkness_times_alpha(img: Image.Image, step: int, page: tuple[int, int]
                          ) -> tuple[Image.Image, tuple[int, int]] | None:
    """(255 - grey) * alpha / 255 in "L" for an image with transparency (else None), cropped
    to the drawing when the whole frame that `find_ink` samples for the paper is transparent,
    and where the crop starts in the whole working image (x, y).

    The crop keeps a margin at least as wide as the frame the cropped image's own border
    will be sampled from, and starts and ends on whole blocks of the reduction: so the paper
    found, the ink and every step after are exactly what the whole canvas gives, at the cost
    of the drawing instead of the canvas (a small drawing on a big transparent canvas is the
    page's usual request)."""
    mode = img.mode
    if not (mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info)):
        return None
    if mode in ("P", "PA", "RGBa", "La"):
        img = img.convert("LA" if mode == "La" else "RGBA")
    alpha = img.getchannel("A")
    drawn = alpha.getbbox()  # where anything is not fully transparent
    origin = (0, 0)
    if drawn is not None:
        t = _frame_width(*page) * step  # the frame `_border` samples, in input pixels
        left, top, right, bottom = drawn
        if left >= t and top >= t and right <= img.width - t and bottom <= img.height - t:
            margin = (_frame_width(bottom - top, right - left) + CROP_MARGIN + 1) * step
            x0, y0 = max(0, left - margin) // step, max(0, top - margin) // step
            x1 = min(page[1], -(-(right + margin) // step))
            y1 = min(page[0], -(-(bottom + margin) // step))
            box = (x0 * step, y0 * step, min(x1 * step, img.width), min(y1 * step, img.height))
            if (box[2] - box[0]) * (box[3] - box[1]) <= img.width * img.height // 2:
                # (a drawing that fills the canvas gains nothing, and a copy would cost memory)
                img, alpha, origin = img.crop(box), alpha.crop(box), (x0, y0)
    darkness = ImageChops.invert(img.getchannel("L") if img.mode == "LA" else img.convert("L"))
    return ImageChops.multiply(darkness, alpha), origin


def _grey(img: Image.Image) -> Image.Image:
    """One band of brightness at full size ("L", or "I"/"F" for deep images), never a float
    copy of a big image. Modes Pillow cannot turn into grey are refused."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return img.convert("I")
    if mode in ("I", "F", "L"):
        return img
    if mode == "LAB":
        return img.getchannel("L")  # lightness
    if mode == "HSV":
        return img.getchannel("V")
    try:
        return img.convert("L")
    except (ValueError, OSError):
        raise ImageError(f"image mode {mode} is not supported") from None


FLAT_FRAME = 0.9  # this share of the frame of one exact grey, its edge wholly, is a canvas's


def _frame_width(h: int, w: int) -> int:
    """How wide a frame `_border` samples from an image of this size."""
    return max(1, round(0.05 * min(h, w)))


def _border(a: np.ndarray) -> np.ndarray:
    """The outer frame of the image (about 5% on each side, at least one pixel)."""
    t = _frame_width(*a.shape)
    frame = np.concatenate([a[:t].ravel(), a[-t:].ravel(), a[:, :t].ravel(), a[:, -t:].ravel()])
    return frame[:: max(1, frame.size // 4096)]  # a few thousand samples tell its median


def _odd(n: float) -> int:
    n = max(3, int(round(n)))
    return n + 1 - n % 2


def _paper(grey: np.ndarray, dark_ink: bool) -> np.ndarray:
    """The paper's own grey at every pixel: the strokes filled in by a wide closing."""
    h, w = grey.shape
    k = _odd(min(h, w) / 4)  # wider than any pen stroke of a digit that fills the picture
    # A closing is a max filter then a min filter (for dark ink; the reverse for light ink).
    # Done on a smaller copy: the paper changes slowly, and the filters cost grow with k.
    step = max(1, k // 8)
    small = grey[::step, ::step]
    ks = _odd(k / step)
    if dark_ink:
        paper = ndimage.minimum_filter(ndimage.maximum_filter(small, ks), ks)
    else:
        paper = ndimage.maximum_filter(ndimage.minimum_filter(small, ks), ks)
    paper = ndimage.uniform_filter(paper, ks)
    if step > 1:
        paper = F.interpolate(torch.from_numpy(paper.astype(np.float32))[None, None], size=(h, w),
                              mode="bilinear", align_corners=False)[0, 0].numpy()
    return paper


def _strength(ink: np.ndarray) -> float:
    """The ink's full strength: its strongest 3x3 neighbourhood, so that lone noisy pixels do
    not count. Looked for only where the ink is at least a third of its maximum."""
    peak = float(ink.max()) if ink.size else 0.0
    if peak <= 0:
        return 0.0
    strong = ink >= peak / 3
    rows = np.nonzero(strong.any(axis=1))[0]
    cols = np.nonzero(strong.any(axis=0))[0]
    part = ink[max(rows[0] - 1, 0): rows[-1] + 2, max(cols[0] - 1, 0): cols[-1] + 2]
    return float(ndimage.uniform_filter(part, 3, mode="constant").max())


def _straight_runs(m: np.ndarray, length: int, axis: int) -> np.ndarray:
    """The pixels of a uint8 mask that lie on a straight run of ink at least `length` long
    along `axis`: a binary opening by a line, as two running filters (linear time in
    `length`). The length is made odd: with an even one the two windows are a pixel apart,
    and each line's first pixel would be left behind."""
    length |= 1
    return ndimage.maximum_filter1d(ndimage.minimum_filter1d(m, length, axis=axis), length,
                                    axis=axis).astype(bool)


def _ruled_lines(mask: np.ndarray, page: tuple[int, int]) -> np.ndarray:
    """Pixels of ruled or squared paper: two or more straight lines across most of the page
    (its (height, width), of which `mask` may be a part).

    One long line may be a digit's stroke (the bar of a 7 in a tight crop); paper has many.
    Upright lines count only beside level ones (squared paper): on their own they are as
    likely the 1s of a "11" drawn tall.
    """
    h, w = page
    lines = np.zeros_like(mask)
    m = mask.view(np.uint8)
    for axis, length in ((1, w), (0, h)):
        if axis == 0 and not lines.any():
            break  # no level lines: no squared paper
        size = int(0.6 * length) | 1  # the length `_straight_runs` opens by
        if size < 16 or m.sum(axis=axis).max() < size:
            continue  # too small, or no row (column) holds enough ink for such a line
        found = _straight_runs(m, size, axis)
        along = found.any(axis=axis)  # rows (or columns) holding such a line
        bands, count = ndimage.label(along)
        # A ruled line is thin: a band of rows a tenth of the page thick is a bold stroke
        # (the top and bottom of a marker-drawn 0 that fills its page).
        thick = np.bincount(bands)[1:] > RULED_THICK * page[1 - axis]
        if count - int(thick.sum()) >= 2:
            keep = np.concatenate([[False], ~thick])[bands]
            lines |= found & (keep[None, :] if axis == 0 else keep[:, None])
    return lines


def _lone_lines(mask: np.ndarray, longer: float = LONE_LINE) -> np.ndarray:
    """Pixels of a straight level line far longer than the rest of the writing is tall: an
    underline, or the one ruled line a digit is written on (a tight crop of lined paper).

    No stroke of a digit is `longer` (LONE_LINE) times as long as the digit is tall, except a
    long base (a 2's): that one ends in the rest of the digit, which an underline or a ruled
    line does not. When nothing else is left, the line is the writing, and stays.
    """
    out = np.zeros_like(mask)
    rows = np.nonzero(mask.any(axis=1))[0]
    if len(rows) == 0:
        return out
    # Such a line is at least `longer` times half as long as all the ink is tall (that
    # height counts the line and the gap to it: less than twice the rest's, for an underline).
    size = max(16, int(longer * 0.5 * (rows[-1] - rows[0] + 1))) | 1  # as `_straight_runs` opens
    m = mask.view(np.uint8)
    long_rows = np.nonzero(m.sum(axis=1) >= size)[0]
    if size > mask.shape[1] or len(long_rows) == 0:
        return out  # most drawings: no row holds that much ink
    found = np.zeros_like(mask)
    found[long_rows] = _straight_runs(m[long_rows], size, axis=1)  # rows are opened alone
    rest = mask & ~found
    rest_rows = np.nonzero(rest.any(axis=1))[0]
    if not found.any() or len(rest_rows) == 0:
        return out
    tall = rest_rows[-1] - rest_rows[0] + 1
    lines, line_count = ndimage.label(found)
    pieces, spans = None, []
    for i, (ys, xs) in enumerate(ndimage.find_objects(lines, line_count), start=1):
        if xs.stop - xs.start < longer * tall:
            continue
        if pieces is None:
            pieces = ndimage.label(rest, structure=np.ones((3, 3), bool))[0]
            spans = ndimage.find_objects(pieces)
        line = lines == i
        if not _ends_in_a_stroke(line, ys, xs, pieces, spans):
            out |= line
    return out


def _lines(mask: np.ndarray, page: tuple[int, int]) -> np.ndarray:
    """Pixels of ruled paper, underlines and a ruled line a digit stands on, level or at a
    tilt (paper photographed askew): at a tilt, the page is sheared until they are level."""
    lines = _level_lines(mask, page)
    if not lines.any():
        slope = _slope(mask, page)
        if slope == 0.0:
            return lines
        sheared, rows, cols = _sheared(mask, slope)
        lines = (_level_lines(_taller(sheared), page, TILTED_LINE) & sheared)[rows, cols]
        if not lines.any():
            return lines
    lines &= ~_box_sides(mask, lines)
    if not lines.any():
        return lines
    # Where a stroke crosses a line, or lies along it (a 2's base written on it), the ink is
    # thicker than the line: that ink is the digit's, and stays.
    labels, count = ndimage.label(lines, structure=np.ones((3, 3), bool))
    area = np.bincount(labels.ravel())[1:]
    wide = np.array([s[1].stop - s[1].start for s in ndimage.find_objects(labels, count)])
    thick = int(np.ceil((area / wide).max()))
    return lines & ~_straight_runs(mask.view(np.uint8), thick + 3, axis=0)


def _taller(mask: np.ndarray) -> np.ndarray:
    """Each pixel made a row taller: a line sheared level by whole rows steps a row up or
    down now and then; made taller, it runs on unbroken along one row."""
    return ndimage.maximum_filter1d(mask.view(np.uint8), 3, axis=0).view(bool)


def _box_sides(mask: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """The lines that are a side of a box drawn around writing: the ink they lie in closes
    around a hole at least half as wide as they are long. A box is a frame, which grouping
    leaves out whole (`_frames`); taken for lines, its top and bottom went and its upright
    sides were read as 1s."""
    found, count = ndimage.label(lines, structure=np.ones((3, 3), bool))
    sides = np.zeros_like(lines)
    if count == 0:
        return sides
    pieces = ndimage.label(mask, structure=np.ones((3, 3), bool))[0]
    spans = ndimage.find_objects(pieces)
    for k, (ys, xs) in enumerate(ndimage.find_objects(found), start=1):
        line = found[ys, xs] == k
        for p in np.unique(pieces[ys, xs][line]):
            py, px = spans[p - 1]
            piece = pieces[py, px] == p
            holes = ndimage.label(ndimage.binary_fill_holes(piece) & ~piece)[0]
            # One hole, or a row of them side by side (a form's cells, a digit in each).
            if sum(h[1].stop - h[1].start for h in ndimage.find_objects(holes)
                   ) >= 0.5 * (xs.stop - xs.start):
                sides[ys, xs] |= line
                break
    return sides


# Slopes (rows per column) that lines are sought at when none lies level: 1.5 to 15 degrees
# either way, every half degree (paper photographed askew); and level, where the longest
# straight ink may lie too (then it is no line: the level search said so).
SLOPES = np.tan(np.radians(np.concatenate([[0.0], np.arange(1.5, 15.1, 0.5),
                                           -np.arange(1.5, 15.1, 0.5)])))


def _slope(mask: np.ndarray, page: tuple[int, int]) -> float:
    """The slope of the longest straight line of ink at a tilt (SLOPES), if it is as long as
    a line must be (`_ruled_lines`, `_lone_lines`); else 0. The ink is counted along every
    slope at once (at most about 2,000 of its pixels, evenly: enough to see a line by): a
    line is a tall peak."""
    ys, xs = np.nonzero(mask)
    step = max(1, len(xs) // 2000)
    ys, xs = ys[::step], xs[::step]
    if len(xs) < 4:
        return 0.0
    # As long as the shorter of a ruled line and a line under the writing must be.
    needed = min(0.6 * page[1], max(16.0, TILTED_LINE * 0.5 * (ys.max() - ys.min() + 1)))
    along = ys[None, :] - np.round(SLOPES[:, None] * xs[None, :]).astype(np.intp)
    lowest = along.min(axis=1)
    along -= lowest[:, None]
    span = int(along.max()) + 1
    along += span * np.arange(len(SLOPES))[:, None]  # each slope counted in its own bins
    counts = np.bincount(along.ravel(), minlength=span * len(SLOPES)).reshape(-1, span)
    # The likeliest slopes, each at its fullest row; a line there runs on unbroken (a row of
    # digits' bars and bases, which can count as much, has gaps between the digits).
    x = np.arange(mask.shape[1])
    for k in np.argsort(counts.max(axis=1))[::-1][:3]:
        if step * counts[k].max() < needed or k == 0:
            break
        y = int(np.argmax(counts[k])) + lowest[k] + np.round(SLOPES[k] * x).astype(np.intp)
        on = np.zeros(len(x), bool)
        for dy in range(-2, 3):  # two rows either side: the slope is known to half a degree
            inside = (y + dy >= 0) & (y + dy < mask.shape[0])
            on[inside] |= mask[y[inside] + dy, x[inside]]
        if _longest_run(on) >= needed:
            return float(SLOPES[k])
    return 0.0


def _longest_run(on: np.ndarray) -> int:
    """The length of the longest run of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], on.view(np.int8), [0]]))
    starts, stops = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    return int((stops - starts).max()) if len(starts) else 0


def _sheared(mask: np.ndarray, slope: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mask with each column moved up or down so that lines of `slope` lie level, and
    where each pixel went (rows, columns: `sheared[rows, cols]` is the mask again)."""
    h, w = mask.shape
    shift = np.round(slope * np.arange(w)).astype(np.intp)
    shift = shift.max() - shift
    rows = np.arange(h)[:, None] + shift[None, :]
    cols = np.broadcast_to(np.arange(w), (h, w))
    sheared = np.zeros((h + int(shift.max()), w), bool)
    sheared[rows, cols] = mask
    return sheared, rows, cols


def _level_lines(mask: np.ndarray, page: tuple[int, int], longer: float = LONE_LINE) -> np.ndarray:
    """Pixels of level lines: ruled paper, underlines, a ruled line a digit stands on."""
    ruled = _ruled_lines(mask, page)
    return ruled | _lone_lines(mask & ~ruled, longer)


def _with_edges(mask: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """The lines' pixels and the ink along their edges: the pieces taking the lines away
    leaves that lie wholly within two pixels of one (a ragged edge, a pale line's dashes
    beyond where it was found). A digit written on a line reaches out of that band."""
    if not lines.any():
        return lines
    rest = mask & ~lines
    pieces, count = ndimage.label(rest, structure=np.ones((3, 3), bool))
    if count == 0:
        return lines
    band = _near(lines)
    outside = np.bincount(pieces[rest & ~band], minlength=count + 1)
    edge = outside == 0
    edge[0] = False
    return lines | edge[pieces]


def _drawn_boxes(mask: np.ndarray) -> np.ndarray:
    """The sides of a box drawn around a digit that touches it (a form's box, written into
    tightly): straight lines along all four edges of one piece of ink, around ink at least
    FRAME_HOLDS of the box's height tall. (A box clear of its digit is a separate loop, left
    out in `find_groups`.) A square 0 holds nothing; a filled shape is not a box. A form's
    row of boxes, its digits reaching above or below it, is sought between its outermost
    level lines.
    """
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    out = np.zeros_like(mask)
    for i, (ys, xs) in enumerate(ndimage.find_objects(labels, count), start=1):
        piece = labels[ys, xs] == i
        sides = _box_sides_of(piece)
        if sides is None:
            sides = _row_reached_beyond(piece)
        if sides is not None:
            out[ys, xs] |= sides
    return out


def _row_reached_beyond(piece: np.ndarray) -> np.ndarray | None:
    """The sides of a row of boxes (`_box_sides_of`) whose digits, taller than their boxes,
    reach above or below it: the edge bands then hold their strokes, so the row is sought
    between the piece's outermost level lines as long as a side."""
    h, w = piece.shape
    wide = np.nonzero(piece.sum(axis=1) >= BOX_SIDE * w)[0]  # rows that may hold a side
    if not len(wide) or wide[-1] + 1 - wide[0] < FRAME_HOLDS * h:
        return None  # (cheap: most pieces stop here)
    level = _straight_runs(piece.view(np.uint8), int(BOX_SIDE * w), axis=1)
    rows = np.nonzero(level.any(axis=1))[0]
    if not len(rows) or not FRAME_HOLDS * h <= rows[-1] + 1 - rows[0] < h:
        return None
    inner = _box_sides_of(piece[rows[0]: rows[-1] + 1])
    if inner is None:
        return None
    sides = np.zeros_like(piece)
    sides[rows[0]: rows[-1] + 1] = inner
    return sides


def _box_sides_of(piece: np.ndarray) -> np.ndarray | None:
    """The sides (and a row's walls) of a box drawn around a digit that touches it, if
    `piece` (one piece of ink, bool) is one: straight lines in bands along its four edges."""
    h, w = piece.shape
    if h < 20 or w < 20:
        return None
    rows, cols = piece.sum(axis=1), piece.sum(axis=0)
    eh, ew = max(2, h // 8), max(2, w // 8)  # the bands along the edges a side lies in
    if (rows[:eh].max() < BOX_SIDE * w or rows[-eh:].max() < BOX_SIDE * w
            or cols[:ew].max() < BOX_SIDE * h or cols[-ew:].max() < BOX_SIDE * h
            or piece[eh:-eh, ew:-ew].mean() > 0.5):
        return None
    m = piece.view(np.uint8)
    sw, sh = int(BOX_SIDE * w), int(BOX_SIDE * h)
    # Only lines in the edge bands, each band opened alone: a 1 as tall as the box,
    # inside it, is no side.
    sides = np.zeros_like(piece)
    top_side = _straight_runs(m[:eh], sw, axis=1)
    sides[:eh] = top_side
    sides[-eh:] = _straight_runs(m[-eh:], sw, axis=1)
    sides[:, :ew] |= _straight_runs(m[:, :ew], sh, axis=0)
    sides[:, -ew:] |= _straight_runs(m[:, -ew:], sh, axis=0)
    if not (sides[:eh].any() and sides[-eh:].any() and sides[:, :ew].any()
            and sides[:, -ew:].any()):
        return None
    walls = _walls(m, sides, top_side, eh, ew)
    sides[:, ew:-ew] |= walls
    held = np.nonzero((piece & ~sides).any(axis=1))[0]
    # A row of boxes is no digit, whatever its boxes hold (a digit close to a wall may
    # join it through its rim when grouping); one box is taken here only when a digit
    # touches it (clear of it, it is a loop that grouping leaves out).
    if walls.any() or (len(held) and held[-1] - held[0] + 1 >= FRAME_HOLDS * h):
        return sides
    return None


def _walls(m: np.ndarray, sides: np.ndarray, top_side: np.ndarray, eh: int, ew: int
           ) -> np.ndarray:
    """The walls of a form's row of boxes (`m`: the row's piece of ink, uint8; `sides`: its
    four sides, found in edge bands `eh` rows and `ew` columns deep; `top_side`: the top
    band's level lines alone), in the columns between the bands: lines from the top side to
    the bottom one, straight as a ruler draws them along WALL of the height between the two
    (a digit's strokes may run beyond them), no bolder than twice the top side (a digit's
    stroke as tall is a pen's width, not a rule's), and at least CELL of that height from
    the row's ends (a stroke down the middle of one box drawn tight around its digit is no
    wall)."""
    h, w = m.shape
    top = np.nonzero(sides[:eh].any(axis=1))[0][0]
    bottom = h - eh + np.nonzero(sides[-eh:].any(axis=1))[0][-1]
    walls = np.zeros(m[:, ew:-ew].shape, bool)
    walls[top: bottom + 1] = _straight_runs(m[top: bottom + 1, ew:-ew],
                                            int(WALL * (bottom + 1 - top)), axis=0)
    if not walls.any():
        return walls
    thickness = top_side.sum(axis=0)
    rule = int(np.median(thickness[thickness > 0]))  # how thick the top side is drawn
    bands, _ = ndimage.label(walls.any(axis=0))
    widths = np.bincount(bands)[1:]
    centres = ew + np.array([(c[0].start + c[0].stop) / 2 for c in ndimage.find_objects(bands)])
    least = CELL * (bottom + 1 - top)
    kept = (widths <= 2 * rule + 1) & (centres >= least) & (w - centres >= least)
    return walls & np.concatenate([[False], kept])[bands][None, :]


def _ends_in_a_stroke(line: np.ndarray, ys: slice, xs: slice, pieces: np.ndarray,
                      spans: list[tuple[slice, slice]]) -> bool:
    """Whether a stroke leaves the line at one of its ends, as a 2's diagonal leaves its base.

    Strokes that meet the line away from its ends are digits written on it; bits of the
    line's own edge (a ragged threshold) never leave its rows.
    """
    thick = ys.stop - ys.start
    y0, y1 = max(ys.start - 1, 0), ys.stop + 1
    x0, x1 = max(xs.start - 1, 0), xs.stop + 1
    touching = grow(line[y0:y1, x0:x1], 1) & (pieces[y0:y1, x0:x1] > 0)
    end = 2 * thick + 2  # how near an end a stroke must meet the line to be its continuation
    for k in np.unique(pieces[y0:y1, x0:x1][touching]):
        rows = spans[k - 1][0]  # the rows this piece spans (`find_objects` of `pieces`)
        if rows.start >= ys.start - thick and rows.stop - 1 < ys.stop + thick:
            continue  # stays within the line's rows: part of the line's edge
        meet = np.nonzero((touching & (pieces[y0:y1, x0:x1] == k)).any(axis=0))[0] + x0
        if meet.min() < xs.start + end or meet.max() >= xs.stop - end:
            return True
    return False


def find_ink(img: Image.Image, name: str = "image") -> Ink:
    """Ink strength and mask of a decoded image, at a working scale of at most WORK_SIDE px."""
    grey, scale, origin, page = working_grey(img)
    frame = _border(grey)
    paper_level = float(np.median(frame))  # paper fills the border, whatever the mean
    dark_ink = paper_level >= 0.5
    # A drawing saved from a program has paper of one exact grey: no shadows to estimate. Its
    # edge is all that grey, and so is most of the frame (a bold stroke may reach into it).
    edge = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    flat = edge.min() == edge.max() and np.mean(frame == edge[0]) >= FLAT_FRAME
    paper = np.full_like(grey, paper_level) if flat else _paper(grey, dark_ink)
    ink = np.clip(paper - grey if dark_ink else grey - paper, 0.0, None)
    strength = _strength(ink)
    # Block means shrink a thin stroke's contrast as they shrink the noise: the bar for
    # "there is ink at all" is lowered with them (by less, as camera noise is not white).
    if strength < 0.1 / scale ** 0.5:
        raise NoInk(name)
    ink = np.clip(ink / strength, 0.0, 1.0)
    ink[ink < NOISE_FLOOR] = 0.0
    mask = ink >= INK_LEVEL
    # Ruled lines and underlines are sought in fainter ink than the writing: a pale line (or
    # a thin one, reduced) breaks into dashes at INK_LEVEL, too short to be found, and the
    # dashes join the digits standing on it into one.
    mask &= ~_with_edges(mask, _lines(ink >= LINE_LEVEL, page))
    if not mask.any():
        raise NoInk(name)
    polarity = "dark-on-light" if dark_ink else "light-on-dark"
    ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]  # the writing's
    shading = _shading(ink, mask, ys, xs)
    # Only the writing and a margin around it are kept: what follows costs what the ink costs.
    m = CROP_MARGIN
    y0, y1 = max(int(ys[0]) - m, 0), int(ys[-1]) + m + 1
    x0, x1 = max(int(xs[0]) - m, 0), int(xs[-1]) + m + 1
    mask = np.ascontiguousarray(mask[y0:y1, x0:x1])
    mask &= ~_drawn_boxes(mask)  # on the crop: labelling the whole page costs more
    size = tuple(img.info.get("digitos_size", img.size))
    return Ink(np.ascontiguousarray(ink[y0:y1, x0:x1], dtype=np.float32), mask, polarity,
               scale, size, (origin[0] + x0, origin[1] + y0), shading)


def _shading(ink: np.ndarray, mask: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> float:
    """How much wide grey area lies around the writing, as a multiple of the strokes' area.

    A pen leaves strokes on paper: beside them only a faint rim, the paper's grain, and now
    and then a stroke too faint for the ink threshold, all of them narrow. A picture of an
    object (a photo of a shirt, a shaded drawing) has wide areas that are neither paper nor
    ink; the threshold keeps only their darkest edges, and those read like digits (a shirt's
    two sleeves as "11"). So: the grey that survives an opening by a square a fifth of the
    writing's height wide. Grey that runs on past the writing (half its height around it)
    is the light, not the thing drawn: a shadow falling across a photo of paper.
    Measured: 0 for every wild-dev image and 2,000 drawn MNIST digits (narrower squares
    let a faint blurred stroke through: 0.09 at a sixth); over SHADED for a sixth of the
    pictures of clothes, and for half of those that read as digits.
    """
    height = int(rows[-1] - rows[0] + 1)  # rows, cols: those that hold writing, in order
    r = max(3, round(0.2 * height)) // 2  # the square's half-width
    # Block means (step px a side, about 8 blocks to a square) fill in the paper's grain and
    # make the opening cheap: a canvas drawing is read in a few milliseconds in all.
    step = max(1, r // 4)
    around = height // 2 // step * step
    y0, x0 = max(int(rows[0]) - around, 0), max(int(cols[0]) - around, 0)
    part = ink[y0: int(rows[-1]) + around + 1, x0: int(cols[-1]) + around + 1]
    if step > 1:  # pooled in torch: numpy's reductions over blocks are several times slower
        # A strip narrower than a block (a 1 on a canvas 10 px wide) is padded with paper to one.
        short = [(0, max(0, step - n)) for n in part.shape]
        if any(pad for _, pad in short):
            part = np.pad(part, short)
        blocks = torch.from_numpy(np.ascontiguousarray(part, dtype=np.float32))[None]
        strokes = F.max_pool2d(blocks, step)[0].numpy() >= INK_LEVEL
        grey = (F.avg_pool2d(blocks, step)[0].numpy() > NOISE_FLOOR) & ~strokes
    else:
        strokes = part >= INK_LEVEL
        grey = ndimage.uniform_filter(np.where(strokes, 0.0, part), 3) > NOISE_FLOOR
    r = max(1, r // step)
    if not grey.any():
        return 0.0  # most drawings: no grey beside the strokes at all
    opened = grow(~grow(~grey, r), r)  # an erosion, then a dilation: where a square fits
    # Grey that runs on past the writing, through the strokes too (a shadow crossing a 0
    # shades its inside as well), is the light, not the thing drawn.
    labels, _ = ndimage.label(opened | strokes)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    opened[np.isin(labels, edge[edge > 0])] = False
    return float(np.count_nonzero(opened) * step * step / np.count_nonzero(mask))


def grow(mask: np.ndarray, r: int) -> np.ndarray:
    """A binary mask grown by r pixels in every direction (a square; two running maxima)."""
    m = mask.view(np.uint8)
    m = ndimage.maximum_filter1d(m, 2 * r + 1, axis=0)
    return ndimage.maximum_filter1d(m, 2 * r + 1, axis=1).view(bool)


def _near(mask: np.ndarray) -> np.ndarray:
    """The mask grown by two pixels: faint ink this close to a stroke belongs to it."""
    return grow(mask, 2)


def _boxes(labels: np.ndarray, count: int) -> list[tuple[int, int, int, int]]:
    """(left, top, right, bottom) of each labelled component, exclusive ends."""
    return [(s[1].start, s[0].start, s[1].stop, s[0].stop)
            for s in ndimage.find_objects(labels, count)]


def find_groups(ink: Ink, name: str = "image") -> list[Group]:
    """The writing's connected components, specks dropped, grouped into digits, left to right."""
    # Pieces are joined through their faint anti-aliased rims and one-pixel gaps: a thin pen
    # breaks apart at the ink threshold, and a digit should not.
    joined = grow((ink.strength > 0) & _near(ink.mask), 1)
    labels, count = ndimage.label(joined, structure=np.ones((3, 3), bool))
    whole = labels.copy()  # each component with its rims and gaps: a hairline loop closed
    labels[~ink.mask] = 0
    boxes = _boxes(labels, count)
    corners = np.asarray(boxes).reshape(-1, 4)  # the boxes as one array, for the tests below
    frames = _frames(labels, corners, whole)
    heights = corners[:, 3] - corners[:, 1]
    extent = np.maximum(heights, corners[:, 2] - corners[:, 0])
    extent[frames] = 0  # neither digits nor specks
    extent[_underlines(corners, frames)] = 0
    tall = float(heights[extent > 0].max())
    big = [i for i in range(count) if extent[i] >= SPECK * tall]
    # Union-find over the big components: overlapping x-ranges make one digit.
    parent = list(range(count))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # Only pieces that overlap in x, or lie at most 0.1 of the tallest apart (the widest gap
    # `_same_digit` allows), can be one digit: a sweep from left to right looks at those pairs
    # alone, so thousands of pieces (a page of marks, a textured photo) cost no more than
    # their neighbours do.
    reach = 0.1 * tall
    by_left = sorted(big, key=lambda i: boxes[i][0])
    for k, a in enumerate(by_left):
        for b in by_left[k + 1:]:
            if boxes[b][0] > boxes[a][2] + reach:
                break
            if root(a) != root(b) and _same_digit(boxes[a], boxes[b]):
                parent[root(b)] = root(a)
    members: dict[int, list[int]] = {}
    for i in big:
        members.setdefault(root(i), []).append(i)
    groups = [_merge_box([boxes[i] for i in m]) for m in members.values()]
    roots = list(members)
    if len(groups) > MOST_GROUPS:  # each costs a pass over the image below, and a reading
        raise ImageError(f"{name}: {len(groups):,} separate marks of writing; more than "
                         f"{MOST_GROUPS} is a page of text or a texture, not digits")
    # Specks join the digit they lie on or next to; the rest is dirt.
    for i in range(count):
        if extent[i] >= SPECK * tall or extent[i] < DUST * tall:
            continue
        cx, cy = (boxes[i][0] + boxes[i][2]) / 2, (boxes[i][1] + boxes[i][3]) / 2
        for g, (left, top, right, bottom) in enumerate(groups):
            pad = NEAR * (bottom - top)
            if left - pad <= cx <= right + pad and top - pad <= cy <= bottom + pad:
                members[roots[g]].append(i)
                break
    _bars_beside_tops(members, roots, boxes)
    out = []
    for r in roots:
        keep = np.zeros(count + 1, bool)
        keep[[i + 1 for i in members[r]]] = True
        mask = keep[labels]
        out.append(Group(mask, _merge_box([boxes[i] for i in members[r]]),
                         _marks_inside(labels, members[r], boxes)))
    tallest = max(g.box[3] - g.box[1] for g in out)
    out = [g for g in out if g.box[3] - g.box[1] >= SMALL_GROUP * tallest]
    return sorted(out, key=lambda g: (g.box[0] + g.box[2]) / 2)


def _bars_beside_tops(members: dict[int, list[int]], roots: list[int],
                      boxes: list[tuple[int, int, int, int]]) -> None:
    """A small bar standing apart beside the top of a digit joins that digit, in place.

    A 5's bar, or the start of a 2's hook, drawn apart and off to the side: too far for
    `_same_digit`, and as a group of its own too small to be a digit, so it would be dropped
    and the 5 read as a J. It joins the one digit it is nearest to, no chain of joins: a bar
    (at least BAR times as wide as tall, under SMALL_GROUP of the digit's height) whose bottom
    is in the top TOP_PART of the digit, at most BAR_GAP of the digit's height from its side.
    A minus sign sits lower, a degree sign or an apostrophe is no bar.
    """
    box = {r: _merge_box([boxes[i] for i in members[r]]) for r in roots}
    tallest = max(b[3] - b[1] for b in box.values())
    digits = [r for r in roots if box[r][3] - box[r][1] >= SMALL_GROUP * tallest]
    for r in list(roots):
        left, top, right, bottom = box[r]
        if r in digits or right - left < BAR * (bottom - top):
            continue
        best, nearest = None, float("inf")
        for d in digits:
            dl, dt, dr, db = box[d]
            h = db - dt
            gap = max(dl - right, left - dr)
            if (bottom - top < SMALL_GROUP * h and gap <= BAR_GAP * h and gap < nearest
                    and dt - TOP_PART * h <= top and bottom <= dt + TOP_PART * h):
                best, nearest = d, gap
        if best is not None:
            members[best] += members.pop(r)
            roots.remove(r)


def _marks_inside(labels: np.ndarray, members: list[int],
                  boxes: list[tuple[int, int, int, int]]) -> bool:
    """Whether marks lie inside a loop of a digit's ink: a face's eyes or mouth.

    No digit holds separate marks in its hole (a 0's slash crosses the loop, and is part of
    it; a dotted zero holds one dot); a face, a drawn thing or a doodle often does. Two marks
    or more, each as tall as half the hole is wide across, are digits in a frame, not this
    (`_frames` takes a frame away first, unless digits touch it). Measured: no wild-dev image
    and no drawn MNIST digit holds marks.
    """
    if len(members) < 2:
        return False
    tall = max(boxes[i][3] - boxes[i][1] for i in members)
    for i in members:
        left, top, right, bottom = boxes[i]
        if bottom - top < 0.3 * tall:
            continue  # too small to hold a loop around another piece
        inner = [j for j in members if j != i and boxes[j][0] > left and boxes[j][1] > top
                 and boxes[j][2] < right and boxes[j][3] < bottom]
        if not inner:
            continue
        region = labels[top:bottom, left:right]
        holes = _holes(region, i + 1)
        held = _inside_loop(region, holes, [j + 1 for j in inner])
        # Digits in a frame that touches some of them (the rest stand free in it) are no
        # marks: two or more that fill its hole.
        filling = _filling(holes, held, boxes)
        if len(filling) >= 2:
            held = [j for j in held if j not in filling]
        # One dot alone may be a dotted zero; two marks (eyes), or one as wide as a quarter of
        # the loop (a mouth), are not. (`held` holds labels: component index + 1.)
        if len(held) >= 2 or any(boxes[j - 1][2] - boxes[j - 1][0] >= MARK_WIDE * (right - left)
                                 for j in held):
            return True
    return False


def _frames(labels: np.ndarray, corners: np.ndarray, whole: np.ndarray) -> list[int]:
    """Components that are a closed loop drawn around a digit at least FRAME_HOLDS as tall
    as the loop, or around two or more at least FRAME_HOLDS as tall as its hole is wide
    across: the circle or box around a digit or a number, not part of it. The hole, not the
    loop's box: a box photographed at a tilt is far taller, corner to corner, than the digits
    it holds. A loop that digits touch is not one (`_bare_loop`).

    The ink inside a 0, a face's eyes and mouth, a dot in a zero are all far shorter. Only
    pieces at least SPECK of the tallest are looked at: a smaller one is a speck whatever it
    holds, and a noisy photo has thousands of them (looking inside each one took seconds).
    `corners` holds each component's (left, top, right, bottom), one row each; `whole`, the
    components as labelled, before their faint rims and one-pixel gaps were taken away.
    """
    if len(corners) == 0:
        return []
    left, top, right, bottom = corners.T
    height = bottom - top
    out = []
    for i in np.nonzero(height >= max(3, SPECK * height.max()))[0]:
        # Tilted by up to 30 degrees, a box five times as wide as tall is about 3.5 times as
        # tall, corner to corner, as its hole: pieces shorter than that share are no digits in it.
        inner = np.nonzero((left > left[i]) & (right < right[i]) & (top > top[i])
                           & (bottom < bottom[i])
                           & (height >= FRAME_HOLDS / 3.5 * height[i]))[0] + 1
        if len(inner) == 0:
            continue
        region = labels[top[i]:bottom[i], left[i]:right[i]]
        loop = region == i + 1
        holes = _holes(region, i + 1)
        if not holes.any():
            # A hairline box breaks into dashes at the ink level (a thin pen's line at a
            # tilt); joined through its gaps, as grouping joins it, it closes.
            loop = whole[top[i]:bottom[i], left[i]:right[i]] == i + 1
            holes = ndimage.binary_fill_holes(loop) & ~loop
        held = _inside_loop(region, holes, inner.tolist())
        # A digit half as tall as the loop's box (a circled digit), or two digits or more
        # that fill its hole (a number in a box at a tilt; a face's mouth is one piece).
        circled = any(height[j - 1] >= FRAME_HOLDS * height[i] for j in held)
        if not circled and len(_filling(holes, held, corners)) < 2:
            continue
        # A loop that digits touch is left: taking it away would take them too.
        if _bare_loop(loop, holes):
            out.append(int(i))
    return out


def _filling(holes: np.ndarray, pieces: list[int],
             boxes: np.ndarray | list[tuple[int, int, int, int]]) -> list[int]:
    """Of `pieces` inside a loop (labels; `boxes` holds each component's (left, top, right,
    bottom)), those at least FRAME_HOLDS as tall as the loop's `holes` are wide across (the
    widest circle they hold, whatever the loop's tilt): digits in a frame, not marks inside a
    drawing."""
    if not pieces:
        return []
    across = 2 * float(ndimage.distance_transform_edt(np.pad(holes, 1)).max())
    return [j for j in pieces if boxes[j - 1][3] - boxes[j - 1][1] >= FRAME_HOLDS * across]


def _bare_loop(loop: np.ndarray, holes: np.ndarray) -> bool:
    """Whether a loop's ink is a ring alone: none of it reaches inwards further than a few
    of its strokes' widths from its outer edge (a digit touching a box reaches in), but for
    walls straight across it from side to side that part its hole into cells (a form's row
    of boxes)."""
    # The loop's outer edge is its box's edge too: padded, so that distances run from it.
    outline = np.pad(grow(loop, 1) | holes, 1)  # (the holes stop a pixel short of the loop)
    width = 2 * float(np.median(ndimage.distance_transform_edt(loop)[loop]))
    deep = ndimage.distance_transform_edt(outline)[1:-1, 1:-1] > 3 * width + 1
    if ndimage.label(holes)[1] > 1:
        deep &= ~_straight_runs(loop.view(np.uint8), int(WALL * loop.shape[0]), axis=0)
    return (loop & deep).sum() <= 0.02 * loop.sum()


def _holes(region: np.ndarray, loop_label: int) -> np.ndarray:
    """The holes of one loop in `region` (labels, the loop's box). The loop is grown by a
    pixel first, to close a thin pen's gaps."""
    loop = grow(region == loop_label, 1)
    return ndimage.binary_fill_holes(loop) & ~loop


def _inside_loop(region: np.ndarray, holes: np.ndarray, pieces: list[int]) -> list[int]:
    """Of `pieces` (labels in `region`), those that lie in the loop's `holes`: at least 90%
    of their pixels. One count over the box, however many pieces."""
    size = int(region.max()) + 1
    held = np.bincount(region[holes], minlength=size)
    total = np.bincount(region.ravel(), minlength=size)
    return [j for j in pieces if held[j] > 0.9 * total[j]]


def _underlines(corners: np.ndarray, frames: list[int]) -> list[int]:
    """Components that are a short line drawn under a digit: flat (at most FLAT of its width
    tall and of the digit's height), wholly below the digit, and under at least half of it.

    No digit has a separate flat stroke wholly below the rest (a 2's base, even drawn apart,
    reaches up to where its diagonal ends); a 5's separate bar lies above. Only pieces at
    least SPECK of the tallest are digits to look under: thousands of specks cost no more.
    `corners` holds each component's (left, top, right, bottom), one row each.
    """
    if len(corners) == 0:
        return []
    left, top, right, bottom = corners.T
    height, width = bottom - top, right - left
    flat = height <= FLAT * width
    flat[frames] = False
    under = np.zeros(len(corners), bool)
    for j in np.nonzero(height >= SPECK * height.max())[0]:
        if j in frames:
            continue
        overlap = np.minimum(right, right[j]) - np.maximum(left, left[j])
        # (j itself is never wholly below its own bottom)
        under |= (flat & (top >= bottom[j]) & (height <= FLAT * height[j])
                  & (overlap >= OVERLAP * width[j]))
    return [int(i) for i in np.nonzero(under)[0]]


def _same_digit(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Whether two pieces of ink are parts of one digit, judged by their boxes.

    They are when their x-ranges overlap by half the narrower one (a 5's detached bar above
    its body), unless they are about equally tall and LINE_GAP of the taller apart (two lines
    of writing); when a much shorter piece lies just above a taller one and partly over it (a
    5's bar drawn off to the right; a line *under* a digit is not part of it); or when a much
    shorter piece stands right beside a taller one (the open top of a 4 drawn apart from its
    stem). Two digits side by side are about equally tall.
    """
    wa, wb = a[2] - a[0], b[2] - b[0]
    ha, hb = a[3] - a[1], b[3] - b[1]
    overlap = min(a[2], b[2]) - max(a[0], b[0])
    short = min(ha, hb) < 0.6 * max(ha, hb)
    rows = min(a[3], b[3]) - max(a[1], b[1])  # negative: the gap between them, vertically
    if overlap >= OVERLAP * min(wa, wb):
        # ...unless they are about as tall as each other with a clear gap between them: two
        # digits one above the other, in two lines of writing (an 8's two loops nearly meet).
        return short or -rows < LINE_GAP * max(ha, hb)
    small, tall = (a, b) if ha < hb else (b, a)
    above = small[3] <= tall[1] + 0.1 * (tall[3] - tall[1])
    if overlap > 0 and short and above and -rows <= 0.25 * max(ha, hb):
        return True
    return -overlap <= 0.1 * max(ha, hb) and rows > 0 and short


def _merge_box(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


LINE_GAP = 0.3  # two digits one above the other, this share of their height apart: two lines


def text_lines(groups: list[Group]) -> list[list[Group]]:
    """The digits grouped into lines of writing, top to bottom, each left to right.

    Lines are the runs of rows that hold writing, with blank rows between them: a date over a
    year is two lines, and a number whose digits wander up and down, however far, is one as
    long as no blank band of rows runs between its digits.
    """
    lines: list[tuple[int, int, list[Group]]] = []  # (top, bottom, groups), top to bottom
    for g in sorted(groups, key=lambda g: g.box[1]):
        top, bottom = g.box[1], g.box[3]
        if lines and top < lines[-1][1]:  # its rows meet the line above's: the same line
            t, b, members = lines[-1]
            lines[-1] = (t, max(b, bottom), [*members, g])
        else:
            lines.append((top, bottom, [g]))
    return [sorted(members, key=lambda g: g.box[0]) for _, _, members in lines]


def join(groups: list[Group]) -> Group:
    """Several digits' ink as one (all the writing, as reading a single digit takes it)."""
    mask = np.zeros_like(groups[0].mask)
    for g in groups:
        mask |= g.mask
    return Group(mask, _merge_box([g.box for g in groups]))


def group_ink(ink: Ink, group: Group) -> np.ndarray:
    """The ink strengths of one digit, cropped to its box with a one-pixel rim.

    The faint anti-aliased rim around the strokes is kept (the mask grown by two pixels);
    ink of other digits and dirt inside the box is not.
    """
    left, top, right, bottom = group.box
    h, w = ink.mask.shape
    y0, y1, x0, x1 = max(top - 1, 0), min(bottom + 1, h), max(left - 1, 0), min(right + 1, w)
    near = _near(group.mask[y0:y1, x0:x1])
    return np.where(near, ink.strength[y0:y1, x0:x1], 0.0).astype(np.float32)


def between(group: Group, start: int | np.ndarray, stop: int | np.ndarray) -> Group | None:
    """The part of a digit's ink right of one cut and left of another (None if empty).

    A cut is a column of the working image, or a path: one column per row of the group's box,
    as `cut_paths` gives them, so a cut can wind between two digits that overlap.
    """
    left, top, right, bottom = group.box
    x = np.arange(left, right)
    lo = np.broadcast_to(np.asarray(start), (bottom - top,))[:, None]
    hi = np.broadcast_to(np.asarray(stop), (bottom - top,))[:, None]
    inside = group.mask[top:bottom, left:right] & (x >= lo) & (x < hi)
    ys, xs = np.nonzero(inside)
    if len(ys) == 0:
        return None
    mask = np.zeros_like(group.mask)
    mask[top:bottom, left:right] = inside
    return Group(mask, (left + int(xs.min()), top + int(ys.min()), left + int(xs.max()) + 1,
                        top + int(ys.max()) + 1))


def cut_paths(group: Group, most: int = 10, valleys: bool = True) -> list[np.ndarray]:
    """Paths from the top of a digit's box to its bottom that cross the least ink, left to
    right: where touching digits may meet. A straight cut through two digits that overlap or
    lean leaves a piece of each on both sides; a path that winds between them does not.

    One path is sought around every tenth of the height along the box, within half the
    height on either side (a leaning hand). A path moves at most one column per row and pays
    a little for each such step, so that on bare paper it runs straight. The `most` that
    cross the least ink and lie apart are kept: among every valley a path can end in
    (`valleys`), or among each start's cheapest path only.
    """
    left, top, right, bottom = group.box
    width, height = right - left, bottom - top
    edge = max(2, height // 20)
    if width - 2 * edge < 3:
        return []
    starts = np.arange(left + edge, right - edge, max(1, height // 10))
    band = max(1, height // 2)
    offsets = np.arange(-band, band + 1)
    cols = starts[:, None] + offsets[None, :]  # (K, B): the columns each path may visit
    outside = np.where((cols < left + edge) | (cols >= right - edge), np.inf, 0.0)
    cols = np.clip(cols, left, right - 1)
    ink = group.mask[top:bottom].astype(np.float32)
    total = ink[0][cols] + outside
    back = np.zeros((height, *cols.shape), np.int8)  # the step into each cell: -1, 0 or +1
    for y in range(1, height):
        best, step = total.copy(), back[y]
        from_left = total[:, :-1] + STEP_COST  # into column j from column j - 1
        better = from_left < best[:, 1:]
        np.copyto(best[:, 1:], from_left, where=better)
        step[:, 1:][better] = -1
        from_right = total[:, 1:] + STEP_COST  # into column j from column j + 1
        better = from_right < best[:, :-1]
        np.copyto(best[:, :-1], from_right, where=better)
        step[:, :-1][better] = 1
        total = best + ink[y][cols] + outside
    if valleys:
        # Every valley a path can end in, not only each start's best: where a clean gap lies
        # in reach, every start would end in it, and the cut between two digits that touch
        # (three 1s in a row) would never be tried.
        inf = np.full((len(starts), 1), np.inf)
        lowest = ((np.concatenate([inf, total[:, :-1]], 1) > total)
                  & (np.concatenate([total[:, 1:], inf], 1) >= total) & np.isfinite(total))
    else:  # each start's best end only
        lowest = np.zeros(total.shape, bool)
        lowest[np.arange(len(starts)), total.argmin(1)] = True
    ks, js = np.nonzero(lowest)
    order = np.argsort(total[ks, js], kind="stable")  # the least ink first
    ks, js = ks[order], js[order]
    paths = np.empty((len(ks), height), np.int64)  # all traced back at once, bottom row up
    for y in range(height - 1, -1, -1):
        paths[:, y] = cols[ks, js]
        js = js + back[y, ks, js]  # the column each path came from, one row up
    apart = max(2, height // 8)
    picks: list[np.ndarray] = []
    for path in paths:
        if all(np.abs(path - p).mean() >= apart for p in picks):
            picks.append(path)
            if len(picks) == most:
                break
    return sorted(picks, key=lambda p: float(p.mean()))


def box_in_input(ink: Ink, box: tuple[int, int, int, int]) -> list[int]:
    """A box at the working scale as [left, top, right, bottom] in the input's pixels."""
    w, h = ink.size
    s = ink.scale
    ox, oy = ink.offset
    left, top, right, bottom = box[0] + ox, box[1] + oy, box[2] + ox, box[3] + oy
    return [min(int(left * s), w), min(int(top * s), h),
            min(int(round(right * s)), w), min(int(round(bottom * s)), h)]
