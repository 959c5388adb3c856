"""Synthetic handwriting (digitos.synth): styles drawn onto real MNIST digits, digits written
by random hands and read back, and how both join training."""

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from digitos.datasets import make_splits
from digitos.errors import DigitosError
from digitos.synth import STYLES, Hand, random_hand, styled, write, written
from digitos.synth.styles import crossed_sevens, flagged_ones
from digitos.train import TrainConfig, add_styled, fit, read_metrics


def test_a_flag_is_drawn_down_and_left_from_the_top_of_each_one(mnist):
    images, labels = mnist.test.images, mnist.test.labels
    flagged = flagged_ones(images, labels, 200, seed=1)
    assert flagged.shape == (200, 28, 28) and flagged.dtype == torch.uint8
    # Which 1s were taken: every flagged image contains its original 1 to the last pixel.
    ones = images[labels == 1]
    for f in flagged[:20]:
        assert ((f.int() - ones.int()).clamp(max=0).sum((1, 2)) == 0).any()
    for f in flagged:
        original = max(ones, key=lambda o: -int((f.int() - o.int()).abs().sum()))
        added = (f.float() - original.float()).clamp(min=0)  # the flag's ink
        assert (f >= 128).sum() > (original >= 128).sum() + 2
        rows = np.nonzero((original >= 128).any(1).numpy())[0]
        top, height = rows[0], rows[-1] - rows[0] + 1
        top_x = np.nonzero((original[top] >= 128).numpy())[0].mean()
        ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
        # Its weight lies in the upper half of the digit, left of where the stroke starts.
        assert float((added * ys).sum() / added.sum()) < top + 0.5 * height
        assert float((added * xs).sum() / added.sum()) < top_x
    assert torch.equal(flagged, flagged_ones(images, labels, 200, seed=1))  # seeded
    assert not torch.equal(flagged, flagged_ones(images, labels, 200, seed=2))


def test_a_bar_is_drawn_across_the_middle_of_each_seven(mnist):
    images, labels = mnist.test.images, mnist.test.labels
    crossed = crossed_sevens(images, labels, 200, seed=1)
    assert crossed.shape == (200, 28, 28) and crossed.dtype == torch.uint8
    sevens = images[labels == 7]
    barred = 0
    for c in crossed:
        # Each holds its original 7 to the last pixel, and the bar's ink lies across the
        # middle of the digit: a short, flat stroke, not a second top bar or a base.
        # (the one with most ink of those it holds: a thin 7 of the test set lies inside a bold one)
        deficit = (c.int() - sevens.int()).clamp(max=0).sum((1, 2))
        original = sevens[int(torch.where(deficit == 0, sevens.int().sum((1, 2)), -1).argmax())]
        assert int((c.int() - original.int()).clamp(max=0).sum()) == 0
        added = (c.float() - original.float()).clamp(min=0)
        if added.sum() < 255:
            continue  # a stem with a gap at that row gets no bar
        barred += 1
        rows = np.nonzero((original >= 128).any(1).numpy())[0]
        top, height = rows[0], rows[-1] - rows[0] + 1
        ys = torch.arange(28.0)[:, None]
        centre = float((added * ys).sum() / added.sum())
        assert top + 0.35 * height < centre < top + 0.7 * height
        inked = np.nonzero((added > 64).any(1).numpy())[0]
        assert inked[-1] - inked[0] <= 0.3 * height + 4  # flat: a few rows, not a stroke down
    assert barred >= 190
    assert torch.equal(crossed, crossed_sevens(images, labels, 200, seed=1))  # seeded


def test_styled_digits_join_training_with_their_labels_and_nothing_else_changes(mnist_dir, mnist):
    splits = make_splits(mnist, "holdout", 0, 5000, 3000, 500, None)
    cfg = TrainConfig.from_recipe("default", data_dir=str(mnist_dir), flagged_ones=100,
                                  crossed_sevens=60)
    out = add_styled(splits, cfg, log=lambda s: None)
    assert len(out.train) == len(splits.train) + 160
    assert (out.train.labels[-160:-60] == 1).all() and (out.train.labels[-60:] == 7).all()
    assert torch.equal(out.train.images[:-160], splits.train.images)
    assert torch.equal(out.train.images[-60:],
                       crossed_sevens(splits.train.images, splits.train.labels, 60, 0))
    assert out.val is splits.val and out.test is splits.test
    only_sevens = add_styled(splits, TrainConfig.from_recipe(
        "default", data_dir=str(mnist_dir), crossed_sevens=60), log=lambda s: None)
    assert torch.equal(only_sevens.train.images, out.train.images[list(range(len(splits.train)))
                                                                  + list(range(-60, 0))])
    # --styled N: N of every style, each with its digit's label; a style's own option wins.
    every = add_styled(splits, TrainConfig.from_recipe("default", data_dir=str(mnist_dir),
                                                       styled=20, crossed_sevens=5),
                       log=lambda s: None)
    added = every.train.labels[len(splits.train):].tolist()
    assert sorted(added) == sorted([d for name, (d, _) in STYLES.items()
                                    for _ in range(5 if name == "crossed-sevens" else 20)])
    for option, n in (("--flagged-ones", dict(flagged_ones=10)),
                      ("--crossed-sevens", dict(crossed_sevens=10)), ("--styled", dict(styled=3))):
        with pytest.raises(DigitosError, match=option):
            add_styled(splits, TrainConfig.from_recipe("default", dataset="idx", **n), log=print)


def _rows_of_ink(img: np.ndarray, rows) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = [], []
    for y in rows:
        cols = np.nonzero(img[y] >= 128)[0]
        if len(cols):
            ys.append(y)
            xs.append(cols.mean())
    return np.array(ys, dtype=float), np.array(xs)


def _straightness(img: np.ndarray, rows) -> float:
    """How far the ink's middle, row by row, strays from one straight line (px, worst row)."""
    ys, xs = _rows_of_ink(img, rows)
    fit = np.polyval(np.polyfit(ys, xs, 1), ys)
    return float(np.abs(xs - fit).max())


def _hole(img: np.ndarray) -> np.ndarray:
    """Every hole the ink closes."""
    ink = img >= 128
    return ndimage.binary_fill_holes(ink) & ~ink


def _loop(img: np.ndarray) -> np.ndarray:
    """The largest hole the ink closes (a 6's or a 9's loop)."""
    holes, n = ndimage.label(_hole(img))
    if n == 0:
        return holes > 0
    return holes == 1 + int(np.argmax(ndimage.sum(holes > 0, holes, range(1, n + 1))))


@pytest.mark.parametrize("name", sorted(STYLES))
def test_each_style_is_drawn_as_its_name_says_and_still_reads_as_its_digit(mnist, reader, name):
    """Every style of synth/styles.py on 300 test digits of its class: the shape it names
    (checked on the pixels), and the shipped model reads them as that digit."""
    digit = STYLES[name][0]
    images = styled(mnist.test.images, mnist.test.labels, name, 300, seed=3)
    assert images.shape == (300, 28, 28) and images.dtype == torch.uint8
    assert torch.equal(images, styled(mnist.test.images, mnist.test.labels, name, 300, seed=3))
    originals = mnist.test.images[mnist.test.labels == digit]
    shaped = 0
    for img in images.numpy():
        rows = np.nonzero((img >= 128).any(1))[0]
        top, bottom = rows[0], rows[-1]
        height = bottom - top + 1
        if name == "based-ones":  # a flat base wider than the stem, at the bottom
            base = img[bottom - 1: bottom + 1] >= 128
            stem = img[top + height // 2: top + 3 * height // 4] >= 128  # below any flag
            shaped += base.any(0).sum() >= 1.5 * stem.sum(1).max()
        elif name == "open-fours":  # no closed loop at all
            shaped += _hole(img).sum() == 0
        elif name == "flat-sixes":  # a loop below, and one straight stroke above it
            hole_rows = np.nonzero(_loop(img).any(1))[0]
            above = range(top + 2, hole_rows[0] - 3) if len(hole_rows) else range(0)  # no caps
            shaped += len(above) >= height // 5 and _straightness(img, above) <= 1.5
        elif name == "straight-nines":  # a loop above, and one straight stem below it
            hole_rows = np.nonzero(_loop(img).any(1))[0]
            below = range(hole_rows[-1] + 5, bottom - 1) if len(hole_rows) else range(0)
            shaped += len(below) >= height // 5 and _straightness(img, below) <= 1.5
        else:  # flags and bars add ink to a digit kept whole (tested above)
            shaped += bool(((torch.from_numpy(img).int() - originals.int()).clamp(max=0)
                            .sum((1, 2)) == 0).any())
    assert shaped >= 0.95 * len(images), shaped
    read = reader.probabilities(images).argmax(1)
    assert (read == digit).float().mean() >= 0.9


@pytest.mark.parametrize("pen", [0.5, 1.0, 2.0])
def test_a_pale_image_is_no_stroke_to_a_hand_and_says_so_without_a_warning(pen):
    """A light garment among the not-a-digit images: nothing dark enough to draw. The hand
    says so (synth.written keeps such an image as it was) instead of a NumPy warning."""
    pale = np.zeros((28, 28), np.uint8)
    pale[4:24, 6:22] = 100
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="no ink dark enough"):
            write(pale, Hand(height=30, pen=pen), np.random.default_rng(0))


def test_a_hand_writes_an_image_file_that_reading_opens():
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 12:16] = 255  # a 1
    rng = np.random.default_rng(0)
    small = Image.open(io.BytesIO(write(digit, Hand(height=10, enlarge=8, format="jpeg"), rng)))
    ink_rows = np.nonzero((np.asarray(small.convert("L")) < 128).any(1))[0]
    assert small.format == "JPEG" and 70 <= ink_rows[-1] - ink_rows[0] + 1 <= 90  # 10 px, 8x
    tilted = np.asarray(Image.open(io.BytesIO(write(digit, Hand(height=100, tilt=30), rng))).convert("L"))
    ys, xs = np.nonzero(tilted < 128)
    slope = np.polyfit(ys, xs, 1)[0]  # clockwise: the top leans right, x falls as y grows
    assert -0.75 < slope < -0.4  # tan(30 degrees) = 0.58
    thick, thin = (np.asarray(Image.open(io.BytesIO(write(digit, Hand(height=100, pen=p), rng)))
                              .convert("L")) < 128 for p in (2.0, 0.5))
    assert thick.sum() > 2.5 * thin.sum()  # a pen 4 times as wide, at the same height
    clear = Image.open(io.BytesIO(write(digit, Hand(format="transparent-png"), rng)))
    assert clear.mode == "RGBA"
    hands = [random_hand(np.random.default_rng(s)) for s in range(300)]
    assert 0.25 < np.mean([h.height <= 20 for h in hands]) < 0.45  # a third small
    assert max(abs(h.tilt) for h in hands) <= 30 and np.mean([h.tilt != 0 for h in hands]) > 0.3


@pytest.mark.parametrize("what", ["digit", "line"])
def test_training_images_are_the_files_a_hand_saves_as_reading_decodes_them(mnist, what):
    """Training skips encoding a PNG (lossless): each image must be, pixel for pixel, what
    reading decodes from the file a hand saves with the same draws, JPEGs included."""
    from digitos.preprocess import open_image
    from digitos.synth.hands import written_image
    from digitos.synth.lines import random_line, write_line
    from digitos.synth.lines import written_image as written_line

    images, labels = mnist.train.images[:300].numpy(), mnist.train.labels[:300].numpy()
    formats = set()
    for seed in range(20):
        draws = [np.random.default_rng(seed) for _ in range(2)]
        if what == "line":
            lines = [random_line(images, labels, images[:0], rng) for rng in draws]
            hands = [random_hand(rng) for rng in draws]
            saved = write_line(lines[0], hands[0], draws[0])
            direct = written_line(lines[1], hands[1], draws[1])
        else:
            hands = [random_hand(rng) for rng in draws]
            saved = write(images[seed], hands[0], draws[0])
            direct = written_image(images[seed], hands[1], draws[1])
        decoded = open_image(saved, "saved")
        formats.add(hands[0].format)
        assert direct.mode == decoded.mode and direct.size == decoded.size
        assert np.array_equal(np.asarray(direct), np.asarray(decoded))
    assert formats == {"png", "jpeg", "transparent-png"}


def test_a_training_line_reading_would_refuse_is_left_out_not_a_crash(mnist, monkeypatch):
    """Writing training lines goes on past an image reading refuses (too small, too long and
    thin): the line is left out, as a user's file like it would be refused."""
    from digitos import preprocess
    from digitos.preprocess import ImageError
    from digitos.synth.lines import random_line, read_back

    images, labels = mnist.train.images[:50].numpy(), mnist.train.labels[:50].numpy()
    rng = np.random.default_rng(0)
    line = random_line(images, labels, images[:0], rng)
    assert read_back(line, Hand(height=30), np.random.default_rng(1)) is not None

    def refuse(w, h, label):
        raise ImageError(f"{label}: {w}x{h} refused")

    monkeypatch.setattr(preprocess, "check_size", refuse)
    for fmt in ("png", "transparent-png"):
        assert read_back(line, Hand(height=30, format=fmt), np.random.default_rng(1)) is None


def test_written_digits_are_read_back_as_reading_sees_them_and_keep_their_labels(mnist, reader):
    images, labels = mnist.test.images[:3000], mnist.test.labels[:3000]
    one, one_labels = written(images, labels, 1200, seed=4, workers=1)
    two, two_labels = written(images, labels, 1200, seed=4, workers=2)
    assert torch.equal(one, two) and torch.equal(one_labels, two_labels)  # whatever the workers
    assert one.shape == (1200, 28, 28) and one.dtype == torch.uint8
    assert not torch.equal(one, written(images, labels, 1200, seed=5, workers=1)[0])
    # Each is a digit in MNIST's form (ink, centred by the reading path), changed from its
    # source, and still its digit: hard ones among them (8 px, blurred), most read right.
    assert (one.flatten(1).amax(1) == 255).all()
    assert set(one_labels.tolist()) == set(range(10))
    read = reader.probabilities(one).argmax(1)
    assert (read == one_labels).float().mean() >= 0.85


def test_a_short_run_learns_from_written_and_styled_digits(mnist_dir, tmp_path):
    lines = []
    cfg = TrainConfig.from_recipe("default", data_dir=str(mnist_dir), limit_train=3000,
                                  limit_val=500, epochs=2, styled=30, written=900, not_a_digit=False,
                                  out=str(tmp_path / "run"), device="cpu", progress=False)
    run = fit(cfg, log=lines.append)
    # Validation gets its share: 900 * 500 / (3,000 + 180) of its own.
    assert any(line.startswith("written by hand: 900 training and 142 validation images")
               for line in lines), lines
    import json

    config = json.loads((run / "config.json").read_text())
    assert config["train_images"] == 3000 + 6 * 30 + 900 and config["written"] == 900
    assert read_metrics(run)[-1]["val_accuracy"] > 0.85


def test_fine_tuning_on_ten_of_a_style_reads_the_writers_other_ones(mnist, mnist_dir, tmp_path):
    """A writer who flags their 1s corrects ten of them; fine-tuned, the model reads their
    other flagged 1s (saved as drawings) and MNIST's test digits as before."""
    from conftest import run_cli

    from digitos.predict import SHIPPED_CHECKPOINT, load_reader, read_image
    from digitos.synth.drawings import render

    ones = styled(mnist.test.images, mnist.test.labels, "flagged-ones", 210, seed=11)
    rng = np.random.default_rng(12)
    drawn = [render(d, 1, rng).data for d in ones]
    folder = tmp_path / "mine" / "1"
    folder.mkdir(parents=True)
    for i, data in enumerate(drawn[:10]):
        (folder / f"{i}.png").write_bytes(data)
    r = run_cli("finetune", SHIPPED_CHECKPOINT, "--data", tmp_path / "mine", "--out",
                tmp_path / "run", "--data-dir", mnist_dir, "--quiet")
    assert r.returncode == 0, r.stderr
    after = load_reader(tmp_path / "run" / "best.pt")
    right = sum(read_image(after, data).number == "1" for data in drawn[10:])
    assert right >= 0.97 * 200, right
    test = mnist.test.images[:2000], mnist.test.labels[:2000]
    before_mnist = (load_reader().probabilities(test[0]).argmax(1) == test[1]).float().mean()
    after_mnist = (after.probabilities(test[0]).argmax(1) == test[1]).float().mean()
    assert after_mnist >= before_mnist - 0.005


def _a_font_folder(tmp_path, names: tuple[str, ...]):
    """A fonts folder laid out as npm installs Fontsource's packages, each family's file a
    copy of DejaVu Sans (always installed, with matplotlib)."""
    import shutil

    import matplotlib

    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in names:
        files = tmp_path / "node_modules" / "@fontsource" / name / "files"
        files.mkdir(parents=True)
        shutil.copy(dejavu, files / f"{name}-latin-400-normal.woff")
    return tmp_path


def test_font_digits_are_their_labels_and_only_training_fonts_are_used(reader, tmp_path):
    from digitos.synth.fonts import DEV_FONTS, TRAINING_FONTS, font_digits, font_files

    assert not set(DEV_FONTS) & set(TRAINING_FONTS)
    folder = _a_font_folder(tmp_path, (TRAINING_FONTS[0], TRAINING_FONTS[1], DEV_FONTS[0]))
    assert [f.parent.parent.name for f in font_files(folder=folder)] == list(TRAINING_FONTS[:2])
    images, labels = font_digits(200, seed=3, fonts=font_files(folder=folder))
    assert images.shape == (200, 28, 28) and images.dtype == torch.uint8
    assert sorted(set(labels.tolist())) == list(range(10))
    # Drawn at random slants, tilts and pens, they are still their digits to a reader.
    read = [r.digit for r in reader.read_many(images)]
    assert np.mean([d == str(int(y)) for d, y in zip(read, labels, strict=True)]) > 0.9
    assert torch.equal(font_digits(20, seed=3, fonts=font_files(folder=folder))[0], images[:20])
    assert len(font_digits(5, fonts=[])[0]) == 0


def test_training_goes_on_without_fonts_and_says_how_to_fetch_them(mnist_dir, mnist, tmp_path,
                                                                  monkeypatch):
    from digitos.train import add_font_digits

    splits = make_splits(mnist, "holdout", 0, 5000, 1000, 200, None)
    cfg = TrainConfig.from_recipe("default", data_dir=str(mnist_dir), font_digits=50)
    monkeypatch.setenv("DIGITOS_FONTS_DIR", str(tmp_path / "none"))
    said = []
    assert add_font_digits(splits, cfg, log=said.append) is splits
    assert "npm install --prefix" in said[0] and "@fontsource/caveat" in said[0]
    monkeypatch.setenv("DIGITOS_FONTS_DIR", str(_a_font_folder(tmp_path / "f", ("kalam",))))
    monkeypatch.setattr("digitos.synth.fonts.TRAINING_FONTS", ("kalam",))
    said.clear()
    out = add_font_digits(splits, cfg, log=said.append)
    assert len(out.train) == len(splits.train) + 50 and out.val is splits.val
    assert said == ["font digits: 50 digits in 1 handwriting fonts added"]
    with pytest.raises(DigitosError, match="--font-digits"):
        add_font_digits(splits, TrainConfig.from_recipe("default", dataset="idx", font_digits=5),
                        log=print)
