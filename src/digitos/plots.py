"""Every figure digitos draws. matplotlib lives here and nowhere else."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no window: works on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def image_grid(images: torch.Tensor, titles: list[str], path: str | Path, cols: int = 15,
               title: str | None = None, cmap: str = "gray_r") -> Path:
    """uint8 images (N, H, W) side by side with a title above each: the class's first figure."""
    n = len(images)
    cols = max(1, min(cols, n))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.45 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i].numpy(), cmap=cmap, vmin=0, vmax=255)
            ax.set_title(titles[i], fontsize=9)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def loss_curves(epochs: list[int], train_loss: list[float], val_loss: list[float],
                path: str | Path) -> Path:
    """Train and validation loss per epoch (epochs on x, loss on y)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(epochs, train_loss, "o-", label="Train loss")
    ax.plot(epochs, val_loss, "o-", label="Validation loss")
    return _per_epoch(fig, ax, "Loss", "Loss", "upper right", path)


def accuracy_curve(epochs: list[int], val_accuracy: list[float], path: str | Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(epochs, [100 * a for a in val_accuracy], "o-", color="tab:green",
            label="Validation accuracy")
    return _per_epoch(fig, ax, "Accuracy (%)", "Validation accuracy", "lower right", path)


def _per_epoch(fig, ax, ylabel: str, title: str, legend: str, path: str | Path) -> Path:
    """Labels, grid, legend and whole-number epoch ticks of a per-epoch curve; then save."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("Epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc=legend)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _save(fig, path)


def confusion_matrix(confusion: list[list[int]], classes, path: str | Path,
                     title: str = "Confusion matrix") -> Path:
    k = len(classes)
    m = torch.tensor(confusion, dtype=torch.float)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * k, 0.6 + 0.6 * k))
    # Colour by the share of each true class, so errors are visible next to a large diagonal.
    share = m / m.sum(1, keepdim=True).clamp(min=1)
    ax.imshow(share.numpy(), cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            v = int(m[i, j])
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), [str(c) for c in classes], rotation=45 if k > 10 else 0)
    ax.set_yticks(range(k), [str(c) for c in classes])
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    ax.set_title(title)
    return _save(fig, path)


def misclassified(images: torch.Tensor, true: list[str], pred: list[str], path: str | Path,
                  cols: int = 10) -> Path:
    """A grid of wrongly read images, each titled 'true -> predicted'."""
    titles = [f"{t} → {p}" for t, p in zip(true, pred, strict=False)]
    if len(images) == 0:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        return _save(fig, path)
    return image_grid(images, titles, path, cols=cols,
                      title="Misclassified (true → predicted)")


def reliability(panels: list[tuple[str, dict]], path: str | Path) -> Path:
    """Reliability plots: for each (title, evaluate.calibration(...)), the accuracy in each bin
    of confidence against the confidence, with the diagonal a calibrated model follows."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    for ax, (title, cal) in zip(axes[0], panels, strict=True):
        bins = cal["bins"]
        width = bins[0]["to"] - bins[0]["from"] if bins else 0.1
        ax.bar([b["from"] for b in bins], [b["accuracy"] for b in bins], width=width, align="edge",
               color="#4c72b0", edgecolor="white", label="accuracy in the bin")
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="#dd8452",
                ms=4, label="mean confidence")
        for b in bins:
            ax.text(b["from"] + width / 2, 0.02, f"{b['count']:,}", rotation=90, ha="center",
                    va="bottom", fontsize=6, color="white" if b["accuracy"] > 0.15 else "black")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("Confidence")
        ax.set_ylabel("Accuracy")
        ax.set_title(f"{title}\nECE {100 * cal['ece']:.2f}%", fontsize=10)
        ax.legend(loc="upper left", fontsize=7)
    return _save(fig, path)


TOY_WORDS = {
    "es": ("Antes de entrenar (pesos al azar)", "Después de entrenar", "Paso de entrenamiento",
           "Pérdida (entropía cruzada)", "La pérdida en cada paso"),
    "en": ("Before training (random weights)", "After training", "Training step",
           "Loss (cross-entropy)", "The loss at each step"),
}


def toy_training(x: torch.Tensor, y: torch.Tensor, before, after, losses: list[float],
                 path: str | Path, lang: str = "es") -> Path:
    """The first network on a 2-D problem: its border before training, after training, and
    the loss at each step. `before` and `after` are (xs, ys, p) from toy.decision_grid.
    Titles in Spanish, as the class is, or in English (`lang="en"`)."""
    words = TOY_WORDS[lang]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, (xs, ys, p), title in ((axes[0], before, words[0]), (axes[1], after, words[1])):
        ax.contourf(xs.numpy(), ys.numpy(), p.numpy(), levels=20, cmap="RdBu_r", alpha=0.6,
                    vmin=0, vmax=1)
        ax.contour(xs.numpy(), ys.numpy(), p.numpy(), levels=[0.5], colors="k", linewidths=1.5)
        ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), c=y.numpy(), cmap="RdBu_r", s=12,
                   edgecolors="k", linewidths=0.3)
        ax.set_title(title)
        ax.set_xlabel("x₁")
        ax.set_ylabel("x₂")
    axes[2].plot(range(1, len(losses) + 1), losses)
    axes[2].set_xlabel(words[2])
    axes[2].set_ylabel(words[3])
    axes[2].set_yscale("log")
    axes[2].set_title(words[4])
    axes[2].grid(alpha=0.3)
    return _save(fig, path)
