"""Batches sliced from uint8 tensors held on the device, and augmentation on whole batches.

No Dataset, no DataLoader, no worker processes: a batch is `images[index]`, turned into floats
on the device it already lives on. This is most of digitos' speed over the class's loop.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .datasets import Split
from .models import get_entry


def to_input(images: torch.Tensor, normalization: tuple[float, float],
             channels_last: bool = False) -> torch.Tensor:
    """uint8 (N, H, W) or (N, 1, H, W) -> float (N, 1, H, W), normalised as the model expects."""
    if images.dim() == 3:
        images = images.unsqueeze(1)
    mean, std = normalization
    x = images.float().div_(255).sub_(mean).div_(std)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def inference_layout(model: torch.nn.Module, model_name: str) -> torch.nn.Module:
    """Image models in channels_last: about twice the images/s on CPUs (see README)."""
    if get_entry(model_name).takes_images:
        return model.to(memory_format=torch.channels_last)
    return model


def uses_channels_last(model: torch.nn.Module) -> bool:
    """Whether the model's convolution weights are stored channels_last."""
    for p in model.parameters():
        if p.dim() == 4:
            return p.is_contiguous(memory_format=torch.channels_last)
    return False


# What `--distort` adds to the affine augmentation (the reader recipe's): measured on real
# drawings, see the README's shipped model.
DISTORT = dict(shear=0.3, warp=1.5, thicker=1.0, thinner=0.5)
LOWRES_SIDES = (10, 20)  # `--lowres`: the sizes, in px, a 28x28 image is shrunk to


@dataclass
class Augment:
    """Random distortions, one per image, drawn for a whole batch at once.

    Angles in degrees, scale as a fraction, shift in pixels of a 28-px image. The rest is
    off unless asked for (`--distort`): shear (x moves by up to this share of y), a smooth
    random warp of up to `warp` px (Simard et al. 2003), and the pen made up to `thicker`
    3x3 dilations thicker or `thinner` of an erosion thinner. Real drawings vary in all three
    far more than MNIST's digits do: a paint brush, a marker, a slanted hand.

    `lowres` (off unless asked for, `--lowres`): this share of the images, moved or kept, is
    shrunk to LOWRES_SIDES px and enlarged back, as a digit drawn on a tiny canvas reaches the
    model: its edges smeared into wide grey ramps.
    """

    rotate: float = 10.0
    scale: float = 0.1
    shift: float = 2.0
    # Share of images left exactly as they are. Resampling softens edges; a model that only
    # ever saw softened images learns that as a cue, and reads crisp ones (what preprocessing
    # gives at reading time) worse: with the not-a-digit class, 31% of its examples were
    # missed at reading time until half the images were kept (train.py sets 0.5 then).
    keep: float = 0.0
    shear: float = 0.0
    warp: float = 0.0
    thicker: float = 0.0
    thinner: float = 0.0
    lowres: float = 0.0

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels: (N, 1, H, W) floats with 0 = background (applied before normalisation)."""
        n, _, h, _ = pixels.shape
        dev, dt = pixels.device, pixels.dtype

        def uniform(limit: float) -> torch.Tensor:
            return (torch.rand(n, device=dev, dtype=dt) * 2 - 1) * limit

        # 0: the identity. No draw at all when every image moves, so the random stream (and a
        # seeded run) is what it was before `keep` existed.
        moved = ((torch.rand(n, device=dev) >= self.keep).to(dt) if self.keep > 0
                 else torch.ones(n, device=dev, dtype=dt))
        angle = uniform(math.radians(self.rotate)) * moved
        scale = 1 + uniform(self.scale) * moved
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        # affine_grid works in [-1, 1] coordinates: a shift of s pixels is 2 s / H.
        tx, ty = uniform(2 * self.shift / h) * moved, uniform(2 * self.shift / h) * moved
        theta = torch.stack(
            [torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1
        )
        # Each optional distortion draws only when on: a recipe without them keeps the
        # random stream (and a seeded run's result) it always had.
        if self.shear:
            theta[:, 0, 1] = theta[:, 0, 1] + uniform(self.shear) * moved
        grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
        if self.warp:
            grid = grid + self._warp_field(n, h, dev, dt) * moved[:, None, None, None]
        out = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="zeros",
                            align_corners=False)
        if self.thicker or self.thinner:
            out = self._pen(out, moved)
        if self.lowres:
            out = self._lowres(out)
        return out

    def _lowres(self, out: torch.Tensor) -> torch.Tensor:
        """A `lowres` share of the images shrunk (one size per batch) and enlarged back."""
        n, _, h, w = out.shape
        pick = torch.rand(n, device=out.device) < self.lowres
        side = int(torch.randint(LOWRES_SIDES[0], LOWRES_SIDES[1] + 1, ()))  # no wait on a GPU
        small = F.interpolate(out, size=(side, side), mode="area")
        big = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
        big = big / big.amax((1, 2, 3), keepdim=True).clamp(min=1e-6)  # full-strength ink again
        return torch.where(pick[:, None, None, None], big, out)

    def _warp_field(self, n: int, h: int, dev: torch.device, dt: torch.dtype) -> torch.Tensor:
        """(N, H, W, 2) smooth random displacements, the largest `warp` px, in grid units."""
        noise = torch.rand(n, 2, h, h, device=dev, dtype=dt) * 2 - 1
        for _ in range(2):  # two box blurs: close to a Gaussian, and cheap
            noise = F.avg_pool2d(noise, 7, 1, 3)
        noise = noise / noise.abs().amax((1, 2, 3), keepdim=True).clamp(min=1e-6)
        return noise.permute(0, 2, 3, 1) * (2 * self.warp / h)

    def _pen(self, out: torch.Tensor, moved: torch.Tensor) -> torch.Tensor:
        """Each moved image's strokes thickened or thinned by a random amount."""
        n = out.shape[0]
        a = (torch.rand(n, device=out.device, dtype=out.dtype) * (self.thicker + self.thinner)
             - self.thinner) * moved
        a = a[:, None, None, None]
        dilated = F.max_pool2d(out, 3, 1, 1)
        eroded = -F.max_pool2d(-out, 3, 1, 1)
        thicker = torch.lerp(out, dilated, a.clamp(0, 1))
        if self.thicker > 1:  # a second dilation for the thickest pens
            thicker = torch.lerp(thicker, F.max_pool2d(dilated, 3, 1, 1), (a - 1).clamp(0, 1))
        return torch.where(a > 0, thicker, torch.lerp(out, eroded, (-a).clamp(min=0)))


class Batches:
    """(inputs, labels) batches of one split, the split moved to `device` once.

    With `shard=(rank, world)` each process sees its own 1/world of every epoch's order
    (DistributedDataParallel); all ranks see the same number of batches.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        normalization: tuple[float, float],
        device: torch.device | str = "cpu",
        shuffle: bool = False,
        seed: int = 0,
        augment: Augment | None = None,
        shard: tuple[int, int] = (0, 1),
        channels_last: bool = False,
    ):
        self.images = split.images.to(device)
        self.labels = split.labels.to(device)
        self.batch_size = batch_size
        self.normalization = normalization
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)
        self.augment = augment
        self.rank, self.world = shard
        self.channels_last = channels_last

    def _order(self) -> torch.Tensor:
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        if self.world > 1:  # equal shards, so every rank runs the same number of steps
            order = order[: n // self.world * self.world][self.rank :: self.world]
        return order.to(self.images.device)

    def __len__(self) -> int:
        n = len(self.labels) // self.world
        return math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self._order()
        mean, std = self.normalization
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            x = self.images[index].unsqueeze(1).float().div_(255)
            if self.augment is not None:
                x = self.augment(x)
            x = x.sub_(mean).div_(std)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[index]
