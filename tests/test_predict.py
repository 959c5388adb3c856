"""`digitos predict` as a real subprocess, on drawings made from real MNIST test digits."""

import json
from pathlib import Path

import numpy as np
from conftest import run_cli
from PIL import Image, ImageDraw
from test_preprocess import paper_drawing, png


def write_drawings(mnist, folder, n=4):
    folder.mkdir()
    labels = []
    for i in range(n):
        img = paper_drawing(mnist.test.images[i], 150 + 40 * i, canvas=(640, 480),
                            at=(20 + 90 * i, 30 + 40 * i))
        fmt = "JPEG" if i % 2 else "PNG"
        (folder / f"d{i}.{fmt.lower()}").write_bytes(png(img, fmt))
        labels.append(str(int(mnist.test.labels[i])))
    return labels


def test_predict_reads_files_and_folders(mnist, tmp_path):
    labels = write_drawings(mnist, tmp_path / "drawings")
    proc = run_cli("predict", tmp_path / "drawings", "--json",
                   "--save-preprocessed", tmp_path / "seen")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["digit"] for r in rows] == [int(d) for d in labels]
    assert [r["number"] for r in rows] == labels
    for r in rows:
        assert set(r) >= {"path", "digit", "confidence", "probabilities", "number", "digits",
                          "not_a_digit"}
        assert r["not_a_digit"] is False and len(r["digits"]) == 1
        assert r["digits"][0]["digit"] == r["digit"] and len(r["digits"][0]["box"]) == 4
        # The ten digits and "not a digit" share the probability.
        total = sum(r["probabilities"]) + r["not_a_digit_probability"]
        assert len(r["probabilities"]) == 10 and abs(total - 1) < 1e-4
        assert r["confidence"] == max(r["probabilities"])
    seen = sorted(p.name for p in (tmp_path / "seen").iterdir())
    assert seen == ["d0.png", "d1.png", "d2.png", "d3.png"]
    assert Image.open(tmp_path / "seen" / "d0.png").size == (28, 28)

    text = run_cli("predict", tmp_path / "drawings" / "d0.png")
    assert text.returncode == 0
    assert text.stdout.startswith(f"{tmp_path / 'drawings' / 'd0.png'}: {labels[0]} (")
    assert "next: " in text.stdout


def test_bad_files_are_refused_one_line_each_and_the_rest_still_read(mnist, tmp_path):
    labels = write_drawings(mnist, tmp_path / "ok", n=1)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.png").write_bytes(b"")
    (bad / "notes.png").write_text("not a picture")
    good = (tmp_path / "ok" / "d0.png").read_bytes()
    (bad / "half.png").write_bytes(good[: len(good) // 2])
    (bad / "white.png").write_bytes(png(Image.new("L", (200, 200), 255)))
    (bad / "black.jpg").write_bytes(png(Image.new("RGB", (200, 200)), "JPEG"))
    (bad / "bomb.png").write_bytes(png(Image.new("1", (7000, 7000), 1)))
    files = sorted(bad.iterdir())
    proc = run_cli("predict", tmp_path / "ok" / "d0.png", *files, "--json")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == len(files)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rows[0]["digit"] == int(labels[0])
    reasons = {r["path"].rsplit("/", 1)[1]: r["error"] for r in rows[1:]}
    assert "empty file" in reasons["empty.png"]
    assert "not an image" in reasons["notes.png"]
    assert "truncated" in reasons["half.png"]
    assert "no ink" in reasons["white.png"] and "no ink" in reasons["black.jpg"]
    assert "over the limit" in reasons["bomb.png"]


def test_noise_and_scribbles_are_not_read_as_digits(tmp_path):
    rng = np.random.default_rng(0)
    noise = (rng.random((60, 60)) > 0.5).astype(np.uint8) * 255
    (tmp_path / "noise.png").write_bytes(png(Image.fromarray(noise).resize((300, 300))))
    for i in range(40):  # a pen dragged about at random: dozens of turns
        page = Image.new("L", (400, 400), 255)
        walk = np.cumsum(rng.normal(0, 30, (60, 2)), axis=0) + 200
        ImageDraw.Draw(page).line([tuple(p) for p in np.clip(walk, 20, 380)], fill=0, width=6)
        (tmp_path / f"scribble{i:02}.png").write_bytes(png(page))
    proc = run_cli("predict", tmp_path, "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {Path(r["path"]).stem: r for r in map(json.loads, proc.stdout.splitlines())}
    assert len(rows) == 41
    assert rows["noise"]["not_a_digit"]
    # A rate, not a handful: some scribbles do pass for a digit, a few in a row now and then
    # (the shipped models refuse 156 of 200 such scribbles: seeds 0-9, 20 each; 78%; and 32
    # of these 40).
    read = [r["number"] for name, r in rows.items() if name != "noise" and not r["not_a_digit"]]
    assert len(read) <= 10, read  # at least 75% refused


def test_missing_checkpoint_is_a_clean_error(tmp_path):
    (tmp_path / "a.png").write_bytes(png(Image.new("L", (20, 20))))
    proc = run_cli("predict", "--checkpoint", tmp_path / "nope.pt", tmp_path / "a.png")
    assert proc.returncode == 1 and "no such checkpoint" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_predict_reads_a_number_and_says_not_a_digit(mnist, tmp_path):
    from digitos.synth.drawings import render_number
    from digitos.synth.negatives import clothes

    rng = np.random.default_rng(3)
    pick = [0, 1, 2, 3]  # 7, 2, 1, 0
    number = render_number(mnist.test.images[pick], mnist.test.labels[pick].tolist(), rng,
                           touch=0.0)
    (tmp_path / "number.png").write_bytes(number.data)
    fashion = load_fashion_test()
    shoe = Image.fromarray(255 - clothes(fashion[:1])[0].numpy()).resize((280, 280))
    (tmp_path / "shoe.png").write_bytes(png(shoe))

    proc = run_cli("predict", tmp_path / "number.png", tmp_path / "shoe.png", "--json",
                   "--save-preprocessed", tmp_path / "seen")
    assert proc.returncode == 0, proc.stderr
    num, shoe_row = (json.loads(line) for line in proc.stdout.splitlines())
    assert num["number"] == number.number == "7210"
    assert num["digit"] is None and num["not_a_digit"] is False
    assert [d["digit"] for d in num["digits"]] == [7, 2, 1, 0]
    lefts = [d["box"][0] for d in num["digits"]]
    assert lefts == sorted(lefts)
    for d in num["digits"]:
        left, top, right, bottom = d["box"]
        assert 0 <= left < right and 0 <= top < bottom
    assert shoe_row["not_a_digit"] is True and shoe_row["number"] == ""
    assert shoe_row["digits"] == [] and shoe_row["digit"] is None
    seen = sorted(p.name for p in (tmp_path / "seen").iterdir())
    assert seen == ["number-1.png", "number-2.png", "number-3.png", "number-4.png", "shoe.png"]

    text = run_cli("predict", tmp_path / "number.png", tmp_path / "shoe.png")
    first, second = text.stdout.splitlines()
    assert first.startswith(f"{tmp_path / 'number.png'}: 7210   digits: 7 (")
    assert second.startswith(f"{tmp_path / 'shoe.png'}: not a digit (")


def test_pictures_of_things_are_not_digits_and_drawings_are_no_pictures(mnist, reader):
    """A grey picture of a shirt keeps only its darkest edges at the ink threshold, and those
    read as digits (two sleeves as "11"); the shaded area around them says it is a picture.
    Drawn digits, saved every way a person saves them, have next to none."""
    from digitos.ink import SHADED, find_ink
    from digitos.predict import read_image, reading_json, reading_text
    from digitos.preprocess import open_image
    from digitos.synth.drawings import render

    fashion = load_fashion_test()
    for i in (6033, 6127, 6252):  # shirts that read as "11" without the rule
        item = Image.fromarray(255 - fashion[i].numpy()).resize((224, 224), Image.BICUBIC)
        page = Image.new("L", (400, 300), 255)
        page.paste(item, (90, 40))
        result = read_image(reader, png(page), "shirt.png")
        assert result.not_a_digit and result.picture and result.number == ""
        row = reading_json("shirt.png", result)
        assert row["not_a_digit"] is True and row["confidence"] == 1.0
        assert reading_text("shirt.png", result) == "shirt.png: not a digit (a picture)"
    rng = np.random.default_rng(0)
    measured = []
    for img, label in zip(mnist.test.images[:150], mnist.test.labels[:150], strict=True):
        data = render(img, int(label), rng).data
        measured.append(find_ink(open_image(data, "digit.png")).shading)
        result = read_image(reader, data, "digit.png")
        assert not result.picture
    assert max(measured) < SHADED / 10


def load_fashion_test():
    from digitos.synth.negatives import fashion_images

    images = fashion_images("test")
    assert images is not None, "apt-get install dataset-fashion-mnist"
    return images


def test_sure_readings_skip_test_time_augmentation_and_decide_the_same(mnist, reader):
    """Reading keeps a plain pass read at SURE_WITHOUT_TTA or more and runs the shifted views
    only on the rest: on 2,000 MNIST test digits, every class read is the full augmentation's,
    and the doubtful images get its very probabilities."""
    import torch
    import torch.nn.functional as F

    from digitos.evaluate import model_logits
    from digitos.loader import to_input
    from digitos.predict import SURE_WITHOUT_TTA

    assert reader.tta
    images = mnist.test.images[:2000]
    x = to_input(images, reader.normalization, reader.channels_last)
    with torch.inference_mode():
        plain = F.softmax(reader.model(x), dim=1)
        full = F.softmax(model_logits(reader.model, x, True), dim=1)
    read = reader.probabilities(images)
    sure = plain.max(1).values >= SURE_WITHOUT_TTA
    assert 0.5 < sure.float().mean() < 1  # most are sure, not all: both ways are exercised
    assert torch.allclose(read[sure], plain[sure], atol=1e-5)
    assert torch.allclose(read[~sure], full[~sure], atol=1e-5)
    assert torch.equal(read.argmax(1), full.argmax(1))


def test_tilted_digits_are_read(mnist, reader):
    """Digits drawn turned 30 degrees clockwise, as a leaning hand or a photo taken askew gives
    them: MNIST's digits lean, but their bars and bases lie flat, and a model that learned only
    from them read 92% of these (276 of 300); the shipped model learned tilted writing."""
    from digitos.predict import read_image

    images, labels = mnist.test.images[:300], mnist.test.labels[:300].tolist()
    right = 0
    for digit, label in zip(images, labels, strict=True):
        ink = Image.fromarray(digit.numpy()).resize((200, 200), Image.BILINEAR)
        ink = ink.rotate(-30, Image.BILINEAR, expand=True, fillcolor=0)
        page = Image.new("L", (ink.width + 80, ink.height + 80), 0)
        page.paste(ink, (40, 40))
        right += read_image(reader, png(Image.eval(page, lambda v: 255 - v))).number == str(label)
    assert right >= 0.96 * len(images)  # 296 when this was written


def test_json_has_one_shape_and_order_and_agrees_with_itself(mnist, reader):
    """A digit, a number and a non-digit answer with the same keys in the same order; a
    number read as digits is not called surely not a digit."""
    from digitos.predict import read_image, reading_json

    one = paper_drawing(mnist.test.images[0], 200)
    number = Image.new("L", (460, 200), 255)
    for col, i in enumerate([18, 4, 8]):  # 3 4 5, apart
        number.paste(0, (30 + 140 * col, 40), Image.fromarray(mnist.test.images[i].numpy())
                     .resize((120, 120)).point(lambda v: 255 if v > 100 else 0))
    scribble = Image.new("L", (300, 300), 255)
    ImageDraw.Draw(scribble).line([(30, 30), (270, 60), (40, 120), (260, 160), (30, 220),
                                   (270, 270)], fill=0, width=6)
    answers = [reading_json(name, read_image(reader, png(img)))
               for name, img in (("7.png", one), ("345.png", number), ("z.png", scribble))]
    assert [a["number"] for a in answers] == ["7", "345", ""]
    assert answers[2]["not_a_digit"] is True and answers[2]["not_a_digit_probability"] > 0.5
    assert len({tuple(a) for a in answers}) == 1  # the same keys, in the same order
    assert answers[1]["not_a_digit"] is False and answers[1]["not_a_digit_probability"] < 0.5
