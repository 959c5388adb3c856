import csv
import json

import pytest
import torch

from digitos.checkpoint import load_checkpoint
from digitos.datasets import make_splits
from digitos.errors import DigitosError
from digitos.evaluate import evaluate_split
from digitos.train import RUN_FILES, TrainConfig, fit, make_optimizer, read_metrics


def small_config(mnist_dir, out, **kw):
    base = dict(data_dir=str(mnist_dir), limit_train=4000, limit_val=1000, epochs=2,
                out=str(out), device="cpu", progress=False)
    return TrainConfig.from_recipe("default", **(base | kw))


def ckpt_classes(run) -> list[str]:
    return load_checkpoint(run / "best.pt")[1]["classes"]


def test_small_real_run_reaches_95_percent(mnist_dir, mnist, tmp_path):
    lines = []
    run = fit(small_config(mnist_dir, tmp_path / "run"), log=lines.append)
    assert sorted(p.name for p in run.iterdir()) == sorted(RUN_FILES)
    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert set(rows[0]) >= {"train_loss", "val_loss", "val_accuracy"}
    epoch_lines = [line for line in lines if " - Epoch: " in line]
    assert len(epoch_lines) == 2 and "Val Accuracy: " in epoch_lines[-1]
    config = json.loads((run / "config.json").read_text())
    # The default recipe learns "not a digit" too: a quarter as many non-digits added.
    assert config["model"] == "DigitNet" and config["train_images"] == 5000
    assert ckpt_classes(run) == [*mnist.classes, "not a digit"]

    model, ckpt = load_checkpoint(run / "best.pt")
    test = make_splits(mnist, limit_test=2000).test
    metrics, _ = evaluate_split(model, test, ckpt["classes"], tuple(ckpt["normalization"]))
    assert metrics["accuracy"] >= 0.95, metrics["accuracy"]
    best_epoch = min(rows, key=lambda r: r["val_loss"])["epoch"]
    assert ckpt["epoch"] == best_epoch
    assert load_checkpoint(run / "last.pt")[1]["epoch"] == 2


def test_same_seed_on_cpu_gives_the_same_metrics(mnist_dir, tmp_path):
    runs = [fit(small_config(mnist_dir, tmp_path / f"r{i}", limit_train=1000, limit_val=500,
                             epochs=1), log=lambda s: None) for i in range(2)]
    a, b = ((r / "metrics.csv").read_text() for r in runs)
    strip = [[row[k] for k in ("epoch", "train_loss", "val_loss", "val_accuracy")]
             for row in csv.DictReader(a.splitlines())]
    again = [[row[k] for k in ("epoch", "train_loss", "val_loss", "val_accuracy")]
             for row in csv.DictReader(b.splitlines())]
    assert strip == again
    w = [load_checkpoint(r / "last.pt")[1]["state_dict"] for r in runs]
    assert all(torch.equal(w[0][k], w[1][k]) for k in w[0])


def test_best_is_kept_even_when_loss_stays_above_one(mnist_dir, tmp_path):
    """The notebook starts best_val_loss = 1, so such a run never saved. Ours does."""
    run = fit(small_config(mnist_dir, tmp_path / "slow", lr=1e-7, epochs=1, limit_train=256,
                           limit_val=200, scheduler="none"), log=lambda s: None)
    assert read_metrics(run)[0]["val_loss"] > 1
    assert (run / "best.pt").is_file()


def test_refuses_to_overwrite_a_previous_run(mnist_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "best.pt").write_bytes(b"precious")
    with pytest.raises(DigitosError, match="already holds a run"):
        fit(small_config(mnist_dir, out), log=lambda s: None)
    assert (out / "best.pt").read_bytes() == b"precious"


def test_the_toy_network_is_refused_for_images(mnist_dir, tmp_path):
    with pytest.raises(DigitosError, match="NuestraPrimeraRed takes 2 numbers, not images.*"
                                           "notebooks/clase6.ipynb trains it"):
        fit(small_config(mnist_dir, tmp_path / "x", model="NuestraPrimeraRed"))


def test_weight_average_is_what_gets_saved(mnist_dir, tmp_path):
    """Same seed, same steps: with --ema the checkpoint holds the average, not the last step."""
    plain = fit(small_config(mnist_dir, tmp_path / "plain", limit_train=1000, limit_val=500,
                             epochs=1), log=lambda s: None)
    averaged = fit(small_config(mnist_dir, tmp_path / "ema", limit_train=1000, limit_val=500,
                                epochs=1, ema=0.9), log=lambda s: None)
    a = load_checkpoint(plain / "last.pt")[1]["state_dict"]
    b = load_checkpoint(averaged / "last.pt")[1]["state_dict"]
    assert set(a) == set(b)
    assert not torch.equal(a["head.weight"], b["head.weight"])
    # The average stays close to the weights it averages.
    assert (a["head.weight"] - b["head.weight"]).abs().mean() < a["head.weight"].abs().mean()
    assert read_metrics(averaged)[0]["val_accuracy"] > 0.5  # learnt something (chance: 0.1)


def test_weight_average_is_an_exponential_moving_average_with_warm_up():
    from torch import nn

    from digitos.train import WeightAverage

    model = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))
    model[0].weight.data.fill_(0.0)
    average = WeightAverage(model, decay=0.9)
    expected = 0.0
    for step, weight in enumerate([1.0, 2.0, 4.0, 8.0], start=1):
        model[0].weight.data.fill_(weight)  # in place, as the optimiser writes
        model[1].num_batches_tracked.fill_(step)
        average.update()
        decay = min(0.9, (1 + step) / (10 + step))
        expected = decay * expected + (1 - decay) * weight
        assert average.model[0].weight.item() == pytest.approx(expected)
        assert int(average.model[1].num_batches_tracked) == step  # counts are copied
    assert model[0].weight.item() == 8.0  # the live weights are left alone


def test_not_a_digit_class_is_learned_from_negatives(mnist_dir, mnist, tmp_path):
    """A small run with --not-a-digit: eleven classes, and unseen non-digits mostly rejected."""
    from digitos.evaluate import NOT_A_DIGIT
    from digitos.predict import Reader
    from digitos.synth.negatives import held_out_fonts, letters, shapes

    lines = []
    run = fit(small_config(mnist_dir, tmp_path / "run", not_a_digit=True, limit_train=6000,
                           epochs=3), log=lines.append)
    assert any("not a digit: 1,500 training and 250 validation images" in line for line in lines)
    model, ckpt = load_checkpoint(run / "best.pt")
    assert ckpt["classes"] == [*mnist.classes, NOT_A_DIGIT]
    assert json.loads((run / "config.json").read_text())["train_images"] == 7500
    reader = Reader(model, ckpt)
    unseen = torch.cat([letters(100, seed=77, fonts=held_out_fonts()), shapes(100, seed=78)])
    rejected = sum(r.not_a_digit for r in reader.read_many(unseen)) / len(unseen)
    digits = reader.read_many(mnist.test.images[:500])
    kept = sum(not r.not_a_digit for r in digits) / len(digits)
    assert rejected >= 0.8 and kept >= 0.98, (rejected, kept)


def test_not_a_digit_needs_mnist(mnist_dir, tmp_path):
    with pytest.raises(DigitosError, match="--not-a-digit"):
        fit(small_config(mnist_dir, tmp_path / "run", not_a_digit=True, dataset="idx"),
            log=lambda s: None)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "adadelta"])
def test_fused_optimizers_take_the_same_steps(name):
    # On a GPU the update runs fused (one kernel); it must move the weights exactly as the
    # plain update does. Adadelta has no fused version and is built as usual.
    cfg = TrainConfig(optimizer=name, lr=0.05, weight_decay=5e-4)
    start = torch.randn(50, generator=torch.Generator().manual_seed(0))
    weights = []
    for fused in (False, True):
        w = torch.nn.Parameter(start.clone())
        opt = make_optimizer(cfg, [w], fused=fused)
        assert bool(opt.defaults.get("fused")) == (fused and name != "adadelta")
        for step in range(5):
            w.grad = torch.sin(w.detach() * (step + 1))
            opt.step()
        weights.append(w.detach())
    assert not torch.equal(weights[0], start)
    torch.testing.assert_close(weights[1], weights[0], rtol=1e-5, atol=1e-6)
