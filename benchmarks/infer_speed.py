"""Inference speed and training memory of the default model.

    python benchmarks/infer_speed.py --data-dir ../shared/data/mnist [--checkpoint CKPT]

- images/s in batches of 256 and 1,000 (normalisation, model, softmax; inference_mode)
- single-image latency, median and p99 over 2,000 calls (normalisation + model)
- peak memory (RSS) of a `digitos train` process on full MNIST (--train-epochs, default 1)
Not run in CI.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

from digitos.datasets import load_dataset
from digitos.predict import load_reader


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--checkpoint", default=None, help="default: the shipped model")
    ap.add_argument("--train-epochs", type=int, default=1)
    ap.add_argument("--skip-train", action="store_true")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"threads, torch {torch.__version__}")

    reader = load_reader(args.checkpoint)
    model = reader.model
    if reader.tta:
        print("note: the checkpoint uses test-time augmentation (5 views per image)")
    data = load_dataset("mnist", args.data_dir)
    images = data.test.images

    for batch in (256, 1000):
        reader.probabilities(images[:batch])  # warm-up
        best = 0.0
        for _ in range(3):
            t0 = time.perf_counter()
            for start in range(0, len(images), batch):
                reader.probabilities(images[start:start + batch])
            best = max(best, len(images) / (time.perf_counter() - t0))
        print(f"batched ({batch} per batch, uint8 in, probabilities out): {best:,.0f} images/s")

    one = images[:1]
    for _ in range(50):
        reader.probabilities(one)
    times = []
    for i in range(2000):
        x = images[i % len(images)][None]
        t0 = time.perf_counter()
        reader.probabilities(x)
        times.append(time.perf_counter() - t0)
    times.sort()
    p99 = times[int(0.99 * len(times))]
    print(f"single image: median {1000 * statistics.median(times):.3f} ms, p99 {1000 * p99:.3f} ms")
    del model

    if not args.skip_train:
        cmd = [sys.executable, "-m", "digitos", "train", "--epochs", str(args.train_epochs),
               "--out", "/tmp/digitos-rss-run", "--overwrite", "--quiet"]
        if args.data_dir:
            cmd += ["--data-dir", args.data_dir]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: KiB
        print(f"peak RSS of `digitos train` ({args.train_epochs} epoch(s), full MNIST): "
              f"{peak_kib / 1024:,.0f} MiB")


if __name__ == "__main__":
    main()
