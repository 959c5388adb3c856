"""Training runs you can trust and resume: kills, signals, full disks, and the run folder."""

from __future__ import annotations

import csv
import gzip
import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import run_cli

from digitos.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from digitos.datasets import load_dataset, read_idx
from digitos.errors import DigitosError
from digitos.models import create_model
from digitos.train import TrainConfig, fit, run_status

# Small enough to be quick, long enough per epoch that a kill lands inside one.
SMALL = ["--limit-train", "3000", "--limit-val", "500", "--epochs", "3", "--batch-size", "64",
         "--quiet"]


def train_args(mnist_dir, out, *extra):
    return ["train", "--data-dir", mnist_dir, "--out", out, *SMALL, *extra]


def start_training(mnist_dir, out):
    return subprocess.Popen([sys.executable, "-m", "digitos", *map(str, train_args(mnist_dir, out))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_epoch(proc, out, epoch: int):
    """Until last.pt holds `epoch` (then the next epoch is under way)."""
    for _ in range(6000):
        if (out / "last.pt").exists():
            try:
                if torch.load(out / "last.pt", weights_only=True)["epoch"] >= epoch:
                    return
            except Exception:
                pass
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    pytest.fail("the epoch never ended")


def metric_rows(out):
    """metrics.csv without its timings (which differ between any two runs)."""
    with (out / "metrics.csv").open() as f:
        return [{k: v for k, v in row.items() if "seconds" not in k} for row in csv.DictReader(f)]


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_a_run_killed_mid_epoch_and_resumed_equals_the_uninterrupted_run(mnist_dir, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert run_cli(*train_args(mnist_dir, whole)).returncode == 0
    proc = start_training(mnist_dir, killed)
    wait_for_epoch(proc, killed, 1)
    time.sleep(0.3)  # inside epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert run_status(killed).state == "resumable" and run_status(killed).epoch == 1
    r = run_cli("train", "--resume", killed, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stdout
    assert metric_rows(killed) == metric_rows(whole)
    for name in ("last.pt", "best.pt"):
        a, b = weights(whole / name), weights(killed / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert run_status(killed).state == "finished"
    assert not list(killed.glob(".*tmp*"))
    # Resuming a finished run says so, and changes nothing.
    r = run_cli("train", "--resume", killed)
    assert r.returncode == 0 and "finished" in r.stdout and "nothing to resume" in r.stdout


def test_sigterm_stops_cleanly_with_143_and_says_how_to_resume(mnist_dir, tmp_path):
    out = tmp_path / "run"
    proc = start_training(mnist_dir, out)
    wait_for_epoch(proc, out, 1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143
    assert f"digitos train --resume {out}" in err and "Traceback" not in err
    assert json.loads((out / "config.json").read_text())["status"] == "interrupted"
    assert len(metric_rows(out)) == torch.load(out / "last.pt", weights_only=True)["epoch"]
    status = run_cli("status", out)
    assert status.returncode == 0 and "stopped after epoch" in status.stdout


def test_a_signal_after_the_last_epoch_leaves_a_finished_run(mnist_dir, tmp_path):
    """SIGTERM once the last epoch is saved: the work is done, so the run is finished and
    training returns as finished runs do (not "stopped", not 143)."""
    import os

    cfg = TrainConfig.from_recipe("default", data_dir=str(mnist_dir), limit_train=1000,
                                  limit_val=200, epochs=1, out=str(tmp_path / "run"),
                                  device="cpu", progress=False)

    def stop_at_the_end(epoch, model, row) -> bool:
        os.kill(os.getpid(), signal.SIGTERM)  # arrives as the last epoch ends
        time.sleep(1)
        return False

    lines = []
    out = fit(cfg, log=lines.append, on_epoch_end=stop_at_the_end)
    assert json.loads((out / "config.json").read_text())["status"] == "finished"
    assert run_status(out).state == "finished" and "a finished run" in lines[-1]


def test_resuming_with_other_options_is_refused_naming_them(mnist_dir, tmp_path):
    out = tmp_path / "run"
    proc = start_training(mnist_dir, out)
    wait_for_epoch(proc, out, 1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = run_cli("train", "--resume", out, "--lr", "0.5", "--epochs", "9")
    assert r.returncode == 1 and "--lr" in r.stderr and "--epochs" in r.stderr
    assert "Traceback" not in r.stderr


def test_the_folder_is_cleaned_and_overwrite_starts_afresh(mnist_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")  # a run killed before its first epoch
    (out / ".last.pt.abc.tmp").write_bytes(b"")
    (out / ".metrics.csv.tmp").write_bytes(b"")
    cfg = TrainConfig.from_recipe("fast", data_dir=str(mnist_dir), out=str(out), limit_train=500,
                                  limit_val=100, progress=False)
    fit(cfg, log=lambda _: None)  # nothing of value was there: no --overwrite needed
    assert not list(out.glob(".*tmp*")) and (out / "last.pt").exists()
    assert json.loads((out / "config.json").read_text())["status"] == "finished"
    with pytest.raises(DigitosError, match="a finished run"):
        fit(cfg, log=lambda _: None)
    (out / "accuracy.png").unlink()
    (out / "loss.png").write_bytes(b"old")
    cfg.overwrite, cfg.epochs = True, 1
    fit(cfg, log=lambda _: None)
    assert (out / "loss.png").read_bytes() != b"old" and (out / "accuracy.png").exists()


@pytest.mark.parametrize("extra, message", [
    (["--val-size", "70000"], "--val-size"),
    (["--data-dir", "/nonexistent"], "no such folder"),
])
def test_a_failed_start_leaves_no_folder(mnist_dir, tmp_path, extra, message):
    out = tmp_path / "run"
    r = run_cli("train", "--data-dir", mnist_dir, "--out", out, "--quiet", *extra)
    assert r.returncode == 1 and message in r.stderr
    assert not out.exists()


def test_a_full_disk_is_one_clear_line_and_the_last_checkpoint_is_kept(mnist_dir, tmp_path,
                                                                          monkeypatch):
    import digitos.train as train

    out = tmp_path / "run"
    cfg = TrainConfig.from_recipe("fast", data_dir=str(mnist_dir), out=str(out), epochs=2,
                                  limit_train=500, limit_val=100, progress=False)
    real_save = train.save_checkpoint

    def save(path, ckpt):
        if ckpt["epoch"] == 2:
            raise OSError(28, "No space left on device")
        real_save(path, ckpt)

    monkeypatch.setattr(train, "save_checkpoint", save)
    with pytest.raises(DigitosError, match="No space left on device.*epoch 1.*is kept"):
        fit(cfg, log=lambda _: None)
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 1
    assert run_status(out).state == "resumable"


def test_checkpoint_contents_are_checked_on_load(tmp_path):
    model = create_model("DigitNet")
    good = make_checkpoint(model, "DigitNet", {}, (0.13, 0.31), [str(i) for i in range(10)],
                           "mnist")
    cases = {
        "no_state": ({k: v for k, v in good.items() if k != "state_dict"}, "no state_dict"),
        "bad_types": (good | {"state_dict": {"w": "text"}}, "other than named tensors"),
        "bad_norm": (good | {"normalization": [0.1, 0.0]}, "normalization"),
        "bad_classes": (good | {"classes": ["a", "b", "c"]}, "10 outputs but the checkpoint names 3"),
        "bad_model": (good | {"model": "os.system"}, "not a registered model"),
    }
    for name, (ckpt, message) in cases.items():
        save_checkpoint(tmp_path / f"{name}.pt", ckpt)
        r = run_cli("predict", "--checkpoint", tmp_path / f"{name}.pt", tmp_path / "x.png")
        assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr, name
        assert len(r.stderr.strip().splitlines()) == 1
        with pytest.raises(DigitosError, match=message):
            load_checkpoint(tmp_path / f"{name}.pt")


def test_a_gzip_bomb_is_refused_without_being_inflated(tmp_path):
    header = (0x0803).to_bytes(4, "big") + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    bomb = tmp_path / "bomb-images-idx3-ubyte.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as f:
        f.write(header)
        zeros = bytes(1 << 20)
        for _ in range(256):  # 256 MiB of zeros behind a header that declares 7,840 bytes
            f.write(zeros)
    with pytest.raises(DigitosError, match="too long"):
        read_idx(bomb, ndim=3)
    big = tmp_path / "big-images-idx3-ubyte"
    big.write_bytes((0x0803).to_bytes(4, "big") + (2**20).to_bytes(4, "big") * 3)
    with pytest.raises(DigitosError, match="over the limit"):
        read_idx(big, ndim=3)


def test_own_idx_files_with_a_label_out_of_range_say_so(mnist, tmp_path):
    from test_datasets import idx_bytes

    def write_idx(path, array):
        path.write_bytes(idx_bytes(array))

    labels = mnist.train.labels[:100].clone()
    labels[42] = 11
    write_idx(tmp_path / "train-images-idx3-ubyte", mnist.train.images[:100])
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels.to(torch.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", mnist.test.images[:10])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", mnist.test.labels[:10].to(torch.uint8))
    with pytest.raises(DigitosError, match="label 11 .at index 42. is out of range: labels are"):
        load_dataset("idx", tmp_path, download_missing=False)
