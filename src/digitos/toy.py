"""The class's first network at work: two numbers in, one of two classes out.

`NuestraPrimeraRed` (2 inputs, 3 sigmoid units, 2 outputs: 17 parameters) cannot read images;
what it can do is learn a curved border between two classes of points in the plane. These
helpers make such a problem in a few lines, train the network on it step by step, and measure
it: what "a network learns its weights" means, small enough to watch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


def xor_points(n: int = 400, noise: float = 0.15, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Four clouds of points at the corners of a square; opposite corners share a class (XOR:
    no straight line separates the classes, so the hidden layer must earn its keep)."""
    g = torch.Generator().manual_seed(seed)
    corner = torch.randint(0, 4, (n,), generator=g)
    x = torch.stack([(corner % 2).float(), (corner // 2).float()], 1) * 2 - 1
    x = x + noise * torch.randn(n, 2, generator=g)
    y = ((corner % 2) ^ (corner // 2)).long()
    return x, y


def two_moons(n: int = 400, noise: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved half-moons, as scikit-learn's make_moons draws them."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    t = torch.rand(n, generator=g) * math.pi
    x = torch.stack([torch.cos(t), torch.sin(t)], 1)
    x = torch.where(y[:, None] == 1, torch.stack([1 - x[:, 0], 0.5 - x[:, 1]], 1), x)
    return x + noise * torch.randn(n, 2, generator=g), y


@dataclass
class ToyRun:
    losses: list[float] = field(default_factory=list)  # the loss after each step
    accuracy: float = 0.0  # on the points it learned from, after the last step


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def train_toy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 1500,
              lr: float = 0.05, seed: int = 0) -> ToyRun:
    """Full-batch gradient descent (Adam) on cross-entropy: every step sees every point."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    run = ToyRun()
    model.train()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        run.losses.append(float(loss.detach()))
    model.eval()
    run.accuracy = accuracy(model, x, y)
    return run


def decision_grid(model: nn.Module, x: torch.Tensor, steps: int = 200,
                  margin: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(xs, ys, probability of class 1) on a grid over the points: the network's border."""
    lo, hi = x.min(0).values - margin, x.max(0).values + margin
    xs, ys = torch.linspace(lo[0], hi[0], steps), torch.linspace(lo[1], hi[1], steps)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    with torch.no_grad():
        p = F.softmax(model(torch.stack([gx.flatten(), gy.flatten()], 1)), 1)[:, 1]
    return xs, ys, p.reshape(steps, steps)
