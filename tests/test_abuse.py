"""Reading under abuse: bounded work for hostile images, and a server that holds.

The server tests run a real uvicorn server on loopback (in this process, with short limits,
or as `digitos serve`) and talk to it through raw sockets, as a slow or hostile client would.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib

import numpy as np
import pytest
import uvicorn
from conftest import start_serve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw
from test_preprocess import paper_drawing, png

from digitos.ink import WORK_SIDE, find_ink
from digitos.preprocess import ImageError, open_image, preprocess_file
from digitos.web.server import SETTINGS_ENV, GuardedH11, Limits, create_app

# --- bounded work for any image -------------------------------------------------------------

def test_a_thin_line_on_a_huge_canvas_reads_within_a_bounded_working_size():
    img = Image.new("1", (6000, 6000), 1)
    ImageDraw.Draw(img).line([(3000, 800), (3000, 5200)], fill=0, width=1)  # a '1', 1 px wide
    data = png(img)
    ink = find_ink(open_image(data))
    # The work after decoding is on at most WORK_SIDE px a side, whatever the canvas.
    assert max(ink.mask.shape) <= WORK_SIDE and ink.scale >= 6000 / WORK_SIDE
    seen = preprocess_file(data)
    assert seen.pixels.max() == 255
    assert seen.box[0] <= 3000 <= seen.box[2] and seen.box[1] <= 820 and seen.box[3] >= 5180


@pytest.mark.parametrize("size", [(10, 500), (9, 450), (500, 10)])
def test_a_stroke_on_a_strip_narrower_than_a_shading_block_is_read(reader, size):
    """A 1 (or a dash) on a canvas 50 times taller than wide: the writing is tall, so the
    blocks `_shading` pools by are wider than the canvas."""
    from digitos.predict import read_image

    w, h = size
    img = Image.new("L", size, 255)
    ends = [(w // 2, 2), (w // 2, h - 3)] if h > w else [(2, h // 2), (w - 3, h // 2)]
    ImageDraw.Draw(img).line(ends, fill=0, width=3)
    result = read_image(reader, png(img))
    assert result.number == ("1" if h > w else "")


def test_a_digit_among_thousands_of_specks_is_found():
    """Specks by the thousand (a textured or noisy scan) are dust; looking inside each one for
    a frame took 8 s for this image, and each is now passed over."""
    rng = np.random.default_rng(0)
    page = np.full((1000, 1000), 255, np.uint8)
    page[rng.integers(0, 1000, 20_000), rng.integers(0, 1000, 20_000)] = 0
    img = Image.fromarray(page)
    ImageDraw.Draw(img).line([(400, 300), (600, 300), (450, 700)], fill=0, width=20)  # a 7
    left, top, right, bottom = preprocess_file(png(img), "specks.png").box
    # The 7, and the specks on or right next to it, not the page (the 7 is 420 px tall).
    assert left <= 390 and top <= 290 and right >= 610 and bottom >= 710
    assert left >= 300 and top >= 200 and right <= 700 and bottom <= 800


def test_a_page_of_marks_is_refused_in_one_line(tmp_path):
    """Hundreds of digit-sized marks (a page of text, a texture) are no number: each one cost a
    pass over the whole image, and these 12 lines of 245 bars took 10 s to read as 1s."""
    page = np.full((1000, 1000), 255, np.uint8)
    for y in range(10, 940, 80):
        page[y:y + 60, 10:990:4] = 0
    (tmp_path / "bars.png").write_bytes(png(Image.fromarray(page)))
    with pytest.raises(ImageError, match="bars.png: 2,940 separate marks"):
        preprocess_file(tmp_path / "bars.png")
    out = subprocess.run([sys.executable, "-m", "digitos", "predict", str(tmp_path / "bars.png")],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "separate marks" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("size, message", [
    ((13_333_333, 3), "too small"),
    ((1, 40_000_000), "too small"),
    ((4000, 20), "long and thin"),
    ((7000, 7000), "over the limit"),
])
def test_canvases_no_drawing_has_are_refused_from_the_header(size, message):
    data = png(Image.new("1", size, 1))
    with pytest.raises(ImageError, match=message):
        open_image(data, "x.png")


def lab_tiff() -> bytes:
    img = Image.new("RGB", (200, 200), "white")
    ImageDraw.Draw(img).line([(100, 30), (100, 170)], fill="black", width=12)
    buf = io.BytesIO()
    img.convert("LAB").save(buf, format="TIFF")
    return buf.getvalue()


def test_a_lab_tiff_is_read():
    seen = preprocess_file(lab_tiff(), "lab.tif")
    assert seen.pixels.max() == 255 and seen.polarity == "dark-on-light"


def many_page_tiff(pages: int, first: np.ndarray) -> bytes:
    """A grey TIFF: `first` as its first page, then `pages` blank 8x8 pages, each page's
    directory pointing at the next; the last one points past the end of the file."""
    h, w = first.shape
    entry_count, directory = 9, 2 + 9 * 12 + 4

    def page(width: int, height: int, pixels_at: int, next_at: int) -> bytes:
        tags = [(256, 3, width), (257, 3, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
                (273, 4, pixels_at), (277, 3, 1), (278, 3, height), (279, 4, width * height)]
        out = struct.pack("<H", entry_count)
        for tag, kind, value in tags:  # kind 3 is SHORT, 4 is LONG
            out += struct.pack("<HHI", tag, kind, 1) + struct.pack("<HH" if kind == 3 else "<I",
                                                                 *((value, 0) if kind == 3 else (value,)))
        return out + struct.pack("<I", next_at)

    first_pixels = 8 + directory * (pages + 1)
    blank_pixels = first_pixels + w * h
    data = bytearray(b"II*\x00" + struct.pack("<I", 8))
    for i in range(pages + 1):
        next_at = 8 + directory * (i + 1) if i < pages else 1 << 30
        data += page(w, h, first_pixels, next_at) if i == 0 else page(8, 8, blank_pixels, next_at)
    return bytes(data + first.tobytes() + bytes(64))


def test_a_tiff_of_many_pages_is_read_by_its_first_page_without_walking_the_others():
    """Counting a TIFF's pages walks every one of them (2 MB of 20,000 tiny pages took 5 s,
    and a 64 MB file far longer); the first page is all that is read. This one's last page
    points past the end of the file: walking the pages would fail, reading the first does not."""
    first = np.full((200, 200), 255, np.uint8)
    first[30:170, 94:106] = 0  # a 1
    data = many_page_tiff(20_000, first)
    assert len(data) > 2_000_000
    seen = preprocess_file(data, "pages.tif")
    assert seen.pixels.max() == 255 and tuple(seen.box) == (94, 30, 106, 170)


def test_an_animated_gif_is_read_by_its_first_frame():
    frames = [Image.new("L", (200, 200), 255) for _ in range(3)]
    ImageDraw.Draw(frames[0]).line([(100, 30), (100, 170)], fill=0, width=12)  # a 1
    ImageDraw.Draw(frames[1]).ellipse([40, 40, 160, 160], outline=0, width=12)  # a 0, later
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    seen = preprocess_file(buf.getvalue(), "moving.gif")
    assert seen.box[2] - seen.box[0] < 30  # the bar, not the ring


def progressive_jpeg(scans_repeated: int) -> bytes:
    """A progressive 1600x1200 JPEG of a 1, its last scan written again `scans_repeated` times
    (each one more pass over every block of the image for the decoder)."""
    img = Image.new("L", (1600, 1200), 255)
    ImageDraw.Draw(img).line([(800, 200), (800, 1000)], fill=0, width=40)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", progressive=True, quality=90)
    data = buf.getvalue()
    last_scan = data[data.rindex(b"\xff\xda"):-2]  # up to the end-of-image marker
    return data[:-2] + last_scan * scans_repeated + data[-2:]


def test_a_jpeg_of_thousands_of_scans_is_refused_unread_and_an_ordinary_progressive_one_is_read():
    seen = preprocess_file(progressive_jpeg(0), "plain.jpg")
    assert seen.box[2] - seen.box[0] < 80 and seen.box[3] - seen.box[1] > 700
    # 2,000 more scans: 444 kB, and 3 s to decode at a quarter of its size.
    with pytest.raises(ImageError, match=r"bomb.jpg: a JPEG of 2,00\d scans, over the limit"):
        open_image(progressive_jpeg(2000), "bomb.jpg")


def png_chunk(kind: bytes, payload: bytes = b"") -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def test_a_png_gif_or_jpeg_of_a_million_chunks_is_refused_unread():
    """Pillow reads chunks, a GIF's blocks and a JPEG's markers one by one in Python (100,000
    empty PNG chunks cost 0.36 s, and 64 MB holds 5 million); a drawing with a few more is
    still read."""
    img = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(img).line([(100, 30), (100, 170)], fill=0, width=12)
    plain = png(img)
    after_header = 8 + 25  # the signature, then IHDR's chunk
    read = plain[:after_header] + png_chunk(b"tEXt", b"Author\x00me") * 50 + plain[after_header:]
    assert preprocess_file(read, "a.png").box[3] > 150
    bomb = plain[:after_header] + png_chunk(b"prVt") * 1_000_000 + plain[after_header:]
    with pytest.raises(ImageError, match="chunks.png: a PNG of more than 50,000 chunks"):
        open_image(bomb, "chunks.png")

    buf = io.BytesIO()
    img.save(buf, format="GIF")
    gif = buf.getvalue()
    after_colours = 13 + 3 * 2 ** ((gif[10] & 7) + 1)  # the header and the global colour table
    comment = b"\x21\xfe\x01a\x00"  # a comment extension: one sub-block of one byte
    assert preprocess_file(gif[:after_colours] + comment * 50 + gif[after_colours:], "a.gif")
    with pytest.raises(ImageError, match="comments.gif: a GIF of more than 50,000 chunks"):
        open_image(gif[:after_colours] + comment * 1_000_000 + gif[after_colours:], "comments.gif")

    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    jpeg = buf.getvalue()
    fill = b"\xff"  # a marker may be preceded by any number of these
    assert preprocess_file(jpeg[:2] + fill * 50 + jpeg[2:], "a.jpg").box[3] > 150
    with pytest.raises(ImageError, match="fill.jpg: a JPEG of more than 50,000 chunks"):
        open_image(jpeg[:2] + fill * 1_000_000 + jpeg[2:], "fill.jpg")


def run_length_bmp(width: int, height: int, rows: bytes, bits: int) -> bytes:
    """A grey BMP compressed by runs (RLE8, or RLE4 for bits=4), its rows given as RLE ops."""
    colours = 2 ** bits
    palette = b"".join(bytes([i * 255 // (colours - 1)] * 3 + [0]) for i in range(colours))
    body = rows + b"\x00\x01"  # end of bitmap
    offset = 14 + 40 + len(palette)
    return (b"BM" + struct.pack("<IHHI", offset + len(body), 0, 0, offset)
            + struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 1 if bits == 8 else 2,
                          len(body), 2835, 2835, colours, 0) + palette + body)


def test_a_large_run_length_bmp_is_refused_and_a_drawing_saved_so_is_read():
    """Pillow decodes run-length BMPs in Python (an RLE4 one pixel by pixel): 300 kB of RLE4
    filling 37 megapixels took 1.9 s."""
    end_of_line = b"\x00\x00"
    paper, bar = bytes([255, 255, 45, 255]), bytes([140, 255, 20, 0, 140, 255])  # (count, value)
    rows = b"".join((bar if 40 <= y < 260 else paper) + end_of_line for y in range(300))
    seen = preprocess_file(run_length_bmp(300, 300, rows, 8), "drawing.bmp")
    assert tuple(seen.box) == (140, 40, 160, 260)
    one_pixel_runs = (bytes([1, 255, 1, 0]) * 1000 + end_of_line) * 1500  # 6 MB, 3 megapixels
    with pytest.raises(ImageError, match="runs.bmp: a run-length BMP this large is not read"):
        open_image(run_length_bmp(2000, 1500, one_pixel_runs, 8), "runs.bmp")
    long_runs = (bytes([255, 0xFF]) * 24 + end_of_line) * 6000  # 300 kB, 37 megapixels
    with pytest.raises(ImageError, match="rle4.bmp: a run-length BMP this large is not read"):
        open_image(run_length_bmp(6120, 6000, long_runs, 4), "rle4.bmp")


@pytest.mark.parametrize("fmt", ["PPM", "TGA", "PCX", "ICO", "SGI"])
def test_formats_the_readme_does_not_name_are_refused(fmt):
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buf, format=fmt)
    with pytest.raises(ImageError, match="not an image .PNG, JPEG"):
        open_image(buf.getvalue(), "x")


MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "I", "I;16",
         "F"]
FORMATS_BY_MODE = {"PNG": {"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"},
                   "JPEG": {"L", "RGB", "CMYK"}, "BMP": {"1", "L", "P", "RGB"},
                   "GIF": {"L", "P"}, "WEBP": {"RGB", "RGBA"},
                   "TIFF": {"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "I",
                            "I;16", "F"}}


@st.composite
def saved_images(draw) -> bytes:
    """An image in a random mode, size and format, maybe with ink, maybe cut or corrupted."""
    fmt = draw(st.sampled_from(sorted(FORMATS_BY_MODE)))
    mode = draw(st.sampled_from(sorted(FORMATS_BY_MODE[fmt])))
    w, h = draw(st.integers(1, 300)), draw(st.integers(1, 300))
    rgb = Image.new("RGB", (w, h), "white")
    if draw(st.booleans()):
        pts = draw(st.lists(st.tuples(st.integers(0, w), st.integers(0, h)), min_size=2, max_size=5))
        ImageDraw.Draw(rgb).line(pts, fill="black", width=draw(st.integers(1, 20)))
    img = rgb.convert(mode) if mode not in ("I;16", "F") else rgb.convert("L").convert(mode)
    buf = io.BytesIO()
    try:
        img.save(buf, format=fmt)
    except (OSError, ValueError, KeyError):  # a pairing Pillow cannot write: the raw pixels
        buf = io.BytesIO(img.tobytes())
    data = buf.getvalue()
    damage = draw(st.sampled_from(["none", "cut", "flip", "junk"]))
    if damage == "cut" and len(data) > 1:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif damage == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    elif damage == "junk":
        data = draw(st.binary(max_size=64)) + data[draw(st.integers(0, len(data))):]
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=saved_images())
def test_any_file_gives_a_reading_or_digitos_own_error(data):
    try:
        seen = preprocess_file(data, "x")
    except ImageError as e:
        assert str(e).startswith("x: ") or "mode" in str(e)
        return
    assert seen.pixels.shape == (28, 28) and seen.pixels.dtype.is_floating_point is False


def test_predict_reads_only_regular_files_and_goes_on_after_a_failure(tmp_path, mnist):
    good = tmp_path / "seven.png"
    good.write_bytes(png(paper_drawing(mnist.test.images[0], 200)))
    weird = tmp_path / "weird.tif"
    weird.write_bytes(lab_tiff())
    r = subprocess.run([sys.executable, "-m", "digitos", "predict", "/dev/zero", str(good),
                        str(weird), "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert lines[0]["path"] == "/dev/zero" and "not a regular file" in lines[0]["error"]
    assert lines[1]["number"] == "7" and lines[2]["number"] == "1"
    assert "Traceback" not in r.stderr


# --- the server -----------------------------------------------------------------------------

class LiveServer:
    """A real uvicorn server with digitos' protocol and app, on a free loopback port."""

    def __init__(self, reader, limits: Limits, monkeypatch):
        monkeypatch.setenv(SETTINGS_ENV, json.dumps({"checkpoint": None,
                                                     "limits": limits.__dict__}))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(create_app(reader=reader, limits=limits), host="127.0.0.1",
                                port=self.port, http=GuardedH11, log_level="warning",
                                timeout_keep_alive=limits.keep_alive)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live(reader, monkeypatch):
    servers = []

    def start(**limits) -> LiveServer:
        servers.append(LiveServer(reader, Limits(**limits), monkeypatch))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def read_all(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def head(body_length: int, ctype: str = "application/json") -> bytes:
    return (f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {body_length}\r\n\r\n").encode()


def test_silent_and_slow_clients_are_cut_off(live):
    srv = live(header_timeout=0.5, body_timeout=0.5)
    silent = srv.connect()  # opens and sends nothing
    slow_headers = srv.connect()
    slow_headers.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\n")  # and never ends them
    slow_body = srv.connect()
    slow_body.sendall(head(1000) + b'{"image": ')  # a tenth of the body, then nothing
    t0 = time.monotonic()
    assert read_all(silent) == b"" and read_all(slow_headers) == b""
    answer = read_all(slow_body)
    assert answer.startswith(b"HTTP/1.1 408") and b'"error"' in answer
    assert time.monotonic() - t0 < 8  # cut off, not left hanging until the 10 s socket timeout


@pytest.mark.parametrize("headers", [b"X-Big: " + b"a" * 1_000_000 + b"\r\n",
                                     b"".join(b"X-%d: %s\r\n" % (i, b"b" * 90)
                                              for i in range(10_000))],
                         ids=["one-megabyte-header", "ten-thousand-headers"])
def test_headers_too_large_get_the_json_error(live, headers):
    import select

    srv = live()
    sock = srv.connect()
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"
    # Sent a piece at a time, as a client would, until the server answers: it answers as
    # soon as the headers outgrow its limit, and closes.
    for start in range(0, len(request), 16384):
        if select.select([sock], [], [], 0.05)[0]:
            break
        try:
            sock.sendall(request[start: start + 16384])
        except OSError:
            break
    answer = read_all(sock)
    head_part, _, body = answer.partition(b"\r\n\r\n")
    assert head_part.startswith(b"HTTP/1.1 400") and b"application/json" in head_part.lower()
    assert "bad request" in json.loads(body)["error"]


def test_503_when_saturated_then_served_again(live):
    srv = live(max_in_flight=1, body_timeout=5)
    holder = srv.connect()
    holder.sendall(head(1000) + b"{")
    time.sleep(0.3)
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/healthz", timeout=5)
        pytest.fail("expected a 503")
    except urllib.error.HTTPError as e:
        assert e.code == 503 and e.headers["Retry-After"] == "1"
        assert "busy" in json.loads(e.read())["error"]
    holder.close()  # the client leaves: its slot is free again
    time.sleep(0.3)
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/healthz", timeout=5) as r:
        assert r.status == 200


def test_a_client_that_leaves_mid_body_leaves_no_traceback(live, caplog):
    srv = live()
    # uvicorn's loggers do not propagate to the root logger that caplog listens on: listen
    # on them directly, or a traceback they log would go unseen.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).addHandler(caplog.handler)
    with caplog.at_level(logging.WARNING):
        leaver = srv.connect()
        leaver.sendall(head(5000, "multipart/form-data; boundary=xyz") + b"--xyz\r\n")
        time.sleep(0.2)
        leaver.close()
        time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/healthz", timeout=5) as r:
            assert r.status == 200
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).removeHandler(caplog.handler)
    assert "Traceback" not in caplog.text and "Exception" not in caplog.text


@pytest.fixture(scope="module")
def client(reader):
    from fastapi.testclient import TestClient

    return TestClient(create_app(reader=reader), raise_server_exceptions=False)


def test_every_error_is_json_and_content_types_match_exactly(client):
    r = client.get("/nowhere")
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}
    r = client.get("/api/predict")
    assert r.status_code == 405 and "error" in r.json()
    r = client.post("/api/predict", content=b'{"image": 1}',
                    headers={"content-type": "application/jsonx"})
    assert r.status_code == 415 and "error" in r.json()
    r = client.post("/api/predict?explain=maybe", json={"image": "x"})
    assert r.status_code == 400 and "explain" in r.json()["error"]
    nested = b"[" * 100_000 + b"]" * 100_000
    r = client.post("/api/predict", content=nested, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "nested" in r.json()["error"]


def test_an_unexpected_failure_is_a_json_500(reader, monkeypatch):
    from fastapi.testclient import TestClient

    import digitos.web.readers as readers

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(readers, "read_image", broken)  # what `answer` reads with
    client = TestClient(create_app(reader=reader), raise_server_exceptions=False)
    r = client.post("/api/predict", json={"image": "data:image/png;base64,AAAA"})
    assert r.status_code == 500 and "internal error" in r.json()["error"]


def test_the_api_description_lists_the_errors_and_the_docs_work_offline(client):
    spec = client.get("/openapi.json").json()
    answers = spec["paths"]["/api/predict"]["post"]["responses"]
    for code in ("400", "408", "413", "415", "422", "500", "503"):
        assert "error" in json.dumps(answers[code]), code
    page = client.get("/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200


def test_serve_refuses_a_port_out_of_range_in_one_line():
    r = subprocess.run([sys.executable, "-m", "digitos", "serve", "--port", "70000"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "1-65535" in r.stderr and "Traceback" not in r.stderr


def test_sigterm_with_a_request_in_flight_stops_the_server_quickly():
    proc, url = start_serve(stdout=subprocess.PIPE)
    try:
        hung = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
        hung.sendall(head(1000) + b"{")  # in flight, and it will not finish
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        # Graceful shutdown gives up on the hung request after 3 s, then uvicorn ends the
        # process by the signal it got, as a process stopped by SIGTERM should.
        assert proc.wait(timeout=15) in (0, -signal.SIGTERM)
        assert b"Traceback" not in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def reading_processes(pid: int) -> list[int]:
    """The reading processes `digitos serve` started (multiprocessing's "spawn" children)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    kids = []
    for kid in map(int, out.split()):
        with open(f"/proc/{kid}/cmdline", "rb") as f:
            if b"spawn_main" in f.read():
                kids.append(kid)
    return kids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its parent is gone too
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def post_canvas(url: str, data: bytes) -> tuple[int, dict]:
    import base64

    body = json.dumps({"image": "data:image/png;base64," + base64.b64encode(data).decode()})
    req = urllib.request.Request(url + "/api/predict", body.encode(),
                                 {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_serve_reads_in_processes_and_replaces_one_that_dies(mnist):
    proc, url = start_serve(stdout=subprocess.PIPE)
    try:
        readers = reading_processes(proc.pid)
        assert len(readers) >= 1
        drawing = png(paper_drawing(mnist.test.images[0], 200))  # a 7
        status, first = post_canvas(url, drawing)
        assert status == 200 and first["number"] == "7"
        os.kill(readers[0], signal.SIGKILL)
        answers = [post_canvas(url, drawing) for _ in range(2 * len(readers) + 2)]
        # The request that met the dead process (if any did) gets a 503; the rest are read.
        assert sum(status == 503 for status, _ in answers) <= 1
        assert answers[-1][0] == 200 and answers[-1][1]["number"] == "7"
        assert "try again" in next((a["error"] for s, a in answers if s == 503), "try again")
        after = reading_processes(proc.pid)
        assert len(after) == len(readers) and readers[0] not in after
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    assert b"Traceback" not in proc.stdout.read()
    time.sleep(0.5)
    assert not any(alive(p) for p in after)  # none left behind


# --- the API's contract, fuzzed ---------------------------------------------------------------

def test_the_live_api_keeps_its_contract_under_fuzzing(tmp_path):
    """schemathesis against a real `digitos serve`: never a 5xx, every answer as described
    (status, content type, schema). Schema-valid bytes that are no image are refused, rightly,
    so that one check is left out."""
    st_cli = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    if not os.path.exists(st_cli):
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    proc, url = start_serve()
    try:
        examples = os.environ.get("DIGITOS_FUZZ_EXAMPLES", "100")
        r = subprocess.run([st_cli, "run", f"{url}/openapi.json",
                            "--max-examples", examples, "--checks", "all",
                            "--exclude-checks", "positive_data_acceptance", "--no-color"],
                           capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert r.returncode == 0, r.stdout[-4000:]
        assert "passed" in r.stdout
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_reading_processes_go_to_requests_first_come_first_served():
    """A process that comes free goes to the request that has waited longest, even when a new
    request arrives in the same turn of the event loop (asyncio.Queue would give it to the
    newcomer and send the one it woke to the back)."""
    from collections import deque
    from types import SimpleNamespace

    from digitos.web.readers import ReadingProcesses

    pool = ReadingProcesses.__new__(ReadingProcesses)  # no real processes: the hand-out alone
    pool.processes, pool._free, pool._waiting, pool._listening = [], [], deque(), True
    a, b = SimpleNamespace(gone=False), SimpleNamespace(gone=False)

    async def arrives_as_a_comes_free():
        pool._give(a)
        return await pool._take()

    async def main():
        first = asyncio.ensure_future(pool._take())
        await asyncio.sleep(0)  # waiting
        newcomer = asyncio.ensure_future(arrives_as_a_comes_free())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert first.done() and first.result() is a
        assert not newcomer.done()
        pool._give(b)
        assert await newcomer is b
        gone_waiter = asyncio.ensure_future(pool._take())
        await asyncio.sleep(0)
        gone_waiter.cancel()  # a request that gives up while waiting takes nothing with it
        await asyncio.sleep(0)
        pool._give(a)
        assert pool._free == [a]

    asyncio.run(main())


def descendants(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    kids = [int(k) for k in out.split()]
    return kids + [d for k in kids for d in descendants(k)]


def test_serve_with_two_workers_reads_and_leaves_nothing_behind(mnist):
    """uvicorn's worker processes each start their own reading process."""
    proc, url = start_serve("--workers", "2", stdout=subprocess.PIPE)
    try:
        drawing = png(paper_drawing(mnist.test.images[1], 200))  # a 2
        for _ in range(4):
            status, read = post_canvas(url, drawing)
            assert status == 200 and read["number"] == "2"
        family = descendants(proc.pid)
        assert len(family) >= 4  # two workers, each with a reading process (and helpers)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert b"Traceback" not in proc.stdout.read()
    time.sleep(0.5)
    assert not any(alive(p) for p in family)
