"""Checkpoint + images -> digits with probabilities. Used by `digitos predict` and the web app."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import load_checkpoint
from .errors import DigitosError
from .evaluate import model_logits
from .loader import inference_layout, to_input, uses_channels_last
from .preprocess import ImageError, Preprocessed, preprocess_file, save_pixels

SHIPPED_CHECKPOINT = Path(__file__).parent / "weights" / "digitnet.pt"
UNSURE_BELOW = 0.7  # a reading under this probability is reported as unsure
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class Reading:
    digit: str
    confidence: float
    probabilities: list[float]
    unsure: bool
    classes: list[str]

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The k most probable classes with their probabilities, most probable first."""
        order = sorted(range(len(self.probabilities)), key=lambda i: -self.probabilities[i])
        return [(self.classes[i], self.probabilities[i]) for i in order[:k]]


class Reader:
    """A trained model ready to read 28x28 MNIST-form digits."""

    def __init__(self, model: nn.Module, meta: dict, unsure_below: float = UNSURE_BELOW):
        self.model = inference_layout(model, meta["model"]).eval()
        self.channels_last = uses_channels_last(self.model)  # inputs in the model's layout
        self.meta = meta
        self.normalization = tuple(meta["normalization"])
        self.classes = list(meta.get("classes") or [str(i) for i in range(10)])
        self.tta = bool(meta.get("tta", False))
        self.unsure_below = unsure_below

    @torch.inference_mode()
    def probabilities(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 28, 28) -> probabilities (N, classes)."""
        x = to_input(pixels, self.normalization, self.channels_last)
        return F.softmax(model_logits(self.model, x, self.tta), dim=1)

    def read(self, pixels: torch.Tensor) -> Reading:
        p = self.probabilities(pixels[None])[0]
        best = int(p.argmax())
        conf = float(p[best])
        return Reading(self.classes[best], conf, [round(float(v), 6) for v in p],
                       conf < self.unsure_below, self.classes)

    def saliency(self, pixels: torch.Tensor, target: int | None = None) -> torch.Tensor:
        """Plain autograd saliency: |d score / d pixel| of the read class, scaled to [0, 1]."""
        x = to_input(pixels[None], self.normalization, self.channels_last).requires_grad_(True)
        with torch.enable_grad():
            scores = self.model(x)
            cls = int(scores.argmax()) if target is None else target
            scores[0, cls].backward()
        g = x.grad[0, 0].abs()
        return g / g.max().clamp(min=1e-12)


def load_reader(checkpoint: str | Path | None = None,
                unsure_below: float = UNSURE_BELOW) -> Reader:
    """A Reader from a checkpoint, or from the model shipped with digitos."""
    path = Path(checkpoint) if checkpoint else SHIPPED_CHECKPOINT
    if checkpoint is None and not path.is_file():
        raise DigitosError(f"the shipped model is missing ({path}); pass --checkpoint")
    model, meta = load_checkpoint(path)
    return Reader(model, meta, unsure_below)


def predict_file(reader: Reader, source: str | Path | bytes,
                 name: str | None = None) -> tuple[Reading, Preprocessed]:
    pre = preprocess_file(source, name)
    return reader.read(pre.pixels), pre


def reading_json(path: str, reading: Reading) -> dict:
    """The fields `predict --json` and the web API answer with."""
    return {"path": path, "digit": reading.digit, "confidence": round(reading.confidence, 6),
            "unsure": reading.unsure, "probabilities": reading.probabilities}


def expand_paths(paths: list[str]) -> list[Path]:
    """Files as given; folders give their image files, sorted."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*")
                          if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out


def run_predict(args) -> int:
    """`digitos predict`: read every file; refused ones get a line each; exit 1 if any."""
    unsure = UNSURE_BELOW if args.unsure_below is None else args.unsure_below
    reader = load_reader(args.checkpoint, unsure)
    files = expand_paths(args.paths)
    if not files:
        raise DigitosError("no image files found in " + ", ".join(args.paths))
    save_dir = Path(args.save_preprocessed) if args.save_preprocessed else None
    if save_dir:
        save_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for f in files:
        try:
            reading, pre = predict_file(reader, f)
        except ImageError as e:
            failed += 1
            if args.json:
                print(json.dumps({"path": str(f), "error": str(e)}), flush=True)
            print(f"digitos: error: {e}", file=sys.stderr, flush=True)
            continue
        if save_dir:
            save_pixels(pre.pixels, save_dir / (f.stem + ".png"))
        if args.json:
            print(json.dumps(reading_json(str(f), reading)), flush=True)
        else:
            others = ", ".join(f"{d} {100 * p:.1f}%" for d, p in reading.top(3)[1:])
            mark = "  (unsure)" if reading.unsure else ""
            print(f"{f}: {reading.digit} ({100 * reading.confidence:.1f}%){mark}   next: {others}",
                  flush=True)
    return 1 if failed else 0
