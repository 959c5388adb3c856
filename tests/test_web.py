"""The web app: API tests against the real app, and one real browser drawing on the page."""

import base64
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from conftest import start_serve
from fastapi.testclient import TestClient
from PIL import Image
from scipy import ndimage
from test_preprocess import paper_drawing, png

from digitos.synth.drawings import year_strokes
from digitos.web.server import MAX_BODY, create_app

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def client(reader):
    return TestClient(create_app(reader=reader))


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_upload_and_data_url_give_the_predict_fields(client, mnist):
    img = png(paper_drawing(mnist.test.images[0], 220, canvas=(500, 400), at=(200, 100)))
    r = client.post("/api/predict?explain=1", files={"file": ("seven.png", img, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["digit"] == 7 and body["path"] == "seven.png" and body["number"] == "7"
    assert body["not_a_digit"] is False and len(body["digits"]) == 1
    assert len(body["digits"][0]["preprocessed"]) == 784
    assert len(body["probabilities"]) == 10 and 0.5 < body["confidence"] <= 1
    assert len(body["preprocessed"]) == 784 and max(body["preprocessed"]) == 255
    assert len(body["saliency"]) == 784 and max(body["saliency"]) == 1.0
    r2 = client.post("/api/predict", json={"image": data_url(img)})
    assert r2.status_code == 200 and r2.json()["probabilities"] == body["probabilities"]
    assert "saliency" not in r2.json()  # the lean answer unless asked to explain


def test_a_number_and_a_non_digit_through_the_api(client, mnist):
    import numpy as np

    from digitos.synth.drawings import render_number
    from digitos.synth.negatives import held_out_fonts, letters

    pick = [4, 5, 6]  # 4, 1, 4
    number = render_number(mnist.test.images[pick], mnist.test.labels[pick].tolist(),
                           np.random.default_rng(5), touch=0.0)
    body = client.post("/api/predict?explain=true", json={"image": data_url(number.data)}).json()
    assert body["number"] == "414" and body["digit"] is None
    assert [d["digit"] for d in body["digits"]] == [4, 1, 4]
    assert all(len(d["box"]) == 4 and len(d["saliency"]) == 784 for d in body["digits"])
    # A letter in a font no training saw: a normal 200 answer that says so.
    letter = Image.fromarray(255 - letters(1, seed=3, fonts=held_out_fonts())[0].numpy())
    r = client.post("/api/predict", files={"file": ("k.png", png(letter.resize((200, 200))),
                                                     "image/png")})
    assert r.status_code == 200
    assert r.json()["not_a_digit"] is True and r.json()["number"] == ""


def test_health_and_docs(client):
    assert client.get("/healthz").json()["status"] == "ok"
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/api/predict"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body and "application/json" in body
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    assert client.get("/static/app.js").status_code == 200


@pytest.mark.parametrize("kind, status, message", [
    ("empty", 400, "empty file"),
    ("text", 400, "not an image"),
    ("truncated", 400, "truncated"),
    ("blank", 422, "no ink"),
    ("huge", 400, "over the limit"),
])
def test_bad_uploads_get_a_4xx_naming_the_problem(client, mnist, kind, status, message):
    good = png(paper_drawing(mnist.test.images[0], 200))
    data = {
        "empty": b"",
        "text": b"just some text",
        "truncated": good[: len(good) // 2],
        "blank": png(Image.new("L", (300, 300), 255)),
        "huge": png(Image.new("1", (7000, 7000), 1)),
    }[kind]
    r = client.post("/api/predict", files={"file": ("x.png", data, "image/png")})
    assert r.status_code == status and message in r.json()["error"]
    # The server keeps serving.
    ok = client.post("/api/predict", files={"file": ("g.png", good, "image/png")})
    assert ok.status_code == 200


def test_malformed_requests(client):
    too_big = b"\x00" * (MAX_BODY + 1)
    r = client.post("/api/predict", files={"file": ("big.png", too_big, "image/png")})
    assert r.status_code == 413 and "limit" in r.json()["error"]
    assert client.post("/api/predict", content=b"x", headers={"content-type": "text/plain"}
                       ).status_code == 415
    r = client.post("/api/predict", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    r = client.post("/api/predict", json={"image": "data:image/png;base64,@@@"})
    assert r.status_code == 400 and "base64" in r.json()["error"]
    r = client.post("/api/predict", json={"picture": 1})
    assert r.status_code == 400 and "'image'" in r.json()["error"]
    r = client.post("/api/predict", data={"other": "1"},
                    files={"upload": ("a.png", b"123", "image/png")})
    assert r.status_code == 400 and "'file'" in r.json()["error"]


@pytest.fixture(scope="module")
def server():
    """`digitos serve` as a real process on a free loopback port."""
    proc, url = start_serve()
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), "apt-get install chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


# The page has read the whole drawing (no request pending) and shows this digit.
SETTLED_ON = ("document.body.dataset.state === 'idle' && "
              "document.getElementById('digit').textContent === '{digit}'")


def draw(page, strokes):
    """Drag the mouse along each stroke, in canvas coordinates (0..280)."""
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x, box["y"] + y)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=8)
        page.mouse.up()


def test_drawing_on_the_page_shows_the_digit_and_its_bars(server, browser, tmp_path):
    page = browser.new_page(locale="en-US")
    page.goto(server)
    assert page.locator("#clear").inner_text() == "Clear"
    draw(page, [[(150, 40), (150, 240)]])  # a '1'
    page.wait_for_function(SETTLED_ON.format(digit="1"), timeout=15000)
    page.screenshot(path=str(tmp_path / "one.png"))
    width = page.locator(".bar.top .fill").evaluate("el => parseFloat(el.style.width)")
    assert page.locator(".bar.top").get_attribute("data-digit") == "1" and width > 50
    assert page.locator(".bar").count() == 11  # ten digits and "not a digit"
    # The headline's share is the one its bar shows.
    headline = page.locator("#confidence").inner_text().split("%")[0]
    assert page.locator(".bar.top .pct").inner_text() == headline + "%"

    page.click("#clear")
    assert page.locator("#digit").inner_text() == "–"
    draw(page, [[(70, 60), (210, 60), (120, 250)]])  # a '7'
    page.wait_for_function(SETTLED_ON.format(digit="7"), timeout=15000)

    page.click("[data-lang=es]")
    assert page.locator("#clear").inner_text() == "Borrar"
    page.close()


def test_writing_a_two_digit_number_on_the_wide_pad(server, browser, tmp_path):
    page = browser.new_page(locale="en-US")
    page.goto(server)
    page.click("#shape")
    assert page.locator("#pad").get_attribute("width") == "560"
    draw(page, [[(120, 40), (120, 240)],  # a '1' on the left
                [(300, 60), (440, 60), (350, 250)]])  # a '7' on the right
    page.wait_for_function(SETTLED_ON.format(digit="17"), timeout=15000)
    page.screenshot(path=str(tmp_path / "seventeen.png"))
    assert page.locator("#boxes").get_attribute("data-count") == "2"
    assert page.locator("#digits figure").count() == 2
    # The boxes are drawn on a layer over the pad: green pixels where the boxes are.
    green = page.evaluate("""() => {
        const c = document.getElementById('boxes').getContext('2d');
        const d = c.getImageData(0, 0, 560, 280).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i + 1] > d[i]) n++;
        return n; }""")
    assert green > 500
    page.close()


def test_a_year_written_with_touching_digits_gets_four_boxes(server, browser, tmp_path):
    page = browser.new_page(locale="en-US")
    page.goto(server)
    page.click("#shape")
    draw(page, year_strokes())
    page.wait_for_function(SETTLED_ON.format(digit="2026"), timeout=15000)
    page.screenshot(path=str(tmp_path / "year.png"))
    # One stroke runs into the next: the page shows the four digits the reader found in it.
    dark = page.evaluate("""() => {
        const c = document.getElementById('pad');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const out = [];
        for (let i = 0; i < d.length; i += 4) out.push(d[i + 3] > 0 && d[i] < 250 ? 1 : 0);
        return [c.width, c.height, out]; }""")
    ink = np.asarray(dark[2], bool).reshape(dark[1], dark[0])
    assert ink.sum() > 5000 and ndimage.label(ink, np.ones((3, 3)))[1] == 1  # one piece
    assert page.locator("#boxes").get_attribute("data-count") == "4"
    assert page.locator("#digits figure").count() == 4
    page.close()


def test_page_says_plainly_when_it_is_not_a_digit(server, browser):
    page = browser.new_page(locale="en-US")
    page.goto(server)
    # A five-pointed star.
    draw(page, [[(140, 30), (200, 240), (40, 110), (240, 110), (80, 240), (140, 30)]])
    page.wait_for_function(SETTLED_ON.format(digit="not a digit"), timeout=15000)
    assert "not look like a digit" in page.locator("#status").inner_text()
    page.close()


def test_on_a_phone_the_reading_stays_in_view_and_drawing_does_not_scroll(server, browser):
    context = browser.new_context(viewport={"width": 390, "height": 740}, has_touch=True,
                                  is_mobile=True, locale="en-US")
    page = context.new_page()
    page.goto(server)
    pad = page.locator("#pad").bounding_box()
    answer = page.locator("#digit").bounding_box()
    assert pad["x"] >= 0 and pad["x"] + pad["width"] <= 390  # the pad fits the screen
    assert answer["y"] + answer["height"] <= pad["y"]  # the reading sits above the pad
    assert pad["y"] + pad["height"] <= 740  # both in view without scrolling
    assert page.evaluate("getComputedStyle(document.getElementById('pad')).touchAction") == "none"
    # A finger dragging on the pad: the page does not move.
    page.evaluate("""() => {
        const pad = document.getElementById('pad');
        const r = pad.getBoundingClientRect();
        const touch = (y) => new Touch({identifier: 1, target: pad, clientX: r.x + 100,
                                        clientY: r.y + y});
        const ev = (type, y) => pad.dispatchEvent(new TouchEvent(type, {touches: [touch(y)],
            changedTouches: [touch(y)], bubbles: true, cancelable: true}));
        ev('touchstart', 20); ev('touchmove', 200);
        window.__cancelled = !ev('touchmove', 250);
    }""")
    assert page.evaluate("window.__cancelled") is True
    assert page.evaluate("window.scrollY") == 0
    context.close()


def test_page_speaks_spanish_to_a_spanish_browser(server, browser):
    page = browser.new_page(locale="es-AR")
    page.goto(server)
    assert page.locator("#clear").inner_text() == "Borrar"
    assert page.locator("html").get_attribute("lang") == "es"
    page.close()


def test_serve_on_a_busy_port_fails_in_one_line():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "digitos", "serve", "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr and "Traceback" not in proc.stderr


def test_correcting_a_drawing_on_the_page_stores_it(browser, tmp_path):
    from test_store import start_server

    from digitos.store import DrawingStore

    db = tmp_path / "drawings.sqlite3"
    proc, url = start_server(db)
    try:
        page = browser.new_page(locale="en-US")
        page.goto(url)
        page.wait_for_selector("#feedback:not([hidden])", timeout=15000)
        assert "Saving is on" in page.locator(".collecting").inner_text()
        draw(page, [[(150, 40), (150, 240)]])  # a '1'
        page.wait_for_function(SETTLED_ON.format(digit="1"), timeout=15000)
        page.fill("#truth", "7")  # "wrong, it was 7"
        page.click("#save")
        page.wait_for_function("document.getElementById('saved').textContent.includes('#')",
                               timeout=15000)
        page.click("#right")  # and the same drawing once more, as read
        page.wait_for_function("document.getElementById('saved').dataset.id === '2'",
                               timeout=15000)
        page.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    with DrawingStore(db) as store:
        first, second = store.get(1), store.get(2)
    assert (first.label, first.reading) == ("7", "1") and second.label == "1"
    assert first.image.startswith(b"\x89PNG") and first.digits[0]["label"] == "7"
    assert first.digits[0]["pixels"].shape == (28, 28) and first.model == "DigitNetL"


PHONE = {"viewport": {"width": 412, "height": 839}, "has_touch": True, "is_mobile": True}


@pytest.mark.parametrize("locale", ["en-US", "es-ES"])
def test_on_a_phone_the_pad_holds_still_while_readings_change(server, browser, locale):
    """A stroke drawn in many small moves, read again and again as it grows (a 1, then
    something else, then not a digit...): the pad never moves under the finger."""
    context = browser.new_context(locale=locale, **PHONE)
    page = context.new_page()
    page.goto(server)
    box = page.locator("#pad").bounding_box()
    seen, answers = set(), set()
    path = [(140, 30 + 4 * i) for i in range(50)] + [(140 + 4 * i, 230 - 3 * i) for i in range(40)]
    page.mouse.move(box["x"] + path[0][0], box["y"] + path[0][1])
    page.mouse.down()
    for x, y in path[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y)
        page.wait_for_timeout(15)
        seen.add(tuple(page.locator("#pad").bounding_box().values()))
        answers.add(page.locator("#digit").inner_text() + page.locator("#status").inner_text())
    page.mouse.up()
    page.wait_for_function("document.body.dataset.state === 'idle'", timeout=15000)
    seen.add(tuple(page.locator("#pad").bounding_box().values()))
    assert len(answers) >= 2  # the reading changed while drawing
    assert seen == {tuple(box.values())}  # and the pad stayed where it was
    context.close()


def test_on_a_phone_pad_reading_and_buttons_fit_and_the_next_drawing_counts(browser, tmp_path):
    from test_store import start_server

    proc, url = start_server(tmp_path / "drawings.sqlite3")
    try:
        context = browser.new_context(locale="en-US", **PHONE)
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector("#feedback:not([hidden])", timeout=15000)
        for selector in ("#pad", "#digit", "#right", "#save", "#notdigit", "#truth"):
            b = page.locator(selector).bounding_box()
            assert b["y"] >= 0 and b["y"] + b["height"] <= 839, selector  # on the first screen
        draw(page, [[(140, 40), (140, 240)]])  # a '1'
        page.wait_for_function(SETTLED_ON.format(digit="1"), timeout=15000)
        page.click("#right")
        page.wait_for_function("document.getElementById('saved').textContent.includes('#')",
                               timeout=15000)
        # The next drawing starts on a clean pad and is read.
        draw(page, [[(70, 60), (210, 60), (120, 250)]])  # a '7'
        page.wait_for_function(SETTLED_ON.format(digit="7"), timeout=15000)
        assert page.evaluate("window.scrollY") == 0
        context.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
