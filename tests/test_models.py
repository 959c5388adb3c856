import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from digitos.checkpoint import load_state_dict_file
from digitos.models import (
    count_macs,
    count_parameters,
    create_model,
    get_entry,
    list_models,
)


@pytest.mark.parametrize("name", list_models())
def test_every_model_gives_one_score_per_class(name):
    torch.manual_seed(0)
    entry = get_entry(name)
    model = create_model(name).eval()
    x = torch.randn(5, *entry.input_shape)
    y = model(x)
    if name == "LineNet":  # a score over the ten digits and CTC's blank for every 2 columns
        assert y.shape == (5, entry.input_shape[2] // 2, 11)
    else:
        assert y.shape == (5, 2 if name == "NuestraPrimeraRed" else 10)
    assert torch.isfinite(y).all()
    model.train()
    model(x).sum().backward()  # gradients flow to every parameter
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_the_class_networks_have_the_class_parameter_counts():
    assert count_parameters(create_model("NuestraPrimeraRed")) == 17
    assert count_parameters(create_model("NuestraSegundaRed")) == 1_199_882
    keys = list(create_model("NuestraSegundaRed").state_dict())
    assert keys == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                    "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]


def test_class_cnn_outputs_log_probabilities():
    out = create_model("NuestraSegundaRed").eval()(torch.rand(3, 1, 28, 28))
    assert torch.allclose(out.exp().sum(1), torch.ones(3), atol=1e-5)


def test_default_model_is_much_cheaper_than_the_class_cnn():
    ours = count_macs(create_model("DigitNet"), (1, 28, 28))
    theirs = count_macs(create_model("NuestraSegundaRed"), (1, 28, 28))
    assert theirs == 11_992_448  # 194,688 + 10,616,832 + 1,179,648 + 1,280
    assert ours * 4 < theirs
    assert any(isinstance(m, nn.BatchNorm2d) for m in create_model("DigitNet").modules())


class NotebookCNN(nn.Module):
    """The notebook's cell, verbatim: what a student's checkpoints/model.dth comes from."""

    def __init__(self):
        super(NotebookCNN, self).__init__()  # noqa: UP008
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.dropout1(F.max_pool2d(x, 2))
        x = self.dropout2(F.relu(self.fc1(torch.flatten(x, 1))))
        return F.log_softmax(self.fc2(x), dim=1)


def test_notebook_state_dict_loads_as_is(tmp_path):
    torch.manual_seed(3)
    notebook = NotebookCNN().eval()
    path = tmp_path / "model.dth"
    torch.save(notebook.state_dict(), path)  # exactly what the notebook does
    model, meta = load_state_dict_file(path, "NuestraSegundaRed")
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(model(x), notebook(x))
    assert meta["normalization"] == [0.0, 1.0]  # the class fed plain ToTensor() pixels
