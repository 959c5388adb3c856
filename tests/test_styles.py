"""Flagged 1s made from real MNIST 1s (styles.py), and how they join training."""

import numpy as np
import pytest
import torch

from digitos.datasets import make_splits
from digitos.errors import DigitosError
from digitos.styles import flagged_ones
from digitos.train import TrainConfig, add_flagged_ones


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


def test_flagged_ones_join_training_as_ones_and_nothing_else_changes(mnist_dir, mnist):
    splits = make_splits(mnist, "holdout", 0, 5000, 3000, 500, None)
    cfg = TrainConfig.from_recipe("default", data_dir=str(mnist_dir), flagged_ones=100)
    out = add_flagged_ones(splits, cfg, log=lambda s: None)
    assert len(out.train) == len(splits.train) + 100
    assert (out.train.labels[-100:] == 1).all()
    assert torch.equal(out.train.images[:-100], splits.train.images)
    assert out.val is splits.val and out.test is splits.test
    with pytest.raises(DigitosError, match="--flagged-ones"):
        add_flagged_ones(splits, TrainConfig.from_recipe("default", dataset="idx",
                                                          flagged_ones=10), log=print)

