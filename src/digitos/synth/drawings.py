"""MNIST digits re-rendered the way people save drawings, to measure reading real drawings.

Each MNIST test digit is enlarged onto a big canvas, its pen made thinner or thicker, placed
off-centre, drawn dark on white (sometimes light on dark), maybe blurred, and saved as PNG,
JPEG or a transparent PNG. A model that reads these as well as MNIST itself reads drawings.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

FORMATS = ("png", "jpeg", "transparent-png")


@dataclass
class Drawing:
    data: bytes  # the saved file
    format: str
    label: int
    size: tuple[int, int]


def _morph(mask: torch.Tensor, k: int, grow: bool) -> torch.Tensor:
    """Binary dilation (grow) or erosion of a (H, W) float mask by a k x k square."""
    x = mask[None, None] if grow else 1 - mask[None, None]
    x = F.max_pool2d(x, k, stride=1, padding=k // 2)
    return x[0, 0] if grow else 1 - x[0, 0]


def render(digit: torch.Tensor, label: int, rng: np.random.Generator) -> Drawing:
    """One MNIST digit (uint8 28x28, ink 255) as a person's saved drawing."""
    side = int(rng.integers(56, 320))  # the 28x28 field's size on the canvas, in pixels
    big = F.interpolate(digit.float()[None, None] / 255, size=(side, side), mode="bicubic",
                        align_corners=False)[0, 0].clamp(0, 1)
    mask = (big > 0.5).float()
    # MNIST strokes are about 1/10 of the field: change the pen by up to +/- a third.
    pen = max(1, int(round(side / 10 * rng.uniform(0.0, 0.33))))
    k = pen + 1 - pen % 2
    style = rng.choice(["thin", "same", "thick"])
    if style == "thin" and k > 1:
        thinner = _morph(mask, k, grow=False)
        if thinner.sum() > 0.3 * mask.sum():  # do not erase whole strokes
            mask = thinner
    elif style == "thick":
        mask = _morph(mask, k, grow=True)
    ink = mask.numpy()

    w = int(rng.integers(side + 20, max(side + 21, 900)))
    h = int(rng.integers(side + 20, max(side + 21, 700)))
    canvas = np.zeros((h, w), dtype=np.float32)
    y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
    canvas[y:y + side, x:x + side] = ink
    img = Image.fromarray((canvas * 255).astype(np.uint8))
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.5))))
    img = img.filter(ImageFilter.SMOOTH)  # anti-aliased edges, as drawing programs make them
    a = np.asarray(img, dtype=np.float32) / 255  # ink coverage per pixel

    fmt = str(rng.choice(FORMATS))
    ink_rgb = np.array(rng.integers(0, 90, 3), dtype=np.float32)  # dark pen: black, blue, grey
    paper_rgb = np.array(rng.integers(225, 256, 3), dtype=np.float32)
    if fmt == "transparent-png":
        rgba = np.zeros((h, w, 4), dtype=np.uint8)
        rgba[..., :3] = ink_rgb.astype(np.uint8)
        rgba[..., 3] = (a * 255).astype(np.uint8)
        out = Image.fromarray(rgba)  # RGBA
    else:
        if rng.random() < 0.1:  # chalk on a blackboard
            ink_rgb, paper_rgb = paper_rgb, 255 - paper_rgb
        rgb = paper_rgb * (1 - a[..., None]) + ink_rgb * a[..., None]
        rgb += rng.normal(0, 3, rgb.shape).astype(np.float32)  # paper and sensor noise
        out = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    if fmt == "jpeg":
        out.save(buf, format="JPEG", quality=int(rng.integers(50, 95)))
    else:
        out.save(buf, format="PNG", compress_level=1)  # the same pixels, 3x faster to write
    return Drawing(buf.getvalue(), fmt, label, (w, h))


def render_small(digit: torch.Tensor, label: int, side: int, crisp: bool = False) -> Drawing:
    """One MNIST digit (uint8 28x28, ink 255) saved as a small side x side drawing: dark on
    white, as a person drawing on a tiny canvas saves it. `crisp`: every pixel ink or paper,
    as Paint's pencil draws, with no anti-aliasing."""
    img = Image.fromarray(255 - digit.numpy()).resize((side, side), Image.Resampling.BILINEAR)
    if crisp:
        img = img.point(lambda v: 0 if v < 128 else 255)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return Drawing(buf.getvalue(), "small-png", label, (side, side))


def render_set(images: torch.Tensor, labels: torch.Tensor, seed: int = 0):
    """Yield a Drawing for each (image, label), reproducibly."""
    rng = np.random.default_rng(seed)
    for img, label in zip(images, labels.tolist(), strict=True):
        yield render(img, label, rng)


@dataclass
class NumberDrawing:
    data: bytes  # the saved file
    format: str
    number: str  # the digits drawn, left to right
    touching: bool  # whether any two neighbours touch or overlap


def render_number(digits: torch.Tensor, labels: list[int], rng: np.random.Generator,
                  touch: float = 0.2) -> NumberDrawing:
    """Several MNIST digits (uint8 (k, 28, 28)) written side by side as one drawing.

    Each digit gets its own size and baseline (handwriting wanders); the gaps vary, and with
    probability `touch` a neighbour is pushed into its left neighbour until their ink meets.
    Dark ink on white paper, with paper noise, saved as PNG or JPEG.
    """
    height = int(rng.integers(50, 140))  # the digits' height on the canvas, in pixels
    pieces = []
    for d in digits:
        ys, xs = torch.nonzero(d > 40, as_tuple=True)
        crop = d[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1].float()[None, None] / 255
        h = max(8, int(height * rng.uniform(0.85, 1.15)))
        w = max(3, int(round(crop.shape[3] * h / crop.shape[2])))
        pieces.append(F.interpolate(crop, size=(h, w), mode="bilinear",
                                    align_corners=False)[0, 0].clamp(0, 1).numpy())
    margin = height // 2
    width = margin * 2 + sum(p.shape[1] for p in pieces) + height * len(pieces)
    canvas = np.zeros((height * 2 + margin * 2, width), dtype=np.float32)
    x, touching = margin, False
    for i, p in enumerate(pieces):
        y = margin + height // 2 + int(rng.normal(0, 0.08 * height)) + (height - p.shape[0]) // 2
        y = int(np.clip(y, 0, canvas.shape[0] - p.shape[0]))
        if i and rng.random() < touch:  # slide left until the ink touches its neighbour
            while x > 0:
                region = canvas[y: y + p.shape[0], x - 1: x - 1 + p.shape[1]]
                if (np.minimum(region, p) > 0.3).any():
                    break
                x -= 1
            touching = True
        region = canvas[y: y + p.shape[0], x: x + p.shape[1]]
        np.maximum(region, p, out=region)
        x += p.shape[1] + int(rng.uniform(0.1, 0.6) * height)
    ys, xs = np.nonzero(canvas > 0)
    canvas = canvas[: ys.max() + margin, : xs.max() + margin]
    ink_rgb = np.array(rng.integers(0, 80, 3), dtype=np.float32)
    paper_rgb = np.array(rng.integers(220, 256, 3), dtype=np.float32)
    rgb = paper_rgb * (1 - canvas[..., None]) + ink_rgb * canvas[..., None]
    rgb += rng.normal(0, 3, rgb.shape).astype(np.float32)
    out = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    fmt = "jpeg" if rng.random() < 0.3 else "png"
    buf = io.BytesIO()
    out.save(buf, format="JPEG" if fmt == "jpeg" else "PNG",
             **({"quality": int(rng.integers(60, 95))} if fmt == "jpeg" else {}))
    return NumberDrawing(buf.getvalue(), fmt, "".join(str(v) for v in labels), touching)


def year_strokes() -> list[list[tuple[float, float]]]:
    """'2026' as pen strokes on the drawing page's wide pad (560x280), each digit's ink running
    into the next one's: what a browser test and the docs' picture of the page write."""
    def two(x0):
        return [[(x0 + 12, 95), (x0 + 35, 65), (x0 + 70, 62), (x0 + 92, 90), (x0 + 85, 130),
                 (x0 + 50, 175), (x0 + 15, 228), (x0 + 60, 228), (x0 + 132, 226)]]

    def zero(x0):
        return [[(x0 + 55 + 48 * math.sin(t / 16 * 2 * math.pi),
                  145 - 85 * math.cos(t / 16 * 2 * math.pi)) for t in range(17)]]

    def six(x0):
        return [[(x0 + 85, 62), (x0 + 50, 95), (x0 + 25, 150), (x0 + 25, 205), (x0 + 50, 232),
                 (x0 + 80, 225), (x0 + 92, 190), (x0 + 75, 160), (x0 + 45, 158), (x0 + 25, 185)]]

    return two(14) + zero(124) + two(214) + six(322)
