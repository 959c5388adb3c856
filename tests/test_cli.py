"""The command line, run as real subprocesses on real MNIST."""

import json
import subprocess
import sys

import torch
from conftest import run_cli
from test_models import NotebookCNN

from digitos.recipes import RECIPES


def assert_clean_failure(proc, *fragments):
    """Non-zero exit, one line on stderr naming the problem, no traceback."""
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr and len(err.splitlines()) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in err, err


def test_data_prints_counts_and_saves_the_grid(mnist_dir, tmp_path):
    proc = run_cli("data", "--data-dir", mnist_dir, "--grid", tmp_path / "grid.png")
    assert proc.returncode == 0, proc.stderr
    assert "60000x28x28" in proc.stdout and "5,923" in proc.stdout  # zeros in train
    assert "pixel mean 0.1307" in proc.stdout
    assert (tmp_path / "grid.png").read_bytes()[:4] == b"\x89PNG"
    info = json.loads(run_cli("data", "--data-dir", mnist_dir, "--json").stdout)
    assert info["splits"]["test"]["counts"][1] == 1135


def test_data_with_a_broken_file_fails_in_one_line(mnist_dir, tmp_path):
    for f in mnist_dir.glob("*.gz"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"\x00\x00\x08\x03" + bytes(12))
    proc = run_cli("data", "--data-dir", tmp_path)
    assert_clean_failure(proc, "train-labels-idx1-ubyte.gz", "dimensions")


def test_models_lists_parameters_and_multiply_adds():
    proc = run_cli("models")
    assert proc.returncode == 0
    assert "1,199,882" in proc.stdout and "NuestraPrimeraRed" in proc.stdout
    rows = {r["name"]: r for r in json.loads(run_cli("models", "--json").stdout)}
    assert rows["NuestraPrimeraRed"]["parameters"] == 17
    assert rows["DigitNet"]["macs"] < rows["NuestraSegundaRed"]["macs"] / 4


def test_train_help_states_every_default():
    out = run_cli("train", "--help").stdout
    for option in ("--model", "--dataset", "--data-dir", "--epochs", "--batch-size", "--lr",
                   "--optimizer", "--scheduler", "--split", "--seed", "--device", "--out"):
        assert option in out
    assert "DigitNet" in out and "default: holdout" in out and "default: auto" in out


def test_train_then_evaluate(mnist_dir, tmp_path):
    run = tmp_path / "run"
    proc = run_cli("train", "--data-dir", mnist_dir, "--limit-train", 3000, "--limit-val", 500,
                   "--epochs", 2, "--device", "cpu", "--out", run)
    assert proc.returncode == 0, proc.stderr
    assert "Epoch: 2/2, Train Loss:" in proc.stdout
    for name in ("config.json", "metrics.csv", "best.pt", "last.pt", "loss.png", "accuracy.png"):
        assert (run / name).is_file(), name

    again = run_cli("train", "--data-dir", mnist_dir, "--epochs", 1, "--out", run)
    assert_clean_failure(again, "already holds a run")

    proc = run_cli("evaluate", run / "best.pt", "--data-dir", mnist_dir, "--json",
                   "--out", tmp_path / "eval")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["count"] == 10000 and report["accuracy"] > 0.9
    low, high = report["accuracy_interval"]
    assert low < report["accuracy"] < high and high - low < 0.02
    # Ten digits and "not a digit", which the default recipe learns too.
    assert len(report["confusion"]) == 11 and sum(map(sum, report["confusion"])) == 10000
    assert report["not_a_digit"]["non_digits_refused"] > 0.8
    assert set(report["per_class"]["7"]) >= {"precision", "recall"}
    for name in ("confusion.png", "misclassified.png"):
        assert (tmp_path / "eval" / name).read_bytes()[:4] == b"\x89PNG"

    table = run_cli("evaluate", run / "best.pt", "--data-dir", mnist_dir, "--limit-test", 500)
    assert "confusion matrix" in table.stdout and "test images: 500" in table.stdout
    assert "(95% interval " in table.stdout
    # A run folder is evaluated by its best.pt; a folder of runs lists each run inside.
    folder = run_cli("evaluate", run, "--data-dir", mnist_dir, "--limit-test", 500)
    assert folder.returncode == 0 and folder.stdout == table.stdout
    status = run_cli("status", tmp_path)
    assert status.returncode == 0 and status.stdout.strip() == f"{run}: a finished run (2 epochs)"


def test_evaluate_a_notebook_state_dict(mnist_dir, tmp_path):
    torch.manual_seed(0)
    torch.save(NotebookCNN().state_dict(), tmp_path / "model.dth")
    proc = run_cli("evaluate", "--model", "NuestraSegundaRed", "--weights", tmp_path / "model.dth",
                   "--data-dir", mnist_dir, "--limit-test", 300, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["count"] == 300
    wrong = run_cli("evaluate", "--model", "DigitNet", "--weights", tmp_path / "model.dth",
                    "--data-dir", mnist_dir)
    assert_clean_failure(wrong, "not a state_dict of DigitNet")


def test_bad_input_gives_one_line_and_nonzero_exit(mnist_dir, tmp_path):
    (tmp_path / "junk.pt").write_text("hello")
    assert_clean_failure(run_cli("evaluate", tmp_path / "junk.pt", "--data-dir", mnist_dir),
                         "junk.pt")
    assert_clean_failure(run_cli("data", "--data-dir", tmp_path / "nothing"), "no such folder")
    (tmp_path / "empty").mkdir()
    assert_clean_failure(run_cli("data", "--data-dir", tmp_path / "empty"),
                         "missing train-images-idx3-ubyte")
    assert run_cli("train", "--epochs", "0").returncode == 2  # argparse's usage error
    bad = run_cli("train", "--lowres", "1.5")
    assert bad.returncode == 2 and "share from 0 to 1" in bad.stderr
    for option in ("--flagged-ones", "--crossed-sevens"):
        bad = run_cli("train", option, "-5")
        assert bad.returncode == 2 and "must be 0 or more" in bad.stderr
    bad = run_cli("predict", "--unsure-below", "2", "x.png")
    assert bad.returncode == 2 and "share from 0 to 1" in bad.stderr
    (tmp_path / "no-images").mkdir()
    assert_clean_failure(run_cli("evaluate", tmp_path / "no-images"), "without best.pt")
    assert_clean_failure(run_cli("predict", tmp_path / "no-images"), "no image files")
    from PIL import Image, ImageDraw

    one = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(one).line([(100, 30), (100, 170)], fill=0, width=12)
    one.save(tmp_path / "one.png")
    both = run_cli("predict", tmp_path / "no-images", tmp_path / "one.png")
    assert both.returncode == 1 and "no image files" in both.stderr
    assert both.stdout.startswith(f"{tmp_path / 'one.png'}: 1 ")  # the image is still read
    as_json = run_cli("predict", "--json", tmp_path / "no-images")
    assert as_json.returncode == 1
    assert "no image files" in json.loads(as_json.stdout.splitlines()[0])["error"]
    assert_clean_failure(run_cli("train", "--data-dir", mnist_dir, "--no-augment", "--lowres",
                                 "0.25", "--out", tmp_path / "lowres"), "--lowres")
    assert not (tmp_path / "lowres").exists()  # refused before anything was written
    assert_clean_failure(run_cli("train", "--data-dir", mnist_dir, "--init", tmp_path / "none.pt",
                                 "--limit-train", "100", "--out", tmp_path / "init"), "none.pt")
    assert not (tmp_path / "init").exists()  # weights that are not there make no run folder


def test_unavailable_device_and_bad_model_args_are_refused(mnist_dir, tmp_path):
    import torch

    if not torch.cuda.is_available():
        proc = run_cli("train", "--data-dir", mnist_dir, "--device", "cuda", "--out", tmp_path / "a")
        assert_clean_failure(proc, "no CUDA GPU")
    proc = run_cli("train", "--data-dir", mnist_dir, "--model-arg", "width", "--out", tmp_path / "b")
    assert_clean_failure(proc, "expected KEY=VALUE")
    proc = run_cli("train", "--data-dir", mnist_dir, "--model-arg", "stem=round", "--out",
                   tmp_path / "c")
    assert_clean_failure(proc, "stem must be")
    assert not (tmp_path / "c" / "best.pt").exists()


def test_best_recipe_carries_test_time_augmentation_to_evaluate_and_predict(mnist_dir, mnist,
                                                                            tmp_path):
    from digitos.evaluate import tta_views
    from digitos.loader import to_input
    from digitos.predict import load_reader

    run = tmp_path / "best"
    proc = run_cli("train", "--recipe", "best", "--data-dir", mnist_dir, "--limit-train", 2000,
                   "--limit-val", 500, "--epochs", 1, "--model-arg", "width=4", "--device", "cpu",
                   "--out", run)
    assert proc.returncode == 0, proc.stderr
    config = json.loads((run / "config.json").read_text())
    recipe = RECIPES["best"] | {"epochs": 1, "model_args": {"width": 4}}  # what we overrode
    assert {k: config[k] for k in recipe} == recipe
    assert config["model"] == "DigitNetL" and config["tta"] and config["augment"]

    def evaluate(*extra):
        proc = run_cli("evaluate", run / "best.pt", "--data-dir", mnist_dir, "--limit-test", 500,
                       "--json", *extra)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    assert evaluate()["tta"] is True and evaluate("--no-tta")["tta"] is False

    # predict's reader averages the shifted views, not the plain image alone
    reader = load_reader(run / "best.pt")
    pixels = mnist.test.images[:20]
    x = to_input(pixels, reader.normalization)
    with torch.inference_mode():
        plain = torch.softmax(reader.model(x), 1)
        averaged = torch.stack([torch.log_softmax(reader.model(v), 1) for v in tta_views(x)])
    assert torch.allclose(reader.probabilities(pixels), torch.softmax(averaged.mean(0), 1),
                          atol=1e-5)
    assert not torch.allclose(reader.probabilities(pixels), plain, atol=1e-3)


# --- the command line's defects, each fixed (issue 12) -------------------------------------

def test_help_is_quick_because_torch_is_not_imported():
    code = ("import sys, runpy; sys.argv = ['digitos', '--help']\n"
            "try:\n    runpy.run_module('digitos', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip().endswith("False"), r.stdout


def test_usage_errors_are_one_line_with_a_guess():
    r = run_cli("trian")
    assert r.returncode == 2 and r.stderr.strip() == (
        "digitos: error: unknown command 'trian'; did you mean train? (see digitos --help)")
    r = run_cli("train", "--epochs", "x")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("train", "--model", "digitnetz")
    assert r.returncode == 2 and "did you mean DigitNet?" in r.stderr
    r = run_cli("train", "--optimizer", "adma")
    assert r.returncode == 2 and "did you mean adam?" in r.stderr
    r = run_cli("drawings", "shw")
    assert r.returncode == 2 and "did you mean show?" in r.stderr


def test_model_names_match_any_case_and_bad_model_args_say_why(mnist_dir, tmp_path):
    from digitos.models import get_entry

    assert get_entry("digitnetl").build.__name__ == "DigitNetL"
    r = run_cli("train", "--data-dir", mnist_dir, "--model-arg", "width=abc", "--out", tmp_path / "w")
    assert_clean_failure(r, "width must be a number, got 'abc'")
    assert "converted" not in r.stderr and not (tmp_path / "w").exists()


def test_train_help_says_each_default_once_and_describes_every_option():
    out = run_cli("train", "--help").stdout
    assert "default: None" not in out and "(default: default)" not in out
    flat = " ".join(out.split())
    for words in ("Nesterov", "L2 penalty", "overconfidence", "--resume RUN_DIR"):
        assert words in flat, words


def test_train_config_defaults_are_the_default_recipe():
    from digitos.train import TrainConfig

    assert TrainConfig() == TrainConfig.from_recipe("default")
    # The recipe's "not a digit" is MNIST's: another dataset trains its own classes only,
    # unless the class is asked for (which fit then refuses, saying why).
    assert TrainConfig.from_recipe("default").not_a_digit is True
    assert TrainConfig.from_recipe("default", dataset="fashion-mnist").not_a_digit is False
    assert TrainConfig.from_recipe("default", dataset="idx", not_a_digit=True).not_a_digit is True


def test_predict_and_serve_take_a_bare_state_dict_and_predict_takes_no_tta(mnist, tmp_path):
    import torch
    from test_preprocess import paper_drawing, png

    from digitos.models import create_model

    torch.save(create_model("NuestraSegundaRed").state_dict(), tmp_path / "model.dth")
    (tmp_path / "seven.png").write_bytes(png(paper_drawing(mnist.test.images[0], 200)))
    r = run_cli("predict", tmp_path / "seven.png", "--model", "nuestrasegundared",
                "--weights", tmp_path / "model.dth", "--json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["probabilities"]) == 10
    r = run_cli("predict", tmp_path / "seven.png", "--no-tta", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["number"] == "7"
    r = run_cli("serve", "--weights", tmp_path / "model.dth", "--port", "1")
    assert_clean_failure(r, "--model")


def test_an_output_path_the_file_system_refuses_is_one_line(mnist, mnist_dir, tmp_path):
    """A file where a folder goes, or a folder where a file goes: one line, not a traceback."""
    from test_preprocess import paper_drawing, png

    (tmp_path / "x.png").write_bytes(png(paper_drawing(mnist.test.images[0], 200)))
    (tmp_path / "a-file").write_text("mine")
    (tmp_path / "a-folder").mkdir()
    assert_clean_failure(run_cli("predict", tmp_path / "x.png", "--save-preprocessed",
                                 tmp_path / "a-file"), "a-file: File exists")
    assert_clean_failure(run_cli("data", "--data-dir", mnist_dir, "--grid", tmp_path / "a-folder"),
                         "a-folder: Is a directory")
    assert (tmp_path / "a-file").read_text() == "mine"


def test_save_preprocessed_keeps_files_of_the_same_name_apart(mnist, tmp_path):
    from test_preprocess import paper_drawing, png

    for folder, i in (("a", 0), ("b", 1)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.png").write_bytes(png(paper_drawing(mnist.test.images[i], 200)))
    r = run_cli("predict", tmp_path / "a", tmp_path / "b", "--save-preprocessed", tmp_path / "seen")
    assert r.returncode == 0
    assert sorted(p.name for p in (tmp_path / "seen").iterdir()) == ["b_x.png", "x.png"]


def test_evaluate_reads_only_the_test_files_from_the_checkpoints_folder(mnist_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for src in mnist_dir.glob("*-ubyte*"):
        (data / src.name).symlink_to(src.resolve())
    r = run_cli("train", "--recipe", "fast", "--data-dir", data, "--limit-train", "2000",
                "--limit-val", "200", "--out", tmp_path / "run", "--quiet")
    assert r.returncode == 0 and f"--data-dir {data}" in r.stdout, r.stderr
    for train_file in data.glob("train-*"):
        train_file.unlink()  # evaluate must not need them
    env = {"DIGITOS_DATA_DIR": ""}
    r = run_cli("evaluate", tmp_path / "run" / "best.pt", "--limit-test", "500", env=env)
    assert r.returncode == 0, r.stderr
    assert "test images: 500" in r.stdout


def test_package_metadata_and_help_mention_reading_images():
    from importlib.metadata import metadata

    import digitos

    meta = metadata("digitos")
    assert meta["Author"] or meta["Author-email"]
    assert any("Homepage" in url for url in meta.get_all("Project-URL"))
    assert "Reading images" in digitos.__doc__ and "read_image" in digitos.__doc__
    assert callable(digitos.load_reader) and "load_reader" in dir(digitos)


def test_serve_on_all_addresses_prints_an_address_a_browser_can_open():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "digitos", "serve", "--host", "0.0.0.0",
                             "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert f"http://localhost:{port}/" in first and "0.0.0.0:" not in first
