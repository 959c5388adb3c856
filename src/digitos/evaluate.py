"""Running a model over a whole split, and the numbers that describe how well it reads."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .datasets import Split
from .loader import Batches, uses_channels_last


def tta_views(x: torch.Tensor) -> list[torch.Tensor]:
    """Test-time augmentation: the image and four one-pixel shifts (what the 'best' recipe uses)."""
    views = [x]
    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        views.append(torch.roll(x, shifts=(dy, dx), dims=(2, 3)))
    return views


def model_logits(model: nn.Module, x: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """Class scores for a batch of normalised inputs; with tta, averaged log-probabilities."""
    if not tta:
        return model(x)
    # Rolling wraps edge pixels around; MNIST digits keep a blank 4-px border, so nothing moves
    # into view that was not background.
    # All views in one batch: one pass over the model costs far less than five small ones.
    views = torch.cat(tta_views(x))
    logits = model(views)
    return F.log_softmax(logits, dim=1).view(len(views) // len(x), len(x), -1).mean(0)


@torch.inference_mode()
def split_logits(
    model: nn.Module,
    split: Split,
    normalization: tuple[float, float],
    device: torch.device | str = "cpu",
    batch_size: int = 500,
    tta: bool = False,
) -> torch.Tensor:
    """Logits (N, classes) on the CPU for every image of `split`, in order.

    Inputs take the model's memory format (channels_last doubles CPU inference speed).
    """
    model.eval()
    out = []
    batches = Batches(split, batch_size, normalization, device=device,
                      channels_last=uses_channels_last(model))
    for x, _ in batches:
        out.append(model_logits(model, x, tta).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 10)


NOT_A_DIGIT = "not a digit"  # the eleventh class of a model trained with --not-a-digit
# "Not a digit" only when the model is this sure of it; otherwise the likeliest digit. Weighed
# on 3,000 drawings of MNIST *training* digits and 1,500 non-digits (a trial run of the reader
# recipe): rejected digits 0.50% at 0.5, 0.37% at 0.7, 0.23% at 0.8; rejected non-digits
# 98.7%, 98.4%, 98.1%. Fewer digits lost for few non-digits let through.
NOT_A_DIGIT_FROM = 0.75


def read_classes(probabilities: torch.Tensor, classes) -> torch.Tensor:
    """The class read for each row of probabilities: the likeliest, except that "not a digit"
    needs at least NOT_A_DIGIT_FROM. Evaluation and reading both decide this way."""
    pred = probabilities.argmax(1)
    if NOT_A_DIGIT in classes:
        other = list(classes).index(NOT_A_DIGIT)
        doubtful = (pred == other) & (probabilities[:, other] < NOT_A_DIGIT_FROM)
        if doubtful.any():
            digits = probabilities.clone()
            digits[:, other] = -1.0
            pred = torch.where(doubtful, digits.argmax(1), pred)
    return pred


def metrics_from_logits(logits: torch.Tensor, labels: torch.Tensor, classes) -> dict:
    """Accuracy, mean cross-entropy, per-class precision and recall, confusion matrix.

    confusion[i][j] counts images of true class i read as class j.
    """
    labels = labels.cpu()
    k = len(classes)
    pred = read_classes(F.softmax(logits.float(), dim=1), classes)
    loss = F.cross_entropy(logits, labels).item() if len(labels) else float("nan")
    confusion = torch.bincount(labels * k + pred, minlength=k * k).reshape(k, k)
    correct = confusion.diag().float()
    support = confusion.sum(1).float()
    predicted = confusion.sum(0).float()
    per_class = {}
    for i, name in enumerate(classes):
        per_class[name] = {
            "precision": (correct[i] / predicted[i]).item() if predicted[i] else 0.0,
            "recall": (correct[i] / support[i]).item() if support[i] else 0.0,
            "support": int(support[i]),
        }
    probabilities = F.softmax(logits.float(), dim=1)
    confidence = probabilities.gather(1, pred[:, None])[:, 0] if len(labels) else probabilities[:, 0]
    right = int(correct.sum().item())
    return {
        "accuracy": right / max(len(labels), 1),
        "accuracy_interval": list(accuracy_interval(right, len(labels))),
        "loss": loss,
        "count": len(labels),
        "errors": len(labels) - right,
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "calibration": calibration(confidence, pred == labels),
    }


def accuracy_interval(right: int, count: int, z: float = 1.96) -> tuple[float, float]:
    """Where the accuracy on all such images most likely lies, from `right` of `count` read
    right: the Wilson score interval, 95% at z = 1.96. A test set is a sample of what a model
    will be shown: 491 of 500 numbers is 98.2%, and anything from 96.6% to 99.1% could have
    given it; two models a point apart on 500 numbers may read equally well."""
    if count <= 0:
        return 0.0, 1.0
    p = right / count
    shrink = 1 + z * z / count
    centre = (p + z * z / (2 * count)) / shrink
    half = z * math.sqrt(p * (1 - p) / count + z * z / (4 * count * count)) / shrink
    return max(0.0, centre - half), min(1.0, centre + half)


def share_with_interval(right: int, count: int) -> str:
    """A benchmark's row: "98.20%  (491/500; 95% interval 96.6-99.1%)"."""
    low, high = accuracy_interval(right, count)
    return (f"{100 * right / count:6.2f}%  ({right}/{count}; "
            f"95% interval {100 * low:.1f}-{100 * high:.1f}%)")


def evaluate_split(
    model: nn.Module,
    split: Split,
    classes,
    normalization: tuple[float, float],
    device: torch.device | str = "cpu",
    tta: bool = False,
) -> tuple[dict, torch.Tensor]:
    """(metrics, logits) of `model` on `split`."""
    logits = split_logits(model, split, normalization, device, tta=tta)
    return metrics_from_logits(logits, split.labels, classes), logits


CALIBRATION_BINS = 15


def calibration(confidence: torch.Tensor, correct: torch.Tensor,
                bins: int = CALIBRATION_BINS) -> dict:
    """How well stated confidence matches how often it is right (Guo et al. 2017).

    `confidence` (N,) in [0, 1], `correct` (N,) booleans. Equal-width bins of confidence;
    `ece`, the expected calibration error, is the mean |accuracy - confidence| of the bins,
    weighted by how many images each holds: 0 for a model that is right 90% of the times it
    says 90%. `bins` lists each non-empty bin's range, mean confidence, accuracy and count:
    a reliability plot's points."""
    confidence, correct = confidence.float().cpu(), correct.float().cpu()
    which = (confidence * bins).long().clamp(max=bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        if count:
            conf, acc = float(confidence[inside].mean()), float(correct[inside].mean())
            ece += count / len(confidence) * abs(acc - conf)
            rows.append({"from": b / bins, "to": (b + 1) / bins, "confidence": conf,
                         "accuracy": acc, "count": count})
    return {"ece": ece, "bins": rows}


def rejection_report(digit_probs: torch.Tensor, other_probs: torch.Tensor, classes) -> dict:
    """How the "not a digit" class fares on held-out images: the share of non-digits refused
    and of real digits refused (as reading decides, with NOT_A_DIGIT_FROM), and the calibration
    of the not-a-digit probability as a yes/no answer over both sets."""
    column = list(classes).index(NOT_A_DIGIT)
    refused_digits = read_classes(digit_probs, classes) == column
    refused_others = read_classes(other_probs, classes) == column
    said = torch.cat([digit_probs[:, column], other_probs[:, column]])
    truly = torch.cat([torch.zeros(len(digit_probs)), torch.ones(len(other_probs))]).bool()
    # Calibration of a yes/no answer: the probability of the answer given, against being right.
    answer = said >= 0.5
    stated = torch.where(answer, said, 1 - said)
    return {"non_digits": len(other_probs), "non_digits_refused": float(refused_others.float().mean()),
            "digits": len(digit_probs), "digits_refused": float(refused_digits.float().mean()),
            "threshold": NOT_A_DIGIT_FROM, "calibration": calibration(stated, answer == truly)}


def format_report(metrics: dict, classes) -> str:
    """The metrics as a terminal table."""
    low, high = metrics["accuracy_interval"]
    lines = [
        f"test images: {metrics['count']:,}   accuracy: {100 * metrics['accuracy']:.2f}% "
        f"(95% interval {100 * low:.2f}-{100 * high:.2f}%)   errors: {metrics['errors']:,}   "
        f"loss: {metrics['loss']:.4f}",
        "",
        f"{'class':>12} {'precision':>9} {'recall':>7} {'images':>7}",
    ]
    for name in classes:
        pc = metrics["per_class"][name]
        lines.append(
            f"{name:>12} {100 * pc['precision']:8.2f}% {100 * pc['recall']:6.2f}% {pc['support']:7d}"
        )
    width = max(5, max(len(str(v)) for row in metrics["confusion"] for v in row) + 1)
    lines += ["", "confusion matrix (rows: true class, columns: predicted class)"]
    short = [str(c)[:width - 1] for c in classes]
    lines.append(" " * 6 + "".join(f"{c:>{width}}" for c in short))
    for name, row in zip(short, metrics["confusion"], strict=False):
        lines.append(f"{name:>6}" + "".join(f"{v:>{width}}" for v in row))
    if "calibration" in metrics:
        lines += ["", f"calibration: expected calibration error {100 * metrics['calibration']['ece']:.2f}% "
                      "(the confidence of the class read against how often it is right)"]
    if "not_a_digit" in metrics:
        r = metrics["not_a_digit"]
        lines += [f"not a digit: {100 * r['non_digits_refused']:.2f}% of {r['non_digits']:,} held-out "
                  f"non-digits refused, {100 * r['digits_refused']:.2f}% of the {r['digits']:,} test "
                  f"digits; expected calibration error {100 * r['calibration']['ece']:.2f}%"]
    return "\n".join(lines)
