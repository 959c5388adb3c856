import gzip
import http.server
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import FASHION_DIR

from digitos import datasets
from digitos.datasets import (
    DATASETS,
    STANDARD_NAMES,
    DigitosError,
    load_dataset,
    make_splits,
    read_idx,
)


def idx_bytes(array: torch.Tensor) -> bytes:
    header = bytes([0, 0, 0x08, array.dim()])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.to(torch.uint8).numpy().tobytes()


def write_set(folder: Path, train_images, train_labels, test_images, test_labels, gz=False):
    folder.mkdir(parents=True, exist_ok=True)
    parts = dict(train_images=train_images, train_labels=train_labels,
                 test_images=test_images, test_labels=test_labels)
    for role, array in parts.items():
        data = idx_bytes(array)
        name = STANDARD_NAMES[role] + (".gz" if gz else "")
        (folder / name).write_bytes(gzip.compress(data) if gz else data)


def test_reads_the_real_mnist_files(mnist):
    assert mnist.train.images.shape == (60000, 28, 28)
    assert mnist.train.images.dtype == torch.uint8
    assert mnist.test.images.shape == (10000, 28, 28)
    # The first training labels of MNIST, as everyone who has printed them knows them.
    assert mnist.train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.test.labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert torch.bincount(mnist.test.labels).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_uncompressed_and_torchvision_layout_read_the_same(mnist_dir, mnist, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in mnist_dir.glob("*.gz"):
        (raw / gz.name[:-3]).write_bytes(gzip.decompress(gz.read_bytes()))
    for folder in (tmp_path, raw):  # the root torchvision is given, and the raw folder itself
        ds = load_dataset("mnist", folder, download_missing=False)
        assert torch.equal(ds.train.images, mnist.train.images)
        assert torch.equal(ds.test.labels, mnist.test.labels)
        assert ds.files["train_images"].name == "train-images-idx3-ubyte"


def test_truncated_file_is_named(mnist_dir, tmp_path):
    data = gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    bad = tmp_path / "t10k-labels-idx1-ubyte"
    bad.write_bytes(data[:-10])
    with pytest.raises(DigitosError, match=r"t10k-labels-idx1-ubyte: truncated.*10,000 bytes"):
        read_idx(bad, ndim=1)
    bad_gz = tmp_path / "cut.gz"
    bad_gz.write_bytes((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()[:100])
    with pytest.raises(DigitosError, match="cut.gz: broken gzip data"):
        read_idx(bad_gz)


def test_wrong_magic_is_refused(tmp_path):
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(DigitosError, match="wrong magic number 0x89504e47, expected 0x00000803"):
        read_idx(bad, ndim=3)
    labels = tmp_path / "labels"
    labels.write_bytes(idx_bytes(torch.zeros(4, 2, 2)))
    with pytest.raises(DigitosError, match="has 3 dimensions, expected 1"):
        read_idx(labels, ndim=1)


def test_changed_content_fails_the_known_hash(mnist_dir, tmp_path):
    for gz in mnist_dir.glob("*.gz"):
        shutil.copy(gz, tmp_path / gz.name)
    labels = bytearray(gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    labels[100] = (labels[100] + 1) % 10  # one label changed: still a valid IDX file
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(labels)))
    with pytest.raises(DigitosError, match="t10k-labels-idx1-ubyte.gz: content md5 .* not the "
                                           "known 27ae3e4e09519cfbb04c329615203637"):
        load_dataset("mnist", tmp_path, download_missing=False)


def test_missing_files_say_what_to_put_where(mnist_dir, tmp_path):
    shutil.copy(mnist_dir / "train-images-idx3-ubyte.gz", tmp_path)
    with pytest.raises(DigitosError) as err:
        load_dataset("mnist", tmp_path)
    msg = str(err.value)
    assert "train-labels-idx1-ubyte" in msg and "t10k-images-idx3-ubyte" in msg
    assert "train-images" not in msg.split("missing")[1]
    assert str(tmp_path) in msg


def test_own_idx_set_with_label_out_of_range(tmp_path):
    imgs = torch.randint(0, 256, (20, 8, 8))
    write_set(tmp_path / "ok", imgs, torch.arange(20) % 3, imgs[:5], torch.arange(5) % 3, gz=True)
    ds = load_dataset("idx", tmp_path / "ok")
    assert ds.classes == tuple("0123456789") and ds.train.images.shape == (20, 8, 8)
    write_set(tmp_path / "bad", imgs, torch.arange(20) % 3, imgs[:5], torch.full((5,), 7))
    spec = replace(DATASETS["idx"], classes=("a", "b", "c"))
    DATASETS["tiny"] = spec
    try:
        with pytest.raises(DigitosError, match="label 7 is out of range for 3 classes"):
            load_dataset("tiny", tmp_path / "bad")
    finally:
        del DATASETS["tiny"]
    write_set(tmp_path / "mismatch", imgs, torch.arange(19) % 3, imgs[:5], torch.arange(5) % 3)
    with pytest.raises(DigitosError, match="20 images but .* has 19 labels"):
        load_dataset("idx", tmp_path / "mismatch")


def test_holdout_split_is_seeded_and_disjoint(mnist):
    a = make_splits(mnist, "holdout", seed=1)
    b = make_splits(mnist, "holdout", seed=1)
    c = make_splits(mnist, "holdout", seed=2)
    assert (len(a.train), len(a.val), len(a.test)) == (55000, 5000, 10000)
    assert torch.equal(a.val.labels, b.val.labels) and torch.equal(a.val.images, b.val.images)
    assert not torch.equal(a.val.images, c.val.images)
    # No validation image is also a training image (compare exact bytes of every image).
    train_keys = {bytes(x) for x in a.train.images.reshape(len(a.train), -1).numpy()}
    shared = sum(bytes(x) in train_keys for x in a.val.images.reshape(5000, -1).numpy())
    assert shared <= 5  # MNIST itself holds a handful of duplicate images
    assert torch.equal(a.test.images, mnist.test.images)


def test_seed_split_reproduces_the_class(mnist):
    s = make_splits(mnist, "seed", seed=0, limit_train=5000, limit_val=1000, limit_test=500)
    assert (len(s.train), len(s.val), len(s.test)) == (5000, 1000, 500)
    full = make_splits(mnist, "seed", seed=0)
    assert (len(full.train), len(full.val), len(full.test)) == (60000, 9000, 1000)
    assert torch.equal(full.train.images, mnist.train.images)
    together = torch.cat([full.val.labels, full.test.labels]).sort().values
    assert torch.equal(together, mnist.test.labels.sort().values)


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_found_in_debians_folder(monkeypatch):
    monkeypatch.delenv("DIGITOS_DATA_DIR", raising=False)
    ds = load_dataset("fashion-mnist", None, download_missing=False)
    assert ds.classes[9] == "Ankle boot"
    assert ds.train.images.shape == (60000, 28, 28) and len(ds.test) == 10000
    assert ds.files["test_images"].parent == FASHION_DIR


def test_another_datasets_file_is_recognised(mnist_dir, tmp_path):
    for gz in mnist_dir.glob("*.gz"):
        shutil.copy(gz, tmp_path / gz.name)
    with pytest.raises(DigitosError, match=r"\(it is MNIST train-images-idx3-ubyte\)"):
        load_dataset("fashion-mnist", tmp_path, download_missing=False)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_from_a_mirror_with_hash_checks(mnist_dir, tmp_path, monkeypatch):
    """A real HTTP download (a loopback mirror), then the content md5 is checked."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for gz in mnist_dir.glob("*.gz"):
        shutil.copy(gz, mirror / gz.name)
    # A corrupt copy on the first mirror must be refused and fetched from the second.
    (tmp_path / "bad").mkdir()
    shutil.copy(mirror / "t10k-labels-idx1-ubyte.gz", tmp_path / "bad" / "x")
    for name in STANDARD_NAMES.values():
        (tmp_path / "bad" / (name + ".gz")).write_bytes(gzip.compress(b"\x00\x00\x08\x01" + bytes(8)))

    def handler(directory):
        return lambda *a, **kw: _QuietHandler(*a, directory=str(directory), **kw)

    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler(d))
               for d in (tmp_path / "bad", mirror)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    try:
        urls = tuple(f"http://127.0.0.1:{s.server_address[1]}/" for s in servers)
        monkeypatch.setitem(DATASETS, "mnist", replace(DATASETS["mnist"], mirrors=urls))
        monkeypatch.delenv("DIGITOS_OFFLINE")
        (tmp_path / "empty").mkdir()
        ds = load_dataset("mnist", tmp_path / "empty", progress=False)
    finally:
        for s in servers:
            s.shutdown()
    cache = datasets.default_cache_dir() / "mnist"
    assert ds.files["train_labels"] == cache / "train-labels-idx1-ubyte.gz"
    assert len(ds.train) == 60000 and ds.test.labels[:3].tolist() == [7, 2, 1]


def test_unreachable_network_says_which_files_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "mnist",
                        replace(DATASETS["mnist"], mirrors=("http://127.0.0.1:9/",)))
    monkeypatch.delenv("DIGITOS_OFFLINE")
    with pytest.raises(DigitosError) as err:
        load_dataset("mnist", tmp_path, progress=False)
    msg = str(err.value)
    assert "missing train-images-idx3-ubyte[.gz]" in msg and "Download failed" in msg
    assert str(tmp_path) in msg
