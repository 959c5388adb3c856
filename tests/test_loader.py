"""Batches and batch augmentation, on real MNIST digits."""

import torch

from digitos.datasets import Split
from digitos.loader import Augment, Batches


def centre_of_mass(pixels: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) -> (N, 2) row and column of each image's centre of mass, in pixels."""
    h, w = pixels.shape[2:]
    mass = pixels.sum((1, 2, 3))
    rows = (pixels.sum((1, 3)) * torch.arange(h)).sum(1) / mass
    cols = (pixels.sum((1, 2)) * torch.arange(w)).sum(1) / mass
    return torch.stack([rows, cols], 1)


def digits(mnist, n=256) -> torch.Tensor:
    return mnist.train.images[:n].unsqueeze(1).float() / 255


def test_no_distortion_leaves_the_digits_as_they_are(mnist):
    x = digits(mnist)
    same = Augment(rotate=0, scale=0, shift=0)(x)
    assert torch.allclose(same, x, atol=1e-5)


def test_shift_moves_digits_by_at_most_the_shift(mnist):
    torch.manual_seed(0)
    x = digits(mnist)
    moved = Augment(rotate=0, scale=0, shift=2.0)(x)
    step = (centre_of_mass(moved) - centre_of_mass(x)).abs()
    assert step.max() <= 2.1
    assert step.mean() > 0.5  # and it does move them, by about half the limit on average


def test_half_the_images_are_left_exactly_as_they_are(mnist):
    torch.manual_seed(0)
    x = digits(mnist)
    out = Augment(keep=0.5)(x)
    same = (out - x).abs().amax((1, 2, 3)) < 1e-5
    assert 0.3 < same.float().mean() < 0.7  # keep=0.5: about half, untouched to the bit


def test_rotation_and_scale_keep_the_digit_in_place_and_whole(mnist):
    torch.manual_seed(0)
    x = digits(mnist)
    turned = Augment(rotate=10, scale=0.1, shift=0)(x)
    assert (turned - x).abs().sum((1, 2, 3)).min() > 0  # every digit is changed...
    ink = turned.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert ((ink > 0.75) & (ink < 1.3)).all()  # ...scaled by at most 10% each way (area ~20%)
    # ...and turned about the image centre, so its centre of mass barely moves
    assert (centre_of_mass(turned) - centre_of_mass(x)).abs().max() < 2.5


def still(**distort) -> Augment:
    """Only the given distortions: no rotation, scale or shift."""
    return Augment(rotate=0, scale=0, shift=0, **distort)


def stroke_widths(pixels: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) -> each image's mean stroke width: inked area over half its outline."""
    ink = (pixels >= 0.5).float()
    inner = -torch.nn.functional.max_pool2d(-ink, 3, 1, 1)  # eroded: the inside of the strokes
    return 2 * ink.sum((1, 2, 3)) / (ink - inner).sum((1, 2, 3)).clamp(min=1)


def test_the_pen_is_made_thicker_and_thinner_within_its_limits(mnist):
    torch.manual_seed(0)
    x = digits(mnist)
    before = stroke_widths(x)
    thicker = stroke_widths(still(thicker=1.0)(x)) / before
    assert (thicker >= 0.99).all() and thicker.mean() > 1.2  # never thinner, often much thicker
    assert thicker.max() < 3.0  # a single 3x3 dilation: about +2 px on a 2-3 px stroke at most
    thinner = stroke_widths(still(thinner=1.0)(x)) / before
    assert (thinner <= 1.01).all() and thinner.mean() < 0.95
    # Both ways at once: each image one way or the other, the pen's limits as set.
    both = stroke_widths(still(thicker=1.0, thinner=0.5)(x)) / before
    assert (both > 1.05).any() and (both < 0.95).any()


def test_shear_and_warp_move_ink_but_keep_the_digit_in_place_and_whole(mnist):
    torch.manual_seed(0)
    x = digits(mnist)
    for distort in (dict(shear=0.3), dict(warp=1.5)):
        out = still(**distort)(x)
        assert (out - x).abs().sum((1, 2, 3)).min() > 0, distort  # every digit changed
        ink = out.sum((1, 2, 3)) / x.sum((1, 2, 3))
        assert ((ink > 0.8) & (ink < 1.25)).all(), distort  # nothing pushed off the field
        assert (centre_of_mass(out) - centre_of_mass(x)).abs().max() < 2.5, distort


def test_kept_images_stay_untouched_with_every_distortion_on(mnist):
    torch.manual_seed(0)
    x = digits(mnist)
    out = Augment(keep=0.5, shear=0.3, warp=1.5, thicker=1.0, thinner=0.5)(x)
    same = (out - x).abs().amax((1, 2, 3)) < 1e-5
    assert 0.3 < same.float().mean() < 0.7


def test_distortions_off_draw_nothing_more_from_the_random_stream(mnist):
    """A recipe without --distort trains exactly as it did before the option existed."""
    x = digits(mnist, 64)
    torch.manual_seed(3)
    plain = Augment()(x)
    after_plain = torch.rand(1)
    torch.manual_seed(3)
    off = Augment(shear=0.0, warp=0.0, thicker=0.0, thinner=0.0)(x)
    assert torch.equal(plain, off) and torch.equal(after_plain, torch.rand(1))
    torch.manual_seed(3)
    Augment(warp=1.5)(x)
    assert not torch.equal(after_plain, torch.rand(1))  # on, it does draw


def test_lowres_smears_a_share_of_the_images_as_a_tiny_canvas_would(mnist):
    """--lowres: that share of the images shrunk to 10-20 px and enlarged back, ink kept at
    full strength; the others exactly as they were."""
    torch.manual_seed(0)
    x = digits(mnist)
    out = still(lowres=0.5)(x)
    changed = (out - x).abs().amax((1, 2, 3)) > 1e-5
    assert 0.3 < changed.float().mean() < 0.7
    smeared, before = out[changed], x[changed]
    assert torch.allclose(smeared.amax((1, 2, 3)), torch.ones(len(smeared)))
    # Edges smeared into grey ramps: more pixels between paper and full ink than before...
    def grey(p):
        return ((p > 0.1) & (p < 0.9)).float().sum((1, 2, 3))
    assert (grey(smeared) > grey(before)).float().mean() > 0.9
    # ...and the digit still where it was.
    assert (centre_of_mass(smeared) - centre_of_mass(before)).abs().max() < 1.5


def test_lowres_off_draws_nothing_more_from_the_random_stream(mnist):
    x = digits(mnist, 64)
    torch.manual_seed(3)
    Augment()(x)
    after_plain = torch.rand(1)
    torch.manual_seed(3)
    Augment(lowres=0.0)(x)
    assert torch.equal(after_plain, torch.rand(1))


def test_shards_split_every_epoch_between_ranks_without_overlap(mnist):
    split = Split(mnist.test.images[:1001], torch.arange(1001))  # labels = image index
    seen = []
    for rank in (0, 1):
        batches = Batches(split, 50, (0.0, 1.0), shuffle=True, seed=3, shard=(rank, 2))
        labels = torch.cat([y for _, y in batches])
        assert len(batches) == 10 and len(labels) == 500  # 1000 // 2, the odd one left out
        seen.append(labels)
    assert len(set(torch.cat(seen).tolist())) == 1000


def test_batches_are_the_normalised_images_in_order(mnist):
    split = Split(mnist.test.images[:300], mnist.test.labels[:300])
    x, y = next(iter(Batches(split, 128, (0.1307, 0.3081))))
    assert x.shape == (128, 1, 28, 28) and torch.equal(y, split.labels[:128])
    expected = (split.images[:128].float() / 255 - 0.1307) / 0.3081
    assert torch.allclose(x[:, 0], expected, atol=1e-6)
