"""Checkpoints: everything needed to rebuild a model, as tensors and plain values.

They load with `torch.load(path, weights_only=True, map_location="cpu")`, and are written to a
temporary file that is renamed into place, so a crash never leaves a broken file behind.
"""

from __future__ import annotations

import math
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


def cpu_state(model: nn.Module) -> dict:
    """A copy of the model's state_dict on the CPU (wrappers taken off): what checkpoints hold."""
    return {k: v.detach().cpu().clone() for k, v in unwrap(model).state_dict().items()}


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
    state = cpu_state(model)
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
    """The checkpoint dict, loaded safely (weights_only) onto the CPU, its contents checked."""
    path = Path(path)
    if not path.is_file():
        raise DigitosError(f"{path}: no such checkpoint file")
    ckpt = _safe_load(path, "checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        hint = (" (for a bare state_dict use --model NAME --weights FILE)"
                if isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor)
                                                           for v in ckpt.values()) else "")
        raise DigitosError(f"{path}: not a digitos checkpoint{hint}")
    problem = checkpoint_problem(ckpt)
    if problem:
        raise DigitosError(f"{path}: a damaged digitos checkpoint: {problem}")
    return ckpt


def _safe_load(path: Path, what: str):
    """torch.load with weights_only, its warnings and its advice kept out of the user's way:
    whatever fails inside, the file is simply not what it should be."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, weights_only=True, map_location="cpu")
    except Exception:
        raise DigitosError(f"{path}: not a digitos {what} (not a file that torch.save wrote, "
                           "or damaged)") from None


def checkpoint_problem(ckpt: dict) -> str | None:
    """What is wrong with a checkpoint dict's contents, or None."""
    from .models import list_models

    if not isinstance(ckpt.get("model"), str) or ckpt["model"] not in list_models():
        return f"model {ckpt.get('model')!r} is not a registered model"
    if not isinstance(ckpt.get("model_args", {}), dict):
        return "model_args is not a dict"
    state = ckpt.get("state_dict")
    if not isinstance(state, dict) or not state:
        return "no state_dict"
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        return "the state_dict holds something other than named tensors"
    norm = ckpt.get("normalization")
    if (not isinstance(norm, list | tuple) or len(norm) != 2
            or not all(isinstance(v, int | float) and math.isfinite(v) for v in norm) or norm[1] <= 0):
        return f"normalization {norm!r} is not [mean, std] with std > 0"
    classes = ckpt.get("classes")
    if not isinstance(classes, list | tuple) or not classes or not all(isinstance(c, str)
                                                                      for c in classes):
        return "classes is not a list of names"
    return None


def model_from_checkpoint(ckpt: dict) -> nn.Module:
    model = create_model(ckpt["model"], **ckpt.get("model_args", {}))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    entry = get_entry(ckpt["model"])
    with torch.no_grad():
        outputs = model(torch.zeros(1, *entry.input_shape)).shape[-1]
    if outputs != len(ckpt["classes"]):
        raise DigitosError(f"the model has {outputs} outputs but the checkpoint names "
                           f"{len(ckpt['classes'])} classes")
    return model


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict]:
    """(model in eval mode on the CPU, checkpoint dict)."""
    ckpt = read_checkpoint(path)
    try:
        return model_from_checkpoint(ckpt), ckpt
    except (RuntimeError, TypeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DigitosError(f"{path}: weights do not fit {ckpt['model']}: {first}") from None
    except DigitosError as e:
        raise DigitosError(f"{path}: {e}") from None


def load_state_dict_file(path: str | Path, model_name: str) -> tuple[nn.Module, dict]:
    """A bare state_dict, such as the class notebook saves, loaded into a registered model.

    Returns the model and a checkpoint-like dict with the model's default normalisation.
    """
    path = Path(path)
    entry = get_entry(model_name)
    if not path.is_file():
        raise DigitosError(f"{path}: no such weights file")
    state = _safe_load(path, "weights file")
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
