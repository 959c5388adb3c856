"""Time and peak memory of the preprocessing path, per image, for ordinary and hostile images.

    python benchmarks/preprocess_speed.py [--repeat 20]

Each case is a file's bytes handed to `preprocess_file` (open, decode, find the ink, 28x28),
the path that `predict`, the API and the page share. Every case runs in a fresh child process,
after a warm-up, so that the memory it adds to the process (peak RSS growth) is its own.
Not run in CI.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np
from PIL import Image, ImageDraw

CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


@case
def canvas_400x300() -> bytes:
    """A digit drawn on the page's canvas, saved as PNG."""
    img = Image.new("L", (400, 300), 255)
    ImageDraw.Draw(img).line([(150, 60), (250, 60), (190, 250)], fill=0, width=14)
    return _png(img)


@case
def photo_12mp_jpeg() -> bytes:
    """A phone photo of paper: 4000x3000, uneven light, noise, a dark digit."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:3000, 0:4000].astype(np.float32)
    paper = 200 + 30 * (x / 4000) - 20 * (y / 3000) + rng.normal(0, 6, (3000, 4000))
    img = Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8)).convert("RGB")
    ImageDraw.Draw(img).line([(1600, 800), (2400, 800), (1900, 2300)], fill=(40, 40, 60),
                             width=60)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@case
def line_on_6000x6000() -> bytes:
    """A 1-px diagonal line on a 6000x6000 canvas (65 kB as PNG)."""
    img = Image.new("1", (6000, 6000), 1)
    ImageDraw.Draw(img).line([(1000, 1000), (5000, 5000)], fill=0, width=1)
    return _png(img, optimize=True)


@case
def line_on_13333333x3() -> bytes:
    """A 1-px line along a 13,333,333x3 canvas."""
    img = Image.new("1", (13_333_333, 3), 1)
    ImageDraw.Draw(img).line([(0, 1), (13_333_332, 1)], fill=0)
    return _png(img, optimize=True)


@case
def rgba_6000x6000_png() -> bytes:
    """A transparent 6000x6000 drawing (the most memory a decodable image can take)."""
    img = Image.new("RGBA", (6000, 6000), (0, 0, 0, 0))
    ImageDraw.Draw(img).line([(2000, 1000), (4000, 1000), (2800, 5000)], fill=(0, 0, 0, 255),
                             width=40)
    return _png(img)


@case
def lab_tiff() -> bytes:
    """A LAB-mode TIFF (this once crashed the reader)."""
    img = Image.new("RGB", (300, 300), "white")
    ImageDraw.Draw(img).line([(150, 40), (150, 260)], fill="black", width=20)
    buf = io.BytesIO()
    img.convert("LAB").save(buf, format="TIFF")
    return buf.getvalue()


@case
def declared_1x40000000() -> bytes:
    """A tiny PNG that declares 1x40,000,000 pixels."""
    img = Image.new("1", (1, 40_000_000), 1)
    return _png(img, optimize=True)


@case
def specks_20000() -> bytes:
    """A 7 among 20,000 one-pixel specks on a 1000x1000 page (once 8 s: every speck was
    looked inside for a frame)."""
    rng = np.random.default_rng(0)
    page = np.full((1000, 1000), 255, np.uint8)
    page[rng.integers(0, 1000, 20_000), rng.integers(0, 1000, 20_000)] = 0
    img = Image.fromarray(page)
    ImageDraw.Draw(img).line([(400, 300), (600, 300), (450, 700)], fill=0, width=20)
    return _png(img)


@case
def bars_245() -> bytes:
    """12 rows of 245 thin bars, a page of marks (once 10 s: the 245 columns were each a digit
    to group and read)."""
    page = np.full((1000, 1000), 255, np.uint8)
    for y in range(10, 940, 80):
        page[y:y + 60, 10:990:4] = 0
    return _png(Image.fromarray(page))


@case
def tiff_4000_pages() -> bytes:
    """A TIFF whose first page holds a 1 and which has 4,000 more blank 8x8 pages (once 1 s
    to count the pages, growing faster than the file: 20,000 pages, 2 MB, took 5 s)."""
    first = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(first).line([(100, 30), (100, 170)], fill=0, width=12)
    buf = io.BytesIO()
    first.save(buf, format="TIFF", save_all=True, append_images=[Image.new("L", (8, 8), 255)] * 4000)
    return buf.getvalue()


@case
def jpeg_1000_scans() -> bytes:
    """A progressive 4000x3000 JPEG whose last scan is written 1,000 times more (once 6 s: each
    scan is a pass over every block of the image)."""
    img = Image.new("L", (4000, 3000), 255)
    ImageDraw.Draw(img).line([(2000, 500), (2000, 2500)], fill=0, width=80)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", progressive=True, quality=90)
    data = buf.getvalue()
    last_scan = data[data.rindex(b"\xff\xda"):-2]
    return data[:-2] + last_scan * 1000 + data[-2:]


@case
def png_1m_chunks() -> bytes:
    """A PNG of a 1 with a million empty private chunks, 12 MB (once 4.9 s: Pillow reads chunks
    one by one)."""
    img = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(img).line([(100, 30), (100, 170)], fill=0, width=12)
    data = _png(img)
    empty = struct.pack(">I", 0) + b"prVt" + struct.pack(">I", zlib.crc32(b"prVt"))
    return data[:33] + empty * 1_000_000 + data[33:]


@case
def gif_1m_comments() -> bytes:
    """A GIF of a 1 after a million one-byte comments, 5 MB (once 0.6 s, and 64 MB would hold
    13 million)."""
    img = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(img).line([(100, 30), (100, 170)], fill=0, width=12)
    buf = io.BytesIO()
    img.save(buf, format="GIF")
    data = buf.getvalue()
    after_colours = 13 + 3 * 2 ** ((data[10] & 7) + 1)
    return data[:after_colours] + b"\x21\xfe\x01a\x00" * 1_000_000 + data[after_colours:]


@case
def jpeg_4mb_fill() -> bytes:
    """A JPEG of a 1 with 4 million fill bytes before its first marker (once 3.2 s: Pillow
    steps over them one at a time)."""
    img = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(img).line([(100, 30), (100, 170)], fill=0, width=12)
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    data = buf.getvalue()
    return data[:2] + b"\xff" * 4_000_000 + data[2:]


@case
def bmp_rle4_37mp() -> bytes:
    """A run-length (RLE4) BMP of 6120x6000 grey pixels in runs of 255, 300 kB (once 1.9 s:
    Pillow decodes it in Python, pixel by pixel)."""
    palette = b"".join(bytes([i * 17] * 3 + [0]) for i in range(16))
    body = (bytes([255, 0xFF]) * 24 + b"\x00\x00") * 6000 + b"\x00\x01"
    offset = 14 + 40 + len(palette)
    return (b"BM" + struct.pack("<IHHI", offset + len(body), 0, 0, offset)
            + struct.pack("<IiiHHIIiiII", 40, 6120, 6000, 1, 4, 2, len(body), 2835, 2835, 16, 0)
            + palette + body)


def run_one(name: str, path: str, repeat: int) -> dict:
    from digitos.preprocess import ImageError, preprocess_file

    preprocess_file(CASES["canvas_400x300"]())  # imports and first calls done before measuring
    start_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    data = open(path, "rb").read()
    times, outcome = [], "read"
    for _ in range(repeat):
        t0 = time.perf_counter()
        try:
            preprocess_file(data, name)
        except ImageError as e:
            outcome = f"refused: {e}"
        times.append(time.perf_counter() - t0)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"case": name, "bytes": len(data), "median_ms": 1000 * statistics.median(times),
            "max_ms": 1000 * max(times), "start_mb": start_kib / 1024,
            "grew_mb": (peak_kib - start_kib) / 1024, "outcome": outcome}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=20, help="runs per case (3 for the big ones)")
    ap.add_argument("--case", nargs=2, default=None, help=argparse.SUPPRESS)  # the children's jobs
    ap.add_argument("--make", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.make:  # in a child too: a child forked from a big parent inherits its peak RSS
        for name, make in CASES.items():
            with open(os.path.join(args.make, name), "wb") as f:
                f.write(make())
        return
    if args.case:
        print(json.dumps(run_one(args.case[0], args.case[1], args.repeat)))
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    print("| image | file | median | worst | memory added (RSS) | outcome |")
    print("|---|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, __file__, "--make", tmp], check=True)
        for name in CASES:
            path = os.path.join(tmp, name)
            repeat = args.repeat if name.startswith("canvas") else max(3, args.repeat // 4)
            out = subprocess.run([sys.executable, __file__, "--case", name, path,
                                  "--repeat", str(repeat)], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout)
            print(f"| {name} | {r['bytes'] / 1024:,.0f} kB | {r['median_ms']:,.1f} ms | "
                  f"{r['max_ms']:,.1f} ms | {r['grew_mb']:,.0f} MB (of {r['start_mb']:,.0f}) | "
                  f"{r['outcome'][:70]} |", flush=True)


if __name__ == "__main__":
    main()
