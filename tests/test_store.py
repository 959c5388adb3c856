"""Your own handwriting: the drawings database, its commands, the page's corrections, and
fine-tuning on a few drawings."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import urllib.request

import pytest
from conftest import run_cli, start_serve
from PIL import Image
from test_preprocess import paper_drawing, png

from digitos.errors import DigitosError
from digitos.predict import read_image
from digitos.store import DrawingStore, export_idx, export_pngs, import_folder, samples


def drawing(mnist, i: int) -> bytes:
    return png(paper_drawing(mnist.test.images[i], 180))


def test_store_export_import_round_trip_is_lossless(tmp_path, mnist, reader):
    with DrawingStore(tmp_path / "a.sqlite3") as store:
        kept = {}
        for i in range(6):
            data = drawing(mnist, i)
            label = str(int(mnist.test.labels[i]))
            kept[store.add(data, label, read_image(reader, data), "DigitNetL")] = (data, label)
        store.add(drawing(mnist, 7), "not a digit", read_image(reader, drawing(mnist, 7)), "m")
        assert sum(store.counts().values()) == 7
        assert export_pngs(store, tmp_path / "png") == 7
        n = export_idx(store, tmp_path / "idx")
        assert n["train"] + n["test"] == 7
    with DrawingStore(tmp_path / "b.sqlite3") as copy:
        stored, problems = import_folder(copy, tmp_path / "png", reader)
        assert stored == 7 and not problems
        again = {(d.image, d.label) for d in copy}
    assert again == {*kept.values(), (drawing(mnist, 7), "not a digit")}
    # The IDX export is a dataset every command reads (label 10 = not a digit).
    from digitos.datasets import load_dataset

    ds = load_dataset("idx", tmp_path / "idx", download_missing=False)
    assert len(ds.train) + len(ds.test) == 7


def test_a_corrupted_or_foreign_database_is_one_clear_error(tmp_path):
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(DigitosError, match="not a digitos drawings database"):
        DrawingStore(junk)
    foreign = tmp_path / "foreign.sqlite3"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE customers (name TEXT)")
    with pytest.raises(DigitosError, match="not digitos' drawings"):
        DrawingStore(foreign)
    r = run_cli("drawings", "list", "--db", junk)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr
    r = run_cli("drawings", "list", "--db", tmp_path / "missing.sqlite3")
    assert r.returncode == 1 and "no drawings database" in r.stderr


def start_server(db):
    """`digitos serve --collect --db DB`, answering."""
    proc, url = start_serve("--collect", "--db", db)
    with urllib.request.urlopen(url + "/healthz", timeout=5) as r:
        assert json.loads(r.read())["collect"] is True
    return proc, url


def post_drawing(url, data: bytes, label: str) -> dict:
    body = json.dumps({"image": "data:image/png;base64," + base64.b64encode(data).decode(),
                       "label": label}).encode()
    req = urllib.request.Request(url + "/api/drawings", body,
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 201
        return json.loads(r.read())


def test_two_servers_writing_one_database_at_once_lose_nothing(tmp_path, mnist):
    db = tmp_path / "shared.sqlite3"
    servers = [start_server(db) for _ in range(2)]
    try:
        images = [drawing(mnist, i) for i in range(10)]
        ids, errors = [], []

        def client(url):
            try:
                for i, data in enumerate(images):
                    ids.append(post_drawing(url, data, str(int(mnist.test.labels[i])))["id"])
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=client, args=(url,)) for _, url in servers
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and len(set(ids)) == 40
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(timeout=20)
    with DrawingStore(db) as store:
        assert sum(store.counts().values()) == 40 and sorted(store.ids()) == sorted(ids)


def test_a_server_without_collect_keeps_nothing(reader):
    from fastapi.testclient import TestClient

    from digitos.web.server import create_app

    client = TestClient(create_app(reader=reader))
    assert client.get("/healthz").json()["collect"] is False
    r = client.post("/api/drawings", json={"image": "data:image/png;base64,AAAA", "label": "7"})
    assert r.status_code == 403 and "--collect" in r.json()["error"]


def test_drawings_commands(tmp_path, mnist, reader):
    folder = tmp_path / "mine"
    (folder / "3").mkdir(parents=True)
    (folder / "3" / "a.png").write_bytes(drawing(mnist, 18))  # a 3
    (folder / "not-a-digit").mkdir()
    (folder / "not-a-digit" / "b.png").write_bytes(
        png(Image.new("L", (100, 100), 255).point(lambda v: v)))  # blank: skipped, said so
    (folder / "1_c.png").write_bytes(drawing(mnist, 2))  # a 1, labelled by its name
    db = tmp_path / "d.sqlite3"
    r = run_cli("drawings", "import", folder, "--db", db)
    assert r.returncode == 0 and "imported 2" in r.stdout and "no ink" in r.stderr
    listing = json.loads(run_cli("drawings", "list", "--db", db, "--json").stdout)
    assert listing["drawings"] == {"1": 1, "3": 1} and listing["digits"] == {"1": 1, "3": 1}
    shown = json.loads(run_cli("drawings", "show", "1", "--db", db, "--json").stdout)
    assert shown["label"] in ("1", "3") and len(shown["digits"]) == 1
    assert "deleted 1" in run_cli("drawings", "delete", "1", "--db", db).stdout
    r = run_cli("drawings", "export", tmp_path / "out", "--db", db, "--format", "png")
    assert r.returncode == 0 and len(list((tmp_path / "out").rglob("*.png"))) == 1
    # Into a folder that holds files already: refused, nothing mixed in or overwritten.
    for fmt in ("png", "idx"):
        r = run_cli("drawings", "export", tmp_path / "out", "--db", db, "--format", fmt)
        assert r.returncode == 1 and "not empty" in r.stderr
    assert len(list((tmp_path / "out").rglob("*"))) == 2  # the label's folder and its image
    # --db before the action too; a missing database points at where databases come from.
    after = run_cli("drawings", "list", "--db", db, "--json").stdout
    assert run_cli("drawings", "--db", db, "list", "--json").stdout == after
    r = run_cli("drawings", "list", "--db", tmp_path / "none.sqlite3")
    assert r.returncode == 1 and "serve --collect" in r.stderr


def test_fine_tuning_on_a_few_drawings_changes_their_reading(tmp_path, mnist_dir, mnist):
    # Eight 1s, labelled 7: the shipped model reads 1; after fine-tuning, their label.
    folder = tmp_path / "mine" / "7"
    folder.mkdir(parents=True)
    ones = (mnist.test.labels == 1).nonzero().flatten()[:8].tolist()
    for i, k in enumerate(ones):
        (folder / f"{i}.png").write_bytes(drawing(mnist, k))
    pixels, labels = samples(tmp_path / "mine")
    assert len(labels) == 8 and set(labels) == {"7"}
    from digitos.predict import SHIPPED_CHECKPOINT, load_reader

    r = run_cli("finetune", SHIPPED_CHECKPOINT, "--data", tmp_path / "mine", "--out",
                tmp_path / "run", "--data-dir", mnist_dir, "--quiet", "--epochs", "2")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "run" / "metrics.csv").exists()
    import torch

    before = load_reader().read_many(torch.from_numpy(pixels))
    after = load_reader(tmp_path / "run" / "best.pt").read_many(torch.from_numpy(pixels))
    assert all(b.digit == "1" for b in before)
    seven = [a.probabilities[7] for a in after]
    assert sum(a.digit == "7" for a in after) >= 6, seven


def test_a_drawing_is_kept_only_with_a_label_given(tmp_path, mnist, reader):
    """No label, or one that names nothing ("x", "none"), is refused: only "not a digit" said
    so stores a drawing as not a digit."""
    from fastapi.testclient import TestClient

    from digitos.web.server import create_app

    client = TestClient(create_app(reader=reader, collect=tmp_path / "d.sqlite3"))
    image = "data:image/png;base64," + base64.b64encode(drawing(mnist, 0)).decode()
    for label in (None, "x", "none", "", 7, ["7"]):
        r = client.post("/api/drawings", json={"image": image, "label": label})
        assert r.status_code in (400, 422) and "label" in r.json()["error"], label
    assert client.post("/api/drawings", json={"image": image, "label": "not a digit"}
                       ).status_code == 201
    with DrawingStore(tmp_path / "d.sqlite3") as store:
        assert store.counts() == {"not a digit": 1}


def test_a_read_only_database_is_read_and_refuses_writes_in_one_line(tmp_path, mnist, reader):
    from digitos.store import StoreError

    db = tmp_path / "d.sqlite3"
    with DrawingStore(db) as store:
        store.add(drawing(mnist, 0), "7", read_image(reader, drawing(mnist, 0)), "m")
    with DrawingStore(db, read_only=True) as store:
        assert store.read_only and store.counts() == {"7": 1}
        with pytest.raises(StoreError, match="read-only"):
            store.add(drawing(mnist, 1), "2", read_image(reader, drawing(mnist, 1)), "m")
        with pytest.raises(StoreError, match="read-only"):
            store.delete([1])
    with DrawingStore(db) as store:
        assert store.counts() == {"7": 1}  # nothing changed


def test_a_collecting_server_bounds_what_it_keeps(tmp_path, mnist, reader):
    """Anyone who reaches a --collect server can send drawings: it keeps none over its size,
    no more than its rate from one address, and stops when the database is full."""
    from fastapi.testclient import TestClient

    from digitos.web.server import Limits, create_app

    db = tmp_path / "d.sqlite3"
    limits = Limits(drawing_bytes=50_000, drawings_per_minute=3, database_bytes=10_000_000)
    client = TestClient(create_app(reader=reader, collect=db, limits=limits))
    image = "data:image/png;base64," + base64.b64encode(drawing(mnist, 0)).decode()
    big = Image.effect_noise((400, 400), 100)  # noise does not compress: a PNG over 50 kB
    big_url = "data:image/png;base64," + base64.b64encode(png(big)).decode()
    r = client.post("/api/drawings", json={"image": big_url, "label": "7"})
    assert r.status_code == 413 and "most kept" in r.json()["error"]
    answers = [client.post("/api/drawings", json={"image": image, "label": "7"}).status_code
               for _ in range(5)]
    assert answers == [201, 201, 201, 429, 429]
    full = TestClient(create_app(reader=reader, collect=db, limits=Limits(database_bytes=1000)))
    r = full.post("/api/drawings", json={"image": image, "label": "7"})
    assert r.status_code == 507 and "export" in r.json()["error"]
    with DrawingStore(db) as store:
        assert store.counts() == {"7": 3}


def test_a_damaged_database_is_one_line_for_every_action(tmp_path, mnist, reader):
    import random

    db = tmp_path / "d.sqlite3"
    with DrawingStore(db) as store:
        for i in range(3):
            store.add(drawing(mnist, i), "7", read_image(reader, drawing(mnist, i)), "m")
    data = bytearray(db.read_bytes())
    data[5000:9000] = random.Random(0).randbytes(4000)  # its tables' pages overwritten
    db.write_bytes(bytes(data))
    for action in (["list"], ["show", "1"], ["export", str(tmp_path / "out")], ["delete", "1"]):
        r = run_cli("drawings", *action, "--db", db)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "damaged" in r.stderr, r.stderr
