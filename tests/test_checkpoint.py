import pytest
import torch

from digitos.checkpoint import (
    atomic_save,
    load_checkpoint,
    make_checkpoint,
    save_checkpoint,
)
from digitos.errors import DigitosError
from digitos.models import create_model


def _checkpoint(seed=0):
    torch.manual_seed(seed)
    model = create_model("DigitNet", width=8)
    model.train()
    model(torch.randn(16, 1, 28, 28))  # move BatchNorm's running statistics off their defaults
    model.eval()
    return model, make_checkpoint(model, "DigitNet", {"width": 8}, (0.1307, 0.3081),
                                  [str(i) for i in range(10)], "mnist", epoch=3,
                                  metrics={"val_loss": 0.05})


def test_round_trip_gives_identical_logits(tmp_path):
    model, ckpt = _checkpoint()
    save_checkpoint(tmp_path / "best.pt", ckpt)
    raw = torch.load(tmp_path / "best.pt", weights_only=True, map_location="cpu")
    assert raw["model"] == "DigitNet" and raw["model_args"] == {"width": 8}
    assert raw["epoch"] == 3 and raw["normalization"] == [0.1307, 0.3081]
    loaded, meta = load_checkpoint(tmp_path / "best.pt")
    x = torch.randn(8, 1, 28, 28)
    assert torch.equal(loaded(x), model(x))
    assert meta["digitos_version"]


def test_a_crash_while_writing_keeps_the_old_file(tmp_path, monkeypatch):
    _, good = _checkpoint(0)
    save_checkpoint(tmp_path / "best.pt", good)
    before = (tmp_path / "best.pt").read_bytes()

    def crash(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        atomic_save(_checkpoint(1)[1], tmp_path / "best.pt")
    assert (tmp_path / "best.pt").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # no temporary left behind


def test_bad_files_are_refused_clearly(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DigitosError, match="junk.pt: not a digitos checkpoint") as e:
        load_checkpoint(tmp_path / "junk.pt")
    assert "weights_only" not in str(e.value) and "\x1b" not in str(e.value)
    torch.save({"a": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(DigitosError, match="not a digitos checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(DigitosError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
