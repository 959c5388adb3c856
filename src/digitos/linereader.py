"""Reading a line of digits whole: a CRNN (`models.LineNet`) trained with CTC on synthetic lines.

A digit classifier reads one 28x28 at a time, so a number must first be cut into digits, and
where touching digits should be cut is guessed. A line reader is shown the whole line (32 px
high, any width) and scores every 2-px column: a digit, or CTC's blank (Graves et al. 2006;
Shi et al. 2015). Reading takes the likeliest class of each column, merges repeats and drops
blanks (greedy decoding); where each digit lies comes from the columns that emitted it.

`fit_lines` trains one on lines made by `synth.lines` from MNIST's *training* digits, each
written by a random hand and read back through the path that reads a user's image.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import make_checkpoint, save_checkpoint
from .errors import DigitosError

STRIDE = 2  # input columns per output column of LineNet
BLANK = 10
LINE_CLASSES = (*[str(d) for d in range(10)], "blank")
VAL_LINES = 2000  # lines written from the held-out training digits, for validation (at most)


@dataclass
class LineDigit:
    """One digit of a line as the line reader read it."""

    digit: int
    confidence: float  # its share of the digits' probability where it was surest
    probabilities: list[float]  # the ten digits' shares there, summing to 1
    columns: tuple[int, int]  # [start, end) columns of the line's input that it spans
    peak: float = 0.0  # the column of the line's input where it was surest


def decode(scores: torch.Tensor, width: int | None = None) -> list[LineDigit]:
    """Greedy CTC decoding of one line's scores (T, 11): the likeliest class of each column,
    repeats merged, blanks dropped. `width`: the input's columns (default T * STRIDE); each
    digit spans from halfway to its left neighbour to halfway to its right one."""
    p = F.softmax(scores.float(), dim=-1)
    best = p.argmax(-1).tolist()
    runs: list[tuple[int, int, int]] = []  # (digit, first column, last column + 1)
    for t, c in enumerate(best):
        if c == BLANK:
            continue
        if runs and runs[-1][0] == c and runs[-1][2] == t:
            runs[-1] = (c, runs[-1][1], t + 1)
        else:
            runs.append((c, t, t + 1))
    width = width if width is not None else len(best) * STRIDE
    centres = [STRIDE * (a + b) / 2 for _, a, b in runs]
    out = []
    for i, (c, a, b) in enumerate(runs):
        t = a + int(p[a:b, c].argmax())
        digits = p[t, :BLANK] / p[t, :BLANK].sum().clamp(min=1e-12)
        left = 0 if i == 0 else round((centres[i - 1] + centres[i]) / 2)
        right = width if i == len(runs) - 1 else round((centres[i] + centres[i + 1]) / 2)
        out.append(LineDigit(c, round(float(digits[c]), 6),
                             [round(float(v), 6) for v in digits], (left, right),
                             STRIDE * (t + 0.5)))
    return out


def to_batch(lines: list[torch.Tensor],
             normalization: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (32, W_i) lines -> a normalised batch (N, 1, 32, W) padded with paper to a multiple
    of STRIDE, and each line's output length (W_i // STRIDE, at least 1)."""
    widest = max(x.shape[1] for x in lines)
    widest += -widest % STRIDE
    paper = (0 - normalization[0]) / normalization[1]
    batch = torch.full((len(lines), 1, lines[0].shape[0], widest), paper)
    for i, x in enumerate(lines):
        batch[i, 0, :, : x.shape[1]] = (x.float() / 255 - normalization[0]) / normalization[1]
    lengths = torch.tensor([max(1, x.shape[1] // STRIDE) for x in lines])
    return batch, lengths


# Test-time stretches: a line read unsurely is also read as a narrower and a wider hand would
# have written it, and the reading two of the three agree on is taken (squeezing or stretching
# moves where the columns fall on the strokes, and a misreading seldom survives all three).
STRETCHES = (0.9, 1.0, 1.12)
SURE_WITHOUT_STRETCHES = 0.99  # a line read this surely (its digits' geometric mean) is not


def stretch(line: torch.Tensor, factor: float) -> torch.Tensor:
    """A line (uint8 (32, W)) squeezed or stretched along x by `factor`."""
    if factor == 1.0:
        return line
    return _resized(line, factor)[0, 0].round().clamp(0, 255).to(torch.uint8)


def _resized(line: torch.Tensor, factor: float) -> torch.Tensor:
    """A line's width times `factor` (at least 2 columns of output), as floats (1, 1, H, W')."""
    width = max(2 * STRIDE, round(line.shape[1] * factor))
    return F.interpolate(line.float()[None, None], size=(line.shape[0], width), mode="bilinear",
                         align_corners=False)


@torch.inference_mode()
def read_lines(model: nn.Module, lines: list[torch.Tensor], normalization: tuple[float, float],
               stretches: tuple[float, ...] = STRETCHES) -> list[list[LineDigit]]:
    """Lines (uint8 (32, W_i)) read, all in one batch: the digits of each. Those read less
    surely than SURE_WITHOUT_STRETCHES are read again, in one batch for each other of
    `stretches`, and the reading most of them agree on is taken (at the line's own width when
    that is among them); with no majority, the reading at its own width. Columns are the
    line's own."""
    if not lines:
        return []
    read = _read_once(model, lines, normalization, 1.0)
    unsure = [i for i, r in enumerate(read)
              if len(stretches) > 1 and surety([d.confidence for d in r]) < SURE_WITHOUT_STRETCHES]
    if unsure:
        others = [f for f in stretches if f != 1.0]
        again = [_read_once(model, [lines[i] for i in unsure], normalization, f) for f in others]
        for k, i in enumerate(unsure):
            reads = [read[i] if f == 1.0 else again[others.index(f)][k] for f in stretches]
            read[i] = _agreed(reads, stretches)
    return read


@torch.inference_mode()
def _read_once(model: nn.Module, lines: list[torch.Tensor], normalization: tuple[float, float],
               factor: float) -> list[list[LineDigit]]:
    """Lines read as squeezed or stretched by `factor`, in their own columns."""
    variants = [stretch(x, factor) for x in lines]
    batch, lengths = to_batch(variants, normalization)
    scores = model(batch)
    out = []
    for k, (line, x) in enumerate(zip(lines, variants, strict=True)):
        digits = decode(scores[k, : lengths[k]], x.shape[1])
        out.append([replace(d, columns=(min(round(d.columns[0] / factor), line.shape[1]),
                                        min(round(d.columns[1] / factor), line.shape[1])),
                            peak=d.peak / factor)
                    for d in digits])
    return out


def surety(confidences: list[float]) -> float:
    """How surely some digits read, as a whole: the geometric mean of their confidences (1 for
    no digits: nothing to doubt)."""
    if not confidences:
        return 1.0
    return math.exp(sum(math.log(max(c, 1e-6)) for c in confidences) / len(confidences))


def _agreed(reads: list[list[LineDigit]], stretches: tuple[float, ...]) -> list[LineDigit]:
    """The reading most stretches agree on; the line's own width's when it has the most votes
    or none has more than one."""
    texts = ["".join(str(d.digit) for d in r) for r in reads]
    own = stretches.index(1.0) if 1.0 in stretches else 0
    best = max(texts, key=lambda t: (texts.count(t), t == texts[own]))
    if texts.count(best) < 2:
        return reads[own]
    return reads[own] if texts[own] == best else reads[texts.index(best)]


def _batches(widths: list[int], size: int, rng: random.Random) -> list[list[int]]:
    """Indices in batches of lines of about the same width (little padding), in random order."""
    order = list(range(len(widths)))
    rng.shuffle(order)
    batches = []
    pool = 50 * size  # sorted by width within pools of 50 batches: random, yet alike
    for s in range(0, len(order), pool):
        part = sorted(order[s: s + pool], key=widths.__getitem__)
        batches += [part[i: i + size] for i in range(0, len(part), size)]
    rng.shuffle(batches)
    return batches


def augment_line(line: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """A training line (uint8 (32, W)) as another writer might have made it: squeezed or
    stretched along x (0.8-1.25x: narrow and wide hands), and now and then its strokes a
    pixel thicker or thinner (pens). Cheap enough to do per line per epoch, so each epoch
    sees lines it has not seen, where writing more would cost minutes."""
    x = _resized(line, math.exp(rng.uniform(-0.223, 0.223)))
    pen = rng.random()
    if pen < 0.15:  # thicker: each pixel takes the most ink of its 2x2 block
        x = F.max_pool2d(F.pad(x, (0, 1, 0, 1)), 2, stride=1)
    elif pen < 0.3:  # thinner, unless that leaves little of the writing
        thin = -F.max_pool2d(F.pad(-x, (0, 1, 0, 1), value=-255.0), 2, stride=1)
        if (thin > 127).sum() > 0.4 * (x > 127).sum():
            x = thin
    return x[0, 0].round().clamp(0, 255).to(torch.uint8)


def _ctc_loss(model: nn.Module, lines: list[torch.Tensor], texts: list[str],
              normalization: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's mean CTC loss, and its scores."""
    batch, lengths = to_batch(lines, normalization)
    scores = model(batch)
    log_probs = F.log_softmax(scores, dim=-1).transpose(0, 1)  # (T, N, C), as CTCLoss takes
    targets = torch.tensor([int(c) for t in texts for c in t], dtype=torch.long)
    target_lengths = torch.tensor([len(t) for t in texts])
    loss = F.ctc_loss(log_probs, targets, lengths, target_lengths, blank=BLANK,
                      zero_infinity=True)
    return loss, scores


@torch.inference_mode()
def validate(model: nn.Module, lines: list[torch.Tensor], texts: list[str],
             normalization: tuple[float, float], batch_size: int = 256) -> dict:
    """Mean CTC loss and the share of lines read exactly."""
    model.eval()
    total, right = 0.0, 0
    order = sorted(range(len(lines)), key=lambda i: lines[i].shape[1])
    for s in range(0, len(order), batch_size):
        idx = order[s: s + batch_size]
        batch_lines, batch_texts = [lines[i] for i in idx], [texts[i] for i in idx]
        loss, scores = _ctc_loss(model, batch_lines, batch_texts, normalization)
        total += loss.item() * len(idx)
        _, lengths = to_batch(batch_lines, normalization)
        for k, text in enumerate(batch_texts):
            read = "".join(str(d.digit) for d in decode(scores[k, : lengths[k]]))
            right += read == text
    return {"loss": total / max(len(lines), 1), "accuracy": right / max(len(lines), 1)}


def make_lines(cfg, log: Callable[[str], None], start: int = 0,
               val: list | None = None) -> tuple[list, list]:
    """The run's training and validation lines, written from MNIST's training digits (the last
    5,000 for validation) and from letters and shapes (training fonts). `start`: the training
    lines already written (the first `start` of the same seed); `val`: the validation lines,
    if written already."""
    from .datasets import load_dataset
    from .synth.lines import written_lines
    from .synth.negatives import letters, shapes, training_fonts
    from .train import _progress

    data = load_dataset("mnist", cfg.data_dir, progress=cfg.progress)
    if cfg.data_dir is None:
        cfg.data_dir = str(Path(data.files["train_images"]).parent)
    images, labels = data.train.images, data.train.labels
    cut = len(images) - cfg.val_size
    digits, digit_labels = line_digit_pool(images[:cut], labels[:cut], cfg, log)
    others = torch.cat([letters(3000, seed=cfg.seed, fonts=training_fonts()),
                        shapes(3000, seed=cfg.seed)])
    n_val = 0 if val is not None else _val_count(cfg)
    log(f"writing {cfg.written - start:,} training lines and {n_val:,} for validation "
        "(synth.lines: random hands, read back as reading reads them)")
    bar = _progress(cfg.written - start + n_val, "writing lines", cfg.progress, unit="line")
    tick = bar.update if bar is not None else None
    train = written_lines(digits, digit_labels, others[:5000], cfg.written, cfg.seed,
                          progress=tick, start=start)
    if val is None:
        val = written_lines(images[cut:], labels[cut:], others[5000:], n_val, cfg.seed + 1,
                            progress=tick)
    if bar is not None:
        bar.close()
    return train, val


# `--distort` for a line reader: each training digit also once more, warped as the digit
# reader's `--distort` warps (Simard et al. 2003) and turned a little. Lines place, size, slant
# and ink each digit themselves; warping gives them shapes MNIST's writers did not draw.
LINE_WARP = dict(rotate=6.0, scale=0.0, shift=0.0, warp=2.0)


def line_digit_pool(images: torch.Tensor, labels: torch.Tensor, cfg,
                    log: Callable[[str], None]) -> tuple[torch.Tensor, torch.Tensor]:
    """The digits training lines are written from: MNIST's training digits; with
    `cfg.distort`, a warped copy of each; with `cfg.font_digits`, that many digits drawn in
    handwriting fonts (synth/fonts.py), when they are installed. Validation lines keep
    MNIST's own held-out digits, so validation measures what it always did."""
    from .loader import Augment

    pool, pool_labels = [images], [labels]
    if cfg.distort:
        warp = Augment(**LINE_WARP)
        with torch.random.fork_rng(devices=[]):  # seeded here; the run's own draws untouched
            torch.manual_seed(cfg.seed)
            for s in range(0, len(images), 4096):
                x = images[s: s + 4096].float()[:, None] / 255
                pool.append((warp(x)[:, 0] * 255).round().clamp(0, 255).to(torch.uint8))
        pool_labels.append(labels)
        log(f"warped digits: {len(images):,} (each training digit once more, warped)")
    if cfg.font_digits:
        from .synth.fonts import installed_font_digits

        more, more_labels = installed_font_digits(cfg.font_digits, cfg.seed, log)
        pool.append(more)
        pool_labels.append(more_labels.to(labels.dtype))
    return torch.cat(pool), torch.cat(pool_labels)


def _val_count(cfg) -> int:
    return max(100, min(VAL_LINES, cfg.written // 10))


def _lines_key(cfg) -> list:
    """What the written lines depend on: kept beside them, checked before they are reused."""
    from .synth.lines import VERSION

    key = [cfg.written, cfg.seed, cfg.val_size, cfg.data_dir, VERSION]
    # Lines written from other digits are other lines.
    return key + ([bool(cfg.distort), cfg.font_digits] if cfg.distort or cfg.font_digits else [])


def _cached_lines(cache: Path, cfg, log: Callable[[str], None]) -> tuple[list, list, list | None]:
    """The run's lines: those written before in this folder when they are the ones asked for,
    more written when fewer of the same seed are there, all written otherwise. And the key to
    save them under, or None when they are saved already. (The key is taken before writing:
    writing fills in `cfg.data_dir` when it was left to the default.)"""
    from .synth.lines import CHUNK

    key = _lines_key(cfg)
    saved = torch.load(cache, weights_only=True) if cache.exists() else {}
    old = saved.get("key")
    if old == key:
        log(f"the lines written before in {cache} are read again")
        return saved["train"], saved["val"], None
    if (old is not None and old[1:] == key[1:] and old[0] < cfg.written and old[0] % CHUNK == 0
            and len(saved["val"]) == _val_count(cfg)):
        log(f"{old[0]:,} lines written before in {cache} are kept")
        more, val = make_lines(cfg, log, start=old[0], val=saved["val"])
        return saved["train"] + more, val, key
    train, val = make_lines(cfg, log)
    return train, val, key


def fit_lines(cfg, log: Callable[[str], None] = print, resume: bool = False) -> Path:
    """Train a LineNet as `cfg` (a TrainConfig of the `lines` recipe) says; the run folder
    holds best.pt, last.pt (resumable), metrics.csv and the curves, as every run's does."""
    from .models import create_model, get_entry
    from .train import (
        _progress,
        _signals_as_interrupts,
        _write_config,
        epoch_row,
        load_resume,
        make_optimizer,
        make_scheduler,
        open_run,
        prepare_run_dir,
        resume_state,
        save_epoch,
        start_from,
        stopped,
    )

    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.lr <= 0 or cfg.written < 1:
        raise DigitosError("--epochs, --batch-size and --written (lines) must be at least 1, "
                           "--lr above 0")
    entry = get_entry(cfg.model)
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, **cfg.model_args)
    if cfg.init and not resume:  # checked before minutes of writing lines
        start_from(model, cfg.init, LINE_CLASSES)
    out, finished = open_run(cfg, resume, log)
    if finished:
        return out
    # The lines are written once per folder: a resumed run, or one started again in the same
    # folder with the same or more lines asked for, need not write them again (minutes of work).
    cache = out / "lines.pt"
    train, val, key = _cached_lines(cache, cfg, log)
    prepare_run_dir(out, cfg.overwrite and not resume)
    if key is not None:
        save_checkpoint(cache, {"key": key, "train": train, "val": val})
    train_lines, train_texts = [x for x, _ in train], [t for _, t in train]
    val_lines, val_texts = [x for x, _ in val], [t for _, t in val]
    widths = [x.shape[1] for x in train_lines]

    normalization = entry.normalization
    opt = make_optimizer(cfg, model.parameters())
    steps = math.ceil(len(train_lines) / cfg.batch_size)
    scheduler, per_batch = make_scheduler(cfg, opt, steps)
    meta = dict(model_name=cfg.model, model_args=dict(cfg.model_args),
                normalization=normalization, classes=LINE_CLASSES, dataset="mnist-lines")
    history: list[dict] = []
    best_val_loss, start = math.inf, 0
    if resume:
        _, history, best_val_loss, start = load_resume(out, model, opt, scheduler)
    config = asdict(cfg) | {"train_lines": len(train_lines), "val_lines": len(val_lines)}
    _write_config(out, config, "running")
    log(f"training {cfg.model} on {len(train_lines):,} lines, validating on {len(val_lines):,}; "
        f"run folder {out}" if not resume else f"resuming {out} after epoch {start} of {cfg.epochs}")
    with _signals_as_interrupts() as signals:
        try:
            for epoch in range(start + 1, cfg.epochs + 1):
                t0 = time.perf_counter()
                model.train()
                total, count = 0.0, 0
                order = _batches(widths, cfg.batch_size, random.Random(cfg.seed * 1000 + epoch))
                pens = random.Random(cfg.seed * 1000 + epoch + 500)
                bar = _progress(len(order), f"epoch {epoch}/{cfg.epochs}", cfg.progress)
                for idx in order:
                    lines = [train_lines[i] for i in idx]
                    if cfg.augment:
                        lines = [augment_line(x, pens) for x in lines]
                    loss, _ = _ctc_loss(model, lines, [train_texts[i] for i in idx],
                                        normalization)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(model.parameters(), 5.0)  # CTC's rare spikes on a hard batch
                    opt.step()
                    if per_batch:
                        scheduler.step()
                    total += loss.item() * len(idx)
                    count += len(idx)
                    if bar is not None:
                        bar.update(1)
                if bar is not None:
                    bar.close()
                if scheduler is not None and not per_batch:
                    scheduler.step()
                train_seconds = time.perf_counter() - t0
                val = validate(model, val_lines, val_texts, normalization)
                row = epoch_row(epoch, total / max(count, 1), val, opt, train_seconds, t0)
                history.append(row)
                log(f"{time.strftime('%H:%M:%S')} - Epoch: {epoch}/{cfg.epochs}, "
                    f"Train Loss: {row['train_loss']:.6f}, Val Loss: {val['loss']:.6f}, "
                    f"lines read exactly: {val['accuracy']:.4f}")
                metrics = {k: row[k] for k in ("train_loss", "val_loss", "val_accuracy")}
                ckpt = make_checkpoint(model, epoch=epoch, metrics=metrics, config=asdict(cfg),
                                       **meta)
                improved = val["loss"] < best_val_loss
                if improved:
                    best_val_loss = val["loss"]
                last = ckpt | {"resume": resume_state(model, opt, scheduler, history,
                                                      best_val_loss)}
                save_epoch(out, signals, ckpt if improved else None, last, history)
        except KeyboardInterrupt:
            return stopped(out, cfg, config, signals, log)
    _write_config(out, config, "finished")
    return out

