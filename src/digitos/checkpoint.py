"""Checkpoints: everything needed to rebuild a model, as tensors and plain values.

They load with `torch.load(path, weights_only=True, map_location="cpu")`, and are written to a
temporary file that is renamed into place, so a crash never leaves a broken file behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from . import __version__
from .errors import DigitosError
from .models import create_model, get_entry

FORMAT = "digitos-checkpoint-v1"


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file beside `path`, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel or torch.compile wrappers."""
    while True:
        if hasattr(model, "module"):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def make_checkpoint(
    model: nn.Module,
    model_name: str,
    model_args: dict,
    normalization: tuple[float, float],
    classes: tuple[str, ...] | list[str],
    dataset: str,
    epoch: int = 0,
    metrics: dict | None = None,
    config: dict | None = None,
    tta: bool = False,
) -> dict:
    state = {k: v.detach().cpu().clone() for k, v in unwrap(model).state_dict().items()}
    return {
        "format": FORMAT,
        "digitos_version": __version__,
        "model": model_name,
        "model_args": dict(model_args),
        "state_dict": state,
        "normalization": [float(normalization[0]), float(normalization[1])],
        "classes": list(classes),
        "dataset": dataset,
        "epoch": int(epoch),
        "metrics": dict(metrics or {}),
        "config": dict(config or {}),
        "tta": bool(tta),
    }


def save_checkpoint(path: str | Path, checkpoint: dict) -> None:
    atomic_save(checkpoint, path)


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict, loaded safely (weights_only) onto the CPU."""
    path = Path(path)
    if not path.is_file():
        raise DigitosError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # a damaged or foreign file can fail in many ways inside torch.load
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DigitosError(f"{path}: not a readable checkpoint ({first})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise DigitosError(
            f"{path}: not a digitos checkpoint (for a bare state_dict use --model NAME --weights FILE)"
        )
    return ckpt


def model_from_checkpoint(ckpt: dict) -> nn.Module:
    model = create_model(ckpt["model"], **ckpt.get("model_args", {}))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict]:
    """(model in eval mode on the CPU, checkpoint dict)."""
    ckpt = read_checkpoint(path)
    try:
        return model_from_checkpoint(ckpt), ckpt
    except RuntimeError as e:
        raise DigitosError(f"{path}: weights do not fit {ckpt['model']}: {e}") from None


def load_state_dict_file(path: str | Path, model_name: str) -> tuple[nn.Module, dict]:
    """A bare state_dict, such as the class notebook saves, loaded into a registered model.

    Returns the model and a checkpoint-like dict with the model's default normalisation.
    """
    path = Path(path)
    entry = get_entry(model_name)
    if not path.is_file():
        raise DigitosError(f"{path}: no such weights file")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # as above: any failure means the file is not what it should be
        raise DigitosError(f"{path}: not a readable weights file ({type(e).__name__})") from None
    if isinstance(state, dict) and state.get("format") == FORMAT:
        state = state["state_dict"]
    model = create_model(model_name)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0]
        raise DigitosError(f"{path}: not a state_dict of {model_name}: {first}") from None
    meta = {
        "model": model_name,
        "model_args": {},
        "normalization": list(entry.normalization),
        "classes": [str(d) for d in range(10)],
        "dataset": "mnist",
        "tta": False,
    }
    return model.eval(), meta
