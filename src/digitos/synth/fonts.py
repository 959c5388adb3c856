"""Digits in fonts drawn from people's handwriting: other hands than MNIST's writers'.

MNIST's 250 writers were Americans of one census office and one school; the world writes a 1
with a flag, an 8 as two strokes that do not close, a 4 open at the top, a 9 with a straight
stem, in a pen from a hairline to a brush. Handwriting fonts are people's hands, each drawn
once: Google's open handwriting families, as the Fontsource project packages them for npm.
Each font's ten digits are drawn here in random sizes, slants, tilts and pens and brought to
MNIST's form, for training to learn the shapes that MNIST lacks (`digitos train --font-digits`).

The fonts are not shipped with digitos; they are fetched once with npm into a folder:

    npm install --prefix ~/.cache/digitos/fonts $(python -m digitos.synth.fonts)

Some families are kept apart for measuring (DEV_FONTS), and none of the fonts that
`benchmarks/handwriting_fonts.py` measures with (Debian's packages) is among them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import ImageFont

# Fontsource's handwriting families, each one person's hand (or a school's model of one).
FONTS = (
    "allura", "annie-use-your-telescope", "architects-daughter", "bad-script",
    "calligraffitti", "caveat", "caveat-brush", "cedarville-cursive", "charm", "chilanka",
    "comforter", "coming-soon", "courgette", "covered-by-your-grace", "crafty-girls",
    "dawning-of-a-new-day", "delius", "delius-swash-caps", "edu-nsw-act-foundation",
    "edu-qld-beginner", "edu-sa-beginner", "edu-tas-beginner", "edu-vic-wa-nt-beginner",
    "fuzzy-bubbles", "gaegu", "gamja-flower", "give-you-glory", "gloria-hallelujah",
    "gochi-hand", "grape-nuts", "great-vibes", "handlee", "hi-melody", "homemade-apple",
    "indie-flower", "itim", "just-another-hand", "just-me-again-down-here", "kalam",
    "kavivanar", "kite-one", "la-belle-aurore", "liu-jian-mao-cao", "long-cang",
    "loved-by-the-king", "ma-shan-zheng", "mali", "marck-script", "meddon", "merienda",
    "mr-dafoe", "mynerve", "nanum-brush-script", "nanum-pen-script", "neucha",
    "nothing-you-could-do", "nova-script", "oooh-baby", "over-the-rainbow", "pangolin",
    "patrick-hand", "permanent-marker", "playpen-sans", "rancho", "reenie-beanie",
    "rock-salt", "sacramento", "satisfy", "schoolbell", "sedgwick-ave", "sedgwick-ave-display",
    "shadows-into-light", "shadows-into-light-two", "shantell-sans", "short-stack",
    "single-day", "square-peg", "sriracha", "sue-ellen-francisco", "swanky-and-moo-moo",
    "the-girl-next-door", "unkempt", "vibur", "waiting-for-the-sunrise", "walter-turncoat",
    "yellowtail", "yomogi", "zen-kurenaido", "zeyada", "zhi-mang-xing",
)
# Kept out of training, for measuring how well unseen hands are read.
DEV_FONTS = ("caveat", "edu-sa-beginner", "homemade-apple", "indie-flower", "kalam",
             "la-belle-aurore", "nothing-you-could-do", "patrick-hand", "permanent-marker",
             "shadows-into-light")
TRAINING_FONTS = tuple(f for f in FONTS if f not in DEV_FONTS)


def fonts_dir() -> Path:
    """Where the fonts were installed: $DIGITOS_FONTS_DIR, or `fonts` in digitos's cache
    (~/.cache/digitos/fonts)."""
    from ..datasets import default_cache_dir

    return Path(os.environ.get("DIGITOS_FONTS_DIR") or default_cache_dir() / "fonts")


def font_files(names: tuple[str, ...] | None = None, folder: Path | None = None) -> list[Path]:
    """The installed font file (regular weight, Latin) of each family named (default: the
    training fonts); missing ones are left out."""
    names = TRAINING_FONTS if names is None else names
    root = (folder or fonts_dir()) / "node_modules" / "@fontsource"
    out = []
    for name in names:
        files = root / name / "files"
        found = (sorted(files.glob("*-latin-400-normal.woff"))
                 or sorted(files.glob("*-latin-*-normal.woff")))
        if found:
            out.append(found[0])
    return out


def install_command(folder: Path | None = None) -> str:
    """The npm command that fetches every family."""
    return (f"npm install --prefix {folder or fonts_dir()} "
            + " ".join(f"@fontsource/{name}" for name in FONTS))


def font_digits(n: int, seed: int = 0, fonts: list[Path] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """n digits, each drawn in a random font of `fonts` (default: the training fonts), a
    random pen (up to 3 px bolder at 96 px), slant (shear of ±0.35) and tilt (±12 degrees),
    in MNIST's form: (uint8 (n, 28, 28), int64 labels). Empty when no font is installed."""
    from .negatives import drawn_glyph

    fonts = font_files() if fonts is None else fonts
    if not fonts or n <= 0:
        return torch.zeros(0, 28, 28, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64)
    rng = np.random.default_rng(seed)
    loaded = [ImageFont.truetype(str(f), 96) for f in fonts]
    images, labels = [], []
    while len(images) < n:
        font = loaded[int(rng.integers(len(loaded)))]
        digit = int(rng.integers(10))
        pixels = drawn_glyph(str(digit), font, rng, side=220, at=(60, 30), shear=0.35, tilt=12)
        if pixels is not None:
            images.append(pixels)
            labels.append(digit)
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


def installed_font_digits(n: int, seed: int, log: Callable[[str], None]
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """`font_digits` in the installed training fonts, saying how many were drawn; without
    fonts, none, and saying how to fetch them (training goes on without)."""
    fonts = font_files()
    if not fonts:
        log(f"no handwriting fonts in {fonts_dir()}: training goes on without font digits; "
            f"fetch them with: {install_command()}")
        return font_digits(0)
    images, labels = font_digits(n, seed, fonts)
    log(f"font digits: {len(images):,} digits in {len(fonts)} handwriting fonts added")
    return images, labels


if __name__ == "__main__":  # the package names, for npm
    print(" ".join(f"@fontsource/{name}" for name in (FONTS if len(sys.argv) < 2 else sys.argv[1:])))
