"""`digitos predict` as a real subprocess, on drawings made from real MNIST test digits."""

import json

import numpy as np
from conftest import run_cli
from PIL import Image
from test_preprocess import paper_drawing, png


def write_drawings(mnist, folder, n=4):
    folder.mkdir()
    labels = []
    for i in range(n):
        img = paper_drawing(mnist.test.images[i], 150 + 40 * i, canvas=(640, 480),
                            at=(20 + 90 * i, 30 + 40 * i))
        fmt = "JPEG" if i % 2 else "PNG"
        (folder / f"d{i}.{fmt.lower()}").write_bytes(png(img, fmt))
        labels.append(str(int(mnist.test.labels[i])))
    return labels


def test_predict_reads_files_and_folders(mnist, tmp_path):
    labels = write_drawings(mnist, tmp_path / "drawings")
    proc = run_cli("predict", tmp_path / "drawings", "--json",
                   "--save-preprocessed", tmp_path / "seen")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["digit"] for r in rows] == labels
    for r in rows:
        assert set(r) >= {"path", "digit", "confidence", "probabilities"}
        assert len(r["probabilities"]) == 10 and abs(sum(r["probabilities"]) - 1) < 1e-4
        assert r["confidence"] == max(r["probabilities"])
    seen = sorted(p.name for p in (tmp_path / "seen").iterdir())
    assert seen == ["d0.png", "d1.png", "d2.png", "d3.png"]
    assert Image.open(tmp_path / "seen" / "d0.png").size == (28, 28)

    text = run_cli("predict", tmp_path / "drawings" / "d0.png")
    assert text.returncode == 0
    assert text.stdout.startswith(f"{tmp_path / 'drawings' / 'd0.png'}: {labels[0]} (")
    assert "next: " in text.stdout


def test_bad_files_are_refused_one_line_each_and_the_rest_still_read(mnist, tmp_path):
    labels = write_drawings(mnist, tmp_path / "ok", n=1)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.png").write_bytes(b"")
    (bad / "notes.png").write_text("not a picture")
    good = (tmp_path / "ok" / "d0.png").read_bytes()
    (bad / "half.png").write_bytes(good[: len(good) // 2])
    (bad / "white.png").write_bytes(png(Image.new("L", (200, 200), 255)))
    (bad / "black.jpg").write_bytes(png(Image.new("RGB", (200, 200)), "JPEG"))
    (bad / "bomb.png").write_bytes(png(Image.new("1", (7000, 7000), 1)))
    files = sorted(bad.iterdir())
    proc = run_cli("predict", tmp_path / "ok" / "d0.png", *files, "--json")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == len(files)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rows[0]["digit"] == labels[0]
    reasons = {r["path"].rsplit("/", 1)[1]: r["error"] for r in rows[1:]}
    assert "empty file" in reasons["empty.png"]
    assert "not an image" in reasons["notes.png"]
    assert "truncated" in reasons["half.png"]
    assert "no ink" in reasons["white.png"] and "no ink" in reasons["black.jpg"]
    assert "over the limit" in reasons["bomb.png"]


def test_scribble_is_marked_unsure(tmp_path):
    rng = np.random.default_rng(0)
    noise = (rng.random((60, 60)) > 0.5).astype(np.uint8) * 255
    (tmp_path / "scribble.png").write_bytes(png(Image.fromarray(noise).resize((300, 300))))
    proc = run_cli("predict", tmp_path / "scribble.png", "--unsure-below", "0.999")
    assert proc.returncode == 0
    assert "(unsure)" in proc.stdout


def test_missing_checkpoint_is_a_clean_error(tmp_path):
    (tmp_path / "a.png").write_bytes(png(Image.new("L", (20, 20))))
    proc = run_cli("predict", "--checkpoint", tmp_path / "nope.pt", tmp_path / "a.png")
    assert proc.returncode == 1 and "no such checkpoint" in proc.stderr
    assert "Traceback" not in proc.stderr
