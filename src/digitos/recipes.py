"""Named sets of training defaults. `digitos train --recipe NAME`; any flag given overrides.

Each recipe was measured on this project's 2-core CPU machine; see the README's tables.
"""

from __future__ import annotations

from .errors import DigitosError

RECIPES: dict[str, dict] = {
    # The default: about 99.5% test accuracy in about 2 minutes on 2 CPU cores, and "not a
    # digit" learned on MNIST, so that a model anyone trains refuses letters and doodles too.
    # SGD with Nesterov momentum (seeds 0/1/2: 99.55/99.60/99.55%, before the not-a-digit
    # class) beat Adam to 0.01 (99.52/99.54%); see the README.
    "default": dict(
        model="DigitNet", model_args={}, epochs=10, batch_size=128, lr=0.1, optimizer="sgd",
        scheduler="onecycle", weight_decay=5e-4, label_smoothing=0.0,
        augment=True, distort=False, tta=False, channels_last=True, not_a_digit=True,
    ),
    # The shortest time to 99.0% test accuracy.
    "fast": dict(
        model="DigitNet", model_args={}, epochs=1, batch_size=128, lr=0.01, optimizer="adam",
        scheduler="onecycle", weight_decay=0.0, label_smoothing=0.0,
        augment=False, distort=False, tta=False, channels_last=True, not_a_digit=False,
    ),
    # The most accurate single model: a deeper net, twice the epochs, SGD with Nesterov
    # momentum (mean of 3 seeds: Adam 99.64%, SGD 99.69%; see the README), test-time augmentation.
    "best": dict(
        model="DigitNetL", model_args={}, epochs=20, batch_size=128, lr=0.1, optimizer="sgd",
        scheduler="onecycle", weight_decay=5e-4, label_smoothing=0.0,
        augment=True, distort=False, tta=True, channels_last=True, not_a_digit=False,
    ),
    # The shipped model: reads digits the way the world writes them and says "not a digit"
    # (an eleventh class learned from clothes, letters, shapes and pairs of digits). On top of
    # MNIST: 1,000 training digits redrawn in each style of synth/styles.py, and 60,000 images
    # written by random hands and read back (synth.written); a quarter of the batches shrunk
    # and enlarged back (lowres); distortions (shear, warp, pen); test-time augmentation. The
    # deeper net at width 32 (300k parameters), 20 epochs: the best of the runs weighed for
    # it (see the README's "Everyone's handwriting").
    "reader": dict(
        model="DigitNetL", model_args={"width": 32}, epochs=20, batch_size=128, lr=0.1,
        optimizer="sgd", scheduler="onecycle", weight_decay=5e-4, label_smoothing=0.0,
        augment=True, distort=True, tta=True, channels_last=True, not_a_digit=True,
        negative_share=0.4, styled=1000, written=60000, lowres=0.25,
    ),
    # Fine-tuning a trained model to a person's own drawings (`digitos finetune`): a few
    # epochs at a small learning rate over a slice of MNIST, the drawings mixed in (about a
    # fifth of the images), so that what the model knew is kept. The model and its classes
    # come from the checkpoint.
    "finetune": dict(
        model="DigitNetL", model_args={}, epochs=3, batch_size=64, lr=0.01, optimizer="sgd",
        scheduler="onecycle", weight_decay=5e-4, label_smoothing=0.0,
        augment=True, distort=False, tta=False, channels_last=True, not_a_digit=False,
        limit_train=4000, limit_val=1000,
    ),
    # The line reader (`linereader.py`): a CRNN read with CTC, trained on `written` lines of
    # 1-8 MNIST training digits (and some of letters and shapes, read as nothing) written by
    # random hands and read back (synth/lines.py), each squeezed or stretched and its pen
    # changed a little every epoch (linereader.augment_line): at 48,000 lines and no
    # augmentation the validation loss rose after epoch 11 of 16.
    "lines": dict(
        model="LineNet", model_args={}, epochs=20, batch_size=64, lr=0.003, optimizer="adamw",
        scheduler="onecycle", weight_decay=1e-4, label_smoothing=0.0,
        augment=True, distort=False, tta=False, channels_last=False, not_a_digit=False,
        written=96000,
    ),
    # The class notebook's recipe, exactly.
    "class": dict(
        model="NuestraSegundaRed", model_args={}, epochs=5, batch_size=64, lr=0.001,
        optimizer="adam", scheduler="none", weight_decay=0.0, label_smoothing=0.0,
        augment=False, distort=False, tta=False, channels_last=False, not_a_digit=False,
    ),
}


def get_recipe(name: str) -> dict:
    if name not in RECIPES:
        raise DigitosError(f"unknown recipe '{name}'; choose from {', '.join(RECIPES)}")
    return dict(RECIPES[name])
