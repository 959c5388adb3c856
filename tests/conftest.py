"""Shared fixtures: the real MNIST files from ../shared/data/mnist (or $DIGITOS_DATA_DIR)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = Path(os.environ.get("DIGITOS_DATA_DIR", REPO.parent / "shared" / "data" / "mnist"))
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    files = sorted(p.name for p in MNIST_DIR.glob("*-ubyte*"))
    assert len(files) >= 4, f"the real MNIST files are needed in {MNIST_DIR} (DIGITOS_DATA_DIR)"
    return MNIST_DIR


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    from digitos.datasets import load_dataset

    return load_dataset("mnist", mnist_dir, download_missing=False)


@pytest.fixture(scope="session")
def reader():
    """The model shipped with digitos, as `predict` and `serve` use it by default."""
    from digitos.predict import load_reader

    return load_reader()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """No test reads or fills the user's real cache, and none goes to the network."""
    monkeypatch.setenv("DIGITOS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("DIGITOS_OFFLINE", "1")


def run_cli(*args, cwd=None, env=None, timeout=600) -> subprocess.CompletedProcess:
    """`python -m digitos ARGS` as a real subprocess."""
    full_env = dict(os.environ) | (env or {})
    return subprocess.run([sys.executable, "-m", "digitos", *map(str, args)], cwd=cwd,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(*args, stdout=subprocess.DEVNULL) -> tuple[subprocess.Popen, str]:
    """`digitos serve ARGS` as a real process on a free loopback port, once it answers."""
    import time
    import urllib.request

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "digitos", "serve", "--port", str(port),
                             *map(str, args)], stdout=stdout, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1)
            return proc, url
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"digitos serve exited with {proc.returncode}") from None
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("digitos serve did not start")
