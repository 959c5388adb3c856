"""The class notebook (and its English twin) runs from top to bottom on digitos' API (small,
with DIGITOS_NOTEBOOK_QUICK)."""

import os

import nbformat
import pytest
import torch
from conftest import REPO
from nbclient import NotebookClient

from digitos.models import create_model
from digitos.toy import accuracy, train_toy, two_moons, xor_points

NOTEBOOKS = {"es": REPO / "notebooks" / "clase6.ipynb", "en": REPO / "notebooks" / "clase6-en.ipynb"}
# What each language's run prints, checked below.
SAYS = {"es": ("total: 17", "LinAlgError: Singular matrix", "100.0% de los puntos bien clasificados",
               "Epoch: 1/1", "leí"),
        "en": ("total: 17", "LinAlgError: Singular matrix", "100.0% of the points classified right",
               "Epoch: 1/1", ": read ")}


def test_the_first_network_learns_a_two_dimensional_problem():
    for make in (xor_points, two_moons):
        x, y = make(400, seed=1)
        torch.manual_seed(0)  # XOR has a local minimum (78%) that one start in ten falls into
        model = create_model("NuestraPrimeraRed")
        run = train_toy(model, x, y, steps=1500)
        assert run.losses[-1] < 0.5 * run.losses[0], make.__name__
        assert run.accuracy >= 0.95 and accuracy(model, x, y) == run.accuracy, make.__name__
        held_out_x, held_out_y = make(400, seed=2)
        assert accuracy(model, held_out_x, held_out_y) >= 0.95, make.__name__


@pytest.mark.parametrize("lang", NOTEBOOKS)
def test_the_committed_notebooks_carry_no_stale_outputs(lang):
    nb = nbformat.read(NOTEBOOKS[lang], as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_the_twins_are_what_the_build_script_writes():
    """Both notebooks come from one source (notebooks/build.py), cell by cell in both
    languages: a change made to one twin alone, or to a notebook and not to the script, fails."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build", REPO / "notebooks" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    for name, text in build.written().items():
        assert (REPO / "notebooks" / name).read_text() == text, f"run python notebooks/build.py ({name})"
    cells = {lang: nbformat.read(path, as_version=4).cells for lang, path in NOTEBOOKS.items()}
    assert [c.cell_type for c in cells["es"]] == [c.cell_type for c in cells["en"]]
    # Spanish the class speaks: no voseo, no "acá".
    spanish = " ".join(c.source for c in cells["es"])
    for word in ("acá", "dibujá", "probá", "mirá", "subí ", "tenés"):
        assert word not in spanish.lower(), word


def test_the_notebooks_use_only_digitos_public_api():
    import ast

    import digitos

    for path in NOTEBOOKS.values():
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.Attribute) and getattr(node.value, "id", "") == "digitos":
                    assert node.attr in digitos.__all__ + ["toy"], node.attr
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("digitos"):
                    assert node.module == "digitos.toy", node.module  # the class's toy data


@pytest.mark.parametrize("lang", NOTEBOOKS)
def test_the_notebook_runs_end_to_end_in_quick_mode(lang, mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITOS_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("DIGITOS_DATA_DIR", str(mnist_dir.resolve()))
    monkeypatch.setenv("DIGITOS_NOTEBOOK_OUT", str(tmp_path / "out"))
    nb = nbformat.read(NOTEBOOKS[lang], as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.outputs)
    for words in SAYS[lang]:
        assert words in text, words
    run = tmp_path / "out" / {"es": "clase", "en": "class"}[lang]
    assert torch.load(run / "best.pt", weights_only=True)["model"] == "NuestraSegundaRed"
    assert len(list((tmp_path / "out").glob("*.png"))) >= 4  # the figures were drawn
    assert os.environ["DIGITOS_NOTEBOOK_QUICK"] == "1"
