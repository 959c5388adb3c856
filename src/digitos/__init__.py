"""digitos: train a network to read handwritten digits, measure it, read real drawings.

From a notebook:

    import digitos
    data = digitos.load_dataset("mnist", "path/to/mnist")
    run = digitos.fit(digitos.TrainConfig.from_recipe("default", data_dir="path/to/mnist"))
    model, ckpt = digitos.load_checkpoint(run / "best.pt")

Reading images (drawings, photos of paper, whole numbers; "not a digit" for the rest):

    from digitos.predict import load_reader, read_image
    result = read_image(load_reader(), "year.jpg")
    print(result.number, [d.box for d in result.digits], result.not_a_digit)
"""

__version__ = "0.1.0"

from .checkpoint import load_checkpoint, load_state_dict_file, save_checkpoint  # noqa: E402
from .datasets import load_dataset, make_splits, read_idx  # noqa: E402
from .errors import DigitosError  # noqa: E402
from .evaluate import evaluate_split, metrics_from_logits  # noqa: E402
from .models import create_model, list_models  # noqa: E402
from .train import TrainConfig, fit  # noqa: E402

__all__ = [
    "DigitosError", "TrainConfig", "create_model", "evaluate_split", "fit", "list_models",
    "load_checkpoint", "load_dataset", "load_state_dict_file", "make_splits",
    "metrics_from_logits", "read_idx", "save_checkpoint",
]
