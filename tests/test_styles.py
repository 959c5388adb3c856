"""Flagged 1s and crossed 7s made from real MNIST digits (styles.py), and how they join
training."""

import numpy as np
import pytest
import torch

from digitos.datasets import make_splits
from digitos.errors import DigitosError
from digitos.styles import crossed_sevens, flagged_ones
from digitos.train import TrainConfig, add_styled


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
        original = sevens[int((c.int() - sevens.int()).clamp(max=0).sum((1, 2)).argmax())]
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
    for option, n in (("--flagged-ones", dict(flagged_ones=10)),
                      ("--crossed-sevens", dict(crossed_sevens=10))):
        with pytest.raises(DigitosError, match=option):
            add_styled(splits, TrainConfig.from_recipe("default", dataset="idx", **n), log=print)
