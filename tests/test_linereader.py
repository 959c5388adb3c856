"""The line reader: CTC decoding, lines of writing found and read in order, touching digits."""

import json

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image
from scipy import ndimage
from test_ink import mnist_on_page
from test_preprocess import png

from digitos.linereader import BLANK, STRIDE, decode, to_batch
from digitos.predict import SHIPPED_CHECKPOINT


def scores_for(frames: list[int], sure: float = 0.9) -> torch.Tensor:
    """Scores whose likeliest class in each column is the given one (`sure` of it)."""
    p = torch.full((len(frames), 11), (1 - sure) / 10)
    p[torch.arange(len(frames)), torch.tensor(frames)] = sure
    return p.log()


def test_ctc_decoding_merges_repeats_and_drops_blanks():
    _ = BLANK
    digits = decode(scores_for([_, 2, 2, _, 0, _, _, 2, 6, 6, _]))
    assert [d.digit for d in digits] == [2, 0, 2, 6]
    # A blank between two equal digits keeps both; without it they are one.
    assert [d.digit for d in decode(scores_for([1, _, 1, 1, _]))] == [1, 1]
    assert [d.digit for d in decode(scores_for([7, 7, 7]))] == [7]
    assert decode(scores_for([_, _, _])) == []


def test_each_digit_spans_the_columns_around_its_alignment():
    _ = BLANK
    digits = decode(scores_for([_, 3, 3, _, _, _, _, 5, _]), width=9 * STRIDE)
    # 3 emitted in columns 1-2 (centre: 2 columns in), 5 in column 7 (centre 7.5): they meet
    # halfway; the first starts at the line's left, the last ends at its right.
    middle = round(STRIDE * (2 + 7.5) / 2)
    assert [d.columns for d in digits] == [(0, middle), (middle, 9 * STRIDE)]
    for d in digits:
        assert d.probabilities[d.digit] == pytest.approx(d.confidence)
        assert sum(d.probabilities) == pytest.approx(1, abs=1e-5)
        assert d.confidence == pytest.approx(0.9 / (0.9 + 0.09), abs=1e-4)


def test_a_batch_pads_with_paper_and_knows_each_lines_length():
    lines = [torch.full((32, 10), 255, dtype=torch.uint8), torch.zeros((32, 23), dtype=torch.uint8)]
    batch, lengths = to_batch(lines, (0.5, 0.5))
    assert batch.shape == (2, 1, 32, 24)  # padded to a multiple of STRIDE
    assert lengths.tolist() == [10 // STRIDE, 23 // STRIDE]
    assert float(batch[0, 0, 0, 9]) == 1.0 and float(batch[0, 0, 0, 10]) == -1.0  # paper


@pytest.fixture(scope="module")
def line_reader_present(reader):
    assert reader.line_model is not None, "the shipped line reader (weights/linenet.pt) is missing"
    return reader


def touching(digits: list[np.ndarray], height: int = 120) -> Image.Image:
    """MNIST digits written side by side, each pushed left until its ink meets its neighbour's."""
    pieces = []
    for d in digits:
        ys, xs = np.nonzero(d > 40)
        crop = Image.fromarray(d[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1])
        pieces.append(np.asarray(crop.resize((round(crop.width * height / crop.height), height),
                                             Image.BILINEAR)) > 100)
    canvas = np.zeros((height + 80, sum(p.shape[1] for p in pieces) + 80), bool)
    x = 40
    for i, p in enumerate(pieces):
        while i and x > 0 and not (canvas[40: 40 + height, x - 1: x - 1 + p.shape[1]] & p).any():
            x -= 1
        canvas[40: 40 + height, x: x + p.shape[1]] |= p
        x += p.shape[1]
    return Image.fromarray(np.where(canvas, 0, 255).astype(np.uint8))


def test_touching_digits_are_read_by_the_line_reader(mnist, line_reader_present):
    from digitos.ink import find_groups, find_ink
    from digitos.predict import read_image
    from digitos.preprocess import open_image

    right = tried = 0
    for k in range(40):
        pick = [2 * k, 2 * k + 1]
        page = png(touching([mnist.test.images[i].numpy() for i in pick]))
        if len(find_groups(find_ink(open_image(page)))) != 1:
            continue  # they meet at a corner too thin to hold them together: not touching
        tried += 1
        if tried > 20:
            break
        result = read_image(line_reader_present, page)
        expected = "".join(str(int(mnist.test.labels[i])) for i in pick)
        right += result.number == expected
        if result.number == expected:
            boxes = [d.box for d in result.digits]
            assert boxes[0][0] < boxes[1][0] and boxes[0][2] <= boxes[1][2]
    assert tried > 20 and right >= 18


def test_touching_digits_the_line_reader_is_sure_of_are_not_cut(mnist, line_reader_present,
                                                                monkeypatch):
    """Four touching digits (one piece of ink) that the line reader reads surely are its
    reading, checked digit by digit by the classifier; the cut paths are not tried. A digit
    cut from touching ones holds bits of its neighbours: the classifier, asked, may call it
    "not a digit"; what counts is that its likeliest digit is the one the line reader read."""
    from digitos import predict
    from digitos.ink import find_groups, find_ink
    from digitos.preprocess import open_image

    def no_cutting(*args, **kwargs):
        raise AssertionError("the cut paths were tried")

    monkeypatch.setattr(predict, "cut_paths", no_cutting)
    # "2724" as benchmarks/number_canvas_speed.py draws it, and three more
    for pick in ([1, 0, 1, 4], [16, 17, 18, 19], [24, 25, 26, 27], [36, 37, 38, 39]):
        page = png(touching([mnist.test.images[i].numpy() for i in pick], height=80))
        assert len(find_groups(find_ink(open_image(page)))) == 1
        expected = "".join(str(int(mnist.test.labels[i])) for i in pick)
        assert predict.read_image(line_reader_present, page).number == expected


def apart(mnist, picks: list[int]) -> bytes:
    """MNIST test digits written side by side on paper, a little apart."""
    page = np.full((160, 60 + 90 * len(picks)), 255.0)
    for i, k in enumerate(picks):
        mnist_on_page(mnist.test.images[k], 84, page, (30 + 90 * i, 38))
    return png(Image.fromarray(page.astype(np.uint8)))


def test_digits_the_classifier_drops_the_line_reader_reads(mnist, line_reader_present,
                                                           monkeypatch):
    """A digit the classifier is sure is no digit (here every 7, by a stand-in's word) is
    dropped from the number it reads piece by piece, and the classifier, shown the 7's ink,
    disagrees with the line reader; the line reader, reading the whole line very surely,
    reads a digit more, and its reading is taken."""
    from digitos.predict import NOT_A_DIGIT, Reading, read_image

    reader = line_reader_present
    read_many = reader.read_many

    def sevens_not_digits(pixels):
        out = []
        for r in read_many(pixels):
            if r.digit == "7":
                p = [0.0] * len(r.classes)
                p[r.classes.index(NOT_A_DIGIT)], p[r.classes.index("1")] = 0.99, 0.01
                r = Reading(NOT_A_DIGIT, 0.99, p, False, r.classes)
            out.append(r)
        return out

    monkeypatch.setattr(reader, "read_many", sevens_not_digits)
    labels = mnist.test.labels.tolist()
    sevens = [i for i, y in enumerate(labels) if y == 7][:6]
    others = [i for i, y in enumerate(labels) if y not in (1, 7)][:18]
    right = 0
    for k, seven in enumerate(sevens):
        pick = [others[3 * k], seven, others[3 * k + 1], others[3 * k + 2]]
        expected = "".join(str(labels[i]) for i in pick)
        right += read_image(reader, apart(mnist, pick)).number == expected
    assert right >= 5


def test_the_line_reader_decides_only_where_the_classifier_doubted_a_piece():
    """The line reader's very sure reading of a whole line stands over the classifier's
    pieces: with more digits where a piece was called no digit or read unsurely, with as
    many only where a piece was called no digit (and so cut along guessed paths); never
    with fewer digits, nor read less surely."""
    from digitos.predict import NOT_A_DIGIT, WHOLE_SURE, DigitReading, Reading, _line_decides

    classes = [*(str(d) for d in range(10)), NOT_A_DIGIT]

    def read(label: str, confidence: float = 0.99) -> DigitReading:
        p = [0.0] * len(classes)
        p[classes.index(label)] = confidence
        return DigitReading(Reading(label, confidence, p, False, classes), [0, 0, 1, 1],
                            torch.zeros(28, 28, dtype=torch.uint8), None)

    sure = [read(d) for d in "2710"]
    unsure = [read(d, 0.8) for d in "2710"]
    no_digit, doubted, plain = ([read("2"), piece, read("1"), read("0")]
                                for piece in (read(NOT_A_DIGIT), read("7", 0.6), read("7")))
    assert _line_decides(sure, sure[:3], no_digit)
    assert _line_decides(sure, sure[:3], doubted)
    assert not _line_decides(sure, sure[:3], plain)  # a 7 read surely holds no digit more
    assert _line_decides(sure, [read(d) for d in "2110"], no_digit)
    assert not _line_decides(sure, [read(d) for d in "2110"], doubted)
    assert not _line_decides(sure[:3], [read(d) for d in "27310"], no_digit)
    assert WHOLE_SURE > 0.8 and not _line_decides(unsure, unsure[:3], no_digit)


def two_lines(mnist) -> bytes:
    """'12' written above '345', as a date over a year is."""
    page = Image.new("L", (500, 400), 255)
    for row, indices in enumerate(([2, 1], [18, 4, 8])):  # MNIST test digits 1 2 / 3 4 5
        for col, i in enumerate(indices):
            digit = Image.fromarray(255 - mnist.test.images[i].numpy()).resize((112, 112))
            page.paste(digit, (40 + 110 * col, 30 + 190 * row), Image.fromarray(
                mnist.test.images[i].numpy()).resize((112, 112)))
    return png(page)


def test_two_lines_are_read_top_to_bottom(mnist, reader, tmp_path):
    from digitos.predict import read_image, reading_json

    assert [int(mnist.test.labels[i]) for i in (2, 1, 18, 4, 8)] == [1, 2, 3, 4, 5]
    result = read_image(reader, two_lines(mnist))
    assert [line.number for line in result.lines] == ["12", "345"]
    assert result.number == "12 345"
    top, bottom = result.lines
    assert top.box[3] <= bottom.box[1]  # the first line is above the second
    out = reading_json("two.png", result)
    assert [line["number"] for line in out["lines"]] == ["12", "345"]
    assert [len(line["digits"]) for line in out["lines"]] == [2, 3]

    (tmp_path / "two.png").write_bytes(two_lines(mnist))
    done = run_cli("predict", str(tmp_path / "two.png"))
    assert done.returncode == 0
    printed = done.stdout.splitlines()
    assert len(printed) == 2 and all("(line" in row for row in printed)  # a row per line
    assert [row.split(": ")[1].split()[0] for row in printed] == ["12", "345"]


def test_a_one_line_number_has_one_line_in_json(mnist, reader, tmp_path):
    from digitos.predict import read_image, reading_json

    page = Image.new("L", (420, 200), 255)
    for col, i in enumerate([18, 4]):
        page.paste(0, (40 + 150 * col, 40), Image.fromarray(mnist.test.images[i].numpy())
                   .resize((120, 120)).point(lambda v: 255 if v > 100 else 0))
    out = reading_json("34.png", read_image(reader, png(page)))
    assert out["number"] == "34"
    assert len(out["lines"]) == 1 and out["lines"][0]["number"] == "34"
    assert out["lines"][0]["digits"] == out["digits"]


def test_a_line_reader_is_trained_and_used(mnist, mnist_dir, tmp_path):
    """A real run of the `lines` recipe, kept tiny: a resumable run folder whose best.pt
    `predict --lines-checkpoint` takes; a digit classifier's checkpoint is refused there."""
    out = tmp_path / "lines"
    done = run_cli("train", "--recipe", "lines", "--written", "120", "--epochs", "1",
                   "--data-dir", str(mnist_dir), "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    assert (out / "best.pt").is_file() and (out / "metrics.csv").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["status"] == "finished" and config["model"] == "LineNet"
    page = tmp_path / "one.png"
    Image.fromarray(255 - mnist.test.images[0].numpy()).resize((100, 100)).save(page)
    done = run_cli("predict", str(page), "--lines-checkpoint", str(out / "best.pt"))
    assert done.returncode == 0, done.stderr
    done = run_cli("predict", str(page), "--lines-checkpoint", str(SHIPPED_CHECKPOINT))
    assert done.returncode != 0 and "not a line reader" in done.stderr


def test_text_lines_are_runs_of_rows_with_blank_rows_between():
    from digitos.ink import Group, text_lines

    def g(left, top, right, bottom):
        return Group(np.zeros((1, 1), bool), (left, top, right, bottom))

    a, b, c = g(0, 10, 20, 50), g(30, 45, 50, 90), g(60, 20, 80, 60)  # wandering: one line
    d = g(5, 100, 25, 140)  # below a blank band: the next line
    assert text_lines([d, c, b, a]) == [[a, b, c], [d]]


def test_more_lines_asked_for_are_the_same_lines_and_more(mnist, monkeypatch):
    """Lines are written in seeded chunks, so a set grown from n to m lines holds the same n
    lines first: a run asked for more lines writes only the rest."""
    from digitos.synth import lines as synth_lines

    monkeypatch.setattr(synth_lines, "CHUNK", 4)
    images, labels = mnist.train.images[:500], mnist.train.labels[:500]
    others = torch.zeros((0, 28, 28), dtype=torch.uint8)
    every = synth_lines.written_lines(images, labels, others, 12, seed=3, workers=1)
    rest = synth_lines.written_lines(images, labels, others, 12, seed=3, workers=1, start=8)
    assert len(rest) == 4
    for (x, text), (y, same) in zip(every[8:], rest, strict=True):
        assert text == same and torch.equal(x, y)
    with pytest.raises(ValueError):
        synth_lines.written_lines(images, labels, others, 12, seed=3, workers=1, start=5)


def test_a_run_asked_for_more_lines_keeps_those_written_before(mnist_dir, tmp_path, monkeypatch):
    from digitos.linereader import fit_lines
    from digitos.recipes import get_recipe
    from digitos.synth import lines as synth_lines
    from digitos.train import TrainConfig

    monkeypatch.setattr(synth_lines, "CHUNK", 4)
    said = []
    recipe = get_recipe("lines") | dict(epochs=1, data_dir=str(mnist_dir))
    first = tmp_path / "first"
    fit_lines(TrainConfig(**recipe | dict(written=8, out=str(first))), said.append)
    before = torch.load(first / "lines.pt", weights_only=True)
    grown = tmp_path / "grown"
    grown.mkdir()
    (grown / "lines.pt").write_bytes((first / "lines.pt").read_bytes())
    fit_lines(TrainConfig(**recipe | dict(written=12, out=str(grown))), said.append)
    after = torch.load(grown / "lines.pt", weights_only=True)
    assert any("8 lines written before" in s for s in said)
    assert after["key"][0] == 12 and len(after["train"]) == 12
    for (x, text), (y, same) in zip(before["train"], after["train"][:8], strict=True):
        assert text == same and torch.equal(x, y)
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(before["val"], after["val"], strict=True))


def test_a_line_readers_digits_are_mnists_and_warped_copies_and_font_digits(mnist, tmp_path,
                                                                            monkeypatch):
    from test_synth import _a_font_folder

    from digitos.linereader import _lines_key, line_digit_pool
    from digitos.train import TrainConfig

    images, labels = mnist.train.images[:300], mnist.train.labels[:300]
    said = []
    plain = TrainConfig.from_recipe("lines")
    pool, pool_labels = line_digit_pool(images, labels, plain, said.append)
    assert torch.equal(pool, images) and torch.equal(pool_labels, labels) and said == []
    monkeypatch.setenv("DIGITOS_FONTS_DIR", str(_a_font_folder(tmp_path, ("kalam",))))
    monkeypatch.setattr("digitos.synth.fonts.TRAINING_FONTS", ("kalam",))
    cfg = TrainConfig.from_recipe("lines", distort=True, font_digits=40)
    pool, pool_labels = line_digit_pool(images, labels, cfg, said.append)
    assert pool.shape == (640, 28, 28) and pool.dtype == torch.uint8
    assert torch.equal(pool[:300], images) and torch.equal(pool_labels[:600], labels.repeat(2))
    # Each copy is its digit warped: moved, yet most of its ink where the digit's is.
    warped, ink = pool[300:600].float() / 255, images.float() / 255
    assert all(not torch.equal(a, b) for a, b in zip(pool[300:600], images, strict=True))
    assert (warped * ink).sum() / (ink * ink).sum() > 0.5
    assert torch.equal(line_digit_pool(images, labels, cfg, said.append)[0], pool)  # seeded
    assert said[0].startswith("warped digits: 300") and "40 digits" in said[1]
    # Lines written from other digits are other lines: they are not taken for the plain ones.
    assert _lines_key(cfg) != _lines_key(plain) and len(_lines_key(plain)) == 5


def test_a_training_line_is_squeezed_or_stretched_and_keeps_its_writing():
    import random

    from digitos.linereader import augment_line

    line = torch.zeros((32, 100), dtype=torch.uint8)
    line[4:28, 10:14] = 255  # a 1
    line[4:8, 40:70] = line[24:28, 40:70] = line[4:28, 40:44] = line[4:28, 66:70] = 255  # a 0
    rng = random.Random(0)
    widths = set()
    for _ in range(50):
        x = augment_line(line, rng)
        assert x.dtype == torch.uint8 and x.shape[0] == 32
        assert 79 <= x.shape[1] <= 126
        assert (x > 127).sum() > 0.3 * (line > 127).sum()
        widths.add(x.shape[1])
    assert len(widths) > 10
    assert torch.equal(augment_line(line, random.Random(1)), augment_line(line, random.Random(1)))


def test_a_hairline_pen_thins_every_stroke_and_erases_none(mnist):
    """A thin pen thins each stroke against its own width: a digit written with thinner strokes
    than its neighbours keeps them all (eroding the whole line alike left such a digit as a few
    dots, and the number could not be read by anyone)."""
    from digitos.synth.lines import _pen, line_ink

    images = mnist.test.images
    rng = np.random.default_rng(3)
    for _ in range(20):
        pick = rng.integers(0, len(images), 4)
        line = line_ink([images[i].numpy() for i in pick], "", rng, touch=0.0, gaps=(0.3, 0.5))
        # One digit's strokes made half as wide as the others': the line's pens differ.
        a, b = line.spans[1]
        part = line.ink[:, a:b]
        line.ink[:, a:b] = ndimage.binary_erosion(part >= 0.5, iterations=1) * part
        thin = _pen(line.ink, 0.35)
        assert 0.15 * (line.ink >= 0.5).sum() < thin.sum() < 0.75 * (line.ink >= 0.5).sum()
        for a, b in line.spans:
            eight = np.ones((3, 3))  # a hairline's pixels meet at corners too
            before = ndimage.label(line.ink[:, a:b] >= 0.5, eight)[1]
            count = ndimage.label(thin[:, a:b] >= 0.5, eight)[1]
            assert (thin[:, a:b] >= 0.5).sum() > 0.1 * (line.ink[:, a:b] >= 0.5).sum()
            assert count <= before + 2  # a stroke may break where it was narrowest, not crumble


def test_overlapping_digits_never_hide_one_another(mnist):
    """Gaps below zero overlap neighbours, never so far that one is written inside the other:
    such a line's text names a digit nobody could read, and a reader trained on it learns to
    invent digits."""
    from digitos.synth.lines import OVERLAP, line_ink

    images = mnist.test.images
    rng = np.random.default_rng(5)
    most = 0.0
    for _ in range(40):
        pick = rng.integers(0, len(images), 5)
        line = line_ink([images[i].numpy() for i in pick], "", rng, touch=0.0, gaps=(-0.6, -0.3))
        for (a, b), (c, d) in zip(line.spans, line.spans[1:], strict=False):
            overlap = (b - c) / min(b - a, d - c)
            assert overlap <= OVERLAP + 0.05 and d > b
            most = max(most, overlap)
    assert most > OVERLAP - 0.1  # the gaps asked for do overlap them, as far as allowed


def test_a_line_reader_starts_from_the_weights_it_is_given(mnist_dir, tmp_path):
    from digitos.checkpoint import load_checkpoint, read_checkpoint
    from digitos.linereader import fit_lines
    from digitos.recipes import get_recipe
    from digitos.train import TrainConfig

    recipe = get_recipe("lines") | dict(epochs=1, data_dir=str(mnist_dir), written=8)
    first = fit_lines(TrainConfig(**recipe | dict(out=str(tmp_path / "a"), seed=1)), print)
    start = read_checkpoint(first / "last.pt")["state_dict"]
    # lr near nothing: the weights after an epoch are the ones it started from.
    again = fit_lines(TrainConfig(**recipe | dict(out=str(tmp_path / "b"), seed=2, lr=1e-12,
                                                  init=str(first / "last.pt"))), print)
    after = read_checkpoint(again / "last.pt")["state_dict"]
    fresh = fit_lines(TrainConfig(**recipe | dict(out=str(tmp_path / "c"), seed=2, lr=1e-12)),
                      print)
    other = read_checkpoint(fresh / "last.pt")["state_dict"]
    conv = "head.weight"
    assert torch.allclose(after[conv], start[conv], atol=1e-6)
    assert not torch.allclose(other[conv], start[conv], atol=1e-3)
    # A wider reader started from the narrow one computes what it did (on a batch's own
    # statistics: an epoch moved the running ones, at any learning rate).
    wide = fit_lines(TrainConfig(**recipe | dict(out=str(tmp_path / "d"), seed=2, lr=1e-12,
                                                 init=str(first / "last.pt"),
                                                 model_args={"width": 24, "hidden": 96})), print)
    models = [load_checkpoint(run / "last.pt")[0].train() for run in (first, wide)]
    x = torch.randn(2, 1, 32, 64)
    with torch.no_grad():
        narrow_scores, wide_scores = (m(x) for m in models)
    assert models[1].head.weight.shape[1] == 2 * 96
    assert torch.allclose(narrow_scores, wide_scores, atol=0.1 * float(narrow_scores.abs().mean()))


def test_a_line_reader_refuses_a_digit_classifier_to_start_from(mnist_dir, tmp_path):
    out = tmp_path / "run"
    done = run_cli("train", "--recipe", "lines", "--init", SHIPPED_CHECKPOINT, "--written", "8",
                   "--epochs", "1", "--data-dir", mnist_dir, "--out", out, "--quiet")
    assert done.returncode != 0 and "--init" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()  # refused before a line was written


def test_a_line_is_taken_as_most_of_its_stretches_read_it():
    from digitos.linereader import LineDigit, _agreed

    def reading(text: str, at: int) -> list[LineDigit]:
        return [LineDigit(int(c), 0.9, [0.01] * 10, (at + 10 * k, at + 10 * k + 8))
                for k, c in enumerate(text)]

    stretches = (0.9, 1.0, 1.12)
    # Two stretches agree against the line's own width: their reading, and its columns.
    taken = _agreed([reading("57", 1), reading("51", 2), reading("57", 3)], stretches)
    assert [d.digit for d in taken] == [5, 7] and taken[0].columns[0] == 1
    # The own width among the agreeing ones: its own columns.
    taken = _agreed([reading("57", 1), reading("57", 2), reading("51", 3)], stretches)
    assert [d.digit for d in taken] == [5, 7] and taken[0].columns[0] == 2
    # No two agree: the line's own width.
    taken = _agreed([reading("57", 1), reading("51", 2), reading("5", 3)], stretches)
    assert [d.digit for d in taken] == [5, 1]


def test_stretched_readings_come_back_in_the_lines_own_columns(mnist, line_reader_present):
    from digitos.linereader import _read_once
    from digitos.preprocess import line_to_input

    reader = line_reader_present
    images, labels = mnist.test.images, mnist.test.labels
    ink = np.concatenate([images[i].numpy() for i in range(4)], axis=1).astype(np.float32) / 255
    x = line_to_input(ink)
    norm = tuple(reader.line_meta["normalization"])
    alone = _read_once(reader.line_model, [x], norm, 1.0)[0]
    wide = _read_once(reader.line_model, [x], norm, 1.25)[0]
    assert "".join(str(d.digit) for d in alone) == "".join(str(int(v)) for v in labels[:4])
    assert [d.digit for d in wide] == [d.digit for d in alone]
    for a, b in zip(alone, wide, strict=True):  # the same digit, about the same place
        assert abs(a.columns[0] - b.columns[0]) <= 6 and abs(a.columns[1] - b.columns[1]) <= 6
        assert 0 <= b.columns[0] < b.columns[1] <= x.shape[1]


def test_a_wider_line_reader_starts_computing_what_the_narrow_one_computed():
    from digitos.models import LineNet, load_widened

    torch.manual_seed(0)
    narrow = LineNet(8, 16)
    for m in narrow.modules():  # BatchNorm as after training, not the identity it starts as
        if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_()
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    wide = LineNet(12, 24)
    load_widened(wide, narrow.state_dict(), noise=0.0)
    x = torch.randn(3, 1, 32, 96)
    with torch.no_grad():
        for train in (False, True):  # running statistics, and a batch's own
            narrow.train(train), wide.train(train)
            assert torch.allclose(narrow(x), wide(x), atol=1e-4)
    nudged = LineNet(12, 24)
    load_widened(nudged, narrow.state_dict())
    with torch.no_grad():
        assert not torch.allclose(narrow(x), nudged(x), atol=1e-4)  # the copies may grow apart
        assert torch.allclose(narrow(x), nudged(x), atol=0.1 * float(narrow(x).abs().mean()))


def test_a_line_reader_refuses_to_narrow():
    from digitos.errors import DigitosError
    from digitos.models import LineNet, load_widened

    with pytest.raises(DigitosError, match="cannot widen"):
        load_widened(LineNet(8, 16), LineNet(12, 24).state_dict())


def test_a_line_reader_refuses_a_damaged_narrower_one_to_start_from(mnist_dir, tmp_path):
    from digitos.checkpoint import make_checkpoint, save_checkpoint
    from digitos.linereader import LINE_CLASSES
    from digitos.models import LineNet

    ckpt = make_checkpoint(LineNet(8, 16), epoch=1, metrics={}, config={}, model_name="LineNet",
                           model_args={"width": 8, "hidden": 16}, normalization=(0.13, 0.31),
                           classes=LINE_CLASSES, dataset="mnist-lines")
    del ckpt["state_dict"]["sequence.1.running_var"]
    save_checkpoint(tmp_path / "damaged.pt", ckpt)
    out = tmp_path / "run"
    done = run_cli("train", "--recipe", "lines", "--init", tmp_path / "damaged.pt", "--written",
                   "8", "--epochs", "1", "--data-dir", mnist_dir, "--out", out, "--quiet")
    assert done.returncode != 0 and "sequence.1.running_var" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


def test_a_numbers_digits_standing_apart_go_through_the_classifier_once(mnist,
                                                                       line_reader_present,
                                                                       monkeypatch):
    """A number read whole by the line reader is checked digit by digit by the classifier in
    the same pass as its pieces; digits standing apart are the pieces themselves, read once."""
    from digitos import predict

    reader = line_reader_present
    passes = []
    read_many = reader.read_many

    def counted(pixels):
        passes.append(len(pixels))
        return read_many(pixels)

    monkeypatch.setattr(reader, "read_many", counted)
    pick = [1, 0, 1, 4]  # "2724"
    expected = "".join(str(int(mnist.test.labels[i])) for i in pick)
    assert predict.read_image(reader, apart(mnist, pick)).number == expected
    assert passes == [len(pick) + 1]  # the four pieces and all the writing joined
    # Without a line reader, the pieces are the classifier's alone.
    plain = predict.load_reader(lines=False)
    assert predict.read_image(plain, apart(mnist, pick)).number == expected


def test_a_digit_far_from_the_others_is_not_lost(mnist, line_reader_present):
    """MNIST test digits side by side as people stack them (each 28x28, white on black, a
    digit's width of black between them): the line reader, shown such gaps, lets a 1 or a 0
    fall into its neighbour's span; the classifier reads every piece, and a reading that
    misses one of them is not taken."""
    from digitos.predict import read_image

    numbers = [[4565, 2326, 952], [4392, 3991, 9401], [1420, 5699, 9411, 5167, 3268],
               [5427, 3227, 1214, 3355], [2351, 5364, 5889]]
    for pick in numbers:
        gap = np.zeros((28, 28), np.uint8)
        row = np.hstack([x for k in pick for x in (mnist.test.images[k].numpy(), gap)][:-1])
        expected = "".join(str(int(mnist.test.labels[k])) for k in pick)
        assert read_image(line_reader_present, png(Image.fromarray(row))).number == expected
