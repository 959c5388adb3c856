"""Drawings people corrected, kept in an SQLite file: the data for learning their handwriting.

One file, no server (Python's own sqlite3): WAL mode so that readers never block the writer
and several servers can share it, a schema version in `PRAGMA user_version` migrated on open,
and every write in one transaction, so a killed server loses at most the answer in flight.

Each drawing keeps the original image's bytes, the label a person gave ("7", "2026" or
"not a digit"), what the model read and how surely, which model, and when; each of its
digits keeps the 28x28 the model saw and its box. The 28x28s are what fine-tuning learns from.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DigitosError

NOT_A_DIGIT = "not a digit"  # the same name as evaluate.NOT_A_DIGIT (no torch import here)
APPLICATION_ID = 0x64696769  # "digi": tells our database from any other SQLite file
SCHEMA_VERSION = 1
MIGRATIONS = {  # version -> the SQL that brings the previous version to it
    1: """
        CREATE TABLE drawings (
            id INTEGER PRIMARY KEY,
            created TEXT NOT NULL,           -- UTC, ISO 8601
            image BLOB NOT NULL,             -- the file's bytes, as sent
            label TEXT NOT NULL,             -- what the person said it is: "7", "2026", "not a digit"
            reading TEXT NOT NULL,           -- what the model read: a number, or "not a digit"
            confidence REAL NOT NULL,
            model TEXT NOT NULL              -- which model read it
        );
        CREATE TABLE digits (
            drawing INTEGER NOT NULL REFERENCES drawings(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,       -- 0, 1, ... left to right
            pixels BLOB NOT NULL,            -- 784 bytes: the 28x28 the model saw
            box TEXT NOT NULL,               -- [left, top, right, bottom] in the image's pixels
            label TEXT,                      -- this digit's label, or NULL when the reading found
                                             -- another number of digits than the label has
            reading TEXT NOT NULL,
            confidence REAL NOT NULL,
            PRIMARY KEY (drawing, position)
        );
        CREATE INDEX digits_label ON digits(label);
    """,
}
LABELS = [str(d) for d in range(10)] + [NOT_A_DIGIT]


def default_db_path() -> Path:
    """~/.local/share/digitos/drawings.sqlite3 (or under $XDG_DATA_HOME)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "digitos" / "drawings.sqlite3"


def check_label(label: str) -> str:
    """A label as people give it: digits ("7", "2026") or "not a digit" (said so: a missing
    label, "none" or "x" is no label, and is refused)."""
    if not isinstance(label, str):
        raise DigitosError(f"label {label!r}: give the digits as a string (\"7\", \"2026\") "
                           "or 'not a digit'")
    label = label.strip()
    if label.lower() in (NOT_A_DIGIT, "not-a-digit"):
        return NOT_A_DIGIT
    # Lines of digits, as reading gives an image of several lines: "12 2026".
    label = " ".join(label.split())
    digits = label.replace(" ", "")
    if not digits.isdigit() or not digits.isascii() or len(label) > 40:
        raise DigitosError(f"label {label!r}: give the digits (7, 2026; lines apart by a "
                           "space) or 'not a digit'")
    return label


def _cannot_write(e: sqlite3.OperationalError) -> bool:
    text = str(e).lower()
    return "readonly" in text or "read-only" in text or "unable to open" in text


class StoreError(DigitosError):
    """The database cannot be written: read-only, its disk full, locked too long."""


@dataclass
class Drawing:
    id: int
    created: str
    image: bytes
    label: str
    reading: str
    confidence: float
    model: str
    digits: list[dict]  # position, pixels (uint8 28x28), box, label, reading, confidence


class DrawingStore:
    """The drawings database at `path` (created when missing)."""

    def __init__(self, path: str | Path | None = None, create: bool = True,
                 read_only: bool = False):
        self.path = Path(path) if path else default_db_path()
        if not self.path.exists() and (read_only or not create):
            raise DigitosError(f"{self.path}: no drawings database there (digitos serve "
                               "--collect keeps the drawings people correct on the page; "
                               "digitos drawings import DIR stores a folder of them)")
        if self.path.exists() and not self.path.is_file():
            raise DigitosError(f"{self.path}: not a file")
        self.read_only, self.db = False, None
        if read_only:
            self._open_read_only()
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                      check_same_thread=False)
            self._open()
        except sqlite3.OperationalError as e:
            if not self.path.is_file() or not _cannot_write(e):
                raise DigitosError(f"{self.path}: cannot open it ({e})") from None
            self._open_read_only()
        except sqlite3.DatabaseError as e:
            raise DigitosError(f"{self.path}: not a digitos drawings database, or damaged "
                               f"({str(e).splitlines()[0]})") from None
        except OSError as e:
            raise DigitosError(f"{self.path}: cannot open: {e.strerror or e}") from None

    def _open_read_only(self) -> None:
        """A database in a folder or file we may not write: read as it is (list, show,
        export); every write is refused with StoreError."""
        if self.db is not None:
            with contextlib.suppress(Exception):
                self.db.close()
        immutable = "&immutable=1" if not os.access(self.path.parent, os.W_OK) else ""
        try:
            self.db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro{immutable}",
                                      uri=True, timeout=30, isolation_level=None,
                                      check_same_thread=False)
            self.read_only = True
            self._open()
        except sqlite3.DatabaseError as e:
            raise DigitosError(f"{self.path}: not a digitos drawings database, or damaged "
                               f"({str(e).splitlines()[0]})") from None

    def _open(self) -> None:
        db = self.db
        db.execute("PRAGMA busy_timeout = 30000")
        app = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app != APPLICATION_ID and (tables or version):
            raise DigitosError(f"{self.path}: an SQLite database, but not digitos' drawings")
        if version > SCHEMA_VERSION:
            raise DigitosError(f"{self.path}: written by a newer digitos (schema {version}); "
                               "upgrade digitos to read it")
        if self.read_only:
            if version < SCHEMA_VERSION:
                raise DigitosError(f"{self.path}: read-only, and too old to read (schema "
                                   f"{version}); open it once where it can be written")
            self._check()
            return
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable at each checkpoint
        if version < SCHEMA_VERSION:
            with self._transaction():  # one process migrates; the others wait, then see it
                version = db.execute("PRAGMA user_version").fetchone()[0]
                for v in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS[v].split(";"):
                        if statement.strip():
                            db.execute(statement)
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._check()

    def _check(self) -> None:
        problem = self.db.execute("PRAGMA quick_check").fetchone()[0]
        if problem != "ok":
            raise DigitosError(f"{self.path}: the database is damaged "
                               f"({problem.splitlines()[0]}); export what reads with "
                               "drawings export, or start a new one")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> DrawingStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- writing ---

    def add(self, image: bytes, label: str, reading, model: str) -> int:
        """Store one drawing with its label and the model's reading (predict.ImageReading).

        The digits' 28x28s get the label's characters when the reading found as many digits
        as the label has; "not a digit" labels the whole drawing's 28x28.
        """
        from .predict import not_a_digit_confidence  # torch is loaded: a reading was made

        label = check_label(label)
        if reading.not_a_digit or not reading.digits:
            read_as, confidence = NOT_A_DIGIT, not_a_digit_confidence(reading)
        else:
            read_as = reading.number
            confidence = min(d.reading.confidence for d in reading.digits)
        if label == NOT_A_DIGIT:
            seen, per_digit = [reading.whole], [NOT_A_DIGIT]
        else:
            seen = reading.digits or [reading.whole]
            # Each digit its character of the label, when the reading found as many.
            digits = label.replace(" ", "")
            per_digit = list(digits) if len(digits) == len(seen) else [None] * len(seen)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self._transaction() as db:
            cur = db.execute("INSERT INTO drawings (created, image, label, reading, confidence, model)"
                             " VALUES (?, ?, ?, ?, ?, ?)",
                             (now, bytes(image), label, read_as, float(confidence), model))
            drawing = cur.lastrowid
            for i, (d, lab) in enumerate(zip(seen, per_digit, strict=True)):
                db.execute("INSERT INTO digits VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (drawing, i, d.pixels.numpy().astype(np.uint8).tobytes(),
                            json.dumps(list(d.box)), lab, d.reading.digit, d.reading.confidence))
        return drawing

    def delete(self, ids: list[int]) -> int:
        with self._transaction() as db:
            n = 0
            for i in ids:
                n += db.execute("DELETE FROM drawings WHERE id = ?", (int(i),)).rowcount
        return n

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (no upgrade from a read lock to deadlock on):
        committed when the block ends, rolled back when it raises."""
        if self.read_only:
            raise StoreError(f"{self.path}: read-only (this user may not write it or its "
                             "folder); nothing was changed")
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise StoreError(f"{self.path}: cannot write to it ({e})") from None
        try:
            yield self.db
        except sqlite3.OperationalError as e:
            self.db.execute("ROLLBACK")
            raise StoreError(f"{self.path}: cannot write to it ({e})") from None
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        try:
            self.db.execute("COMMIT")
        except sqlite3.OperationalError as e:
            raise StoreError(f"{self.path}: cannot write to it ({e})") from None

    # --- reading ---

    def counts(self) -> dict[str, int]:
        """Drawings per label."""
        rows = self.db.execute("SELECT label, count(*) FROM drawings GROUP BY label ORDER BY label")
        return dict(rows.fetchall())

    def digit_counts(self) -> dict[str, int]:
        """Labelled 28x28s per class: what fine-tuning can learn from."""
        rows = self.db.execute("SELECT label, count(*) FROM digits WHERE label IS NOT NULL "
                               "GROUP BY label ORDER BY label")
        return dict(rows.fetchall())

    def ids(self) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT id FROM drawings ORDER BY id")]

    def get(self, drawing_id: int) -> Drawing:
        row = self.db.execute("SELECT id, created, image, label, reading, confidence, model "
                              "FROM drawings WHERE id = ?", (int(drawing_id),)).fetchone()
        if row is None:
            raise DigitosError(f"{self.path}: no drawing {drawing_id}")
        digits = [{"position": p, "pixels": np.frombuffer(px, np.uint8).reshape(28, 28),
                   "box": json.loads(box), "label": lab, "reading": rd, "confidence": c}
                  for p, px, box, lab, rd, c in self.db.execute(
                      "SELECT position, pixels, box, label, reading, confidence FROM digits "
                      "WHERE drawing = ? ORDER BY position", (int(drawing_id),))]
        return Drawing(*row, digits=digits)

    def __iter__(self) -> Iterator[Drawing]:
        for i in self.ids():
            yield self.get(i)

    def samples(self) -> tuple[np.ndarray, list[str]]:
        """Every labelled 28x28 (uint8 (N, 28, 28)) and its label, oldest first."""
        rows = self.db.execute("SELECT pixels, label FROM digits WHERE label IS NOT NULL "
                               "ORDER BY drawing, position").fetchall()
        if not rows:
            return np.zeros((0, 28, 28), np.uint8), []
        return (np.stack([np.frombuffer(p, np.uint8).reshape(28, 28) for p, _ in rows]),
                [lab for _, lab in rows])


# --- labelled images on disk: export, import, and what fine-tuning reads -----------------

def labelled_files(folder: str | Path) -> list[tuple[Path, str]]:
    """(path, label) for `<label>/*.png` and `<label>_*.png` (any image suffix) under folder."""
    from .preprocess import IMAGE_SUFFIXES

    folder = Path(folder)
    if not folder.is_dir():
        raise DigitosError(f"{folder}: no such folder")
    out = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.parent != folder:
            label = path.parent.name
        elif "_" in path.stem:
            label = path.stem.split("_", 1)[0]
        else:
            continue  # no label to be had
        try:
            out.append((path, check_label(label.replace("-", " "))))
        except DigitosError:
            continue  # a folder that is not a label
    if not out:
        raise DigitosError(f"{folder}: no labelled images (<label>/NAME.png or <label>_NAME.png)")
    return out


def digits_of(image: bytes, label: str, name: str = "image") -> list[tuple[np.ndarray, str]]:
    """The 28x28s of a labelled image, as reading makes them, without a model: one per group
    of ink when the label has that many digits, the whole for "not a digit" (else none)."""
    from .ink import find_groups, find_ink, group_ink, join
    from .preprocess import digit_to_mnist, open_image

    found = find_ink(open_image(image, name), name)
    groups = find_groups(found, name)
    if label == NOT_A_DIGIT:
        return [(digit_to_mnist(group_ink(found, join(groups))).numpy(), label)]
    if len(groups) != len(label):
        return []
    return [(digit_to_mnist(group_ink(found, g)).numpy(), c) for g, c in zip(groups, label, strict=True)]


def folder_samples(folder: str | Path) -> tuple[np.ndarray, list[str]]:
    """Every usable labelled 28x28 in a folder laid out as `import` takes it."""
    from .preprocess import ImageError

    pixels, labels = [], []
    for path, label in labelled_files(folder):
        try:
            for p, lab in digits_of(path.read_bytes(), label, str(path)):
                pixels.append(p)
                labels.append(lab)
        except ImageError:
            continue
    if not pixels:
        return np.zeros((0, 28, 28), np.uint8), []
    return np.stack(pixels), labels


def samples(source: str | Path) -> tuple[np.ndarray, list[str]]:
    """Labelled 28x28s from a drawings database file or a folder of labelled images."""
    source = Path(source)
    if source.is_dir():
        return folder_samples(source)
    with DrawingStore(source, create=False) as store:
        return store.samples()


def _refuse_a_full_folder(folder: Path) -> None:
    """Exports go to a new or empty folder: mixed into another export's files, or over them,
    they would no longer say what the database holds."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise DigitosError(f"{folder}: not empty; export into a new or empty folder")


def export_pngs(store: DrawingStore, folder: str | Path) -> int:
    """Each drawing's original bytes as `<label>/<id>.<format>` (what `import` reads back)."""
    from PIL import Image

    folder = Path(folder)
    _refuse_a_full_folder(folder)
    n = 0
    for d in store:
        try:
            with Image.open(io.BytesIO(d.image)) as img:
                suffix = "." + (img.format or "png").lower().replace("jpeg", "jpg")
        except Exception:
            suffix = ".png"
        target = folder / d.label.replace(" ", "-") / f"{d.id}{suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(d.image)
        n += 1
    return n


def export_idx(store: DrawingStore, folder: str | Path, test_share: float = 0.2,
               seed: int = 0) -> dict[str, int]:
    """The labelled 28x28s as MNIST's four IDX files (label 10 = not a digit), a seeded share
    of them as the test files: `--dataset idx --data-dir FOLDER` reads them."""
    from .datasets import write_idx

    pixels, labels = store.samples()
    if not len(labels):
        raise DigitosError(f"{store.path}: no labelled digits to export")
    codes = np.array([LABELS.index(lab) for lab in labels], np.uint8)
    order = np.random.default_rng(seed).permutation(len(codes))
    n_test = int(round(test_share * len(codes))) if len(codes) > 1 else 0
    test, train = order[:n_test], order[n_test:]
    folder = Path(folder)
    _refuse_a_full_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / "train-images-idx3-ubyte", pixels[train])
    write_idx(folder / "train-labels-idx1-ubyte", codes[train])
    write_idx(folder / "t10k-images-idx3-ubyte", pixels[test])
    write_idx(folder / "t10k-labels-idx1-ubyte", codes[test])
    return {"train": len(train), "test": len(test)}


def import_folder(store: DrawingStore, folder: str | Path, reader) -> tuple[int, list[str]]:
    """Store every labelled image of a folder, read by `reader`; returns (stored, problems)."""
    from .predict import read_image
    from .preprocess import ImageError

    stored, problems = 0, []
    for path, label in labelled_files(folder):
        data = path.read_bytes()
        try:
            result = read_image(reader, data, str(path))
        except ImageError as e:
            problems.append(str(e))
            continue
        store.add(data, label, result, reader.meta.get("model", "?"))
        stored += 1
    return stored, problems
