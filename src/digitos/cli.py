"""The `digitos` command: argparse subcommands, thin. Parse, call the library, print.

Every DigitosError becomes one line on stderr and exit code 1; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import DigitosError
from .recipes import RECIPES

DEFAULT = RECIPES["default"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value}")
    return value


def _add_data_args(p: argparse.ArgumentParser) -> None:
    from .datasets import DATASETS

    p.add_argument("--dataset", default="mnist", choices=list(DATASETS),
                   help="which IDX dataset (default: %(default)s; 'idx' = your own files)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder with the IDX files, gzipped or not, or torchvision's MNIST/raw "
                        "layout (default: $DIGITOS_DATA_DIR, else the cache, downloading "
                        "missing files)")


def _add_split_args(p: argparse.ArgumentParser, limits=("train", "val", "test")) -> None:
    p.add_argument("--split", default="holdout", choices=["holdout", "seed"],
                   help="holdout: validation = --val-size training images, test = all 10,000 "
                        "test images; seed: the class's split, validation 9,000 and test 1,000 "
                        "drawn from the test files (default: %(default)s)")
    p.add_argument("--val-size", type=_positive_int, default=5000,
                   help="validation images held out of training with --split holdout "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed for the split, initial weights and shuffling (default: %(default)s)")
    for part in limits:
        p.add_argument(f"--limit-{part}", type=_positive_int, default=None, metavar="N",
                       help=f"use only the first N {part} images (default: all)")


def _add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                   help="where to compute; auto picks CUDA, then MPS, then the CPU "
                        "(default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digitos",
        description="Train a neural network to read handwritten digits, measure how good it "
                    "is, and read the digits people draw.",
    )
    parser.add_argument("--version", action="version", version=f"digitos {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("data", help="check a dataset and describe it",
                       description="Read and verify a dataset's IDX files, then print its "
                                   "classes, counts per class, shapes and pixel mean/std.")
    _add_data_args(p)
    p.add_argument("--grid", metavar="FILE.png", help="save the first 15 training images with "
                   "their labels (the class's figure)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("models", help="list the registered models",
                       description="List every registered model with its parameters and "
                                   "multiply-adds per image.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "train", help="train a model; writes a run folder",
        description="Train a model. Each epoch prints the train loss, validation loss and "
                    "validation accuracy; the run folder gets config.json, metrics.csv, best.pt "
                    "(lowest validation loss), last.pt, loss.png and accuracy.png. A recipe sets "
                    "the defaults; any option given overrides it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--recipe", default="default", choices=list(RECIPES),
                   help="named defaults: default (>= 99.5%% in about 3 min on 2 CPU cores), "
                        "fast (quickest to 99%%), best (most accurate), reader (the shipped "
                        "model: digits and 'not a digit'), class (the notebook's)")
    p.add_argument("--model", default=None,
                   help=f"a name from `digitos models` (recipe's; default recipe: "
                        f"{DEFAULT['model']})")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="a constructor argument of the model, e.g. width=24 (repeatable)")
    _add_data_args(p)
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help=f"passes over the training images (default recipe: {DEFAULT['epochs']})")
    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help=f"images per step (default recipe: {DEFAULT['batch_size']})")
    p.add_argument("--lr", type=_positive_float, default=None,
                   help=f"learning rate, the peak with onecycle (default recipe: {DEFAULT['lr']})")
    p.add_argument("--optimizer", default=None, choices=["adam", "adamw", "sgd", "adadelta"],
                   help=f"(default recipe: {DEFAULT['optimizer']})")
    p.add_argument("--scheduler", default=None, choices=["none", "step", "onecycle"],
                   help="learning-rate schedule: step multiplies by 0.7 each epoch, onecycle "
                        f"warms up then anneals (default recipe: {DEFAULT['scheduler']})")
    p.add_argument("--weight-decay", type=float, default=None,
                   help=f"(default recipe: {DEFAULT['weight_decay']})")
    p.add_argument("--label-smoothing", type=float, default=None,
                   help=f"(default recipe: {DEFAULT['label_smoothing']})")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random rotation, scale and shift of each training image "
                        f"(default recipe: {'on' if DEFAULT['augment'] else 'off'})")
    p.add_argument("--not-a-digit", action=argparse.BooleanOptionalAction, default=None,
                   help="learn an eleventh class, 'not a digit', from clothes (Fashion-MNIST's "
                        "training files, when found), letters, drawn shapes and pairs of digits, so that "
                        "letters, doodles and objects are not read as digits (MNIST only; "
                        f"default recipe: {'on' if DEFAULT['not_a_digit'] else 'off'})")
    p.add_argument("--ema", type=float, default=None, metavar="DECAY",
                   help="keep an exponential moving average of the weights with this decay "
                        f"per step, e.g. 0.999; 0 = off (default recipe: {DEFAULT.get('ema', 0)})")
    _add_split_args(p)
    _add_device_arg(p)
    p.add_argument("--out", default=None, metavar="DIR",
                   help="run folder (default: runs/DATE-TIME-MODEL)")
    p.add_argument("--overwrite", action="store_true",
                   help="allow --out to be a folder that already holds a run")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels_last memory format: faster convolutions on CPUs "
                        "(default recipe: on)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate", help="test accuracy, per-class precision/recall, confusion matrix",
        description="Evaluate a checkpoint (or a bare state_dict with --model and --weights) "
                    "on the test images.")
    p.add_argument("checkpoint", nargs="?", help="a digitos checkpoint (best.pt, last.pt)")
    p.add_argument("--model", help="with --weights: the registered model the state_dict is for")
    p.add_argument("--weights", metavar="FILE",
                   help="a bare state_dict, e.g. the notebook's checkpoints/model.dth")
    _add_data_args(p)
    _add_split_args(p, limits=("test",))
    _add_device_arg(p)
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="test-time augmentation (default: as the checkpoint says)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="DIR",
                   help="write confusion.png, misclassified.png and metrics.json there")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "predict", help="read digits and numbers from image files",
        description="Read every digit in each image (PNG, JPEG, BMP, GIF, WebP, TIFF; files or "
                    "folders), left to right: a drawing, a scan or a photo of paper, one digit "
                    "or a whole number. The ink is told from the paper, specks and ruled lines "
                    "are dropped, touching digits are cut apart, and each digit is brought to "
                    "MNIST's form (scaled to 20 px, centred by mass in 28x28). An image that "
                    "holds no digit (a letter, a doodle, an object) reads as 'not a digit'. "
                    "Plain output: the number, then each digit with its probability; --json: "
                    "number, digits (digit, confidence, box, probabilities), not_a_digit.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--checkpoint", help="a digitos checkpoint (default: the shipped model)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--save-preprocessed", metavar="DIR",
                   help="write the 28x28 image the model saw for each file (NAME.png; for a "
                        "number, NAME-1.png, NAME-2.png... one per digit)")
    p.add_argument("--unsure-below", type=float, default=None, metavar="P",
                   help="mark readings whose probability is under P as unsure (default: 0.7)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "serve", help="a web page to draw digits on and watch the prediction",
        description="Serve the drawing page and the prediction API (FastAPI + uvicorn).")
    p.add_argument("--checkpoint", help="a digitos checkpoint (default: the shipped model)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind; 0.0.0.0 exposes it to the network "
                        "(default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="(default: %(default)s)")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except DigitosError as e:
        print(f"digitos: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("digitos: interrupted", file=sys.stderr)
        return 130


# --- commands ---


def cmd_data(args) -> int:
    from .datasets import describe, load_dataset

    ds = load_dataset(args.dataset, args.data_dir)
    info = describe(ds)
    info["files"] = {role: str(path) for role, path in ds.files.items()}
    if args.grid:
        from . import plots

        n = min(15, len(ds.train))
        plots.image_grid(ds.train.images[:n],
                         [ds.classes[i] for i in ds.train.labels[:n].tolist()], args.grid)
        info["grid"] = args.grid
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"dataset: {ds.name}   classes ({len(ds.classes)}): {', '.join(ds.classes)}")
    for role, path in ds.files.items():
        print(f"  {role:13} {path}")
    for part, s in info["splits"].items():
        shape = "x".join(map(str, s["images"]))
        print(f"\n{part}: {shape} uint8   pixel mean {s['pixel_mean']:.4f}  std "
              f"{s['pixel_std']:.4f}  (pixels scaled to [0, 1])")
        for name, count in zip(ds.classes, s["counts"], strict=False):
            print(f"  {name:>12}  {count:6,}")
    if args.grid:
        print(f"\nsaved the first {min(15, len(ds.train))} training images to {args.grid}")
    return 0


def cmd_models(args) -> int:
    from .models import count_macs, count_parameters, create_model, get_entry, list_models

    rows = []
    for name in list_models():
        entry = get_entry(name)
        model = create_model(name)
        rows.append({"name": name, "parameters": count_parameters(model),
                     "macs": count_macs(model, entry.input_shape),
                     "input": list(entry.input_shape), "summary": entry.summary})
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'model':18} {'parameters':>11} {'mult-adds':>12}  {'input':10} description")
    for r in rows:
        shape = "x".join(map(str, r["input"]))
        print(f"{r['name']:18} {r['parameters']:>11,} {r['macs']:>12,}  {shape:10} {r['summary']}")
    return 0


def cmd_train(args) -> int:
    from .train import TrainConfig, fit

    cfg = TrainConfig.from_recipe(
        args.recipe, model=args.model, model_args=_model_args(args.model_arg),
        dataset=args.dataset, data_dir=args.data_dir,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
        scheduler=args.scheduler, weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing, augment=args.augment, not_a_digit=args.not_a_digit,
        ema=args.ema, split=args.split,
        val_size=args.val_size, seed=args.seed, limit_train=args.limit_train,
        limit_val=args.limit_val, limit_test=args.limit_test, device=args.device, out=args.out,
        overwrite=args.overwrite, channels_last=args.channels_last, compile=args.compile,
        progress=not args.quiet,
    )
    import torch.distributed as dist

    try:
        out = fit(cfg)
        if not dist.is_initialized() or dist.get_rank() == 0:
            print(f"run folder: {out}   test it with: digitos evaluate {out / 'best.pt'}")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


def _model_args(pairs: list[str]) -> dict | None:
    """KEY=VALUE strings -> kwargs; values read as JSON where they can be (numbers, true)."""
    if not pairs:
        return None
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise DigitosError(f"--model-arg {pair!r}: expected KEY=VALUE, e.g. width=24")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _load_for_eval(args):
    from .checkpoint import load_checkpoint, load_state_dict_file

    if args.weights:
        if not args.model:
            raise DigitosError("--weights needs --model NAME (the network the state_dict is for)")
        if args.checkpoint:
            raise DigitosError("give either a CHECKPOINT or --model with --weights, not both")
        return load_state_dict_file(args.weights, args.model)
    if not args.checkpoint:
        raise DigitosError("give a CHECKPOINT, or --model NAME --weights FILE")
    return load_checkpoint(args.checkpoint)


def cmd_evaluate(args) -> int:
    import torch

    from .datasets import load_dataset, make_splits
    from .evaluate import evaluate_split, format_report
    from .loader import inference_layout
    from .train import pick_device

    model, meta = _load_for_eval(args)
    device = pick_device(args.device)
    ds = load_dataset(args.dataset, args.data_dir)
    from .evaluate import NOT_A_DIGIT

    classes = list(meta.get("classes") or ds.classes)
    # A model with a 'not a digit' class reads the dataset's classes and one more.
    if len(classes) != len(ds.classes) and classes != [*ds.classes, NOT_A_DIGIT]:
        raise DigitosError(f"the model reads {len(classes)} classes, {ds.name} has "
                           f"{len(ds.classes)}")
    splits = make_splits(ds, args.split, args.seed, args.val_size, limit_test=args.limit_test)
    tta = meta.get("tta", False) if args.tta is None else args.tta
    norm = tuple(meta["normalization"])
    model = inference_layout(model.to(device), meta["model"])
    metrics, logits = evaluate_split(model, splits.test, classes, norm, device, tta=tta)
    metrics |= {"model": meta["model"], "dataset": ds.name, "tta": tta,
                "checkpoint": args.checkpoint or args.weights}
    if args.out:
        from . import plots

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        plots.confusion_matrix(metrics["confusion"], classes, out / "confusion.png",
                               title=f"{meta['model']} on {ds.name} test: "
                                     f"{100 * metrics['accuracy']:.2f}%")
        pred = logits.argmax(1)
        wrong = torch.nonzero(pred != splits.test.labels).flatten()[:100]
        plots.misclassified(splits.test.images[wrong],
                            [classes[i] for i in splits.test.labels[wrong].tolist()],
                            [classes[i] for i in pred[wrong].tolist()],
                            out / "misclassified.png")
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if args.json:
        print(json.dumps(metrics))
    else:
        print(f"{meta['model']} on {ds.name} ({'with' if tta else 'no'} test-time augmentation)")
        print(format_report(metrics, classes))
        if args.out:
            print(f"\nwrote confusion.png, misclassified.png and metrics.json to {args.out}")
    return 0


def cmd_predict(args) -> int:
    from .predict import run_predict

    return run_predict(args)


def cmd_serve(args) -> int:
    from .web.server import serve

    serve(args.checkpoint, host=args.host, port=args.port)
    return 0
