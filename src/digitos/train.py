"""fit(config) -> run folder: the class's training loop, done right.

Per epoch: train, validate on held-out training images, print the class's line, append a row
to metrics.csv, write last.pt, and best.pt whenever the validation loss is the lowest so far.
Runs as one process or under `torchrun` (DistributedDataParallel, metrics and files from rank 0).
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from . import __version__
from .checkpoint import make_checkpoint, save_checkpoint, unwrap
from .datasets import Split, Splits, load_dataset, make_splits
from .errors import DigitosError
from .evaluate import metrics_from_logits, split_logits
from .loader import Augment, Batches
from .models import create_model, get_entry
from .recipes import get_recipe

RUN_FILES = ("config.json", "metrics.csv", "best.pt", "last.pt", "loss.png", "accuracy.png")


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved as the run folder's config.json."""

    recipe: str = "default"
    model: str = "DigitNet"
    model_args: dict = field(default_factory=dict)
    dataset: str = "mnist"
    data_dir: str | None = None
    epochs: int = 8
    batch_size: int = 128
    lr: float = 0.01
    optimizer: str = "adam"  # adam | adamw | sgd | adadelta
    scheduler: str = "onecycle"  # none | step | onecycle
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    augment: bool = False
    not_a_digit: bool = False  # an 11th class learned from negatives.py's images (MNIST only)
    tta: bool = False  # test-time augmentation, recorded in the checkpoint for evaluate/predict
    ema: float = 0.0  # decay of an exponential moving average of the weights; 0 = off
    split: str = "holdout"
    val_size: int = 5000
    seed: int = 0
    limit_train: int | None = None
    limit_val: int | None = None
    limit_test: int | None = None
    device: str = "auto"
    out: str | None = None
    overwrite: bool = False
    channels_last: bool = False
    compile: bool = False
    progress: bool = True

    @classmethod
    def from_recipe(cls, recipe: str = "default", **overrides) -> TrainConfig:
        """The recipe's defaults, then every override that is not None."""
        values = get_recipe(recipe)
        if overrides.get("model") not in (None, values["model"]):
            values["model_args"] = {}  # the recipe's model_args belong to the recipe's model
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise DigitosError(f"unknown training options: {', '.join(sorted(unknown))}")
        return cls(recipe=recipe, **values)


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """auto: CUDA if present, then Apple's MPS, else the CPU."""
    cuda_ok = torch.cuda.is_available()
    mps_ok = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if cuda_ok else "mps" if mps_ok else "cpu"
    if name == "cuda":
        if not cuda_ok:
            raise DigitosError("--device cuda: no CUDA GPU is available here")
        return torch.device("cuda", local_rank)
    if name == "mps":
        if not mps_ok:
            raise DigitosError("--device mps: Apple's MPS backend is not available here")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise DigitosError(f"unknown device '{name}'; choose auto, cpu, cuda or mps")


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True,
                               weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adadelta":
        return torch.optim.Adadelta(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise DigitosError(f"unknown optimizer '{cfg.optimizer}'; choose adam, adamw, sgd or adadelta")


def make_scheduler(cfg: TrainConfig, opt, steps_per_epoch: int):
    """Returns (scheduler, steps it per batch?)."""
    if cfg.scheduler == "none":
        return None, False
    if cfg.scheduler == "step":  # pytorch/examples' mnist: lr x 0.7 after each epoch
        return torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7), False
    if cfg.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.25
        ), True
    raise DigitosError(f"unknown scheduler '{cfg.scheduler}'; choose none, step or onecycle")


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank), starting the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)  # one GPU per process, before NCCL starts
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), local_rank


def default_run_dir(cfg: TrainConfig) -> Path:
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.model}"


def check_run_dir(out: Path, overwrite: bool, create: bool = True) -> None:
    """Refuse to write over a previous run's files unless told to; make sure we can write."""
    if out.exists() and not out.is_dir():
        raise DigitosError(f"--out {out}: exists and is not a folder")
    existing = [f for f in RUN_FILES if (out / f).exists()]
    if existing and not overwrite:
        raise DigitosError(
            f"--out {out}: already holds a run ({', '.join(existing)}); "
            "choose another folder or pass --overwrite"
        )
    if not create:
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".digitos-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise DigitosError(f"--out {out}: cannot write there ({e.strerror or e})") from None


EpochCallback = Callable[[int, nn.Module, dict], bool]


def fit(cfg: TrainConfig, log: Callable[[str], None] = print,
        on_epoch_end: EpochCallback | None = None) -> Path:
    """Train as `cfg` says; returns the run folder. `on_epoch_end` may return True to stop."""
    rank, world, local_rank = _distributed()
    main = rank == 0
    device = pick_device(cfg.device, local_rank)
    entry = get_entry(cfg.model)
    if not entry.takes_images:
        raise DigitosError(
            f"{cfg.model} takes {entry.input_shape[0]} numbers, not images: "
            "it is the class's first toy network; train an image model instead"
        )
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.lr <= 0:
        raise DigitosError("--epochs and --batch-size must be at least 1, --lr above 0")
    create_model(cfg.model, **cfg.model_args)  # bad constructor arguments fail here, not later
    out = Path(cfg.out) if cfg.out else default_run_dir(cfg)
    cfg.out = str(out)
    # Before any slow work, so bad input harms nothing. Every rank checks the same folder and
    # fails the same way; only rank 0 creates it, after all have looked.
    check_run_dir(out, cfg.overwrite, create=main)
    if world > 1:
        dist.barrier()

    data = load_dataset(cfg.dataset, cfg.data_dir, progress=cfg.progress and main)
    splits = make_splits(data, cfg.split, cfg.seed, cfg.val_size,
                         cfg.limit_train, cfg.limit_val, cfg.limit_test)
    if entry.input_shape[1:] != tuple(data.train.images.shape[1:]):
        raise DigitosError(f"{cfg.model} expects {entry.input_shape[1:]} images, "
                           f"{cfg.dataset} has {tuple(data.train.images.shape[1:])}")
    normalization = entry.normalization
    if cfg.not_a_digit:
        splits = add_negatives(splits, cfg, log if main else _quiet)
    classes = splits.classes

    torch.manual_seed(cfg.seed)
    model_args = dict(cfg.model_args)
    if len(classes) != 10 and "num_classes" in _init_args(entry.build):
        model_args["num_classes"] = len(classes)
    model = create_model(cfg.model, **model_args).to(device)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    torch.manual_seed(cfg.seed + rank)  # augmentation and dropout differ between ranks
    train_model: nn.Module = model
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if cfg.compile:
        train_model = torch.compile(train_model)

    # Under DDP each rank takes batch_size / world of every step: the same global batch.
    per_rank_batch = max(1, cfg.batch_size // world)
    train_batches = Batches(
        splits.train, per_rank_batch, normalization, device, shuffle=True, seed=cfg.seed,
        augment=Augment(keep=0.5 if cfg.not_a_digit else 0.0) if cfg.augment else None, shard=(rank, world),
        channels_last=cfg.channels_last,
    )
    # Weight averaging: validation and checkpoints use the average when there is one.
    ema = WeightAverage(model, cfg.ema) if cfg.ema > 0 else None
    opt = make_optimizer(cfg, model.parameters())
    scheduler, per_batch = make_scheduler(cfg, opt, len(train_batches))
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else nullcontext())

    meta = dict(model_name=cfg.model, model_args=model_args, normalization=normalization,
                classes=classes, dataset=cfg.dataset, tta=cfg.tta)
    if main:
        config = asdict(cfg) | {
            "resolved_device": str(device), "world_size": world, "digitos_version": __version__,
            "torch_version": torch.__version__, "train_images": len(splits.train),
            "val_images": len(splits.val), "test_images": len(splits.test),
        }
        (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        log(f"training {cfg.model} on {len(splits.train):,} {data.name} images, validating on "
            f"{len(splits.val):,}; device {device}{f' x{world}' if world > 1 else ''}; "
            f"run folder {out}")

    history: list[dict] = []
    best_val_loss = math.inf
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        train_model.train()
        total, count = torch.zeros((), device=device), 0
        bar = _progress(len(train_batches), f"epoch {epoch}/{cfg.epochs}",
                        cfg.progress and main)
        for x, y in train_batches:
            with autocast:
                loss = F.cross_entropy(train_model(x), y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update()
            if per_batch:
                scheduler.step()
            total += loss.detach().float() * len(y)  # stays on the device: no sync per batch
            count += len(y)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        if scheduler is not None and not per_batch:
            scheduler.step()
        if world > 1:
            stats = torch.stack([total, torch.tensor(float(count), device=device)])
            dist.all_reduce(stats)
            total, count = stats[0], int(stats[1].item())
        train_loss = (total / max(count, 1)).item()
        train_seconds = time.perf_counter() - t0

        stop = False
        if main:
            kept = ema.model if ema is not None else model
            val = metrics_from_logits(
                split_logits(kept, splits.val, normalization, device, tta=cfg.tta),
                splits.val.labels, classes)
            row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val["loss"],
                   "val_accuracy": val["accuracy"], "lr": opt.param_groups[0]["lr"],
                   "train_seconds": round(train_seconds, 3),
                   "seconds": round(time.perf_counter() - t0, 3)}
            history.append(row)
            log(f"{time.strftime('%H:%M:%S')} - Epoch: {epoch}/{cfg.epochs}, "
                f"Train Loss: {train_loss:.8f}, Val Loss: {val['loss']:.8f}, "
                f"Val Accuracy: {val['accuracy']:.8f}")
            metrics = {k: row[k] for k in ("train_loss", "val_loss", "val_accuracy")}
            ckpt = make_checkpoint(kept, epoch=epoch, metrics=metrics, config=asdict(cfg),
                                   **meta)
            if val["loss"] < best_val_loss:  # the lowest so far, whatever its size
                best_val_loss = val["loss"]
                save_checkpoint(out / "best.pt", ckpt)
                log(f"Saving best.pt for epoch {epoch} with validation loss {val['loss']:.8f}")
            save_checkpoint(out / "last.pt", ckpt)
            _write_history(out, history)
            if on_epoch_end is not None:
                stop = bool(on_epoch_end(epoch, kept, row))
        if world > 1:
            flag = torch.tensor([1.0 if stop else 0.0], device=device)
            dist.broadcast(flag, src=0)
            stop = bool(flag.item())
        if stop:
            break
    if world > 1:
        dist.barrier()
    return out


NEGATIVE_SHARE = 0.25  # not-a-digit images added, as a share of the digits in train and val


def _quiet(_: str) -> None:
    pass


def add_negatives(splits: Splits, cfg: TrainConfig, log: Callable[[str], None]) -> Splits:
    """Train and validation with not-a-digit images added as an eleventh class; test unchanged.

    Clothes come from Fashion-MNIST's *training* files when they can be found (its test files
    stay unseen, for measuring); letters, shapes, and pairs of the split's own digits are
    made here, from the run's seed.
    """
    from .evaluate import NOT_A_DIGIT
    from .negatives import fashion_images, make_negatives

    if cfg.dataset != "mnist":
        raise DigitosError("--not-a-digit adds non-digits to MNIST; use it with --dataset mnist")
    fashion = fashion_images("train")
    if fashion is None:
        log("Fashion-MNIST not found (apt-get install dataset-fashion-mnist): not-a-digit "
            "examples are letters, shapes and pairs of digits only")
    label = len(splits.classes)
    out = []
    for part, split in (("train", splits.train), ("val", splits.val)):
        n = max(1, round(NEGATIVE_SHARE * len(split)))
        seed = cfg.seed * 2 + (part == "val")
        # Pairs come from the split's own digits: no validation digit leaks into training.
        images = make_negatives(n, seed, fashion, split.images)
        out.append(Split(torch.cat([split.images, images]),
                         torch.cat([split.labels, torch.full((len(images),), label)])))
    log(f"not a digit: {len(out[0]) - len(splits.train):,} training and "
        f"{len(out[1]) - len(splits.val):,} validation images added as class {label}")
    return Splits(splits.name, (*splits.classes, NOT_A_DIGIT), out[0], out[1], splits.test)


class WeightAverage:
    """An exponential moving average of a model's weights and BatchNorm statistics."""

    def __init__(self, model: nn.Module, decay: float):
        import copy

        self.model = copy.deepcopy(unwrap(model)).eval()
        self.decay = decay
        self.steps = 0
        for p in self.model.parameters():
            p.requires_grad_(False)
        # state_dict tensors share storage with the live weights and buffers, which the
        # optimiser and BatchNorm update in place: pair them once, not on every step.
        self.pairs = list(zip(self.model.state_dict().values(),
                              unwrap(model).state_dict().values(), strict=True))

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        # Warm-up: early on, follow the model closely instead of averaging in the random start.
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for avg, new in self.pairs:
            if avg.dtype.is_floating_point:
                avg.lerp_(new, 1 - decay)
            else:
                avg.copy_(new)


def _init_args(build) -> set[str]:
    import inspect

    return set(inspect.signature(build).parameters)


def _progress(total: int, desc: str, enabled: bool):
    """A progress bar within the epoch, only when someone is watching a terminal."""
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, unit="batch", dynamic_ncols=True)


def _write_history(out: Path, history: list[dict]) -> None:
    from . import plots

    tmp = out / ".metrics.csv.tmp"
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    tmp.replace(out / "metrics.csv")
    epochs = [r["epoch"] for r in history]
    plots.loss_curves(epochs, [r["train_loss"] for r in history],
                      [r["val_loss"] for r in history], out / "loss.png")
    plots.accuracy_curve(epochs, [r["val_accuracy"] for r in history], out / "accuracy.png")


def read_metrics(run_dir: str | Path) -> list[dict]:
    """metrics.csv of a run folder as a list of rows with numbers."""
    with (Path(run_dir) / "metrics.csv").open() as f:
        return [{k: float(v) if k != "epoch" else int(v) for k, v in row.items()}
                for row in csv.DictReader(f)]
