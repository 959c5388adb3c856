"""torchrun: two CPU processes (gloo) train one model on a small slice of real MNIST."""

import json
import os
import subprocess
import sys

from conftest import run_cli

from digitos.checkpoint import load_checkpoint


def test_torchrun_two_cpu_processes(mnist_dir, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "digitos", "train", "--data-dir", str(mnist_dir), "--limit-train", "4000",
           "--limit-val", "1000", "--epochs", "2", "--device", "cpu", "--out", str(out),
           "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Metrics and files come from rank 0 alone: one line per epoch, not one per process.
    assert proc.stdout.count("Epoch: 2/2") == 1
    for name in ("config.json", "metrics.csv", "best.pt", "last.pt", "loss.png"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["world_size"] == 2
    assert len((out / "metrics.csv").read_text().splitlines()) == 3
    _, ckpt = load_checkpoint(out / "last.pt")
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])
    report = run_cli("evaluate", out / "best.pt", "--data-dir", mnist_dir, "--limit-test", "2000",
                     "--json")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["accuracy"] >= 0.95
