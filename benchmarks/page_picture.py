"""The drawing page's picture in the docs: a year written with touching digits, read.

    python benchmarks/page_picture.py [--out docs/img/page.png]

Starts `digitos serve` on a free port, writes "2026" on the wide pad in a real Chromium
(apt-get install chromium), and saves a screenshot of the page.
"""

from __future__ import annotations

import argparse
import math
import socket
import subprocess
import sys
import time
import urllib.request


def strokes() -> list[list[tuple[float, float]]]:
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="docs/img/page.png")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "digitos", "serve", "--port", str(port)])
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            page = browser.new_page(locale="en-US", viewport={"width": 1200, "height": 640})
            page.goto(url)
            page.click("#shape")
            box = page.locator("#pad").bounding_box()
            for stroke in strokes():
                page.mouse.move(box["x"] + stroke[0][0], box["y"] + stroke[0][1])
                page.mouse.down()
                for x, y in stroke[1:]:
                    page.mouse.move(box["x"] + x, box["y"] + y, steps=8)
                page.mouse.up()
            page.wait_for_function("document.body.dataset.state === 'idle'", timeout=15000)
            page.screenshot(path=args.out)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
