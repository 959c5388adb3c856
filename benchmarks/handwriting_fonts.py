"""How well digitos reads numbers in fonts made from people's handwriting, one font at a time.

    apt-get install -y fonts-bwht fonts-breip fonts-cabinsketch fonts-comic-neue \\
        fonts-dancingscript fonts-dkg-handwriting fonts-ecolier-court fonts-femkeklaver \\
        fonts-humor-sans fonts-kaushanscript fonts-klee fonts-kristi fonts-rufscript fonts-seto
    python benchmarks/handwriting_fonts.py [-n 100] [--checkpoint CKPT] [--errors]

Debian packages fonts drawn from real hands: six writers of the "Because We Had To" project,
Daniel Kahn Gillmor's hand in four cuts, a French school's cursive with its hairlines, felt-tip
and brush scripts, comic lettering. No training sees them (training draws letters in DejaVu
and Computer Modern, digits from MNIST): they are other people's styles, held out. Each font
writes n numbers of 1-6 random digits at 24-120 px, black on white with a margin of half the
size, saved as a PNG; a number counts only when read exactly. Fonts not installed are skipped
and named.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digitos.predict import load_reader, read_image
from digitos.preprocess import ImageError
from digitos.synth import BENCHMARK_SEEDS

FONTS = "/usr/share/fonts"
# (package, font file under FONTS): each cut its own row.
HANDS = [
    ("fonts-bwht", "opentype/bwht/BecauseWeBuild-Regular.otf"),
    ("fonts-bwht", "opentype/bwht/BecauseWeConnect-Regular.otf"),
    ("fonts-bwht", "opentype/bwht/BecauseWeCreate-Regular.otf"),
    ("fonts-bwht", "opentype/bwht/BecauseWeLearn-Regular.otf"),
    ("fonts-bwht", "opentype/bwht/BecauseWeMentor-Regular.otf"),
    ("fonts-bwht", "opentype/bwht/BecauseWeOrganize-Regular.otf"),
    ("fonts-breip", "truetype/breip/Breip.ttf"),
    ("fonts-cabinsketch", "truetype/cabinsketch/CabinSketch-Regular.ttf"),
    ("fonts-comic-neue", "opentype/comic-neue/ComicNeue-Regular.otf"),
    ("fonts-dancingscript", "opentype/dancingscript/DancingScript-Regular.otf"),
    ("fonts-dkg-handwriting", "truetype/fifthhorseman/dkg.ttf"),
    ("fonts-dkg-handwriting", "truetype/fifthhorseman/dkgBd.ttf"),
    ("fonts-dkg-handwriting", "truetype/fifthhorseman/dkgIt.ttf"),
    ("fonts-dkg-handwriting", "truetype/fifthhorseman/dkgBI.ttf"),
    ("fonts-ecolier-court", "truetype/ecolier-court/Ecolier-court.ttf"),
    ("fonts-femkeklaver", "truetype/femkeklaver/femkeklaver.ttf"),
    ("fonts-humor-sans", "truetype/humor-sans/Humor-Sans.ttf"),
    ("fonts-kaushanscript", "opentype/kaushanscript/KaushanScript-Regular.otf"),
    ("fonts-klee", "truetype/klee/KleeOne-Regular.ttf"),
    ("fonts-kristi", "truetype/kristi/Kristi.ttf"),
    ("fonts-rufscript", "truetype/rufscript/Rufscript010.ttf"),
    ("fonts-seto", "truetype/seto/setofont.ttf"),
]


def written(text: str, font_file: Path, size: int) -> bytes:
    """`text` in the font at `size` px, black on white, half the size of margin all round."""
    font = ImageFont.truetype(str(font_file), size)
    left, top, right, bottom = font.getbbox(text)
    img = Image.new("L", (right - left + size, bottom - top + size), 255)
    ImageDraw.Draw(img).text((size // 2 - left, size // 2 - top), text, font=font, fill=0)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default=None, help="default: the shipped model")
    ap.add_argument("-n", type=int, default=100, help="numbers per font (default: %(default)s)")
    ap.add_argument("--errors", action="store_true", help="list the numbers read wrong")
    args = ap.parse_args()

    present = [(p, Path(FONTS, f)) for p, f in HANDS if Path(FONTS, f).exists()]
    missing = sorted({p for p, f in HANDS if not Path(FONTS, f).exists()})
    if missing:
        print(f"not installed, skipped: {' '.join(missing)}")
    if not present:
        raise SystemExit("no handwriting font installed: apt-get install the packages above")
    reader = load_reader(args.checkpoint)
    rng = np.random.default_rng(BENCHMARK_SEEDS + 800)
    print(f"model: {reader.meta['model']}  numbers per font: {args.n}")
    rates, nothing, seconds = [], 0, 0.0
    for _, font_file in present:
        right = 0
        for _ in range(args.n):
            text = "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(1, 7))))
            data = written(text, font_file, int(rng.integers(24, 121)))
            t0 = time.perf_counter()
            try:
                result = read_image(reader, data)
                read = "?" if result.not_a_digit else result.number
            except ImageError:
                read = "?"
            seconds += time.perf_counter() - t0
            right += read == text
            nothing += read == "?"
            if args.errors and read != text:
                print(f"  {font_file.stem}: {text} read as {read}")
        rates.append(100 * right / args.n)
        print(f"  {font_file.stem:28} {rates[-1]:6.2f}%", flush=True)
    count = len(rates) * args.n
    print(f"  mean of {len(rates)} fonts {sum(rates) / len(rates):6.2f}%")
    print(f"  answered 'not a digit': {100 * nothing / count:.2f}%  ({nothing}/{count})")
    print(f"{1000 * seconds / count:.1f} ms per number")


if __name__ == "__main__":
    main()
