import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from digitos.preprocess import MAX_PIXELS, ImageError, preprocess_file, stroke_width
from digitos.synth.drawings import render_set, render_small


def png(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def paper_drawing(digit: torch.Tensor, size: int, canvas=(600, 400), at=(0, 0)) -> Image.Image:
    """An MNIST digit enlarged to `size` px, black on white, pasted at `at` on a big canvas."""
    ink = Image.fromarray(digit.numpy()).resize((size, size), Image.BICUBIC)
    page = Image.new("L", canvas, 255)
    page.paste(Image.fromarray(255 - np.asarray(ink)), at)
    return page


def centre_of_mass(pixels: torch.Tensor) -> tuple[float, float]:
    p = pixels.float()
    idx = torch.arange(28, dtype=torch.float32)
    return float((p.sum(1) * idx).sum() / p.sum()), float((p.sum(0) * idx).sum() / p.sum())


def test_tiny_digit_in_a_corner_reads_like_a_centred_one(mnist, reader):
    digit, label = mnist.test.images[0], int(mnist.test.labels[0])
    corner = preprocess_file(png(paper_drawing(digit, 36, at=(560, 362))))
    centred = preprocess_file(png(paper_drawing(digit, 300, at=(150, 50))))
    for pre in (corner, centred):
        cy, cx = centre_of_mass(pre.pixels)
        assert abs(cy - 13.5) <= 0.6 and abs(cx - 13.5) <= 0.6
        ink = torch.nonzero(pre.pixels > 0)
        side = max(ink[:, 0].max() - ink[:, 0].min(), ink[:, 1].max() - ink[:, 1].min()) + 1
        assert 19 <= side <= 22  # the longer side scaled to 20 px (plus the anti-aliased rim)
        assert reader.read(pre.pixels).digit == str(label)
    a, b = corner.pixels.float().flatten(), centred.pixels.float().flatten()
    assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.85
    assert corner.polarity == "dark-on-light"


def test_preprocessed_mnist_digit_stays_an_mnist_digit(mnist, reader):
    """MNIST's own images pass through nearly unchanged and are read the same."""
    images, labels = mnist.test.images[:200], mnist.test.labels[:200]
    again = torch.stack([preprocess_file(png(Image.fromarray(d.numpy()))).pixels for d in images])
    direct = reader.probabilities(images).argmax(1)
    via = reader.probabilities(again).argmax(1)
    assert (direct == via).float().mean() >= 0.99
    assert (via == labels).float().mean() >= 0.98


def test_thin_strokes_on_a_big_canvas_do_not_vanish(reader):
    page = Image.new("L", (1200, 900), 255)
    draw = ImageDraw.Draw(page)
    draw.line([(600, 150), (600, 750)], fill=0, width=2)  # a '1' drawn with a 2-px pen
    pre = preprocess_file(png(page))
    assert int(pre.pixels.max()) == 255
    assert int((pre.pixels > 128).sum()) >= 20  # a solid stroke, not a faint hairline
    assert reader.read(pre.pixels).digit == "1"
    assert stroke_width(pre.pixels > 128) >= 1.5


def test_polarity_is_judged_by_the_background_not_the_mean(mnist, reader):
    digit = mnist.test.images[1]
    dark_on_light = paper_drawing(digit, 380, canvas=(400, 400), at=(10, 10))
    light_on_dark = Image.fromarray(255 - np.asarray(dark_on_light))
    # A bold '0' filling its little page: most pixels are ink, so the mean says "dark paper".
    bold = Image.new("L", (300, 300), 255)
    ImageDraw.Draw(bold).ellipse([25, 12, 275, 288], outline=0, width=95)
    assert np.asarray(bold).mean() < 128
    a = preprocess_file(png(dark_on_light))
    b = preprocess_file(png(light_on_dark))
    c = preprocess_file(png(bold))
    assert (a.polarity, b.polarity, c.polarity) == ("dark-on-light", "light-on-dark",
                                                     "dark-on-light")
    assert (a.pixels.int() - b.pixels.int()).abs().max() <= 2
    assert reader.read(c.pixels).digit == "0"


def test_transparent_png_is_put_on_white_paper(mnist, reader):
    """Black ink on a transparent background: every RGB pixel is black, only alpha differs."""
    digit, label = mnist.test.images[2], int(mnist.test.labels[2])
    alpha = Image.fromarray(digit.numpy()).resize((250, 250), Image.BICUBIC)
    rgba = Image.new("RGBA", (500, 400), (0, 0, 0, 0))
    rgba.putalpha(Image.new("L", (500, 400), 0))
    layer = Image.merge("RGBA", [Image.new("L", (250, 250), 0)] * 3 + [alpha])
    rgba.paste(layer, (30, 100))
    pre = preprocess_file(png(rgba))
    assert pre.polarity == "dark-on-light"
    assert reader.read(pre.pixels).digit == str(label)


def test_exif_orientation_is_applied(mnist):
    digit = mnist.test.images[3]
    upright = paper_drawing(digit, 200, canvas=(300, 240), at=(40, 20)).convert("RGB")
    stored = upright.transpose(Image.ROTATE_90)  # how a phone stores it, with EXIF saying so
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    a = preprocess_file(png(upright, "JPEG", quality=95))
    b = preprocess_file(png(stored, "JPEG", quality=95, exif=exif.tobytes()))
    assert b.size == (300, 240)
    assert (a.pixels.float() - b.pixels.float()).abs().mean() < 8


def test_jpeg_noise_and_grey_paper_are_suppressed(mnist):
    digit = mnist.test.images[4]
    page = np.asarray(paper_drawing(digit, 200, canvas=(500, 500), at=(100, 150))).astype(float)
    page = page * 0.75 + 40  # grey paper (231), grey ink (40)
    page += np.random.default_rng(0).normal(0, 6, page.shape)
    img = Image.fromarray(np.clip(page, 0, 255).astype(np.uint8))
    pre = preprocess_file(png(img, "JPEG", quality=60))
    clean = preprocess_file(png(paper_drawing(digit, 200, canvas=(500, 500), at=(100, 150))))
    assert int(pre.pixels[:3].sum()) == 0 and int(pre.pixels[:, -3:].sum()) == 0
    assert (pre.pixels.float() - clean.pixels.float()).abs().mean() < 12


@pytest.mark.parametrize("data, message", [
    (b"", "empty file"),
    (b"hello, I am text", "not an image"),
    (png(Image.new("L", (300, 200), 255)), "no ink"),
    (png(Image.new("L", (300, 200), 0)), "no ink"),
    (png(Image.new("RGBA", (300, 200), (0, 0, 0, 0))), "no ink"),
])
def test_bad_images_are_refused_with_a_reason(data, message):
    with pytest.raises(ImageError, match=message):
        preprocess_file(data, "x.png")


def test_truncated_image_is_refused(mnist):
    data = png(paper_drawing(mnist.test.images[0], 200))
    with pytest.raises(ImageError, match="truncated or damaged"):
        preprocess_file(data[: len(data) // 2], "half.png")


def test_decompression_bomb_is_refused_before_decoding():
    side = int(MAX_PIXELS ** 0.5) + 100
    bomb = png(Image.new("1", (side, side), 1))  # a few kB on disk, 40+ million pixels
    assert len(bomb) < 200_000
    with pytest.raises(ImageError, match="over the limit"):
        preprocess_file(bomb, "bomb.png")


def test_drawings_are_read_within_one_point_of_mnist(mnist, reader):
    """The goal of the preprocessing: re-rendered drawings read as well as MNIST itself."""
    n = 600
    images, labels = mnist.test.images[-n:], mnist.test.labels[-n:]
    mnist_acc = (reader.probabilities(images).argmax(1) == labels).float().mean().item()
    drawings = list(render_set(images, labels, seed=1))
    assert {d.format for d in drawings} == {"png", "jpeg", "transparent-png"}
    assert min(max(d.size) for d in drawings) >= 76
    seen = torch.stack([preprocess_file(d.data).pixels for d in drawings])
    drawn_acc = (reader.probabilities(seen).argmax(1) == labels).float().mean().item()
    assert drawn_acc >= mnist_acc - 0.01, (drawn_acc, mnist_acc)


def test_homework_drawn_with_paints_pencil_on_a_28x28_canvas(mnist, reader):
    """The class's homework as many students do it: a 28x28 canvas, Paint's pencil (every
    pixel black or white, no anti-aliasing), saved as PNG. 98.75% of the first 2,000 test
    digits read right (`drawings_accuracy.py --small 28 --crisp`)."""
    images, labels = mnist.test.images[2000:2300], mnist.test.labels[2000:2300]
    drawings = [render_small(d, int(c), 28, crisp=True) for d, c in zip(images, labels, strict=True)]
    first = np.asarray(Image.open(io.BytesIO(drawings[0].data)))
    assert first.shape == (28, 28) and set(np.unique(first)) == {0, 255}
    seen = torch.stack([preprocess_file(d.data).pixels for d in drawings])
    assert (reader.probabilities(seen).argmax(1) == labels).float().mean() >= 0.97


@pytest.mark.parametrize("fmt", ["BMP", "GIF", "WEBP", "TIFF"])
def test_other_formats_people_save(mnist, reader, fmt):
    digit, label = mnist.test.images[5], int(mnist.test.labels[5])
    page = paper_drawing(digit, 160, canvas=(400, 300), at=(120, 60))
    pre = preprocess_file(png(page.convert("RGB") if fmt == "WEBP" else page, fmt), f"d.{fmt}")
    assert reader.read(pre.pixels).digit == str(label)
