"""How well digitos reads real drawings and photos by other people, by kind.

    python benchmarks/wild_accuracy.py [--wild-dir ../shared/data/wild-dev] [--checkpoint CKPT] [--errors]

`../shared/data/wild-dev` holds 373 single digits from 22 public repositories (see its README):
`paint` (drawn on a computer), `photo` (photos or scans of paper), `other` (already MNIST-like).
It is a development set: measure on it, never train on it, never copy it into the repository.
An image counts as right when digitos reads exactly one digit and it is the label.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import defaultdict
from pathlib import Path

from digitos.evaluate import share_with_interval
from digitos.predict import load_reader, read_image
from digitos.preprocess import ImageError


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wild-dir", default="../shared/data/wild-dev")
    ap.add_argument("--checkpoint", default=None, help="default: the shipped model")
    ap.add_argument("--errors", action="store_true", help="list every image read wrong")
    args = ap.parse_args()

    root = Path(args.wild_dir)
    rows = list(csv.DictReader((root / "labels.csv").open()))
    reader = load_reader(args.checkpoint)
    right: dict[str, list[bool]] = defaultdict(list)
    seconds = 0.0
    for row in rows:
        t0 = time.perf_counter()
        try:
            result = read_image(reader, root / row["file"])
            number = "?" if result.not_a_digit else result.number
        except ImageError as e:
            number = f"error: {e}"
        seconds += time.perf_counter() - t0
        ok = number == row["label"]
        right[row["kind"]].append(ok)
        right["all"].append(ok)
        if args.errors and not ok:
            print(f"  {row['file']}: label {row['label']}, read {number}")
    print(f"model: {reader.meta['model']}  images: {len(rows)}")
    for kind in ["all", *sorted(k for k in right if k != "all")]:
        r = right[kind]
        print(f"  {kind:6} {share_with_interval(sum(r), len(r))}")
    print(f"{1000 * seconds / len(rows):.1f} ms per image (decode, preprocessing, model)")


if __name__ == "__main__":
    main()
