"""fit(config) -> run folder: the class's training loop, done right.

Per epoch: train, validate on held-out training images, print the class's line, append a row
to metrics.csv, write last.pt, and best.pt whenever the validation loss is the lowest so far.
Runs as one process or under `torchrun` (DistributedDataParallel, metrics and files from rank 0).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from . import __version__
from .checkpoint import cpu_state, make_checkpoint, save_checkpoint, unwrap
from .datasets import Split, Splits, load_dataset, make_splits
from .errors import DigitosError
from .evaluate import metrics_from_logits, split_logits
from .loader import DISTORT, Augment, Batches
from .models import LineNet, create_model, get_entry, load_widened
from .recipes import RECIPES, get_recipe

_DEFAULT = RECIPES["default"]
RUN_FILES = ("config.json", "metrics.csv", "best.pt", "last.pt", "loss.png", "accuracy.png")


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved as the run folder's config.json."""

    # The training options' defaults are the default recipe's: one source of truth.
    recipe: str = "default"
    model: str = _DEFAULT["model"]
    model_args: dict = field(default_factory=lambda: dict(_DEFAULT["model_args"]))
    dataset: str = "mnist"
    data_dir: str | None = None
    epochs: int = _DEFAULT["epochs"]
    batch_size: int = _DEFAULT["batch_size"]
    lr: float = _DEFAULT["lr"]
    optimizer: str = _DEFAULT["optimizer"]  # adam | adamw | sgd | adadelta
    scheduler: str = _DEFAULT["scheduler"]  # none | step | onecycle
    weight_decay: float = _DEFAULT["weight_decay"]
    label_smoothing: float = _DEFAULT["label_smoothing"]
    augment: bool = _DEFAULT["augment"]
    distort: bool = _DEFAULT["distort"]  # shear, warp and pen thickness on top of augment
    not_a_digit: bool = _DEFAULT["not_a_digit"]  # an 11th class from negatives.py's images
    negative_share: float = 0.25  # not-a-digit images added, as a share of the digits
    styled: int = 0  # of each style of synth/styles.py, this many training digits redrawn in it
    flagged_ones: int = 0  # MNIST 1s copied with a flag added, instead of `styled` of them
    crossed_sevens: int = 0  # MNIST 7s copied with a bar through the stem, the same
    written: int = 0  # training images written by random hands and read back (synth.written)
    font_digits: int = 0  # training digits drawn in handwriting fonts (synth/fonts.py)
    lowres: float = 0.0  # share of training images shrunk and enlarged back (Augment.lowres)
    tta: bool = _DEFAULT["tta"]  # test-time augmentation, recorded for evaluate/predict
    ema: float = 0.0  # decay of an exponential moving average of the weights; 0 = off
    extra: str | None = None  # labelled drawings mixed into training: a database or a folder
    init: str | None = None  # a checkpoint to start from (fine-tuning) instead of random weights
    split: str = "holdout"
    val_size: int = 5000
    seed: int = 0
    limit_train: int | None = None
    limit_val: int | None = None
    limit_test: int | None = None
    device: str = "auto"
    out: str | None = None
    overwrite: bool = False
    channels_last: bool = _DEFAULT["channels_last"]
    compile: bool = False
    progress: bool = True

    @classmethod
    def from_recipe(cls, recipe: str = "default", **overrides) -> TrainConfig:
        """The recipe's defaults, then every override that is not None."""
        values = get_recipe(recipe)
        if overrides.get("model") not in (None, values["model"]):
            values["model_args"] = {}  # the recipe's model_args belong to the recipe's model
        # A recipe's "not a digit" is learned from MNIST's kind of negatives: on another
        # dataset it is off, unless asked for (and then refused, in fit).
        if overrides.get("dataset") not in (None, "mnist") and overrides.get("not_a_digit") is None:
            values["not_a_digit"] = False
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise DigitosError(f"unknown training options: {', '.join(sorted(unknown))}")
        if values.get("lowres") and not values.get("augment"):
            raise DigitosError("--lowres works on augmented batches; leave out --no-augment, "
                               "or add --lowres 0")
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


OPTIMIZERS = {  # name: (class, its settings besides lr and weight decay)
    "adam": (torch.optim.Adam, {}),
    "adamw": (torch.optim.AdamW, {}),
    "sgd": (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
    "adadelta": (torch.optim.Adadelta, {}),
}


def make_optimizer(cfg: TrainConfig, params, fused: bool = False) -> torch.optim.Optimizer:
    """`fused` (GPUs): the whole update in one kernel, where PyTorch has one for it."""
    if cfg.optimizer not in OPTIMIZERS:
        raise DigitosError(f"unknown optimizer '{cfg.optimizer}'; choose {', '.join(OPTIMIZERS)}")
    cls, settings = OPTIMIZERS[cfg.optimizer]
    settings = settings | {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    if fused and "fused" in _init_args(cls):
        settings["fused"] = True
    return cls(params, **settings)


def make_scheduler(cfg: TrainConfig, opt, steps_per_epoch: int):
    """Returns (scheduler, steps it per batch?)."""
    if cfg.scheduler == "none":
        return None, False
    if cfg.scheduler == "step":  # pytorch/examples' mnist: lr x 0.7 after each epoch
        return torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7), False
    if cfg.scheduler == "onecycle":
        total = cfg.epochs * steps_per_epoch
        if total < 4:  # too few steps to warm up and anneal: a constant rate
            return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0), True
        # A quarter of the steps warming up, and never fewer than two (OneCycleLR needs them).
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=total, pct_start=max(0.25, 2.0 / total)
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


class TrainingInterrupted(DigitosError):
    """Ctrl+C or SIGTERM: the run stopped between two consistent states; `code` is the exit."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


@dataclass
class RunStatus:
    """What a run folder holds: finished, resumable (stopped or killed after an epoch), or
    broken (no usable last.pt)."""

    state: str  # "finished" | "resumable" | "broken" | "empty"
    epoch: int = 0  # the last epoch whose state is saved
    epochs: int = 0  # the epochs the run was asked for
    detail: str = ""

    def describe(self, out: Path) -> str:
        if self.state == "finished":
            return f"{out}: a finished run ({self.epochs} epochs)"
        if self.state == "resumable":
            return (f"{out}: a run stopped after epoch {self.epoch} of {self.epochs}; "
                    f"continue it with: digitos train --resume {out}")
        if self.state == "broken":
            return f"{out}: a run that cannot be resumed ({self.detail})"
        return f"{out}: no run"


def run_status(out: str | Path) -> RunStatus:
    """Tell a finished, a resumable and a broken run apart, from config.json and last.pt."""
    out = Path(out)
    if not (out / "config.json").exists() and not (out / "last.pt").exists():
        return RunStatus("empty")
    try:
        config = json.loads((out / "config.json").read_text())
    except (OSError, ValueError):
        return RunStatus("broken", detail="config.json is missing or damaged")
    epochs = int(config.get("epochs", 0))
    if not (out / "last.pt").exists():
        return RunStatus("broken", 0, epochs, "it stopped before its first epoch ended")
    try:
        last = torch.load(out / "last.pt", weights_only=True, map_location="cpu")
        epoch = int(last["epoch"])
    except Exception:  # any damage: the file is not what resuming needs
        return RunStatus("broken", 0, epochs, "last.pt cannot be read")
    if config.get("status") == "finished" or epoch >= epochs:
        return RunStatus("finished", epoch, epochs)
    if not isinstance(last.get("resume"), dict):
        return RunStatus("broken", epoch, epochs, "last.pt holds no training state (an older "
                                                  "digitos wrote it)")
    return RunStatus("resumable", epoch, epochs)


def check_run_dir(out: Path, overwrite: bool) -> None:
    """Refuse to write over a previous run's files unless told to; say what is there."""
    if out.exists() and not out.is_dir():
        raise DigitosError(f"--out {out}: exists and is not a folder")
    existing = [f for f in RUN_FILES if (out / f).exists()]
    if existing == ["config.json"] and not (out / "last.pt").exists():
        return  # a run stopped before its first epoch ended: nothing in it to lose
    if existing and not overwrite:
        status = run_status(out)
        hint = ("choose another folder, or pass --overwrite to start it again" +
                (f", or continue it: digitos train --resume {out}"
                 if status.state == "resumable" else ""))
        raise DigitosError(f"--out {out}: already holds a run: {status.describe(out)}; {hint}"
                           if status.state != "empty" else
                           f"--out {out}: already holds a run ({', '.join(existing)}); {hint}")


def prepare_run_dir(out: Path, overwrite: bool) -> None:
    """Create the folder (or empty an old run's files from it with --overwrite) and clear
    the temporary files a killed run may have left."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for name in RUN_FILES:
                (out / name).unlink(missing_ok=True)
        for tmp in out.glob(".*.tmp*"):  # .last.pt.*.tmp, .metrics.csv.tmp, .loss.png.tmp.png
            tmp.unlink(missing_ok=True)
        probe = out / ".digitos-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise DigitosError(f"--out {out}: cannot write there ({e.strerror or e})") from None


def _write_config(out: Path, config: dict, status: str) -> None:
    tmp = out / ".config.json.tmp"
    tmp.write_text(json.dumps(config | {"status": status}, indent=2) + "\n")
    tmp.replace(out / "config.json")


# Options that may differ when a run is resumed: where it runs and how it reports.
RESUMABLE_CHANGES = {"device", "progress", "out", "overwrite", "data_dir", "compile"}


def config_for_resume(run_dir: str | Path, changes: dict) -> TrainConfig:
    """The saved run's TrainConfig; options given again must agree with it."""
    run_dir = Path(run_dir)
    status = run_status(run_dir)
    if status.state == "empty":
        raise DigitosError(f"--resume {run_dir}: no run there")
    if status.state == "broken":
        raise DigitosError(f"--resume {status.describe(run_dir)}; start it again with "
                           f"--out {run_dir} --overwrite")
    saved = json.loads((run_dir / "config.json").read_text())
    known = {f.name for f in fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in saved.items() if k in known})
    differ = sorted(k for k, v in changes.items()
                    if k not in RESUMABLE_CHANGES and v is not None and v != saved.get(k))
    if differ:
        raise DigitosError(f"--resume {run_dir}: the run was started with other options: "
                           + ", ".join(f"--{k.replace('_', '-')} {saved.get(k)!r} (now "
                                       f"{changes[k]!r})" for k in differ))
    for k in ("device", "progress", "data_dir", "compile"):
        if changes.get(k) is not None:
            setattr(cfg, k, changes[k])
    cfg.out, cfg.overwrite = str(run_dir), False
    return cfg


EpochCallback = Callable[[int, nn.Module, dict], bool]


def open_run(cfg: TrainConfig, resume: bool, log: Callable[[str], None]) -> tuple[Path, bool]:
    """The run folder `cfg` asks for (`cfg.out` set to it), checked before any slow work: a
    new run must not write over another, a resumed one must be resumable. True when a run to
    resume is finished already: nothing is left to do."""
    out = Path(cfg.out) if cfg.out else default_run_dir(cfg)
    cfg.out = str(out)
    if not resume:
        check_run_dir(out, cfg.overwrite)
        return out, False
    state = run_status(out)
    if state.state == "finished":
        log(f"{state.describe(out)}: nothing to resume")
        return out, True
    if state.state != "resumable":
        raise DigitosError(f"--resume {state.describe(out)}")
    return out, False


def stopped(out: Path, cfg: TrainConfig, config: dict, signals: _Signals,
            log: Callable[[str], None], main: bool = True) -> Path:
    """A run stopped by Ctrl+C or SIGTERM between two consistent states: finished when its last
    epoch was saved (the run folder is returned), else marked interrupted and said how to
    resume (TrainingInterrupted, whose code is the exit code)."""
    code = 143 if signals.received == signal.SIGTERM else 130
    done = run_status(out).epoch
    if done >= cfg.epochs:  # stopped after the last epoch was saved: nothing is lost
        if main:
            _write_config(out, config, "finished")
            log(f"stopped after the last epoch: {out} is a finished run")
        return out
    if main:
        with contextlib.suppress(OSError):
            _write_config(out, config, "interrupted")
    raise TrainingInterrupted(
        f"stopped ({'SIGTERM' if code == 143 else 'interrupted'}); "
        + (f"{out / 'last.pt'} holds epoch {done} of {cfg.epochs}; continue with: "
           f"digitos train --resume {out}" if done else "no epoch had finished"),
        code) from None


def fit(cfg: TrainConfig, log: Callable[[str], None] = print,
        on_epoch_end: EpochCallback | None = None, resume: bool = False) -> Path:
    """Train as `cfg` says; returns the run folder. `on_epoch_end` may return True to stop.

    With `resume`, continue the run in `cfg.out` from its last.pt: weights, optimiser,
    scheduler, random generators, epoch and best validation loss, so that on the CPU the
    result is the same as if it had never stopped.
    """
    rank, world, local_rank = _distributed()
    main = rank == 0
    device = pick_device(cfg.device, local_rank)
    entry = get_entry(cfg.model)
    if not entry.takes_images:
        raise DigitosError(
            f"{cfg.model} takes {entry.input_shape[0]} numbers, not images: it is the class's "
            "first network; notebooks/clase6.ipynb trains it on points in the plane "
            "(digitos.toy.train_toy). For digits, train an image model (digitos models)"
        )
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.lr <= 0:
        raise DigitosError("--epochs and --batch-size must be at least 1, --lr above 0")
    create_model(cfg.model, **cfg.model_args)  # bad constructor arguments fail here, not later
    # Before any slow work, so bad input harms nothing; every rank fails the same way.
    out, finished = open_run(cfg, resume, log)
    if finished:
        return out

    data = load_dataset(cfg.dataset, cfg.data_dir, progress=cfg.progress and main)
    if cfg.data_dir is None:  # recorded, so that evaluate finds the data again
        cfg.data_dir = str(Path(data.files["train_images"]).parent)
    splits = make_splits(data, cfg.split, cfg.seed, cfg.val_size,
                         cfg.limit_train, cfg.limit_val, cfg.limit_test)
    if entry.input_shape[1:] != tuple(data.train.images.shape[1:]):
        raise DigitosError(f"{cfg.model} expects {entry.input_shape[1:]} images, "
                           f"{cfg.dataset} has {tuple(data.train.images.shape[1:])}")
    normalization = entry.normalization
    if cfg.not_a_digit:
        splits = add_negatives(splits, cfg, log if main else _quiet)
    if cfg.styled or cfg.flagged_ones or cfg.crossed_sevens:
        splits = add_styled(splits, cfg, log if main else _quiet)
    if cfg.font_digits:
        splits = add_font_digits(splits, cfg, log if main else _quiet)
    if cfg.written:
        splits = add_written(splits, cfg, log if main else _quiet, cfg.progress and main)
    if cfg.extra:
        splits = add_extra(splits, cfg.extra, log if main else _quiet)
    classes = splits.classes
    torch.manual_seed(cfg.seed)
    model_args = dict(cfg.model_args)
    if len(classes) != 10 and "num_classes" in _init_args(entry.build):
        model_args["num_classes"] = len(classes)
    model = create_model(cfg.model, **model_args)
    if cfg.init and not resume:  # a resumed run's weights are in last.pt
        start_from(model, cfg.init, classes)
    # Data, options and weights are good: only now does the run folder appear (rank 0 makes it).
    if main:
        prepare_run_dir(out, cfg.overwrite and not resume)
    if world > 1:
        dist.barrier()
    model = model.to(device)
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
        augment=_augment(cfg), shard=(rank, world),
        channels_last=cfg.channels_last,
    )
    # Weight averaging: validation and checkpoints use the average when there is one.
    ema = WeightAverage(model, cfg.ema) if cfg.ema > 0 else None
    opt = make_optimizer(cfg, model.parameters(), fused=device.type == "cuda")
    scheduler, per_batch = make_scheduler(cfg, opt, len(train_batches))

    meta = dict(model_name=cfg.model, model_args=model_args, normalization=normalization,
                classes=classes, dataset=cfg.dataset, tta=cfg.tta)
    history: list[dict] = []
    best_val_loss = math.inf
    start = 0
    if resume:
        r, history, best_val_loss, start = load_resume(out, model, opt, scheduler)
        if ema is not None and r.get("ema") is not None:
            ema.model.load_state_dict(r["ema"])
            ema.steps = int(r["ema_steps"])
        _set_rng(r["rng"][rank] if rank < len(r["rng"]) else r["rng"][0], train_batches, device)
    forward: Callable[[torch.Tensor], torch.Tensor] = train_model
    full_steps = len(splits.train) // per_rank_batch * (cfg.epochs - start)
    if device.type == "cuda" and world == 1 and not cfg.compile and full_steps >= GRAPH_STEPS:
        t0 = time.perf_counter()
        forward = cuda_graphed(model, train_batches)
        if main:
            log(f"CUDA graphs: the training step's forward and backward recorded in "
                f"{time.perf_counter() - t0:.2f} s")

    config = asdict(cfg) | {
        "resolved_device": str(device), "world_size": world, "digitos_version": __version__,
        "torch_version": torch.__version__, "train_images": len(splits.train),
        "val_images": len(splits.val), "test_images": len(splits.test),
    }
    if main:
        _write_config(out, config, "running")
        if resume:
            _write_history(out, history)  # the folder describes last.pt's epoch again
            log(f"resuming {out} after epoch {start} of {cfg.epochs}")
        else:
            log(f"training {cfg.model} on {len(splits.train):,} {data.name} images, validating "
                f"on {len(splits.val):,}; device {device}{f' x{world}' if world > 1 else ''}; "
                f"run folder {out}")

    with _signals_as_interrupts() as signals:
        try:
            for epoch in range(start + 1, cfg.epochs + 1):
                t0 = time.perf_counter()
                train_model.train()
                total, count = torch.zeros((), device=device), 0
                bar = _progress(len(train_batches), f"epoch {epoch}/{cfg.epochs}",
                                cfg.progress and main)
                for x, y in train_batches:
                    loss = F.cross_entropy(forward(x), y, label_smoothing=cfg.label_smoothing)
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
                    row = epoch_row(epoch, train_loss, val, opt, train_seconds, t0)
                    history.append(row)
                    log(f"{time.strftime('%H:%M:%S')} - Epoch: {epoch}/{cfg.epochs}, "
                        f"Train Loss: {train_loss:.8f}, Val Loss: {val['loss']:.8f}, "
                        f"Val Accuracy: {val['accuracy']:.8f}")
                    metrics = {k: row[k] for k in ("train_loss", "val_loss", "val_accuracy")}
                    ckpt = make_checkpoint(kept, epoch=epoch, metrics=metrics, config=asdict(cfg),
                                           **meta)
                    improved = val["loss"] < best_val_loss  # the lowest so far, whatever its size
                    if improved:
                        best_val_loss = val["loss"]
                rngs = _gather_rng(train_batches, device, world)
                if main:
                    last = ckpt | {"resume": resume_state(
                        model, opt, scheduler, history, best_val_loss,
                        ema=ema.model.state_dict() if ema is not None else None,
                        ema_steps=ema.steps if ema is not None else 0, rng=rngs)}
                    save_epoch(out, signals, ckpt if improved else None, last, history)
                    if improved:
                        log(f"Saving best.pt for epoch {epoch} with validation loss {val['loss']:.8f}")
                    if on_epoch_end is not None:
                        stop = bool(on_epoch_end(epoch, kept, row))
                if world > 1:
                    flag = torch.tensor([1.0 if stop else 0.0], device=device)
                    dist.broadcast(flag, src=0)
                    stop = bool(flag.item())
                if stop:
                    break
        except KeyboardInterrupt:
            return stopped(out, cfg, config, signals, log, main)
    if main:
        _write_config(out, config, "finished")
    if world > 1:
        dist.barrier()
    return out


# Recording the graphs takes 0.4-0.8 s and saves about 2 ms a step (an H200): below this
# many full batches in the run (a `finetune` run has some 250), it does not pay.
GRAPH_STEPS = 400


def cuda_graphed(model: nn.Module, batches: Batches) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model's training forward and backward, recorded once as CUDA graphs and replayed.

    A small net's training step on a GPU is mostly the CPU launching some 130 tiny kernels;
    replaying them as one graph took the default recipe's step on an H200 from 4.1 to 2.0 ms
    (benchmarks/gpu_step.py). The arithmetic is the same. A graph is recorded for one batch
    shape: the epoch's shorter last batch runs as usual. Evaluation (model.eval()) is untouched.
    """
    shape = (batches.batch_size, 1, *batches.images.shape[1:])
    sample = torch.zeros(shape, device=batches.images.device)
    if batches.channels_last:
        sample = sample.contiguous(memory_format=torch.channels_last)
    eager = model.forward
    # Recording runs a few warm-up passes, which move BatchNorm's running statistics: put
    # them back. load_state_dict copies into the same tensors, which the graphs read.
    kept = {k: v.clone() for k, v in model.state_dict().items()}
    # Two warnings about what recording does on its side stream, both harmless here: the
    # backward's cuBLAS handle made before a context was current (PyTorch sets one itself),
    # and gradients reaching the weights from that stream (a possible wait: none measured).
    for message in ("Attempting to run cuBLAS, but there was no current CUDA context",
                    "The AccumulateGrad node's stream"):
        warnings.filterwarnings("ignore", message=message)
    graphed = torch.cuda.make_graphed_callables(model, (sample,))
    model.load_state_dict(kept)
    model.zero_grad(set_to_none=True)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return graphed(x) if x.shape == sample.shape else eager(x)

    return forward


def _rng_state(batches: Batches, device: torch.device) -> dict:
    return {"torch": torch.get_rng_state(), "batches": batches.generator.get_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def _set_rng(state: dict, batches: Batches, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    batches.generator.set_state(state["batches"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


def _gather_rng(batches: Batches, device: torch.device, world: int) -> list[dict]:
    """Every rank's random generators (each draws its own augmentation and dropout)."""
    mine = _rng_state(batches, device)
    if world == 1:
        return [mine]
    every: list = [None] * world
    dist.all_gather_object(every, mine)
    return every


class _Signals:
    """SIGINT and SIGTERM raise KeyboardInterrupt, except while files are being written: then
    they wait for the writes to finish."""

    def __init__(self):
        self.received: int | None = None
        self.writing = False
        self.pending = False

    def handler(self, signum, frame):
        self.received = signum
        if self.writing:
            self.pending = True
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self):
        self.writing = True
        try:
            yield
        finally:
            self.writing = False
        if self.pending:
            raise KeyboardInterrupt


@contextlib.contextmanager
def _signals_as_interrupts():
    signals = _Signals()
    if threading.current_thread() is not threading.main_thread():
        yield signals  # signal handlers can only be set from the main thread
        return
    before = {s: signal.signal(s, signals.handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield signals
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def _quiet(_: str) -> None:
    pass


def add_negatives(splits: Splits, cfg: TrainConfig, log: Callable[[str], None]) -> Splits:
    """Train and validation with not-a-digit images added as an eleventh class; test unchanged.

    Clothes come from Fashion-MNIST's *training* files when they can be found (its test files
    stay unseen, for measuring); letters, shapes, and pairs of the split's own digits are
    made here, from the run's seed.
    """
    from .evaluate import NOT_A_DIGIT
    from .synth.negatives import fashion_images, make_negatives

    if cfg.dataset != "mnist":
        raise DigitosError("--not-a-digit adds non-digits to MNIST; use it with --dataset mnist")
    fashion = fashion_images("train")
    if fashion is None:
        log("Fashion-MNIST not found (apt-get install dataset-fashion-mnist): not-a-digit "
            "examples are letters, shapes and pairs of digits only")
    label = len(splits.classes)
    out = []
    for part, split in (("train", splits.train), ("val", splits.val)):
        n = max(1, round(cfg.negative_share * len(split)))
        seed = cfg.seed * 2 + (part == "val")
        # Pairs come from the split's own digits: no validation digit leaks into training.
        images = make_negatives(n, seed, fashion, split.images)
        out.append(Split(torch.cat([split.images, images]),
                         torch.cat([split.labels, torch.full((len(images),), label)])))
    log(f"not a digit: {len(out[0]) - len(splits.train):,} training and "
        f"{len(out[1]) - len(splits.val):,} validation images added as class {label}")
    return Splits(splits.name, (*splits.classes, NOT_A_DIGIT), out[0], out[1], splits.test)


def add_styled(splits: Splits, cfg: TrainConfig, log: Callable[[str], None]) -> Splits:
    """Training with cfg.styled of its digits added again in each style of synth/styles.py
    (cfg.flagged_ones of its 1s with a flag and cfg.crossed_sevens of its 7s with a bar, when
    given, instead)."""
    from .synth.styles import STYLES, styled

    if cfg.dataset != "mnist":
        option = ("--styled" if cfg.styled else "--flagged-ones" if cfg.flagged_ones
                  else "--crossed-sevens")
        raise DigitosError(f"{option} draws on MNIST's own digits; use it with --dataset mnist")
    counts = {name: cfg.styled for name in STYLES}
    counts["flagged-ones"] = cfg.flagged_ones or cfg.styled
    counts["crossed-sevens"] = cfg.crossed_sevens or cfg.styled
    train = splits.train
    images, labels = [train.images], [train.labels]
    for name, (digit, _) in STYLES.items():
        if counts[name]:
            made = styled(train.images, train.labels, name, counts[name], cfg.seed)
            log(f"{name}: {len(made):,} of the training {digit}s added again in that style")
            images.append(made)
            labels.append(torch.full((len(made),), splits.classes.index(str(digit)),
                                     dtype=train.labels.dtype))
    return Splits(splits.name, splits.classes, Split(torch.cat(images), torch.cat(labels)),
                  splits.val, splits.test)


def add_font_digits(splits: Splits, cfg: TrainConfig, log: Callable[[str], None]) -> Splits:
    """Training with cfg.font_digits digits drawn in fonts made from people's handwriting
    (synth/fonts.py), when they are installed; without them, training goes on and says so."""
    from .synth.fonts import installed_font_digits

    if cfg.dataset != "mnist":
        raise DigitosError("--font-digits draws digits; use it with --dataset mnist")
    images, labels = installed_font_digits(cfg.font_digits, cfg.seed, log)
    if not len(images):
        return splits
    labels = torch.tensor([splits.classes.index(str(int(d))) for d in labels],
                          dtype=splits.train.labels.dtype)
    train = splits.train
    return Splits(splits.name, splits.classes,
                  Split(torch.cat([train.images, images]), torch.cat([train.labels, labels])),
                  splits.val, splits.test)


def add_written(splits: Splits, cfg: TrainConfig, log: Callable[[str], None],
                progress: bool = False) -> Splits:
    """Training with cfg.written of its images (digits, styled digits and non-digits alike)
    added again, each written by a random hand and read back as reading would (synth.written);
    validation with its share of its own, from another seed."""
    from .synth import written

    out = []
    for part, split, n in (("train", splits.train, cfg.written),
                           ("val", splits.val, round(cfg.written * len(splits.val) / len(splits.train)))):
        if n == 0:
            out.append(split)
            continue
        bar = _progress(n, f"writing {part} images", progress, unit="image")
        images, labels = written(split.images, split.labels, n, cfg.seed * 2 + (part == "val"),
                                 progress=bar.update if bar else None)
        if bar:
            bar.close()
        out.append(Split(torch.cat([split.images, images]), torch.cat([split.labels, labels])))
    log(f"written by hand: {cfg.written:,} training and {len(out[1]) - len(splits.val):,} "
        "validation images added, each written by a random hand and read back")
    return Splits(splits.name, splits.classes, out[0], out[1], splits.test)


EXTRA_SHARE = 0.2  # own drawings, repeated, make about this share of the training images


def add_extra(splits: Splits, source: str, log: Callable[[str], None]) -> Splits:
    """Training (repeated, to about EXTRA_SHARE of it) and validation (once) with a user's own
    labelled drawings added: a drawings database or a folder of labelled images."""
    from .store import samples

    pixels, labels = samples(source)
    if not labels:
        raise DigitosError(f"--extra {source}: no labelled digits in it")
    unknown = sorted(set(labels) - set(splits.classes))
    if unknown:
        raise DigitosError(f"--extra {source}: labels {', '.join(unknown)} are not classes of "
                           f"this model ({', '.join(splits.classes)})")
    images = torch.from_numpy(pixels.copy())
    targets = torch.tensor([splits.classes.index(lab) for lab in labels])
    repeat = max(1, round(EXTRA_SHARE * len(splits.train) / ((1 - EXTRA_SHARE) * len(images))))
    train = Split(torch.cat([splits.train.images, images.repeat(repeat, 1, 1)]),
                  torch.cat([splits.train.labels, targets.repeat(repeat)]))
    val = Split(torch.cat([splits.val.images, images]), torch.cat([splits.val.labels, targets]))
    log(f"own drawings: {len(images):,} labelled digits from {source}, repeated {repeat}x in "
        "training and once in validation")
    return Splits(splits.name, splits.classes, train, val, splits.test)


def start_from(model: nn.Module, checkpoint: str, classes: tuple[str, ...]) -> None:
    """Load a checkpoint's weights into the model about to be trained (fine-tuning)."""
    from .checkpoint import read_checkpoint

    ckpt = read_checkpoint(checkpoint)
    if list(ckpt["classes"]) != list(classes):
        raise DigitosError(f"--init {checkpoint}: it reads {len(ckpt['classes'])} classes, this "
                           f"training has {len(classes)}")
    try:
        model.load_state_dict(ckpt["state_dict"])
        return
    except RuntimeError as e:
        misfit = str(e).splitlines()[0]
    # A wider line reader starts from a narrower one's weights, computing what it computed.
    if isinstance(model, LineNet) and ckpt.get("model") == "LineNet":
        try:
            load_widened(model, ckpt["state_dict"])
            return
        except DigitosError as e:
            misfit = str(e)
    raise DigitosError(f"--init {checkpoint}: its weights do not fit "
                       f"{type(model).__name__}: {misfit}")


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


def _augment(cfg: TrainConfig) -> Augment | None:
    if not cfg.augment:
        return None
    # With the not-a-digit class, half the images are left as they are: see Augment.keep.
    return Augment(keep=0.5 if cfg.not_a_digit else 0.0, lowres=cfg.lowres,
                   **(DISTORT if cfg.distort else {}))


def _init_args(build) -> set[str]:
    import inspect

    return set(inspect.signature(build).parameters)


def _progress(total: int, desc: str, enabled: bool, unit: str = "batch"):
    """A progress bar, only when someone is watching a terminal."""
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, unit=unit, dynamic_ncols=True)


def load_resume(out: Path, model: nn.Module, opt: torch.optim.Optimizer,
                scheduler) -> tuple[dict, list[dict], float, int]:
    """A run's last.pt loaded into its model, optimizer and scheduler: its resume state (for
    what else a loop keeps there), history, lowest validation loss and last epoch."""
    saved = torch.load(out / "last.pt", weights_only=True, map_location="cpu")
    r = saved["resume"]
    model.load_state_dict(r["model"])
    opt.load_state_dict(r["optimizer"])
    if scheduler is not None and r.get("scheduler") is not None:
        scheduler.load_state_dict(r["scheduler"])
    return r, list(r["history"]), float(r["best_val_loss"]), int(saved["epoch"])


def resume_state(model: nn.Module, opt: torch.optim.Optimizer, scheduler, history: list[dict],
                 best_val_loss: float, **more) -> dict:
    """What last.pt keeps to resume a run from (`load_resume`), and `more` a loop needs."""
    return {"model": cpu_state(model), "optimizer": opt.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "history": history, "best_val_loss": best_val_loss} | more


def epoch_row(epoch: int, train_loss: float, val: dict, opt: torch.optim.Optimizer,
              train_seconds: float, t0: float) -> dict:
    """An epoch's row of metrics.csv (`val`: its validation loss and accuracy; `t0`: when the
    epoch began)."""
    return {"epoch": epoch, "train_loss": train_loss, "val_loss": val["loss"],
            "val_accuracy": val["accuracy"], "lr": opt.param_groups[0]["lr"],
            "train_seconds": round(train_seconds, 3),
            "seconds": round(time.perf_counter() - t0, 3)}


def save_epoch(out: Path, signals: _Signals, best: dict | None, last: dict,
               history: list[dict]) -> None:
    """One consistent state per epoch: best.pt (when `best` is given), then metrics and plots,
    then last.pt, which is what a resumed run starts from. A signal waits for the writes to
    end; a disk that refuses them is one line, saying which epoch's last.pt is kept."""
    with signals.deferred():
        try:
            if best is not None:
                save_checkpoint(out / "best.pt", best)
            _write_history(out, history)
            save_checkpoint(out / "last.pt", last)
        except OSError as e:
            kept_epoch = run_status(out).epoch
            raise DigitosError(
                f"cannot write the run folder {out}: {e.strerror or e}; "
                + (f"{out / 'last.pt'} (epoch {kept_epoch}) is kept" if kept_epoch
                   else "no checkpoint had been written yet")) from None


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
