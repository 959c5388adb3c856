"""How few corrections teach the model a new writer: fine-tuning on 1, 3, 5 and 10 per digit.

    python benchmarks/own_handwriting.py --data-dir ../shared/data/mnist [--per-digit 1 3 5 10]

"Another writer" stands in for a user: the UCI handwritten digits bundled with scikit-learn
(8x8 scans of 43 people's digits, none of them in MNIST), enlarged into 160x160 drawings,
dark on white. They are split in two halves with a fixed seed; `digitos finetune` adapts the
shipped model to N drawings per digit from the first half, then the second half is read, and
the MNIST test set, before and after. Needs `pip install scikit-learn`. Not run in CI.

`--style flagged-ones` (or any style of digitos.synth.styles) stands in for a writer of that
style instead: MNIST *test* digits of its class redrawn in it and saved as drawings (a seed no
training uses); N of them are the corrections, 300 others are read.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from digitos.predict import SHIPPED_CHECKPOINT, load_reader, read_image


def uci_drawings(seed: int = 0) -> tuple[list[tuple[bytes, int]], list[tuple[bytes, int]]]:
    """The UCI digits as PNG drawings, split in two halves with a fixed seed."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    out = []
    for i in order:
        grey = 255 - (digits.images[i] / 16.0 * 255).astype(np.uint8)  # dark ink on white
        img = Image.fromarray(grey).resize((128, 128), Image.Resampling.BICUBIC)
        canvas = Image.new("L", (160, 160), 255)
        canvas.paste(img, (16, 16))
        buf = io.BytesIO()
        canvas.save(buf, format="PNG")
        out.append((buf.getvalue(), int(digits.target[i])))
    half = len(out) // 2
    return out[:half], out[half:]


def style_drawings(style: str, data_dir: str | None, seed: int = 0
                   ) -> tuple[list[tuple[bytes, int]], list[tuple[bytes, int]]]:
    """Test digits of the style's class redrawn in it and saved as drawings: 50 to pick
    corrections from, 300 to read."""
    from digitos.datasets import load_dataset
    from digitos.synth import BENCHMARK_SEEDS, STYLES, styled
    from digitos.synth.drawings import render

    digit = STYLES[style][0]
    test = load_dataset("mnist", data_dir, progress=False).test
    made = styled(test.images, test.labels, style, 350, BENCHMARK_SEEDS + 500 + seed)
    rng = np.random.default_rng(BENCHMARK_SEEDS + 600 + seed)
    out = [(render(d, digit, rng).data, digit) for d in made]
    return out[:50], out[50:]


def accuracy(checkpoint: str, drawings: list[tuple[bytes, int]]) -> float:
    reader = load_reader(checkpoint)
    right = 0
    for data, label in drawings:
        result = read_image(reader, data)
        right += result.number == str(label)
    return right / len(drawings)


def mnist_accuracy(checkpoint: str, data_dir: str) -> float:
    import json

    out = subprocess.run([sys.executable, "-m", "digitos", "evaluate", checkpoint, "--data-dir",
                          data_dir, "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["accuracy"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=os.environ.get("DIGITOS_DATA_DIR"))
    ap.add_argument("--per-digit", type=int, nargs="+", default=[1, 3, 5, 10])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT),
                    help="the model to start from (default: the shipped one)")
    ap.add_argument("--style", default=None, metavar="NAME",
                    help="a writer of this style (digitos.synth.styles) instead of the UCI digits")
    args = ap.parse_args()
    if args.style:
        first, second = style_drawings(args.style, args.data_dir, args.seed)
        writer = f"{args.style} (MNIST test digits redrawn)"
    else:
        first, second = uci_drawings(args.seed)
        writer = "UCI digits"
    shipped = args.checkpoint
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"{writer}: {len(first)} to pick from, {len(second)} to read")
    before = accuracy(shipped, second)
    mnist_before = mnist_accuracy(shipped, args.data_dir)
    print(f"before: second half {100 * before:.2f}%, MNIST test {100 * mnist_before:.2f}%")
    print("| per digit | second half | MNIST test | change | fine-tuning |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| 0 (shipped) | {100 * before:.2f}% | {100 * mnist_before:.2f}% | | |")
    with tempfile.TemporaryDirectory() as tmp:
        for k in args.per_digit:
            folder = Path(tmp) / f"k{k}"
            taken = {d: 0 for d in range(10)}
            for i, (data, label) in enumerate(first):
                if taken[label] < k:
                    (folder / str(label)).mkdir(parents=True, exist_ok=True)
                    (folder / str(label) / f"{i}.png").write_bytes(data)
                    taken[label] += 1
            out = Path(tmp) / f"run{k}"
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "digitos", "finetune", shipped, "--data",
                            str(folder), "--out", str(out), "--data-dir", args.data_dir,
                            "--quiet", "--seed", str(args.seed)],
                           check=True, capture_output=True)
            seconds = time.perf_counter() - t0
            after = accuracy(str(out / "best.pt"), second)
            mnist_after = mnist_accuracy(str(out / "best.pt"), args.data_dir)
            print(f"| {k} | {100 * after:.2f}% | {100 * mnist_after:.2f}% | "
                  f"{100 * (mnist_after - mnist_before):+.2f} | {seconds:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
