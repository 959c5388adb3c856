"""How well a model reads real-looking drawings, against how well it reads MNIST itself.

    python benchmarks/drawings_accuracy.py --data-dir ../shared/data/mnist [--checkpoint CKPT]
        [-n 10000] [--turn DEGREES] [--small SIDE [--crisp]] [--style flagged-ones|crossed-sevens]

Every MNIST *test* digit (or the first n) is re-rendered as a person's saved drawing
(digitos.synth.drawings: big canvas, off-centre, thinner or thicker pen, dark on white or chalk on
black, blur, PNG / JPEG / transparent PNG), read through digitos' preprocessing, and scored.
Also prints how long the preprocessing takes per image. `--turn 30` turns every digit 30
degrees clockwise before it is drawn (-30: anticlockwise), as a leaning hand or a photo taken
askew gives them. `--small 16` saves each digit instead as a 16x16 drawing, dark on white,
as someone drawing on a tiny canvas does (`--crisp`: ink or paper in every pixel, as Paint's
pencil draws). `--style flagged-ones` draws n of the test 1s with a flag, `--style
crossed-sevens` n of the test 7s with a bar through the stem, and so on for every style of
`digitos.synth.styles`, as much of the world, Spain among it, writes them; the same digits
without it are read too.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np
import torch
from PIL import Image

from digitos.datasets import load_dataset
from digitos.predict import load_reader
from digitos.preprocess import preprocess_file
from digitos.synth.drawings import render_set, render_small
from digitos.synth.styles import STYLES, styled


def preprocessed(drawings) -> tuple[torch.Tensor, list[str], float]:
    """Each drawing brought to MNIST's form: the 28x28s, the drawings' formats, and the seconds
    that took (decoding included)."""
    seen, formats, seconds = [], [], 0.0
    for i, drawing in enumerate(drawings):
        t0 = time.perf_counter()
        seen.append(preprocess_file(drawing.data).pixels)
        seconds += time.perf_counter() - t0
        formats.append(drawing.format)
        if (i + 1) % 1000 == 0:
            print(f"  {i + 1} drawings", flush=True)
    return torch.stack(seen), formats, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--checkpoint", default=None, help="default: the shipped model")
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--turn", type=float, default=0.0,
                    help="turn each digit this many degrees clockwise before drawing it")
    ap.add_argument("--small", type=int, default=0, metavar="SIDE",
                    help="save each digit as a SIDE x SIDE drawing instead (a tiny canvas)")
    ap.add_argument("--crisp", action="store_true",
                    help="with --small: every pixel ink or paper, no anti-aliasing")
    ap.add_argument("--style", choices=sorted(STYLES),
                    help="n test digits of the style's class redrawn in it, as drawings")
    args = ap.parse_args()

    reader = load_reader(args.checkpoint)
    data = load_dataset("mnist", args.data_dir)
    images, labels = data.test.images[: args.n], data.test.labels[: args.n]
    if args.style:
        digit = STYLES[args.style][0]
        plain = data.test.images[data.test.labels == digit][: args.n]
        images = styled(plain, torch.full((len(plain),), digit), args.style, len(plain),
                        seed=args.seed)
        labels = torch.full((len(images),), digit)
        # The same digits without the style, drawn the same way: what the style alone costs.
        plain_seen, _, _ = preprocessed(render_set(plain, labels, seed=args.seed))
        plain_ok = reader.probabilities(plain_seen).argmax(1) == labels
        print(f"{len(plain)} test {digit}s without the style, as drawings: "
              f"{100 * plain_ok.float().mean():.2f}%")
    mnist_ok = reader.probabilities(images).argmax(1) == labels
    if args.turn:  # a 20-px digit turned by up to 45 degrees still fits its 28-px field
        images = torch.stack([torch.from_numpy(np.array(
            Image.fromarray(d.numpy()).rotate(-args.turn, Image.Resampling.BILINEAR)))
            for d in images])

    if args.small:
        drawings = (render_small(d, int(c), args.small, args.crisp)
                    for d, c in zip(images, labels, strict=True))
    else:
        drawings = render_set(images, labels, seed=args.seed)
    seen, formats, prep_seconds = preprocessed(drawings)
    drawn_ok = reader.probabilities(seen).argmax(1) == labels

    n = len(labels)
    print(f"model: {reader.meta['model']}  images: {n}")
    print(f"MNIST test digits:      {100 * mnist_ok.float().mean():.2f}%")
    turned = f", turned {args.turn:g} degrees clockwise" if args.turn else ""
    small = f", {args.small}x{args.small}{' crisp' if args.crisp else ''}" if args.small else ""
    small += f", {args.style}" if args.style else ""
    print(f"the same, as drawings{turned}{small}:  {100 * drawn_ok.float().mean():.2f}%")
    counts = Counter(formats)
    for fmt in sorted(counts):
        mask = torch.tensor([f == fmt for f in formats])
        print(f"  {fmt:16} {100 * drawn_ok[mask].float().mean():6.2f}%  ({counts[fmt]} images)")
    print(f"preprocessing: {1000 * prep_seconds / n:.1f} ms per drawing (decode included)")


if __name__ == "__main__":
    main()
