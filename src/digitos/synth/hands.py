"""How a digit is written and saved: its size, tilt and pen, and what the file does to it.

MNIST holds one way of writing: a pen 2-3 px wide on a 20-px digit, scanned and centred.
People hand a reader a digit drawn with a hairline or a marker, tilted, thumbnail-sized and
enlarged again, crisp from Paint's pencil or blurred by a phone, saved as a JPEG. A `Hand` is
one such way; `write` renders a 28x28 digit (or a not-a-digit image) with it into the bytes of
an image file, which reading then opens as it opens anyone's; `written_image` is the image
reading decodes from that file, made without encoding a lossless PNG (training's way).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

RESAMPLERS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
              "bicubic": Image.Resampling.BICUBIC}
FORMATS = ("png", "jpeg", "transparent-png")


@dataclass(frozen=True)
class Hand:
    """One way a digit is written and saved."""

    height: int = 80  # the writing's height on the canvas, in px, before any enlarging
    tilt: float = 0.0  # degrees, clockwise
    stretch: float = 1.0  # the digit's width, as a multiple of its own (narrow or wide hands)
    pen: float = 1.0  # the pen's width, as a multiple of the digit's own
    crisp: bool = False  # every pixel ink or paper (Paint's pencil): no anti-aliasing
    enlarge: float = 1.0  # the saved image enlarged this many times (a thumbnail blown up)
    resample: str = "bicubic"  # how it was enlarged
    blur: float = 0.0  # Gaussian blur of the saved image, in its pixels
    noise: float = 0.0  # paper and sensor noise, in grey levels
    chalk: bool = False  # light writing on a dark board
    format: str = "png"  # png, jpeg or transparent-png
    quality: int = 90  # JPEG quality


def random_hand(rng: np.random.Generator) -> Hand:
    """A way of writing drawn at random from what people hand a reader: a third of them small
    (7-20 px tall) and enlarged, the rest 20-160 px; pens from hairline to marker; half of them
    tilted up to 30 degrees; some crisp, some blurred; PNG, JPEG or transparent."""
    small = rng.random() < 0.35
    height = int(rng.integers(7, 21)) if small else int(np.exp(rng.uniform(np.log(20), np.log(160))))
    enlarge = float(rng.uniform(2.0, 10.0)) if small and rng.random() < 0.8 else 1.0
    blur = 0.0
    if rng.random() < 0.3:
        blur = float(rng.uniform(0.3, 0.04 * height * enlarge + 0.5))
    fmt = str(rng.choice(FORMATS, p=[0.5, 0.35, 0.15]))
    return Hand(
        height=height,
        tilt=float(rng.uniform(-30, 30)) if rng.random() < 0.5 else 0.0,
        # Some write narrow, some wide; and a scan normalised to a square box (as the UCI
        # digits were) stretches a 1 to a fat bar.
        stretch=float(np.exp(rng.uniform(np.log(0.65), np.log(1.8)))) if rng.random() < 0.4 else 1.0,
        pen=float(np.exp(rng.uniform(np.log(0.35), np.log(2.5)))) if not small else 1.0,
        crisp=bool(rng.random() < (0.3 if small else 0.1)),
        enlarge=enlarge,
        resample=str(rng.choice(list(RESAMPLERS))),
        blur=blur,
        noise=float(rng.uniform(0, 8)),
        chalk=bool(rng.random() < 0.1) and fmt != "transparent-png",
        format=fmt,
        quality=int(rng.integers(30, 96)),
    )


# The pen is changed and the digit turned large (4x its final size, within these bounds), then
# brought down with anti-aliasing.
WORK_HEIGHT = (112, 200)


def _shape(digit: np.ndarray, hand: Hand) -> np.ndarray:
    """The digit's ink coverage (float, 0-1) at the hand's size, pen and tilt."""
    ys, xs = np.nonzero(digit > 40)
    if len(ys) == 0:
        raise ValueError("the digit has no ink")
    crop = digit[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    scale = float(np.clip(4 * hand.height, *WORK_HEIGHT)) / crop.shape[0]
    big = Image.fromarray(np.pad(crop, 2)).resize(
        (max(1, round((crop.shape[1] + 4) * scale * hand.stretch)),
         max(1, round((crop.shape[0] + 4) * scale))), Image.Resampling.BICUBIC)
    mask = np.asarray(big, dtype=np.float32) >= 128
    if not mask.any():  # pale all over (a light garment): no stroke to draw
        raise ValueError("the digit has no ink dark enough to draw")
    if hand.pen != 1.0:
        inside = ndimage.distance_transform_edt(mask)
        width = 4 * float(np.median(inside[mask]))  # across a stroke, depths run 0 to width/2
        if hand.pen > 1:
            mask = ndimage.distance_transform_edt(~mask) <= (hand.pen - 1) * width / 2
        else:
            thinner = inside > (1 - hand.pen) * width / 2
            if thinner.sum() > 0.25 * mask.sum():  # never erase whole strokes
                mask = thinner
    img = Image.fromarray(mask.astype(np.uint8) * 255)
    if hand.tilt:
        img = img.rotate(-hand.tilt, Image.Resampling.BILINEAR, expand=True)
    ys, xs = np.nonzero(np.asarray(img) > 0)
    img = img.crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    w = max(1, round(img.width * hand.height / img.height))
    down = Image.Resampling.BOX if img.height >= hand.height else Image.Resampling.BILINEAR
    small = np.asarray(img.resize((w, hand.height), down), dtype=np.float32) / 255
    return (small >= 0.5).astype(np.float32) if hand.crisp else small


def write(digit: np.ndarray, hand: Hand, rng: np.random.Generator) -> bytes:
    """A 28x28 digit (uint8, ink 255, MNIST's form) written with `hand`, as the bytes of the
    saved image file. The paper, the margins and the colours are drawn with `rng`."""
    return save(_shape(np.asarray(digit), hand), hand, rng)


def paint(ink: np.ndarray, hand: Hand, rng: np.random.Generator) -> Image.Image:
    """Ink coverage (float (H, W), 0-1, at its final size) put on paper with margins as `hand`
    puts it: enlarged, blurred, noisy, in its colours; the image before it is saved."""
    h, w = ink.shape
    margin = max(2, int(max(h, w) * rng.uniform(0.15, 0.8)))
    top, left = int(rng.integers(1, margin + 1)), int(rng.integers(1, margin + 1))
    canvas = np.zeros((h + 2 * margin, w + 2 * margin), dtype=np.float32)
    canvas[top: top + h, left: left + w] = ink
    img = Image.fromarray((canvas * 255).astype(np.uint8))
    if hand.enlarge > 1:
        size = (round(img.width * hand.enlarge), round(img.height * hand.enlarge))
        img = img.resize(size, RESAMPLERS[hand.resample])
    if hand.blur:
        img = img.filter(ImageFilter.GaussianBlur(hand.blur))
    a = np.asarray(img, dtype=np.float32) / 255  # ink coverage per pixel

    ink_rgb = rng.integers(0, 90, 3).astype(np.float32)  # a dark pen: black, blue, grey
    paper_rgb = rng.integers(215, 256, 3).astype(np.float32)
    if hand.format == "transparent-png":
        rgba = np.zeros((*a.shape, 4), dtype=np.uint8)
        rgba[..., :3] = ink_rgb.astype(np.uint8)
        rgba[..., 3] = (a * 255).astype(np.uint8)
        out = Image.fromarray(rgba)
    else:
        if hand.chalk:
            ink_rgb, paper_rgb = paper_rgb, 255 - paper_rgb
        rgb = paper_rgb * (1 - a[..., None]) + ink_rgb * a[..., None]
        if hand.noise:
            rgb += rng.normal(0, hand.noise, rgb.shape).astype(np.float32)
        out = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    return out


def save(ink: np.ndarray, hand: Hand, rng: np.random.Generator) -> bytes:
    """Ink coverage (float (H, W), 0-1, at its final size) put on paper (`paint`) and saved
    in the hand's format: the bytes of the image file."""
    out = paint(ink, hand, rng)
    buf = io.BytesIO()
    if hand.format == "jpeg":
        out.save(buf, format="JPEG", quality=hand.quality)
    else:
        out.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def decoded(ink: np.ndarray, hand: Hand, rng: np.random.Generator) -> Image.Image:
    """The image reading decodes from the file `save` writes with the same draws, refused as
    reading refuses it. A PNG is lossless, so it is never encoded: writing training images
    costs about half as much."""
    from ..preprocess import check_size, open_image

    if hand.format == "jpeg":
        return open_image(save(ink, hand, rng), "image")
    img = paint(ink, hand, rng)
    check_size(*img.size, "image")
    return img


def written_image(digit: np.ndarray, hand: Hand, rng: np.random.Generator) -> Image.Image:
    """The image reading decodes from the file `write` writes with the same draws."""
    return decoded(_shape(np.asarray(digit), hand), hand, rng)
