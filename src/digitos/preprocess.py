"""Any image a person saves -> MNIST's own form: 28x28, white ink on black, centred by mass.

MNIST's recipe (LeCun et al.): each digit was size-normalised to fit a 20x20 box keeping its
aspect ratio, anti-aliased, then placed in a 28x28 field so that its centre of mass sits at the
centre. A drawing saved from Paint is nothing like that (big canvas, black on white, off-centre,
thin pen), so it is brought to that form here. The CLI, the Python API and the web page all
call `to_mnist`, so they all see the same 28x28.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .ink import INK_LEVEL, ImageError, box_in_input, find_groups, find_ink, group_ink, join

MAX_PIXELS = 40_000_000  # larger images are refused before decoding (decompression bombs)
BOX = 20  # MNIST: the digit's longer side
FIELD = 28  # MNIST: the image side
STROKE = 2.0  # pixels: the thinnest stroke, in the 20-px box, that we let a digit have


@dataclass
class Preprocessed:
    pixels: torch.Tensor  # uint8 (28, 28), 0 = background, 255 = ink, as MNIST
    polarity: str  # "dark-on-light" or "light-on-dark": what the input looked like
    size: tuple[int, int]  # the input's width and height
    box: tuple[int, int, int, int]  # the ink's bounding box in the input (left, top, right, bottom)


def open_image(source: str | Path | bytes, name: str | None = None) -> Image.Image:
    """Open and fully decode an image, refusing empty, foreign, truncated or huge files."""
    label = name or (str(source) if not isinstance(source, bytes) else "image")
    if isinstance(source, bytes):
        data = source
    else:
        try:
            data = Path(source).read_bytes()
        except IsADirectoryError:
            raise ImageError(f"{label}: is a folder") from None
        except OSError as e:
            raise ImageError(f"{label}: cannot read: {e.strerror or e}") from None
    if not data:
        raise ImageError(f"{label}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ImageError(
                    f"{label}: {w}x{h} is {w * h:,} pixels, over the limit of {MAX_PIXELS:,}"
                )
            img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{label}: too many pixels (over {MAX_PIXELS:,})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{label}: not an image (PNG, JPEG, BMP, GIF or WebP)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{label}: truncated or damaged image ({e})") from None
    try:
        img = ImageOps.exif_transpose(img)  # phones store rotation in EXIF
    except Exception:  # a broken EXIF block should not cost the reading
        pass
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)  # an animated GIF or WebP: its first frame
    return img


def _dilate(ink: torch.Tensor, k: int) -> torch.Tensor:
    """Grey dilation by a k x k square (separable max-pooling)."""
    x = ink[None, None]
    x = F.max_pool2d(F.pad(x, (k // 2, k // 2, 0, 0)), (1, k), stride=1)
    x = F.max_pool2d(F.pad(x, (0, 0, k // 2, k // 2)), (k, 1), stride=1)
    return x[0, 0]


def stroke_width(mask: torch.Tensor) -> float:
    """Mean stroke width of a binary mask: area / half its boundary (a stroke has two sides)."""
    m = mask.float()
    padded = F.pad(m, (1, 1, 1, 1))
    inner = (padded[:-2, 1:-1] * padded[2:, 1:-1] * padded[1:-1, :-2] * padded[1:-1, 2:]) * m
    boundary = float((m - inner).sum())
    return 2.0 * float(m.sum()) / max(boundary, 1.0)


def digit_to_mnist(crop: np.ndarray) -> torch.Tensor:
    """One digit's ink strengths (float, cropped to its box) -> uint8 28x28 in MNIST's form."""
    t = torch.from_numpy(np.ascontiguousarray(crop, dtype=np.float32))
    mask = t >= INK_LEVEL
    rows = torch.nonzero(mask.any(1)).flatten()
    cols = torch.nonzero(mask.any(0)).flatten()
    side = max(int(rows[-1] - rows[0]), int(cols[-1] - cols[0])) + 1

    # A thin pen on a big canvas would shrink to a hairline: thicken it first, so that its
    # strokes come out at least STROKE px wide in the 20-px box.
    scale = BOX / side
    width = stroke_width(mask)
    if width * scale < STROKE:
        k = int(round(STROKE / scale - width))
        if k >= 1:
            k += 1 - k % 2  # odd, so the dilation stays centred
            t = _dilate(t, k)

    h, w = t.shape
    new_h = max(1, round(h * BOX / max(h, w)))
    new_w = max(1, round(w * BOX / max(h, w)))
    small = F.interpolate(t[None, None], size=(new_h, new_w), mode="bilinear",
                          antialias=True, align_corners=False)[0, 0].clamp_(0, 1)
    small = small / small.max().clamp(min=1e-6)

    # Centre of mass to the centre of the 28x28 field.
    ys = torch.arange(new_h, dtype=torch.float32)
    xs = torch.arange(new_w, dtype=torch.float32)
    mass = small.sum()
    cy = float((small.sum(1) * ys).sum() / mass)
    cx = float((small.sum(0) * xs).sum() / mass)
    oy = int(round((FIELD - 1) / 2 - cy))
    ox = int(round((FIELD - 1) / 2 - cx))
    oy = min(max(oy, 0), FIELD - new_h)  # never push ink off the field
    ox = min(max(ox, 0), FIELD - new_w)
    field = torch.zeros(FIELD, FIELD)
    field[oy: oy + new_h, ox: ox + new_w] = small
    return (field * 255).round().to(torch.uint8)


def to_mnist(img: Image.Image, name: str = "image") -> Preprocessed:
    """A decoded image in MNIST's form (uint8 28x28, ink = 255), all its writing as one digit."""
    found = find_ink(img, name)
    group = join(find_groups(found))
    pixels = digit_to_mnist(group_ink(found, group))
    box = tuple(box_in_input(found, group.box))
    return Preprocessed(pixels, found.polarity, found.size, box)


def preprocess_file(source: str | Path | bytes, name: str | None = None) -> Preprocessed:
    """Open any image file (or its bytes) and bring it to MNIST's form."""
    label = name or (str(source) if not isinstance(source, bytes) else "image")
    return to_mnist(open_image(source, label), label)


def save_pixels(pixels: torch.Tensor, path: str | Path) -> None:
    """Write a 28x28 uint8 tensor as a greyscale PNG."""
    Image.fromarray(pixels.numpy()).save(path)  # uint8 2-D: greyscale "L"
