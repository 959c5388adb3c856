"""Any image a person saves -> MNIST's own form: 28x28, white ink on black, centred by mass.

MNIST's recipe (LeCun et al.): each digit was size-normalised to fit a 20x20 box keeping its
aspect ratio, anti-aliased, then placed in a 28x28 field so that its centre of mass sits at the
centre. A drawing saved from Paint is nothing like that (big canvas, black on white, off-centre,
thin pen), so it is brought to that form here. The CLI, the Python API and the web page all
call `to_mnist`, so they all see the same 28x28.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from .ink import INK_LEVEL, WORK_SIDE, ImageError, box_in_input, find_groups, find_ink, group_ink, join

MAX_PIXELS = 40_000_000  # pixels decoded, at most (decompression bombs are refused unread)
MAX_FILE_BYTES = 64 * 1024 * 1024  # a larger file is not a drawing or a photo of one
MIN_SIDE = 8  # px: narrower than this holds no digit
# A progressive JPEG is drawn in scans, each a pass over every block of the image; encoders
# write 6-12 (10 for Pillow's colour ones). A file may repeat scans by the thousand at a few
# bytes each: 1,000 of them cost 6 s on a 12-megapixel image, decoded at a quarter.
MAX_JPEG_SCANS = 32
# Pillow reads a PNG's chunks, a GIF's blocks and a JPEG's markers one by one in Python:
# 100,000 empty PNG chunks (1.2 MB) cost 0.36 s, 4 MB of a JPEG's fill bytes 3.2 s, and a
# 64 MB file holds millions. Encoders write a few dozen, or a PNG chunk per 8 kB of pixels
# (8,000 for 64 MB); a GIF's XMP packet, walked as blocks, makes one per 70 bytes or so.
MAX_BLOCKS = 50_000
GIF_SIGNATURES = (b"GIF87a", b"GIF89a")
# Pillow decodes a run-length BMP in Python, op by op, and an RLE4 one pixel by pixel: 6 MB of
# one-pixel runs (3 megapixels) took 1.3 s, and 360 kB of RLE4 could fill 40 megapixels. A
# drawing saved so is mostly long runs of paper: far under these.
MAX_RLE_BYTES = 1024 * 1024
MAX_RLE4_PIXELS = 4_000_000
MAX_ASPECT = 50  # a page of writing is not 50 times wider than tall (a long number is ~10)
# What the README promises, and nothing else Pillow could open (EPS runs Ghostscript...).
# MPO is how phones save JPEGs with a depth map.
FORMATS = ("PNG", "JPEG", "MPO", "BMP", "GIF", "WEBP", "TIFF")
FORMAT_NAMES = "PNG, JPEG, BMP, GIF, WebP or TIFF"
# The file names of those formats, for looking through folders.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
BOX = 20  # MNIST: the digit's longer side
FIELD = 28  # MNIST: the image side
STROKE = 2.0  # pixels: the thinnest stroke, in the 20-px box, that we let a digit have


@dataclass
class Preprocessed:
    pixels: torch.Tensor  # uint8 (28, 28), 0 = background, 255 = ink, as MNIST
    polarity: str  # "dark-on-light" or "light-on-dark": what the input looked like
    size: tuple[int, int]  # the input's width and height
    box: tuple[int, int, int, int]  # the ink's bounding box in the input (left, top, right, bottom)


def _formats() -> list[str]:
    Image.init()  # registers every plugin (MPO is not among the ones loaded first)
    return [f for f in FORMATS if f in Image.OPEN]


def _count_blocks(data: bytes, fmt: str) -> int:
    """What Pillow steps through one by one in Python before it reaches the pixels: a PNG's
    chunks, a GIF's blocks before its first picture, a JPEG's markers (and each stray or fill
    byte between them) before its first scan. The count stops just past MAX_BLOCKS, so that
    this walk is bounded too."""
    n = 0
    if fmt == "PNG":
        pos = 8  # after the signature: chunks of length, type, data, CRC
        while pos + 8 <= len(data) and n <= MAX_BLOCKS:
            n += 1
            if data[pos + 4:pos + 8] == b"IEND":
                break
            pos += 12 + struct.unpack_from(">I", data, pos)[0]
    elif fmt == "GIF" and len(data) > 13:
        pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)  # past the colour table
        while pos + 1 < len(data) and data[pos] == 0x21 and n <= MAX_BLOCKS:  # an extension
            pos += 2
            while pos < len(data) and n <= MAX_BLOCKS:  # its sub-blocks, up to an empty one
                n += 1
                size = data[pos]
                pos += 1 + size
                if size == 0:
                    break
    elif fmt == "JPEG":
        pos = 2  # after the start-of-image marker
        while pos + 3 < len(data) and n <= MAX_BLOCKS:
            n += 1
            marker = data[pos + 1] if data[pos] == 0xFF else None
            if marker == 0xDA:  # start of scan: the rest is coded data, read by libjpeg
                break
            if marker is None or marker in (0x00, 0xFF):  # a stray byte, or fill before a marker
                pos += 1
            elif 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
                pos += 2
            else:
                pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return n


def read_file(path: str | Path, label: str) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES (not a device, pipe or folder)."""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise ImageError(f"{label}: is a folder")
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"{label}: not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            raise ImageError(f"{label}: {st.st_size:,} bytes, over the limit of {MAX_FILE_BYTES:,}")
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ImageError(f"{label}: cannot read: {e.strerror or e}") from None
    if len(data) > MAX_FILE_BYTES:  # it grew while we read it
        raise ImageError(f"{label}: over the limit of {MAX_FILE_BYTES:,} bytes")
    return data


def check_size(w: int, h: int, label: str) -> None:
    """Refuse an image too large to decode, too small to hold a digit, or too long and thin
    to be a picture of writing."""
    if w * h > MAX_PIXELS:
        raise ImageError(f"{label}: {w}x{h} is {w * h:,} pixels, over the limit of {MAX_PIXELS:,}")
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"{label}: {w}x{h} is too small to hold a digit")
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise ImageError(f"{label}: {w}x{h} is too long and thin to be a picture of writing")


def open_image(source: str | Path | bytes, name: str | None = None) -> Image.Image:
    """Open and decode an image, refusing empty, foreign, truncated, huge or odd-shaped files.

    The work has a ceiling: the size is checked from the header before decoding, and a JPEG
    is decoded straight at a reduced scale when it is much larger than the working size.
    The input's own size is then kept in `img.info["digitos_size"]`.
    """
    label = name or (str(source) if not isinstance(source, bytes) else "image")
    data = source if isinstance(source, bytes) else read_file(source, label)
    if not data:
        raise ImageError(f"{label}: empty file")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{label}: {len(data):,} bytes, over the limit of {MAX_FILE_BYTES:,}")
    # Counted before Pillow opens the file: opening is what walks them.
    fmt = ("PNG" if data[:8] == b"\x89PNG\r\n\x1a\n" else "GIF" if data[:6] in GIF_SIGNATURES
           else "JPEG" if data[:2] == b"\xff\xd8" else "")
    if fmt and _count_blocks(data, fmt) > MAX_BLOCKS:
        raise ImageError(f"{label}: a {fmt} of more than {MAX_BLOCKS:,} chunks (a drawing has a few)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's asides on odd files: not the user's concern
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=_formats())
            w, h = img.size
            check_size(w, h, label)
            if img.format in ("JPEG", "MPO"):
                # Every start-of-scan marker: its two bytes never occur inside coded data (an
                # 0xFF there is followed by 0x00 or a restart). A thumbnail's scans, or the
                # two bytes by chance in metadata, count too: a few more at most.
                scans = data.count(b"\xff\xda")
                if scans > MAX_JPEG_SCANS:
                    raise ImageError(f"{label}: a JPEG of {scans:,} scans, over the limit of "
                                     f"{MAX_JPEG_SCANS} (a photo or a drawing has a few)")
            if img.format == "BMP" and img.info.get("compression") in (1, 2):  # RLE8, RLE4
                if len(data) > MAX_RLE_BYTES or (img.info["compression"] == 2
                                                 and w * h > MAX_RLE4_PIXELS):
                    raise ImageError(f"{label}: a run-length BMP this large is not read (save "
                                     "it as PNG)")
            # An animated GIF or WebP, or a TIFF of many pages, is read by its first frame,
            # where opening leaves it. Never ask for `n_frames`: Pillow walks every frame to
            # count them, and a 2 MB TIFF of 20,000 tiny pages took 5 s.
            if img.format in ("JPEG", "MPO") and max(w, h) >= 2 * WORK_SIDE:
                # Decode straight at 1/2, 1/4 or 1/8, in grey, no smaller than the working size.
                img.draft("L", (w * WORK_SIDE // max(w, h), h * WORK_SIDE // max(w, h)))
            img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{label}: too many pixels (over {MAX_PIXELS:,})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{label}: not an image ({FORMAT_NAMES})") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
        raise ImageError(f"{label}: truncated or damaged image ({e})") from None
    try:
        orientation = img.getexif().get(0x0112, 1)  # phones store rotation in EXIF
        if orientation != 1:
            img = ImageOps.exif_transpose(img)  # a copy: only when there is something to turn
    except Exception:  # a broken EXIF block should not cost the reading
        orientation = 1
    turned = orientation in (5, 6, 7, 8)
    img.info["digitos_size"] = (h, w) if turned else (w, h)
    return img


def _dilate(ink: torch.Tensor, k: int) -> torch.Tensor:
    """Grey dilation by a k x k square (two running maxima)."""
    return torch.from_numpy(ndimage.maximum_filter(ink.numpy(), size=k, mode="constant"))


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


LINE_HEIGHT = 32  # a line reader's input: the writing's rows scaled to this height...
LINE_INK = 24  # ...its ink to this many of them, centred
LINE_MARGIN = 4  # columns of paper either side
LINE_WIDEST = 640  # columns at most (about 20 digits): a longer line is squeezed


def line_to_input(crop: np.ndarray) -> torch.Tensor:
    """One line's ink strengths (float, cropped to its box) -> uint8 (LINE_HEIGHT, W), ink 255:
    the ink scaled to LINE_INK rows keeping its aspect, its thin strokes thickened as a digit's
    are (`digit_to_mnist`), centred in LINE_HEIGHT rows with LINE_MARGIN columns either side."""
    t = torch.from_numpy(np.ascontiguousarray(crop, dtype=np.float32))
    mask = t >= INK_LEVEL
    rows = torch.nonzero(mask.any(1)).flatten()
    cols = torch.nonzero(mask.any(0)).flatten()
    t = t[int(rows[0]): int(rows[-1]) + 1, int(cols[0]): int(cols[-1]) + 1]
    scale = LINE_INK / t.shape[0]
    width = stroke_width(mask)
    if width * scale < STROKE * LINE_INK / BOX:
        k = int(round(STROKE * LINE_INK / BOX / scale - width))
        if k >= 1:
            k += 1 - k % 2
            t = _dilate(t, k)
    new_w = min(LINE_WIDEST - 2 * LINE_MARGIN, max(1, round(t.shape[1] * scale)))
    small = F.interpolate(t[None, None], size=(LINE_INK, new_w), mode="bilinear",
                          antialias=True, align_corners=False)[0, 0].clamp_(0, 1)
    small = small / small.max().clamp(min=1e-6)
    top = (LINE_HEIGHT - LINE_INK) // 2
    out = torch.zeros(LINE_HEIGHT, new_w + 2 * LINE_MARGIN)
    out[top: top + LINE_INK, LINE_MARGIN: LINE_MARGIN + new_w] = small
    return (out * 255).round().to(torch.uint8)


def to_mnist(img: Image.Image, name: str = "image") -> Preprocessed:
    """A decoded image in MNIST's form (uint8 28x28, ink = 255), all its writing as one digit."""
    found = find_ink(img, name)
    group = join(find_groups(found, name))
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
