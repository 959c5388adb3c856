"""The drawing page's picture in the docs: a year written with touching digits, read.

    python benchmarks/page_picture.py [--out docs/img/page.png]

Starts `digitos serve` on a free port, writes "2026" on the wide pad in a real Chromium
(apt-get install chromium), and saves a screenshot of the page.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request

from digitos.synth.drawings import year_strokes


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
            for stroke in year_strokes():
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
