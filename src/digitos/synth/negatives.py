"""Images that are not digits, in MNIST's form: what the "not a digit" class learns from.

A softmax over ten digits has to name a digit for anything, so a horse reads as a 3 at 100%.
A model trained with an eleventh class, shown clothes (Fashion-MNIST's training split),
letters and signs rendered from fonts, and synthetic strokes and shapes (scribbles, hatching,
grids, stars, spirals, blobs), learns to answer "not a digit" instead. Every image goes
through the same `digit_to_mnist` as a reading does, so the class sees what reading sees.

Letters that people write like digits (O, l, I, S, Z, B, G, b, q, g...) are left out: a
model told that an "S" is not a digit would doubt every 5.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..errors import DigitosError
from ..preprocess import digit_to_mnist

# Letters and signs unlike any digit (see the module's docstring for those left out).
GLYPHS = "ACEFHKMNRUVWXcfkmnprsuvwx#%&@*+=?πλΣΩ∞÷αβ"


def _fonts() -> list[Path]:
    """The TrueType fonts matplotlib ships (always installed with digitos): DejaVu, Computer
    Modern and STIX."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return sorted(f for f in folder.glob("*.ttf")
                  if f.name.startswith(("DejaVu", "cm", "STIXGeneral"))
                  and not f.name.startswith(("cmex", "cmsy", "DejaVuSansDisplay",
                                             "DejaVuSerifDisplay")))


def training_fonts() -> list[Path]:
    """DejaVu and Computer Modern: the fonts training uses."""
    return [f for f in _fonts() if not f.name.startswith("STIX")]


def held_out_fonts() -> list[Path]:
    """STIX: fonts no training sees, for measuring rejection on letters never shown."""
    return [f for f in _fonts() if f.name.startswith("STIX")]


def _to_mnist(canvas: Image.Image) -> torch.Tensor | None:
    """A drawn canvas (ink = 255 on 0) in MNIST's form, or None if nothing is on it."""
    ink = np.asarray(canvas, dtype=np.float32) / 255
    ys, xs = np.nonzero(ink >= 0.5)
    if len(ys) == 0:
        return None
    crop = ink[max(ys.min() - 1, 0): ys.max() + 2, max(xs.min() - 1, 0): xs.max() + 2]
    return digit_to_mnist(crop)


def letters(n: int, seed: int = 0, fonts: list[Path] | None = None) -> torch.Tensor:
    """n letters and signs from fonts, tilted and sheared a little: uint8 (n, 28, 28)."""
    rng = np.random.default_rng(seed)
    fonts = fonts if fonts is not None else training_fonts()
    loaded = [ImageFont.truetype(str(f), 72) for f in fonts]
    out = []
    while len(out) < n:
        font = loaded[int(rng.integers(len(loaded)))]
        glyph = GLYPHS[int(rng.integers(len(GLYPHS)))]
        pixels = drawn_glyph(glyph, font, rng, side=160, at=(40, 20), shear=0.3, tilt=15)
        if pixels is not None:
            out.append(pixels)
    return torch.stack(out) if out else torch.zeros(0, 28, 28, dtype=torch.uint8)


def drawn_glyph(text: str, font: ImageFont.FreeTypeFont, rng: np.random.Generator, side: int,
                at: tuple[int, int], shear: float, tilt: float) -> torch.Tensor | None:
    """`text` drawn in `font` at `at` on a `side`-px canvas, with a pen up to 3 px bolder now
    and then, sheared by up to `shear` and tilted by up to `tilt` degrees either way, in
    MNIST's form; None if nothing is left on the canvas."""
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    draw.text(at, text, fill=255, font=font, stroke_width=int(rng.integers(0, 4)), stroke_fill=255)
    s = float(rng.uniform(-shear, shear))
    canvas = canvas.transform(canvas.size, Image.AFFINE, (1, s, -s * side / 2, 0, 1, 0),
                              resample=Image.BILINEAR)
    canvas = canvas.rotate(float(rng.uniform(-tilt, tilt)), resample=Image.BILINEAR)
    return _to_mnist(canvas)


def _points(rng: np.random.Generator, kind: str) -> list[list[tuple[float, float]]]:
    """Polylines of one shape, in a 0-100 square."""
    c = 50.0
    if kind == "scribble":  # a random walk that keeps turning
        p, angle, pts = np.array([c, c]), rng.uniform(0, 2 * math.pi), []
        for _ in range(int(rng.integers(20, 50))):
            angle += rng.normal(0, 1.2)
            p = np.clip(p + 12 * np.array([math.cos(angle), math.sin(angle)]), 5, 95)
            pts.append(tuple(p))
        return [pts]
    if kind == "zigzag":
        k = int(rng.integers(4, 9))
        return [[(10 + 80 * i / k, 20 if i % 2 else 80) for i in range(k + 1)]]
    if kind == "hatch":
        k, a = int(rng.integers(3, 7)), rng.uniform(0, math.pi)
        d = np.array([math.cos(a), math.sin(a)]) * 45
        nrm = np.array([-math.sin(a), math.cos(a)])
        return [[tuple(c + off * nrm - d), tuple(c + off * nrm + d)]
                for off in np.linspace(-35, 35, k)]
    if kind == "grid":
        rows, cols = int(rng.integers(2, 5)), int(rng.integers(2, 5))
        return ([[(10, y), (90, y)] for y in np.linspace(15, 85, rows)]
                + [[(x, 10), (x, 90)] for x in np.linspace(15, 85, cols)])
    if kind == "star":
        k = int(rng.choice([5, 7]))
        step = 2 if k == 5 else 3
        pts = [(c + 45 * math.sin(2 * math.pi * i * step / k),
                c - 45 * math.cos(2 * math.pi * i * step / k)) for i in range(k + 1)]
        return [pts]
    if kind == "spiral":
        turns = rng.uniform(2, 4)
        t = np.linspace(0, 2 * math.pi * turns, 120)
        r = 45 * t / t[-1]
        return [list(zip(c + r * np.cos(t), c + r * np.sin(t), strict=True))]
    if kind == "wave":
        periods = rng.uniform(2.5, 5)
        x = np.linspace(5, 95, 100)
        return [list(zip(x, c + 25 * np.sin(x / 90 * 2 * math.pi * periods), strict=True))]
    if kind == "house":
        return [[(20, 90), (20, 45), (50, 10), (80, 45), (80, 90), (20, 90), (80, 45)],
                [(20, 45), (80, 45)]]
    if kind == "face":  # a circle with eyes and a mouth: not a 0
        t = np.linspace(0, 2 * math.pi, 60)
        circle = list(zip(c + 45 * np.cos(t), c + 45 * np.sin(t), strict=True))
        s = np.linspace(0.2 * math.pi, 0.8 * math.pi, 20)
        mouth = list(zip(c + 25 * np.cos(s), c + 5 + 20 * np.sin(s), strict=True))
        return [circle, mouth, [(35, 35), (37, 37)], [(63, 35), (65, 37)]]
    if kind == "arrow":
        return [[(10, c), (90, c)], [(65, 25), (90, c), (65, 75)]]
    raise ValueError(kind)


# No filled blobs: a bold 9 or 0 whose loop fills in looks just like one.
SHAPES = ("scribble", "zigzag", "hatch", "grid", "star", "spiral", "wave", "house", "face",
          "arrow", "cross")


def shapes(n: int, seed: int = 0) -> torch.Tensor:
    """n synthetic strokes and shapes, in random sizes, pens and angles: uint8 (n, 28, 28)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        kind = SHAPES[int(rng.integers(len(SHAPES)))]
        canvas = Image.new("L", (200, 200), 0)
        draw = ImageDraw.Draw(canvas)
        pen = int(rng.integers(3, 14))
        sx, sy = rng.uniform(0.6, 1.5), rng.uniform(0.6, 1.5)
        a = rng.uniform(-math.pi, math.pi)
        ca, sa = math.cos(a), math.sin(a)

        def place(p: tuple[float, float], sx=sx, sy=sy, ca=ca, sa=sa) -> tuple[float, float]:
            x, y = (p[0] - 50) * sx, (p[1] - 50) * sy
            return (100 + x * ca - y * sa, 100 + x * sa + y * ca)

        if kind == "cross":  # an X with more strokes than a digit has
            for _ in range(int(rng.integers(4, 8))):
                p, q = rng.uniform(5, 95, 2), rng.uniform(5, 95, 2)
                draw.line([place(tuple(p)), place(tuple(q))], fill=255, width=pen)
        else:
            for line in _points(rng, kind):
                draw.line([place(p) for p in line], fill=255, width=pen, joint="curve")
        pixels = _to_mnist(canvas)
        if pixels is not None:
            out.append(pixels)
    return torch.stack(out) if out else torch.zeros(0, 28, 28, dtype=torch.uint8)


def fashion_images(part: str = "train") -> torch.Tensor | None:
    """Fashion-MNIST's images (`part`: train or test) from where it is installed (Debian's
    dataset-fashion-mnist) or cached, never downloaded; None when it is nowhere.

    $DIGITOS_DATA_DIR is not looked in: it usually holds MNIST."""
    from ..datasets import default_cache_dir, get_spec, load_dataset

    spec = get_spec("fashion-mnist")
    for folder in (*spec.default_dirs, default_cache_dir()):
        if not Path(folder).is_dir():
            continue
        try:
            data = load_dataset("fashion-mnist", folder, download_missing=False, progress=False)
        except DigitosError:
            continue
        return data.train.images if part == "train" else data.test.images
    return None


def clothes(images: torch.Tensor) -> torch.Tensor:
    """Fashion-MNIST images (or any 28x28 uint8 objects) brought to digits' form: the object
    cropped, fitted into the 20-px box and centred by mass, as a reading would see a drawing."""
    out = []
    for img in images:
        pixels = _to_mnist(Image.fromarray(img.numpy()))
        if pixels is not None:
            out.append(pixels)
    return torch.stack(out) if out else torch.zeros(0, 28, 28, dtype=torch.uint8)


def _ink_crop(digit: torch.Tensor) -> np.ndarray:
    """An MNIST digit cropped to its ink, as floats in [0, 1]."""
    a = digit.numpy().astype(np.float32) / 255
    ys, xs = np.nonzero(a > 0.2)
    return a[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]


def pairs(digits: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """n images of two digits side by side, touching or overlapping: what two digits look like
    when they are read as one. Teaching the model they are not one digit is what lets reading
    tell a good cut between touching digits from none. uint8 (n, 28, 28)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        a, b = (_ink_crop(digits[int(i)]) for i in rng.integers(len(digits), size=2))
        h = max(a.shape[0], b.shape[0])
        shift = int(rng.uniform(-0.35, 0.05) * min(a.shape[1], b.shape[1]))  # < 0: overlap
        w = a.shape[1] + b.shape[1] + shift
        canvas = np.zeros((h, max(w, a.shape[1], b.shape[1])), np.float32)
        ya, yb = (int(rng.integers(0, h - x.shape[0] + 1)) for x in (a, b))
        canvas[ya: ya + a.shape[0], : a.shape[1]] = a
        x = max(0, a.shape[1] + shift)
        region = canvas[yb: yb + b.shape[0], x: x + b.shape[1]]
        np.maximum(region, b[:, : region.shape[1]], out=region)
        out.append(digit_to_mnist(canvas))
    return torch.stack(out)


def make_negatives(n: int, seed: int = 0, fashion: torch.Tensor | None = None,
                   digits: torch.Tensor | None = None) -> torch.Tensor:
    """n not-a-digit images, shuffled, uint8 (n, 28, 28): clothes (when `fashion` images are
    given), letters, shapes, and pairs of `digits` (when given), in equal parts.

    Digits cut in the wrong place were tried as well and left out: too many of the pieces are
    fair digits themselves (the right half of an 8 is a 3)."""
    g = torch.Generator().manual_seed(seed)
    kinds = 3 + (fashion is not None) + (digits is not None)
    each = n // kinds
    parts = [letters(each, seed), shapes(each, seed + 1)]
    if fashion is not None:
        pick = torch.randperm(len(fashion), generator=g)[:each]
        parts.append(clothes(fashion[pick]))
    if digits is not None:
        parts.append(pairs(digits, each, seed + 2))
    parts.append(shapes(n - each * (len(parts)), seed + 4))
    out = torch.cat(parts)
    return out[torch.randperm(len(out), generator=g)]


HELD_OUT_SEED = 1_500_000  # the evaluation's non-digits: a seed no training draws from


def held_out(n: int, seed: int = HELD_OUT_SEED) -> torch.Tensor:
    """Non-digits no training saw, in MNIST's form, for measuring the not-a-digit class: n
    letters in fonts training never uses, n shapes of an unseen seed and, when Debian's
    Fashion-MNIST is installed, n of its *test* clothes. uint8 (2n or 3n, 28, 28)."""
    parts = [letters(n, seed, fonts=held_out_fonts()), shapes(n, seed + 1)]
    fashion = fashion_images("test")
    if fashion is not None:
        parts.append(clothes(fashion[:n]))
    return torch.cat(parts)
