"""The class notebook runs from top to bottom on digitos' API (small, with DIGITOS_NOTEBOOK_QUICK)."""

import os

import nbformat
import torch
from conftest import REPO
from nbclient import NotebookClient

from digitos.models import create_model
from digitos.toy import accuracy, train_toy, two_moons, xor_points

NOTEBOOK = REPO / "notebooks" / "clase6.ipynb"


def test_the_first_network_learns_a_two_dimensional_problem():
    for make in (xor_points, two_moons):
        x, y = make(400, seed=1)
        model = create_model("NuestraPrimeraRed")
        run = train_toy(model, x, y, steps=1500)
        assert run.losses[-1] < 0.5 * run.losses[0], make.__name__
        assert run.accuracy >= 0.95 and accuracy(model, x, y) == run.accuracy, make.__name__
        held_out_x, held_out_y = make(400, seed=2)
        assert accuracy(model, held_out_x, held_out_y) >= 0.95, make.__name__


def test_the_committed_notebook_carries_no_stale_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_the_notebook_runs_end_to_end_in_quick_mode(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITOS_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("DIGITOS_DATA_DIR", str(mnist_dir.resolve()))
    monkeypatch.setenv("DIGITOS_NOTEBOOK_OUT", str(tmp_path / "out"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.outputs)
    assert "total: 17" in text and "LinAlgError: Singular matrix" in text
    assert "100.0% de los puntos bien clasificados" in text
    assert "Epoch: 1/1" in text and "leí" in text
    assert (tmp_path / "out" / "clase" / "best.pt").exists()
    assert (tmp_path / "out" / "primera_red.png").exists()
    assert torch.load(tmp_path / "out" / "clase" / "best.pt", weights_only=True)["model"] == \
        "NuestraSegundaRed"
    assert os.environ["DIGITOS_NOTEBOOK_QUICK"] == "1"
