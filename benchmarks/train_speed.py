"""Training speed: the class's loop against digitos' recipes, in ONE run on one machine.

    python benchmarks/train_speed.py --data-dir ../shared/data/mnist

1. The class's loop, reproduced faithfully: a per-image Dataset that makes a PIL image and
   converts it as torchvision's ToTensor does, a DataLoader with batch 64 and shuffle,
   NuestraSegundaRed, Adam 0.001, CrossEntropyLoss on its log_softmax output, the class's
   validation pass (9,000 test-file images, per-image Python loop) after every epoch.
2. digitos' recipes (fast, default; --recipes to choose), through digitos.fit.
Each is stopped when the full 10,000-image test set reaches --target (checked after each
epoch, outside the timed part). Timed: training and validation passes, not data loading.
It prints the seconds of each, the ratio, and images/s of NuestraSegundaRed at batch 64.
Not run in CI: it takes several minutes.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

import digitos
from digitos.datasets import load_dataset, make_splits
from digitos.evaluate import split_logits
from digitos.models import create_model


class ClassMNIST(TorchDataset):
    """What torchvision's MNIST + ToTensor() hands the class's loop: one PIL image at a time."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i].numpy(), mode="L")  # as torchvision does
        # ToTensor: HWC uint8 -> CHW float in [0, 1]
        x = torch.from_numpy(np.array(img, np.uint8, copy=True)).view(28, 28, 1)
        x = x.permute(2, 0, 1).contiguous().float().div(255)
        return x, int(self.labels[i])


def test_accuracy(model, test, normalization, device="cpu") -> float:
    logits = split_logits(model, test, normalization, device)
    return (logits.argmax(1) == test.labels).float().mean().item()


def class_loop(ds, target: float, max_epochs: int, seed: int) -> dict:
    torch.manual_seed(seed)
    seed_split = make_splits(ds, "seed", seed)  # the class's 9,000 validation images
    train_loader = DataLoader(ClassMNIST(ds.train.images, ds.train.labels), batch_size=64,
                              shuffle=True)
    val_loader = DataLoader(ClassMNIST(seed_split.val.images, seed_split.val.labels),
                            batch_size=32, shuffle=False)
    modelo = create_model("NuestraSegundaRed")
    criterio = torch.nn.CrossEntropyLoss()
    optimizador = torch.optim.Adam(modelo.parameters(), lr=0.001)
    seconds, first_epoch_ips, reached, acc = 0.0, None, None, 0.0
    for epoch in range(1, max_epochs + 1):
        t0 = time.perf_counter()
        modelo.train()
        for image, label in train_loader:
            optimizador.zero_grad()
            loss = criterio(modelo(image), label)
            loss.backward()
            optimizador.step()
        train_s = time.perf_counter() - t0
        modelo.eval()
        total = 0
        for image, label in val_loader:  # the class's validation, as written (no no_grad)
            pred = modelo(image)
            criterio(pred, label).item()
            pred = F.softmax(pred, dim=1)
            for i, p in enumerate(pred):
                if label[i] == torch.max(p.data, 0)[1]:
                    total += 1
        seconds += time.perf_counter() - t0
        if first_epoch_ips is None:
            first_epoch_ips = len(ds.train) / train_s
        acc = test_accuracy(modelo, ds.test, (0.0, 1.0))
        print(f"  class loop epoch {epoch}: {seconds:7.1f} s, test accuracy {100 * acc:.2f}%",
              flush=True)
        if acc >= target:
            reached = epoch
            break
    return {"seconds": seconds, "epochs": reached, "accuracy": acc,
            "train_images_per_s": first_epoch_ips}


def digitos_run(recipe: str, data_dir, target: float, seed: int, out, device: str = "cpu",
                **overrides) -> dict:
    data = load_dataset("mnist", data_dir)
    state = {"seconds": 0.0, "epochs": None, "accuracy": 0.0, "train_images_per_s": None}

    def check(epoch, model, row):
        state["seconds"] += row["seconds"]
        if state["train_images_per_s"] is None:
            state["train_images_per_s"] = n_train / row["train_seconds"]
        state["accuracy"] = test_accuracy(model, data.test, model_norm, device)
        print(f"  {recipe:8} epoch {epoch}: {state['seconds']:7.1f} s (this epoch's training "
              f"{row['train_seconds']:.2f} s), test accuracy {100 * state['accuracy']:.2f}%",
              flush=True)
        if state["accuracy"] >= target:
            state["epochs"] = epoch
            return True
        return False

    cfg = digitos.TrainConfig.from_recipe(recipe, data_dir=str(data_dir), seed=seed, out=str(out),
                                          overwrite=True, progress=False, device=device,
                                          **overrides)
    model_norm = digitos.models.get_entry(cfg.model).normalization
    n_train = len(data.train) - cfg.val_size  # the holdout split
    digitos.fit(cfg, log=lambda s: None, on_epoch_end=check)
    return state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--target", type=float, default=0.99)
    ap.add_argument("--recipes", default="fast,default")
    ap.add_argument("--max-epochs", type=int, default=10, help="for the class loop")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-class", action="store_true")
    ap.add_argument("--out", default="/tmp/digitos-bench")
    ap.add_argument("--device", default="cpu",
                    help="for digitos' runs (cpu, cuda); the class loop always runs on the CPU")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"threads, torch {torch.__version__}")
    if args.device.startswith("cuda"):
        print(f"GPU: {torch.cuda.get_device_name()}")
    ds = load_dataset("mnist", args.data_dir)
    results = {}
    if not args.skip_class:
        print("class loop (NuestraSegundaRed, DataLoader, batch 64, Adam 0.001):")
        results["class loop"] = class_loop(ds, args.target, args.max_epochs, args.seed)
    for recipe in args.recipes.split(","):
        print(f"digitos --recipe {recipe}:")
        results[recipe] = digitos_run(recipe, args.data_dir, args.target, args.seed,
                                      f"{args.out}/{recipe}", args.device)
    print("digitos NuestraSegundaRed, batch 64, 1 epoch:")
    results["digitos class CNN"] = digitos_run("class", args.data_dir, 2.0, args.seed,
                                               f"{args.out}/classcnn", args.device, epochs=1)

    print(f"\nseconds to {100 * args.target:.1f}% test accuracy (training + validation passes):")
    base = results.get("class loop", {}).get("seconds")
    for name, r in results.items():
        if name == "digitos class CNN":
            continue
        ratio = f"{base / r['seconds']:6.1f}x" if base and r["epochs"] else ""
        reached = f"epoch {r['epochs']}" if r["epochs"] else "not reached"
        print(f"  {name:12} {r['seconds']:8.1f} s  {reached:12} {100 * r['accuracy']:.2f}%  "
              f"{ratio}")
    cl, ours = results.get("class loop"), results["digitos class CNN"]
    print(f"\nNuestraSegundaRed, batch 64, training images/s: digitos "
          f"{ours['train_images_per_s']:.0f}"
          + (f", class loop {cl['train_images_per_s']:.0f} "
             f"({ours['train_images_per_s'] / cl['train_images_per_s']:.2f}x)" if cl else ""))


if __name__ == "__main__":
    main()
