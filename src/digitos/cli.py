"""The `digitos` command: argparse subcommands, thin. Parse, call the library, print.

Every DigitosError becomes one line on stderr and exit code 1; never a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
from pathlib import Path

from . import __version__
from .errors import DigitosError
from .recipes import RECIPES

DEFAULT = RECIPES["default"]


def _checked(text: str, cast, what: str, ok, bounds: str):
    """An option's value as `cast` makes it, or argparse's one-line usage error."""
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not {what}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(bounds.format(value))
    return value


def _positive_int(text: str) -> int:
    return _checked(text, int, "a whole number", lambda v: v >= 1, "must be at least 1, got {}")


def _count(text: str) -> int:
    return _checked(text, int, "a whole number", lambda v: v >= 0, "must be 0 or more, got {}")


def _positive_float(text: str) -> float:
    return _checked(text, float, "a number", lambda v: v > 0, "must be above 0, got {}")


def _share(text: str) -> float:
    return _checked(text, float, "a number", lambda v: 0 <= v <= 1,
                    "must be a share from 0 to 1, got {}")


def _port_number(text: str) -> int:
    return _checked(text, int, "a port number", lambda v: 1 <= v <= 65535, "{} is outside 1-65535")


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


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors in one line (and a guess for a mistyped command)."""

    def error(self, message: str):
        choice = re.search(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:  # "did you mean train?", for commands and every option with choices
            what, wrong, among = choice.groups()
            options = re.findall(r"'([^']*)'", among) or [c.strip() for c in among.split(",")]
            guess = difflib.get_close_matches(wrong, options, n=1)
            noun = "command" if what in ("COMMAND", "ACTION") else f"value for {what}"
            message = (f"unknown {noun} '{wrong}'" + (f"; did you mean {guess[0]}?" if guess
                       else f"; choose from {', '.join(options)}"))
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _model_name(text: str) -> str:
    """A registered model's name, matched without regard to case (models.model_name)."""
    from .models import model_name

    try:
        return model_name(text)
    except DigitosError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


DB_HELP = "the drawings database (default: ~/.local/share/digitos/drawings.sqlite3)"


def _add_weights_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=_model_name,
                   help="with --weights: the registered model the state_dict is for")
    p.add_argument("--weights", metavar="FILE",
                   help="a bare state_dict, e.g. the notebook's checkpoints/model.dth")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="digitos",
        description="Train a neural network to read handwritten digits, measure how good it "
                    "is, and read the digits people draw.",
    )
    parser.add_argument("--version", action="version", version=f"digitos {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=Parser)

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
                    "the defaults; any option given overrides it. A run stopped by Ctrl+C, "
                    "SIGTERM or a crash continues with --resume RUN_DIR.",
    )
    p.add_argument("--recipe", default="default", choices=list(RECIPES),
                   help="named defaults: default (>= 99.5%% in about 3 min on 2 CPU cores), "
                        "fast (quickest to 99%%), best (most accurate), reader (the shipped "
                        "model: digits and 'not a digit'), class (the notebook's)")
    p.add_argument("--model", default=None, type=_model_name,
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
                   help=f"how the weights follow the gradient: sgd is SGD with Nesterov momentum "
                        f"0.9; adam and adamw adapt each weight's step (default recipe: "
                        f"{DEFAULT['optimizer']})")
    p.add_argument("--scheduler", default=None, choices=["none", "step", "onecycle"],
                   help="learning-rate schedule: step multiplies by 0.7 each epoch, onecycle "
                        f"warms up then anneals (default recipe: {DEFAULT['scheduler']})")
    p.add_argument("--weight-decay", type=float, default=None,
                   help=f"L2 penalty pulling every weight towards 0 a little each step, against "
                        f"overfitting (default recipe: {DEFAULT['weight_decay']})")
    p.add_argument("--label-smoothing", type=float, default=None,
                   help=f"aim the loss at 1 - E for the right class instead of 1, against "
                        f"overconfidence (default recipe: {DEFAULT['label_smoothing']})")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random rotation, scale and shift of each training image; with "
                        "--recipe lines, each line squeezed or stretched and its pen changed "
                        f"(default recipe: {'on' if DEFAULT['augment'] else 'off'})")
    p.add_argument("--distort", action=argparse.BooleanOptionalAction, default=None,
                   help="with --augment, also shear, warp and make the pen thicker or thinner: "
                        "real drawings vary more than MNIST; --recipe lines: lines are also "
                        "written from a warped copy of each training digit (recipe reader: on; "
                        f"default recipe: {'on' if DEFAULT['distort'] else 'off'})")
    p.add_argument("--styled", type=_count, default=None, metavar="N",
                   help="add N of MNIST's training digits again in each way of writing that its "
                        "writers hardly used: flagged and based 1s, open 4s, straight-topped 6s, "
                        "crossed 7s, straight-stemmed 9s (default: 0; recipe reader: 1000)")
    p.add_argument("--written", type=_count, default=None, metavar="N",
                   help="add N training images again, each written by a random hand (small and "
                        "enlarged, hairline to marker, tilted, blurred, JPEG) and read back as "
                        "an image is read (default: 0; recipe reader: 60000); with --recipe lines, "
                        "the number of lines written to train the line reader (96000)")
    p.add_argument("--font-digits", type=_count, default=None, metavar="N",
                   help="add N digits drawn in fonts made from people's handwriting, in random "
                        "pens, slants and tilts (synth/fonts.py; fetched once with npm; without "
                        "them training goes on and says so); --recipe lines: lines are also "
                        "written from them (default: 0)")
    p.add_argument("--init", default=None, metavar="CHECKPOINT",
                   help="start from this checkpoint's weights instead of random ones (a model "
                        "of the same architecture and classes: trained on, not from scratch; "
                        "a line reader may be wider, e.g. --model-arg width=24: it starts "
                        "computing what the narrower one did)")
    p.add_argument("--flagged-ones", type=_count, default=None, metavar="N",
                   help="add N of MNIST's training 1s again with a flag drawn on, as much of "
                        "the world writes them (default: as --styled)")
    p.add_argument("--crossed-sevens", type=_count, default=None, metavar="N",
                   help="add N of MNIST's training 7s again with a bar through the stem, as much "
                        "of the world writes them (default: as --styled)")
    p.add_argument("--lowres", type=_share, default=None, metavar="SHARE",
                   help="with --augment, shrink this share of the training images to 10-20 px "
                        "and enlarge them back, as a digit drawn on a tiny canvas reaches the "
                        "model (default: 0; recipe reader: 0.25)")
    p.add_argument("--not-a-digit", action=argparse.BooleanOptionalAction, default=None,
                   help="learn an eleventh class, 'not a digit', from clothes (Fashion-MNIST's "
                        "training files, when found), letters, drawn shapes and pairs of digits, so that "
                        "letters, doodles and objects are not read as digits (MNIST only; "
                        f"default recipe: {'on' if DEFAULT['not_a_digit'] else 'off'})")
    p.add_argument("--negative-share", type=_share, default=None, metavar="SHARE",
                   help="with --not-a-digit, not-a-digit images added, as a share of the digits "
                        "(default: 0.25; recipe reader: 0.4)")
    p.add_argument("--ema", type=float, default=None, metavar="DECAY",
                   help="keep an exponential moving average of the weights with this decay "
                        f"per step, e.g. 0.999; 0 = off (default recipe: {DEFAULT.get('ema', 0)})")
    _add_split_args(p)
    _add_device_arg(p)
    p.add_argument("--out", default=None, metavar="DIR",
                   help="run folder (default: runs/DATE-TIME-MODEL)")
    p.add_argument("--overwrite", action="store_true",
                   help="let --out be a folder that holds a run: its files are removed first")
    p.add_argument("--extra", metavar="PATH",
                   help="mix your own labelled drawings into training: a drawings database "
                        "(digitos serve --collect) or a folder of <label>/NAME.png")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a stopped run from its last.pt (same options; only --device, "
                        "--data-dir and --quiet may change)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels_last memory format: faster convolutions on CPUs "
                        "(default recipe: on)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "status", help="what a run folder holds: finished, resumable or broken",
        description="Tell a finished run, one that can continue (digitos train --resume) and "
                    "a broken one apart. Exit 0 when every folder is finished or resumable.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="run folders, or folders of runs (runs/: each run inside)")
    p.add_argument("--json", action="store_true", help="one JSON object per folder")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "evaluate", help="test accuracy, per-class precision/recall, confusion matrix",
        description="Evaluate a checkpoint (or a bare state_dict with --model and --weights) "
                    "on the test images.")
    p.add_argument("checkpoint", nargs="?",
                   help="a digitos checkpoint (best.pt, last.pt), or a run folder (its best.pt)")
    _add_weights_args(p)
    _add_data_args(p)
    _add_split_args(p, limits=("test",))
    _add_device_arg(p)
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="test-time augmentation (default: as the checkpoint says)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="DIR",
                   help="write confusion.png, misclassified.png, reliability.png (calibration) "
                        "and metrics.json there")
    p.add_argument("--negatives", type=_count, default=1000, metavar="N",
                   help="for a model with a 'not a digit' class: also read N each of held-out "
                        "letters, shapes and clothes, and report how many it refuses and how "
                        "well calibrated that is (0: skip; default: %(default)s)")
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
    _add_weights_args(p)
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="test-time augmentation: read each digit in five one-pixel shifts "
                        "(default: as the checkpoint says; --no-tta is five times less work)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--save-preprocessed", metavar="DIR",
                   help="write the 28x28 image the model saw for each file (NAME.png; for a "
                        "number, NAME-1.png, NAME-2.png... one per digit)")
    p.add_argument("--lines-checkpoint", metavar="PATH",
                   help="the line reader that reads numbers whole (a LineNet checkpoint, "
                        "digitos train --recipe lines; default: the shipped one)")
    p.add_argument("--no-line-reader", action="store_true",
                   help="read numbers digit by digit: touching digits cut apart, no line reader")
    p.add_argument("--unsure-below", type=_share, default=None, metavar="P",
                   help="mark readings whose probability is under P (0 to 1) as unsure "
                        "(default: 0.7)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "serve", help="a web page to draw digits on and watch the prediction",
        description="Serve the drawing page and the prediction API (FastAPI + uvicorn).")
    p.add_argument("--checkpoint", help="a digitos checkpoint (default: the shipped model)")
    _add_weights_args(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind; 0.0.0.0 exposes it to the network "
                        "(default: %(default)s)")
    p.add_argument("--port", type=_port_number, default=8000, help="1-65535 (default: %(default)s)")
    p.add_argument("--workers", type=_positive_int, default=1,
                   help="server processes; each reads images on its share of the CPU cores, "
                        "one reading process per core, each with its own copy of the model. "
                        "One already uses every core (default: %(default)s)")
    p.add_argument("--max-in-flight", type=_positive_int, default=64, metavar="N",
                   help="requests a process reads at once; more get an immediate 503 with "
                        "Retry-After (default: %(default)s)")
    p.add_argument("--request-timeout", type=_positive_float, default=30.0, metavar="S",
                   help="seconds a request may take, upload included; then 503 (default: "
                        "%(default)s)")
    p.add_argument("--collect", action="store_true",
                   help="keep the drawings people mark right or wrong on the page, in --db")
    p.add_argument("--db", metavar="PATH", help=DB_HELP)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "drawings", help="the drawings people corrected: list, show, export, import, delete",
        description="The drawings database that `digitos serve --collect` fills.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=Parser)
    a = actions.add_parser("list", help="drawings per label, and labelled digits")
    a.add_argument("--json", action="store_true", help="one JSON object")
    a = actions.add_parser("show", help="one line per drawing: label, reading, model, digits")
    a.add_argument("ids", nargs="+", type=int, metavar="ID")
    a.add_argument("--json", action="store_true", help="one JSON object per drawing")
    a = actions.add_parser("export", help="the labelled digits as IDX files, or the images as PNGs")
    a.add_argument("folder", metavar="DIR")
    a.add_argument("--format", choices=["idx", "png"], default="idx",
                   help="idx: the 28x28s as the four IDX files (--dataset idx reads them); png: "
                        "each original image as DIR/<label>/<id>.png (default: %(default)s)")
    a = actions.add_parser("import", help="a folder of <label>/NAME.png or <label>_NAME.png")
    a.add_argument("folder", metavar="DIR")
    a.add_argument("--checkpoint", help="the model that reads the images (default: the shipped one)")
    a = actions.add_parser("delete", help="remove drawings and their digits")
    a.add_argument("ids", nargs="+", type=int, metavar="ID")
    # --db before the action (drawings --db F list) or after it (drawings list --db F).
    p.add_argument("--db", metavar="PATH", help=DB_HELP)
    for a in actions.choices.values():
        a.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS, help=DB_HELP)
    p.set_defaults(func=cmd_drawings)

    p = sub.add_parser(
        "finetune", help="adapt a model to your own drawings in seconds",
        description="Fine-tune a checkpoint on your own labelled drawings, with MNIST mixed back "
                    "in so that nothing else is forgotten; writes a run folder (best.pt, "
                    "metrics.csv, ...) that predict and serve take with --checkpoint.")
    p.add_argument("checkpoint", help="the checkpoint to start from (e.g. the shipped "
                                      "src/digitos/weights/digitnet.pt, or a run's best.pt)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--db", metavar="PATH", help="a drawings database")
    source.add_argument("--data", metavar="DIR", help="a folder of <label>/NAME.png images")
    p.add_argument("--out", required=True, metavar="DIR", help="the run folder to write")
    p.add_argument("--overwrite", action="store_true", help="let --out hold a previous run")
    p.add_argument("--data-dir", metavar="DIR", help="MNIST, mixed back in (default: "
                                                     "$DIGITOS_DATA_DIR, else the cache)")
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help=f"(default: {RECIPES['finetune']['epochs']})")
    p.add_argument("--lr", type=_positive_float, default=None,
                   help=f"(default: {RECIPES['finetune']['lr']})")
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_finetune)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except DigitosError as e:
        print(f"digitos: error: {e}", file=sys.stderr)
        return getattr(e, "code", 1)  # a stopped training run: 130 (Ctrl+C) or 143 (SIGTERM)
    except KeyboardInterrupt:
        print("digitos: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `digitos predict ... | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:  # the file system said no: a file where a folder goes, no space, no right
        where = e.filename2 or e.filename  # a rename names where it was going second
        print(f"digitos: error: {f'{where}: ' if where else ''}{e.strerror or e}", file=sys.stderr)
        return 1


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
    from .train import TrainConfig, config_for_resume, fit

    options = dict(
        model=args.model, model_args=_model_args(args.model_arg),
        dataset=args.dataset, data_dir=args.data_dir,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
        scheduler=args.scheduler, weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing, augment=args.augment, distort=args.distort,
        not_a_digit=args.not_a_digit, styled=args.styled, written=args.written,
        font_digits=args.font_digits, flagged_ones=args.flagged_ones,
        crossed_sevens=args.crossed_sevens, lowres=args.lowres,
        negative_share=args.negative_share, ema=args.ema, split=args.split,
        val_size=args.val_size, seed=args.seed, limit_train=args.limit_train,
        limit_val=args.limit_val, limit_test=args.limit_test, device=args.device, out=args.out,
        overwrite=args.overwrite or None, channels_last=args.channels_last,
        compile=args.compile or None, progress=False if args.quiet else None,
        extra=args.extra, init=args.init,
    )
    if args.resume:
        if args.out and Path(args.out) != Path(args.resume):
            raise DigitosError("--resume RUN_DIR continues that folder; leave out --out")
        # Options given again must be the run's; defaults left alone are not "given".
        defaults = vars(build_parser().parse_args(["train"]))  # what was not typed
        given = {k: v for k, v in options.items() if v is not None and v != defaults.get(k)}
        cfg = config_for_resume(args.resume, given | ({"recipe": args.recipe}
                                                      if args.recipe != "default" else {}))
    else:
        cfg = TrainConfig.from_recipe(args.recipe, **options)
    import torch.distributed as dist

    if cfg.model == "LineNet":  # a line reader: its own data and loss (linereader.py)
        from .linereader import fit_lines

        out = fit_lines(cfg, resume=bool(args.resume))
        print(f"run folder: {out}   read numbers with it: digitos predict --lines-checkpoint "
              f"{out / 'best.pt'} IMAGE")
        return 0
    try:
        out = fit(cfg, resume=bool(args.resume))
        if not dist.is_initialized() or dist.get_rank() == 0:
            print(f"run folder: {out}   test it with: digitos evaluate {out / 'best.pt'}"
                  + (f" --data-dir {cfg.data_dir}" if cfg.data_dir else ""))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


def cmd_finetune(args) -> int:
    from .checkpoint import read_checkpoint
    from .evaluate import NOT_A_DIGIT
    from .train import TrainConfig, fit

    ckpt = read_checkpoint(args.checkpoint)
    source = args.db or args.data
    if args.db and not Path(args.db).is_file():
        raise DigitosError(f"--db {args.db}: no drawings database there")
    cfg = TrainConfig.from_recipe(
        "finetune", model=ckpt["model"], model_args=dict(ckpt.get("model_args") or {}),
        data_dir=args.data_dir, epochs=args.epochs, lr=args.lr, seed=args.seed, out=args.out,
        overwrite=args.overwrite or None, progress=False if args.quiet else None,
        tta=bool(ckpt.get("tta")), not_a_digit=NOT_A_DIGIT in ckpt["classes"],
        extra=str(source), init=str(args.checkpoint))
    out = fit(cfg)
    print(f"run folder: {out}   use it: digitos predict --checkpoint {out / 'best.pt'} IMAGE")
    return 0


def cmd_drawings(args) -> int:
    from .store import DrawingStore, export_idx, export_pngs, import_folder

    ids = getattr(args, "ids", [])
    # Reading needs no write access: a database on a read-only disk is listed and exported.
    with DrawingStore(args.db, create=args.action == "import",
                      read_only=args.action in ("list", "show", "export")) as store:
        if args.action == "list":
            counts, digits = store.counts(), store.digit_counts()
            if args.json:
                print(json.dumps({"db": str(store.path), "drawings": counts, "digits": digits}))
            else:
                print(f"{store.path}: {sum(counts.values())} drawings, "
                      f"{sum(digits.values())} labelled digits")
                for label, n in counts.items():
                    print(f"  {label:>12}: {n} drawing{'s' if n != 1 else ''}")
        elif args.action == "show":
            for i in ids:
                d = store.get(i)
                info = {"id": d.id, "created": d.created, "label": d.label, "reading": d.reading,
                        "confidence": round(d.confidence, 4), "model": d.model,
                        "bytes": len(d.image),
                        "digits": [{k: v for k, v in x.items() if k != "pixels"} for x in d.digits]}
                print(json.dumps(info) if args.json else
                      f"#{d.id} {d.created}: labelled {d.label!r}, read {d.reading!r} "
                      f"({100 * d.confidence:.1f}%) by {d.model}; {len(d.image):,} bytes, "
                      f"{len(d.digits)} digit(s)")
        elif args.action == "delete":
            print(f"deleted {store.delete(ids)} drawing(s)")
        elif args.action == "export":
            if args.format == "png":
                print(f"wrote {export_pngs(store, args.folder)} images to {args.folder}")
            else:
                n = export_idx(store, args.folder)
                print(f"wrote {n['train']} training and {n['test']} test digits as IDX files to "
                      f"{args.folder}  (read them with --dataset idx --data-dir {args.folder})")
        else:
            from .predict import load_reader

            stored, problems = import_folder(store, args.folder, load_reader(args.checkpoint))
            for p in problems:
                print(f"digitos: skipped: {p}", file=sys.stderr)
            print(f"imported {stored} drawing(s) into {store.path}")
    return 0


def cmd_status(args) -> int:
    from .train import run_status

    worst = 0
    folders = []
    for folder in args.run_dirs:
        # A folder of runs (runs/): each run inside it, in name order.
        inside = sorted(str(p.parent) for p in Path(folder).glob("*/config.json"))
        if run_status(folder).state == "empty" and inside:
            folders += inside
        else:
            folders.append(folder)
    for folder in folders:
        status = run_status(folder)
        if args.json:
            print(json.dumps({"run": folder, "state": status.state, "epoch": status.epoch,
                              "epochs": status.epochs, "detail": status.detail}))
        else:
            print(status.describe(Path(folder)))
        worst = max(worst, {"finished": 0, "resumable": 0}.get(status.state, 1))
    return worst


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
    path = Path(args.checkpoint)
    if path.is_dir():  # a run folder: its best checkpoint
        if not (path / "best.pt").is_file():
            raise DigitosError(f"{path}: a folder without best.pt (not a finished or running "
                               "run folder); give a checkpoint file")
        path = path / "best.pt"
    return load_checkpoint(path)


def cmd_evaluate(args) -> int:
    import torch

    from .datasets import load_dataset, make_splits
    from .evaluate import NOT_A_DIGIT, evaluate_split, format_report
    from .loader import inference_layout
    from .train import pick_device

    model, meta = _load_for_eval(args)
    device = pick_device(args.device)
    # Only the test files are read. Without --data-dir, the folder the checkpoint was
    # trained from, when it is still there.
    data_dir = args.data_dir or os.environ.get("DIGITOS_DATA_DIR") or _trained_from(meta)
    ds = load_dataset(args.dataset, data_dir, parts=("test",))

    classes = list(meta.get("classes") or ds.classes)
    # A model with a 'not a digit' class reads the dataset's classes and one more.
    if len(classes) != len(ds.classes) and classes != [*ds.classes, NOT_A_DIGIT]:
        raise DigitosError(f"the model reads {len(classes)} classes, {ds.name} has "
                           f"{len(ds.classes)}")
    if args.split == "holdout":  # the test files, whole: the training files are not needed
        test = ds.test.take(slice(0, args.limit_test))
    else:
        test = make_splits(ds, args.split, args.seed, args.val_size, limit_test=args.limit_test).test
    tta = meta.get("tta", False) if args.tta is None else args.tta
    norm = tuple(meta["normalization"])
    model = inference_layout(model.to(device), meta["model"])
    metrics, logits = evaluate_split(model, test, classes, norm, device, tta=tta)
    if NOT_A_DIGIT in classes and ds.name == "mnist" and args.negatives:
        from .datasets import Split
        from .evaluate import rejection_report, split_logits
        from .synth.negatives import held_out

        others = held_out(args.negatives)
        other_logits = split_logits(model, Split(others, torch.zeros(len(others), dtype=torch.long)),
                                    norm, device, tta=tta)
        metrics["not_a_digit"] = rejection_report(torch.softmax(logits, 1),
                                                  torch.softmax(other_logits, 1), classes)
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
        wrong = torch.nonzero(pred != test.labels).flatten()[:100]
        plots.misclassified(test.images[wrong],
                            [classes[i] for i in test.labels[wrong].tolist()],
                            [classes[i] for i in pred[wrong].tolist()],
                            out / "misclassified.png")
        panels = [(f"the class read, {ds.name} test", metrics["calibration"])]
        if "not_a_digit" in metrics:
            panels.append(("'not a digit', held-out non-digits and test digits",
                           metrics["not_a_digit"]["calibration"]))
        plots.reliability(panels, out / "reliability.png")
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if args.json:
        print(json.dumps(metrics))
    else:
        print(f"{meta['model']} on {ds.name} ({'with' if tta else 'no'} test-time augmentation)")
        print(format_report(metrics, classes))
        if args.out:
            print(f"\nwrote confusion.png, misclassified.png, reliability.png and metrics.json to "
                  f"{args.out}")
    return 0


def _trained_from(meta: dict) -> str | None:
    """The data folder recorded in a checkpoint, if it still exists."""
    recorded = (meta.get("config") or {}).get("data_dir")
    return recorded if recorded and Path(recorded).is_dir() else None


def cmd_predict(args) -> int:
    from .predict import run_predict

    return run_predict(args)


def cmd_serve(args) -> int:
    from .web.server import Limits, serve

    limits = Limits(max_in_flight=args.max_in_flight, request_timeout=args.request_timeout)
    serve(args.checkpoint, host=args.host, port=args.port, workers=args.workers, limits=limits,
          model=args.model, weights=args.weights, collect=args.collect, db=args.db)
    return 0
