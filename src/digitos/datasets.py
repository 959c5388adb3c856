"""IDX files -> uint8 tensors: find, verify, download, split.

Every split is held as one uint8 tensor of shape (N, 28, 28) and one int64 tensor of labels;
batches are slices of them (see loader.py), never one Python object per image.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import DigitosError

if TYPE_CHECKING:
    import torch

IDX_TYPE_UBYTE = 0x08
IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (count)

FILE_ROLES = ("train_images", "train_labels", "test_images", "test_labels")
STANDARD_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class DatasetSpec:
    """Where a named IDX dataset lives and what its files must hash to."""

    name: str
    title: str
    classes: tuple[str, ...]
    # md5 of each file's *uncompressed* content: the same whichever mirror or gzip level made it.
    md5: dict[str, str] | None
    mirrors: tuple[str, ...] = ()
    raw_dirs: tuple[str, ...] = ()  # torchvision's layout below a root folder
    default_dirs: tuple[str, ...] = ()  # looked in when no --data-dir has the files


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        title="MNIST",
        classes=tuple(str(d) for d in range(10)),
        md5={  # the published md5s of the original files
            "train_images": "6bbc9ace898e44ae57da46a324031adb",
            "train_labels": "a25bea736e30d166cdddb491f175f624",
            "test_images": "2646ac647ad5339dbf082846283269ea",
            "test_labels": "27ae3e4e09519cfbb04c329615203637",
        },
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        raw_dirs=("MNIST/raw", "raw", "mnist"),
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        title="Fashion-MNIST",
        classes=(
            "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
        ),
        md5={  # uncompressed content of the files Zalando publishes (and Debian packages)
            "train_images": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "train_labels": "9018921c3c673c538a1fc5bad174d6f9",
            "test_images": "8181f5470baa50b63fa0f6fddb340f0a",
            "test_labels": "15d484375f8d13e6eb1aabb0c3f46965",
        },
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        raw_dirs=("FashionMNIST/raw", "raw", "fashion-mnist"),
        default_dirs=("/usr/share/datasets/fashion-mnist",),
    ),
    # Any other set in MNIST's IDX layout (train-images-idx3-ubyte, ...): no known hashes.
    "idx": DatasetSpec(name="idx", title="IDX files", classes=(), md5=None, raw_dirs=("raw",)),
}


@dataclass
class Split:
    """One split: images (N, H, W) uint8 and labels (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: torch.Tensor | slice) -> Split:
        return Split(self.images[index], self.labels[index])


@dataclass
class Dataset:
    """A whole dataset as read from disk: its 'train' and 'test' files."""

    name: str
    classes: tuple[str, ...]
    train: Split
    test: Split
    files: dict[str, Path]


@dataclass
class Splits:
    """What training and evaluation use: train, validation and test."""

    name: str
    classes: tuple[str, ...]
    train: Split
    val: Split
    test: Split


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise DigitosError(f"unknown dataset '{name}'; choose from {', '.join(DATASETS)}")
    return DATASETS[name]


def default_cache_dir() -> Path:
    if os.environ.get("DIGITOS_CACHE_DIR"):
        return Path(os.environ["DIGITOS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "digitos"


MAX_IDX_BYTES = 2**31  # an IDX file's data, at most (MNIST's largest holds 47 MB)


def _read_bytes(path: Path) -> bytes:
    """The file's content, un-gzipped when it is gzip (judged by its first bytes, not its name).

    Never more than the IDX header declares (plus one byte, to tell a file that is too long):
    a small gzip of gigabytes of zeros is refused without being inflated.
    """
    try:
        with path.open("rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            f = gzip.GzipFile(fileobj=raw) if gz else raw
            try:
                head = f.read(4)
                dims_n = head[3] if len(head) == 4 else 0
                head += f.read(4 * dims_n) if 1 <= dims_n <= 4 else b""
                size = math.prod(int.from_bytes(head[4 + 4 * i: 8 + 4 * i], "big")
                                 for i in range(dims_n)) if len(head) == 4 + 4 * dims_n else 0
                if size > MAX_IDX_BYTES:
                    raise DigitosError(f"{path}: its header declares {size:,} bytes of data, "
                                       f"over the limit of {MAX_IDX_BYTES:,}")
                return head + f.read(size + 1)
            except (EOFError, OSError, zlib.error) as e:
                if not gz:
                    raise
                raise DigitosError(f"{path}: broken gzip data ({e}); the file is truncated or "
                                   "corrupt") from None
    except OSError as e:
        raise DigitosError(f"{path}: cannot read: {e.strerror or e}") from None


def _known_file(md5: str) -> str | None:
    for spec in DATASETS.values():
        for role, known in (spec.md5 or {}).items():
            if known == md5:
                return f"{spec.title} {STANDARD_NAMES[role]}"
    return None


def read_idx(path: str | Path, ndim: int | None = None, md5: str | None = None) -> torch.Tensor:
    """Read one IDX file of unsigned bytes into a uint8 tensor, checking every header field."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DigitosError(f"{path}: only {len(data)} bytes, too short to be an IDX file")
    magic = int.from_bytes(data[:4], "big")
    dims_n = data[3]
    if data[0] != 0 or data[1] != 0 or data[2] != IDX_TYPE_UBYTE or not 1 <= dims_n <= 4:
        want = {3: IMAGES_MAGIC, 1: LABELS_MAGIC}.get(ndim or 0)
        hint = f", expected 0x{want:08x}" if want else ""
        raise DigitosError(f"{path}: wrong magic number 0x{magic:08x}{hint}; not an IDX file of bytes")
    if ndim is not None and dims_n != ndim:
        raise DigitosError(f"{path}: has {dims_n} dimensions, expected {ndim}")
    header = 4 + 4 * dims_n
    if len(data) < header:
        raise DigitosError(f"{path}: truncated inside its header")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims_n)]
    expected = header + math.prod(dims)
    if len(data) != expected:  # _read_bytes stops one byte past what the header declares
        shape = "x".join(map(str, dims))
        what = "truncated" if len(data) < expected else "too long"
        raise DigitosError(
            f"{path}: {what}: header says {shape} = {expected - header:,} bytes of data, "
            + (f"file holds {len(data) - header:,}" if what == "truncated" else "file holds more")
        )
    if md5 is not None:
        got = hashlib.md5(data).hexdigest()
        if got != md5:
            other = _known_file(got)
            hint = f" (it is {other})" if other else " (corrupt, or a different file)"
            raise DigitosError(f"{path}: content md5 {got} is not the known {md5}{hint}")
    import torch

    return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).reshape(dims)


def _candidates(folder: Path, spec: DatasetSpec, role: str) -> list[Path]:
    name = STANDARD_NAMES[role]
    dirs = [folder] + [folder / sub for sub in spec.raw_dirs]
    return [d / (name + ext) for d in dirs for ext in (".gz", "")]


def locate_files(spec: DatasetSpec, folder: Path) -> dict[str, Path]:
    """The files of `spec` found in `folder` (plain, gzipped, or torchvision's raw/ layout)."""
    found = {}
    for role in FILE_ROLES:
        for path in _candidates(folder, spec, role):
            if path.is_file():
                found[role] = path
                break
    return found


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    """--data-dir, else $DIGITOS_DATA_DIR; a folder that is not there is said so at once."""
    source = "--data-dir"
    if data_dir is None and os.environ.get("DIGITOS_DATA_DIR"):
        data_dir, source = os.environ["DIGITOS_DATA_DIR"], "DIGITOS_DATA_DIR"
    if data_dir is None:
        return None
    folder = Path(data_dir).expanduser()
    if not folder.exists():
        raise DigitosError(f"{source} {folder}: no such folder")
    if not folder.is_dir():
        raise DigitosError(f"{source} {folder}: not a folder")
    return folder


class DownloadFailed(Exception):
    """Every mirror failed for one file; the message lists why, mirror by mirror."""

    def __init__(self, fname: str, errors: list[str]):
        super().__init__(f"{fname}: " + "; ".join(errors))


def download(spec: DatasetSpec, roles: list[str], dest: Path, progress: bool = True) -> None:
    """Fetch the missing files from the dataset's mirrors into `dest`, verifying each."""
    import pooch  # only needed here; a maintained downloader with retries and progress bars
    import requests

    dest.mkdir(parents=True, exist_ok=True)
    for role in roles:
        fname = STANDARD_NAMES[role] + ".gz"
        errors = []
        for mirror in spec.mirrors:
            try:
                pooch.retrieve(
                    mirror + fname,
                    known_hash=None,  # mirrors gzip differently: the content md5 is checked below
                    fname=fname,
                    path=dest,
                    downloader=pooch.HTTPDownloader(progressbar=progress, timeout=30),
                )
            except (requests.RequestException, OSError, ValueError) as e:
                errors.append(f"{mirror}: {type(e).__name__}")
                continue
            try:
                read_idx(dest / fname, md5=spec.md5[role] if spec.md5 else None)
                break
            except DigitosError as e:
                (dest / fname).unlink(missing_ok=True)
                errors.append(str(e))
        else:
            raise DownloadFailed(fname, errors)


def load_dataset(
    name: str = "mnist",
    data_dir: str | Path | None = None,
    download_missing: bool = True,
    progress: bool = True,
    parts: tuple[str, ...] = ("train", "test"),
) -> Dataset:
    """Read a dataset's four IDX files, verified, from data_dir, known folders or the cache.

    Missing files are downloaded into the cache folder when the network allows it. With
    `parts=("test",)` only the test files are needed and read (the train split is empty).
    """
    import torch

    roles = tuple(r for r in FILE_ROLES if r.split("_")[0] in parts)
    spec = get_spec(name)
    folder = resolve_data_dir(data_dir)
    if spec.name == "idx" and folder is None:
        raise DigitosError("dataset 'idx' reads your own IDX files: give --data-dir FOLDER")
    cache = default_cache_dir() / spec.name
    places = ([folder] if folder else []) + [Path(d) for d in spec.default_dirs] + [cache]
    files: dict[str, Path] = {}
    for place in places:
        for role, path in locate_files(spec, place).items():
            files.setdefault(role, path)
        if all(r in files for r in roles):
            break
    missing = [r for r in roles if r not in files]
    if missing and download_missing and spec.mirrors and not os.environ.get("DIGITOS_OFFLINE"):
        try:
            download(spec, missing, cache, progress=progress)
        except DownloadFailed as e:
            raise DigitosError(_missing_message(spec, missing, folder, cache, str(e))) from None
        files.update({r: cache / (STANDARD_NAMES[r] + ".gz") for r in missing})
        missing = []
    if missing:
        raise DigitosError(_missing_message(spec, missing, folder, cache, None))

    md5 = spec.md5 or {}
    arrays = {
        role: read_idx(files[role], ndim=3 if role.endswith("images") else 1, md5=md5.get(role))
        for role in roles
    }
    first = roles[1]  # the first labels file read: train's, or test's when only test is read
    classes = spec.classes or _classes_from_labels(arrays[first], files[first])
    files = {r: files[r] for r in roles}
    shape = tuple(arrays[roles[0]].shape[1:])  # the images' size, for a part left unread
    splits = {part: Split(torch.zeros(0, *shape, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
              for part in ("train", "test")}
    for part in parts:
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if len(images) != len(labels):
            raise DigitosError(
                f"{files[part + '_images']}: {len(images):,} images but "
                f"{files[part + '_labels']} has {len(labels):,} labels"
            )
        if len(labels) and int(labels.max()) >= len(classes):
            raise DigitosError(
                f"{files[part + '_labels']}: label {int(labels.max())} is out of range "
                f"for {len(classes)} classes"
            )
        splits[part] = Split(images, labels.long())
    return Dataset(spec.name, tuple(classes), splits["train"], splits["test"], files)


def _classes_from_labels(labels: torch.Tensor, path: Path) -> tuple[str, ...]:
    """Your own IDX files hold digits: labels 0-9, and 10 for "not a digit" (what
    `digitos drawings export` writes). Any other label is a mistake, said so."""
    import torch

    bad = torch.nonzero(labels > 10).flatten()
    if len(bad):
        where = int(bad[0])
        raise DigitosError(f"{path}: label {int(labels[where])} (at index {where:,}) is out of "
                           "range: labels are the digits 0-9, and 10 for 'not a digit'")
    digits = tuple(str(i) for i in range(10))
    return (*digits, "not a digit") if len(labels) and int(labels.max()) == 10 else digits


def _missing_message(spec, missing, folder, cache, download_error) -> str:
    names = ", ".join(STANDARD_NAMES[r] + "[.gz]" for r in missing)
    where = f"{folder} (or {cache})" if folder else str(cache)
    msg = f"{spec.title}: missing {names}. Put them (gzipped or not) in {where}, or pass --data-dir"
    if download_error:
        msg += f". Download failed: {download_error}"
    elif spec.mirrors:
        msg += f"; with network access they are downloaded from {spec.mirrors[0]}"
    return msg


def make_splits(
    ds: Dataset,
    split: str = "holdout",
    seed: int = 0,
    val_size: int = 5000,
    limit_train: int | None = None,
    limit_val: int | None = None,
    limit_test: int | None = None,
) -> Splits:
    """Train / validation / test.

    holdout (default): validation is `val_size` images held out of the training files (seeded);
    the test files stay whole, touched only by evaluation.
    seed: the class notebook's split: all training files to train; the test files split 90/10
    into validation and test.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    if split == "holdout":
        if not 0 < val_size < len(ds.train):
            raise DigitosError(f"--val-size must be between 1 and {len(ds.train) - 1}")
        perm = torch.randperm(len(ds.train), generator=g)
        val = ds.train.take(perm[:val_size].sort().values)
        train = ds.train.take(perm[val_size:].sort().values)
        test = ds.test
    elif split == "seed":
        perm = torch.randperm(len(ds.test), generator=g)
        n_val = int(0.9 * len(ds.test))
        train, val, test = ds.train, ds.test.take(perm[:n_val]), ds.test.take(perm[n_val:])
    else:
        raise DigitosError(f"unknown split '{split}'; choose holdout or seed")
    for flag, n in (("--limit-train", limit_train), ("--limit-val", limit_val),
                    ("--limit-test", limit_test)):
        if n is not None and n < 1:
            raise DigitosError(f"{flag} must be at least 1")
    train = train.take(slice(0, limit_train))
    val = val.take(slice(0, limit_val))
    test = test.take(slice(0, limit_test))
    return Splits(ds.name, ds.classes, train, val, test)


def describe(ds: Dataset) -> dict:
    """Counts per class, shapes and pixel statistics of each file pair."""
    import torch

    out = {"dataset": ds.name, "classes": list(ds.classes), "splits": {}}
    for part, s in (("train", ds.train), ("test", ds.test)):
        pixels = s.images.float().div_(255)
        out["splits"][part] = {
            "images": list(s.images.shape),
            "counts": torch.bincount(s.labels, minlength=len(ds.classes)).tolist(),
            "pixel_mean": round(pixels.mean().item(), 4),
            "pixel_std": round(pixels.std().item(), 4),
        }
    return out


def write_idx(path: str | Path, array) -> None:
    """Write unsigned bytes (a numpy array or tensor, 1 to 4 dimensions) as one IDX file."""
    import numpy as np

    data = np.ascontiguousarray(np.asarray(array), dtype=np.uint8)
    header = bytes([0, 0, IDX_TYPE_UBYTE, data.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in data.shape)
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    tmp.write_bytes(header + data.tobytes())
    tmp.replace(path)
