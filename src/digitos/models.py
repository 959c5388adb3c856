"""The model registry: the class's two networks, exactly, and our own.

`register` fills one dict; `create_model(name, **kwargs)` is the only way in.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import DigitosError

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # pixel statistics of MNIST's training images, in [0, 1]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    build: Callable[..., nn.Module]
    input_shape: tuple[int, ...]  # one example, without the batch dimension
    # (mean, std) applied to pixels in [0, 1]; the class trained on plain ToTensor() pixels.
    normalization: tuple[float, float]
    summary: str

    @property
    def takes_images(self) -> bool:
        """(channels, height, width) inputs, as opposed to the toy network's plain numbers."""
        return len(self.input_shape) == 3


_REGISTRY: dict[str, ModelEntry] = {}


def register(input_shape=(1, 28, 28), normalization=(MNIST_MEAN, MNIST_STD)):
    """Class decorator: add a model to the registry under its class name."""

    def add(cls):
        doc = (cls.__doc__ or "").strip().splitlines()
        _REGISTRY[cls.__name__] = ModelEntry(
            cls.__name__, cls, tuple(input_shape), tuple(normalization), doc[0] if doc else ""
        )
        return cls

    return add


def list_models() -> list[str]:
    return list(_REGISTRY)


def model_name(name: str) -> str:
    """A registered model's name as registered, matched in any case ('digitnet' is DigitNet);
    an unknown name is refused with the closest one as a guess."""
    found = next((n for n in _REGISTRY if n.lower() == name.lower()), None)
    if found is None:
        lower = {n.lower(): n for n in _REGISTRY}
        guess = difflib.get_close_matches(name.lower(), list(lower), n=1)
        hint = f"; did you mean {lower[guess[0]]}?" if guess else f"; choose from {', '.join(_REGISTRY)}"
        raise DigitosError(f"unknown model '{name}'{hint} (see digitos models)")
    return found


def get_entry(name: str) -> ModelEntry:
    """A registered model by name, in any case."""
    return _REGISTRY[model_name(name)]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model by name, with its constructor arguments."""
    import inspect

    entry = get_entry(name)
    params = inspect.signature(entry.build).parameters
    for key, value in kwargs.items():
        if key not in params:
            raise DigitosError(f"model '{entry.build.__name__}' takes no argument '{key}'; it takes: "
                               + (", ".join(params) or "none"))
        # Arguments typed like their defaults: width=abc is refused here, not deep inside.
        default = params[key].default
        if isinstance(default, bool):
            kind, fits = "true or false", isinstance(value, bool)
        elif isinstance(default, int | float):
            kind, fits = "a number", isinstance(value, int | float) and not isinstance(value, bool)
        else:
            kind, fits = "", True
        if not fits:
            raise DigitosError(f"model '{entry.build.__name__}': {key} must be {kind}, got {value!r}")
    try:
        return entry.build(**kwargs)
    except (TypeError, ValueError) as e:
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise DigitosError(f"model '{name}': bad arguments ({given}): {e}") from None


# --- The class's networks, as the notebook wrote them (layer names are the state_dict keys) ---


@register(input_shape=(2,), normalization=(0.0, 1.0))
class NuestraPrimeraRed(nn.Module):
    """The class's first network: 2 inputs, 3 sigmoid hidden units, 2 outputs (17 parameters)."""

    def __init__(self):
        super().__init__()
        self.capa12 = nn.Linear(2, 3)
        self.capa23 = nn.Linear(3, 2)

    def forward(self, x):
        x = self.capa12(x)
        x = F.sigmoid(x)
        y = self.capa23(x)
        return y


@register(normalization=(0.0, 1.0))
class NuestraSegundaRed(nn.Module):
    """The class's CNN: two convolutions, max-pool, dropout, two linear layers, log_softmax."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)  # 64 channels x 12 x 12 after two 3x3 convs and a 2x2 pool
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


# --- Our own networks ---


def conv_bn(c_in: int, c_out: int, pool: bool = False) -> nn.Sequential:
    """3x3 convolution (no bias: BatchNorm has one), [2x2 max-pool], BatchNorm, ReLU.

    Pooling right after the convolution (as cifar10-airbench does) lets BatchNorm and ReLU run
    on a quarter of the pixels: the same function up to BatchNorm's statistics, about 1.5x
    faster to train on a CPU.
    """
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    layers += [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


@register()
class DigitNet(nn.Module):
    """Our default: a BatchNorm CNN, 28->14->7->3 px, about 1/6 of the class CNN's multiply-adds."""

    def __init__(self, width: int = 16, num_classes: int = 10, stem: str = "pool"):
        super().__init__()
        w = width
        if stem == "pool":
            first = conv_bn(1, w, pool=True)  # 28x28 convolution, pooled to 14x14
        elif stem == "unshuffle":  # space-to-depth: 28x28x1 as 14x14x4, a quarter of the work
            first = nn.Sequential(nn.PixelUnshuffle(2), conv_bn(4, w))
        else:
            raise ValueError(f"stem must be 'pool' or 'unshuffle', not {stem!r}")
        self.features = nn.Sequential(
            first,  # 14x14
            conv_bn(w, 2 * w, pool=True),  # 7x7
            conv_bn(2 * w, 4 * w, pool=True),  # 3x3
        )
        self.head = nn.Linear(4 * w * 3 * 3, num_classes)

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))


@register()
class DigitNetL(nn.Module):
    """A deeper BatchNorm CNN for the best accuracy: two convolutions at 14x14 and at 7x7."""

    def __init__(self, width: int = 16, num_classes: int = 10):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            conv_bn(1, w, pool=True),  # 14x14
            conv_bn(w, 2 * w), conv_bn(2 * w, 2 * w, pool=True),  # 7x7
            conv_bn(2 * w, 4 * w), conv_bn(4 * w, 4 * w, pool=True),  # 3x3
        )
        self.head = nn.Linear(4 * w * 3 * 3, num_classes)

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))


@register(input_shape=(1, 32, 128))
class LineNet(nn.Module):
    """A line reader: a line of writing 32 px high, any width -> per-column scores over the ten
    digits and a blank, for CTC (a CRNN, Shi et al. 2015, with dilated 1-D convolutions along
    the line where theirs has an LSTM: as accurate here, and many times faster on a CPU, where
    an LSTM steps through the columns one at a time). Columns are 2 px of the input apart: a
    narrow digit in a long line is some 10 px wide, and CTC needs a few columns for each (two
    equal digits side by side need a blank between them)."""

    blank = 10  # the last score is CTC's blank: the digits keep their own indices

    def __init__(self, width: int = 16, hidden: int = 64):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            conv_bn(1, w, pool=True),  # 16 x W/2
            conv_bn(w, 2 * w), nn.MaxPool2d((2, 1)),  # 8 x W/2: height halves, columns stay
            conv_bn(2 * w, 4 * w), conv_bn(4 * w, 4 * w), nn.MaxPool2d((2, 1)),  # 4 x W/2
            conv_bn(4 * w, 4 * w), nn.MaxPool2d((4, 1)),  # 1 x W/2
        )
        h = 2 * hidden

        def along(c_in: int, dilation: int) -> list[nn.Module]:
            return [nn.Conv1d(c_in, h, 5, padding=2 * dilation, dilation=dilation, bias=False),
                    nn.BatchNorm1d(h), nn.ReLU(inplace=True)]

        # Each column sees 29 columns (58 px) of features around it, each of which sees some
        # 40 px of the line: a digit and its neighbours on both sides.
        self.sequence = nn.Sequential(*along(4 * w, 1), *along(h, 2), *along(h, 4))
        self.head = nn.Conv1d(h, 11, 1)

    def forward(self, x):
        """x (N, 1, 32, W) -> scores (N, W // 2, 11)."""
        f = self.features(x).squeeze(2)  # (N, channels, columns)
        return self.head(self.sequence(f)).transpose(1, 2)


def load_widened(model: nn.Module, state: dict, noise: float = 0.01, seed: int = 0) -> None:
    """Load a narrower model's weights into a wider one of the same layers (Net2WiderNet, Chen
    et al. 2016) so that it computes the same function: each new channel copies an old one
    of its layer, and the next layer divides its weights from the copies among them. A wider
    model then starts where the narrow one stopped, not from scratch. A little noise on the
    copies' outgoing weights lets them grow apart. For stacks of convolutions, each followed
    by a BatchNorm but the last (LineNet's shape); refuses anything else."""
    gen = torch.Generator().manual_seed(seed)
    convs = [name for name, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    norms = [name for name, m in model.named_modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
    if len(norms) != len(convs) - 1:
        raise DigitosError("only convolutions each followed by a BatchNorm can be widened")
    new = model.state_dict()
    missing = [name for name in new if name not in state]
    if missing:
        raise DigitosError(f"no {missing[0]} in it")
    source = torch.arange(new[f"{convs[0]}.weight"].shape[1])  # the old channel each input copies
    for k, conv in enumerate(convs):
        old_w, new_w = state[f"{conv}.weight"], new[f"{conv}.weight"]
        old_out, new_out = old_w.shape[0], new_w.shape[0]
        if (new_w.shape[2:] != old_w.shape[2:] or len(source) != new_w.shape[1]
                or new_out < old_out or int(source.max()) >= old_w.shape[1]):
            raise DigitosError(f"{conv}: {tuple(old_w.shape)} cannot widen to {tuple(new_w.shape)}")
        out = torch.cat([torch.arange(old_out),
                         torch.randint(0, old_out, (new_out - old_out,), generator=gen)])
        copies = torch.bincount(source, minlength=old_w.shape[1]).float()
        shape = (1, -1) + (1,) * (old_w.dim() - 2)
        w = old_w[out][:, source] / copies[source].view(shape)
        twin = (copies[source] > 1).view(shape)  # inputs shared with a copy: nudged apart
        w = w + twin * noise * w.abs().mean() * torch.randn(w.shape, generator=gen)
        new[f"{conv}.weight"] = w
        bias = f"{conv}.bias"
        if bias in state:
            new[bias] = state[bias][out]
        if k < len(norms):
            for part in ("weight", "bias", "running_mean", "running_var"):
                new[f"{norms[k]}.{part}"] = state[f"{norms[k]}.{part}"][out]
            new[f"{norms[k]}.num_batches_tracked"] = state[f"{norms[k]}.num_batches_tracked"]
        source = out
    model.load_state_dict(new)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass for one example (convolutions and linear layers)."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += output[0].numel() * k
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *input_shape))
    model.train(was_training)
    for h in handles:
        h.remove()
    return total
