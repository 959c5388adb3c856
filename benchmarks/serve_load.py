"""Load on a real `digitos serve`: requests/s, latency and memory at several concurrencies.

    python benchmarks/serve_load.py [--seconds 20] [--workers 1] [--concurrency 1 16 64]

Starts `digitos serve` on a free loopback port, then C simulated users (async httpx clients,
one connection each) keep C requests in flight for the given time with (MNIST from
--data-dir or DIGITOS_DATA_DIR)
- canvas: 400x300 drawings as the page sends them (JSON, a PNG data URL), and
- photo: 3000x4000 phone-photo JPEGs uploaded as multipart/form-data.
It reports requests/s, p50/p99 latency, the errors (503s, which the server sends on purpose
when saturated, are counted apart) and the server's RSS (all its processes) at start and end.
Not run in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time

import httpx
import numpy as np
from PIL import Image, ImageDraw

JSON = {"content-type": "application/json"}


def canvas_drawings(data_dir: str | None, n: int = 50) -> list[bytes]:
    """MNIST test digits drawn as the page sends them: dark strokes on a transparent 400x300."""
    from digitos.datasets import load_dataset

    images = load_dataset("mnist", data_dir).test.images[:n]
    rng = np.random.default_rng(0)
    out = []
    for digit in images:
        side = int(rng.integers(150, 260))
        ink = Image.fromarray(digit.numpy()).resize((side, side), Image.Resampling.BICUBIC)
        alpha = ink.point(lambda v: 255 if v > 100 else 0)
        img = Image.new("RGBA", (400, 300), (0, 0, 0, 0))
        x, y = int(rng.integers(0, 400 - side)), int(rng.integers(0, 300 - side))
        img.paste(Image.new("RGBA", (side, side), (0, 0, 0, 255)), (x, y), alpha)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def photo_jpegs(n: int = 3) -> list[bytes]:
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        y, x = np.mgrid[0:4000, 0:3000].astype(np.float32)
        paper = 190 + 40 * (x / 3000) - 25 * (y / 4000) + rng.normal(0, 5, (4000, 3000))
        img = Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8)).convert("RGB")
        ImageDraw.Draw(img).line([(1000, 1200), (2000, 1200 + 100 * i), (1300, 2800)],
                                 fill=(30, 30, 50), width=70)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=88)
        out.append(buf.getvalue())
    return out


def rss_mb(pid: int) -> float:
    """RSS of a process and its children, in MB (from /proc)."""
    total = 0
    pids = [pid]
    try:
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        pids += [int(p) for p in kids.split()]
    except FileNotFoundError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


async def load(url: str, kind: str, bodies: list, concurrency: int, seconds: float) -> dict:
    times: list[float] = []
    statuses: dict[int | str, int] = {}
    # One client (and connection) per simulated user, as people's browsers are: one shared
    # pool of C connections costs the client more CPU per request as C grows (0.79 of a core
    # at 64, against 0.32 at 16), taken from the server on the same cores. Each client is
    # made before the clock starts (httpx loads the system's certificates for each: 30 ms).
    clients = [httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=1))
               for _ in range(concurrency)]

    async def one_client(k: int, client: httpx.AsyncClient) -> None:
        # The client runs on the server's cores, so it does as little as it can per request:
        # each canvas request is built once (JSON encoded, headers checked) and sent again.
        sent = ([client.build_request("POST", "/api/predict", content=body, headers=JSON)
                 for body in bodies] if kind == "canvas" else bodies)
        i = k
        while time.perf_counter() < stop:
            body = sent[i % len(sent)]
            t0 = time.perf_counter()
            try:
                if kind == "canvas":
                    r = await client.send(body)
                else:
                    r = await client.post("/api/predict",
                                          files={"file": ("photo.jpg", body, "image/jpeg")})
                status: int | str = r.status_code
            except httpx.HTTPError as e:
                status = type(e).__name__
            i += concurrency
            times.append(time.perf_counter() - t0)
            statuses[status] = statuses.get(status, 0) + 1

    t0 = time.perf_counter()
    stop = t0 + seconds
    await asyncio.gather(*(one_client(k, c) for k, c in enumerate(clients)))
    wall = time.perf_counter() - t0
    ok = statuses.get(200, 0)
    for client in clients:
        await client.aclose()
    ms = sorted(1000 * t for t in times)
    return {"rps": ok / wall, "p50": statistics.median(ms), "p99": ms[int(0.99 * (len(ms) - 1))],
            "busy": statuses.get(503, 0),
            "errors": sum(v for k, v in statuses.items() if k not in (200, 503)),
            "statuses": statuses}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="per concurrency and kind")
    ap.add_argument("--workers", type=int, default=1, help="`digitos serve --workers`")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--kinds", nargs="+", default=["canvas", "photo"])
    ap.add_argument("--data-dir", default=None, help="MNIST, for the canvas drawings")
    args = ap.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "digitos", "serve", "--port", str(port),
                               "--workers", str(args.workers)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        bodies = {"canvas": [json.dumps({"image": "data:image/png;base64,"
                                         + base64.b64encode(d).decode(), "name": "canvas"}).encode()
                             for d in canvas_drawings(args.data_dir)],
                  "photo": photo_jpegs()}
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
              f"digitos serve --workers {args.workers}; {args.seconds:g} s per row")
        start = rss_mb(server.pid)
        print(f"server RSS at start: {start:,.0f} MB")
        print("| images | concurrency | requests/s | p50 | p99 | 503s | errors | server RSS after |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for kind in args.kinds:
            for c in args.concurrency:
                r = asyncio.run(load(url, kind, bodies[kind], c, args.seconds))
                print(f"| {kind} | {c} | {r['rps']:,.0f} | {r['p50']:,.0f} ms | {r['p99']:,.0f} ms "
                      f"| {r['busy']} | {r['errors']} | {rss_mb(server.pid):,.0f} MB |", flush=True)
                if r["errors"]:
                    print(f"  statuses: {r['statuses']}")

    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
