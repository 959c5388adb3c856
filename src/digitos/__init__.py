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

# The names below load on first use (PEP 562), so that `digitos --help` does not wait for
# torch to import.
_WHERE = {
    "load_checkpoint": "checkpoint", "load_state_dict_file": "checkpoint",
    "save_checkpoint": "checkpoint", "load_dataset": "datasets", "make_splits": "datasets",
    "read_idx": "datasets", "DigitosError": "errors", "evaluate_split": "evaluate",
    "metrics_from_logits": "evaluate", "create_model": "models", "list_models": "models",
    "TrainConfig": "train", "fit": "train", "load_reader": "predict", "read_image": "predict",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'digitos' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
