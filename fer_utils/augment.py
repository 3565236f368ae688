"""Data augmentation with Keras 3 preprocessing layers (the successors of ``ImageDataGenerator``).

*The lesson.* Augmentation shows the model a new plausible variant of each face in every epoch, which
makes memorising harder. A transformation must keep the label and look like a real photo: a mirrored
face is still a face, an upside-down one is not something the model will meet.

The layers sit at the front of the model, so they transform each training batch on
the fly and are inactive at inference (``training=False``): evaluation, Grad-CAM and
prediction see the images unchanged.

Recipes:
    ``report``: the source report's ``ImageDataGenerator`` settings: random horizontal and
        vertical shifts (10 %) and horizontal and vertical flips.
    ``face``: only what a face can plausibly look like: horizontal flip (no upside-down
        faces), rotation up to 10 degrees, shifts up to 10 %, zoom up to 10 %.
    ``strong``: notebook 08's recipe for the VGG-style model of :func:`fer_utils.model.build_vgg`:
        horizontal flip, rotation up to 10 degrees, zoom up to 10 %, shifts up to 4 pixels (within the
        model's central 40x40 crop, that is a random crop of the face) and random erasing (Zhong et
        al., 2017: with probability one half, a rectangle of 2-33 % of the image is replaced by noise,
        so the model cannot rely on any one part of the face).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from .evaluate import NEAR_FLOOR_MARGIN, near_floor

RECIPES: tuple[str, ...] = ("report", "face", "strong")
#: Largest shift of the ``strong`` recipe, in pixels (the margin of a 40x40 crop of a 48x48 face).
STRONG_SHIFT_PIXELS = 4


def augmentation_layers(recipe: str, seed: int | None = None) -> list[layers.Layer]:
    """The preprocessing layers of a recipe, named ``aug_*`` (float32 under any precision policy),
    marked compilable under the JAX backend (:func:`compilable`)."""
    recipe_layers = _recipe_layers(recipe, seed)
    if keras.backend.backend() == "jax":
        for layer in recipe_layers:
            layer.supports_jit = True
    return recipe_layers


def compilable(model: keras.Model) -> keras.Model:
    """Under the JAX backend, let Keras compile ``model``'s steps although it holds this module's
    augmentation layers (``aug_*``); the model is changed in place and returned. Elsewhere a no-op.

    Keras marks its rotation, zoom and translation layers as not compilable (TensorFlow's XLA lacks
    their image transform), and one such layer keeps Keras from compiling a model's training and
    prediction steps. Under JAX every operation then runs one at a time: on an H200 a training step
    of notebook 08's augmented model took 3.6 s instead of 2.5 ms. JAX compiles these layers. The
    layers :func:`augmentation_layers` makes are marked already; a model loaded from a file gets
    Keras' own layers back and needs this call.
    """
    if keras.backend.backend() != "jax":
        return model
    for layer in model._flatten_layers():  # every layer, nested ones too
        if layer.name.startswith("aug_"):
            layer.supports_jit = True
    model.jit_compile = True  # loading chose already (not to compile): choose again, now that the layers allow it
    return model


def load_model(path, *, compile: bool = True) -> keras.Model:
    """``keras.saving.load_model`` followed by :func:`compilable`.

    A model saved under JAX records that its steps were compiled; loading it compiles it again
    before :func:`compilable` can mark its layers, and Keras warns that it cannot compile it. That
    warning, and only that one, is silenced here, since :func:`compilable` then compiles it after all.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Model doesn't support `jit_compile=True`")
        model = keras.saving.load_model(path, compile=compile)
    return compilable(model)


def _recipe_layers(recipe: str, seed: int | None) -> list[layers.Layer]:
    if recipe == "report":
        return [
            layers.RandomFlip("horizontal_and_vertical", seed=seed, name="aug_flip", dtype="float32"),
            layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed, name="aug_shift", dtype="float32"),
        ]
    if recipe == "face":
        return [
            layers.RandomFlip("horizontal", seed=seed, name="aug_flip", dtype="float32"),
            layers.RandomRotation(10 / 360, fill_mode="nearest", seed=seed, name="aug_rotate", dtype="float32"),
            layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed, name="aug_shift", dtype="float32"),
            layers.RandomZoom(0.1, fill_mode="nearest", seed=seed, name="aug_zoom", dtype="float32"),
        ]
    if recipe == "strong":
        shift = STRONG_SHIFT_PIXELS / 48
        return [
            layers.RandomFlip("horizontal", seed=seed, name="aug_flip", dtype="float32"),
            layers.RandomRotation(10 / 360, fill_mode="nearest", seed=seed, name="aug_rotate", dtype="float32"),
            layers.RandomZoom(0.1, fill_mode="nearest", seed=seed, name="aug_zoom", dtype="float32"),
            layers.RandomTranslation(shift, shift, fill_mode="nearest", seed=seed, name="aug_shift", dtype="float32"),
            layers.RandomErasing((0.5, 0.5), scale=(0.02, 0.33), value_range=(0, 255), seed=seed,
                                 name="aug_erase", dtype="float32"),
        ]
    raise ValueError(f"unknown augmentation recipe {recipe!r}; expected one of {', '.join(RECIPES)}")


def augment_examples(images: np.ndarray, recipe: str, copies: int = 5, seed: int = 0) -> np.ndarray:
    """``copies`` augmented versions of each image, as the model sees them in training.

    Returns uint8 ``(len(images), copies, H, W, C)``; the input is not modified.
    """
    pipeline = keras.Sequential(augmentation_layers(recipe, seed=seed))
    x = np.asarray(images, dtype="float32")
    out = [keras.ops.convert_to_numpy(pipeline(x, training=True)) for _ in range(copies)]
    return np.clip(np.stack(out, axis=1), 0, 255).round().astype(np.uint8)


#: The source report's result for its recipe: "the accuracy approaches 70 % with 60 epochs", at a
#: constant learning rate (read off its learning curves; it gives no interval).
REPORT_AUGMENTED = {"accuracy": 0.70, "epochs": 60}
#: A gap in the fit on Training (the kept model predicting its training faces, augmentation and dropout
#: off) larger than this, against the baseline's, means the augmented model had not finished learning.
FIT_GAP = 0.10


def _difference(row, base, reference: str) -> str:
    p = row.get(f"mcnemar_p_vs_{reference}")
    delta = (row["accuracy"] - base["accuracy"]) * 100
    verdict = ("more than chance" if p is not None and p < 0.05 else "within chance")
    return (f"{row['accuracy']:.3f} ({row['ci95_low']:.3f}–{row['ci95_high']:.3f}) against the {reference}'s "
            f"{base['accuracy']:.3f} ({base['ci95_low']:.3f}–{base['ci95_high']:.3f}), {delta:+.1f} points, "
            f"{verdict} on the same faces (McNemar p = {p:.2g}); macro-F1 {row['macro_f1']:.3f} against "
            f"{base['macro_f1']:.3f}")


def describe_augmentation(table, fits: dict[str, float], verdicts: dict[str, str],
                          reference: str = "baseline", floor: float | None = None) -> str:
    """The answer to notebook 04's question, read from its own results: does augmentation help this model?

    Args:
        table: :func:`fer_utils.compare.compare` of the reference and the augmented experiments (PrivateTest
            accuracy with its 95 % interval, macro-F1, McNemar p against the reference, epochs).
        fits: each experiment's accuracy on its own Training faces as the kept model predicts them
            (augmentation and dropout off), the reference's included.
        verdicts: each augmented experiment's :func:`fer_utils.history.stopping_verdict` phrase.
        floor: the accuracy of always answering the commonest PrivateTest emotion; an augmented model near
            it (:func:`fer_utils.evaluate.near_floor`) is near the floor, and then the text draws no conclusion
            from this run.

    The wording follows the numbers: "helps" only where a recipe beats the reference by more than chance,
    "costs" only where every recipe loses by more than chance; an augmented model that fits its training
    faces more than :data:`FIT_GAP` below the reference is said to have stopped before it finished
    learning, and the comparison with the report says at how many epochs each result was reached.
    """
    rows = {name: table.loc[name] for name in table.index}
    if reference not in rows or len(rows) < 2:
        return f"The comparison needs the {reference} and at least one augmented model in this run."
    base = rows[reference]
    augmented = [n for n in rows if n != reference]
    lines = [f"{name}: PrivateTest {_difference(rows[name], base, reference)}." for name in augmented]
    near = [n for n in augmented if floor is not None and near_floor(rows[n]["accuracy"], floor)]
    if near:
        lines.append(f"{', '.join(near)} scored no more than {NEAR_FLOOR_MARGIN * 100:.0f} points above the {floor:.3f} that always "
                     "answering the commonest emotion gets: near the floor, so this run is too small to say whether augmentation "
                     "helps; read the published run's numbers below.")
        return "\n".join(lines)
    p = {n: rows[n].get(f"mcnemar_p_vs_{reference}") for n in augmented}
    better = [n for n in augmented if rows[n]["accuracy"] > base["accuracy"] and p[n] is not None and p[n] < 0.05]
    worse = [n for n in augmented if rows[n]["accuracy"] < base["accuracy"] and p[n] is not None and p[n] < 0.05]
    epochs = sorted({int(rows[n]["epochs"]) for n in augmented})
    length = (f"{epochs[0]} epoch{'s' if epochs[0] > 1 else ''}" if len(epochs) == 1
              else f"{epochs[0]}–{epochs[-1]} epochs")
    if better:
        answer = f"after {length}, augmentation helps this model: {', '.join(better)} beat the {reference} by more than chance."
    elif len(worse) == len(augmented):
        answer = f"after {length}, augmentation costs this model accuracy: every recipe is below the {reference} by more than chance."
    else:
        answer = (f"after {length}, no recipe differs from the {reference} by more than chance on the same "
                  "PrivateTest faces, or one helps where another costs.")
    lines.append("So, " + answer)
    if reference in fits:
        short = [n for n in augmented if n in fits and fits[reference] - fits[n] > FIT_GAP]
        if short:
            fitted = ", ".join(f"{fits[n]:.3f} ({n})" for n in short)
            lines.append(f"But the augmented models fit their own training faces far less: {fitted}, against the "
                         f"{reference}'s {fits[reference]:.3f}, measured the same way (augmentation and dropout off). "
                         "They stopped before learning what the augmented faces can teach, so this compares "
                         f"{length} of augmented training, not what augmentation can do for this model.")
    for name in augmented:
        if name in verdicts:
            lines.append(f"{name}'s PublicTest curve: {verdicts[name]}")
    if "augment_report" in rows:
        ours = rows["augment_report"]
        lines.append(f"The report gave about {REPORT_AUGMENTED['accuracy']:.0%} for its recipe after "
                     f"{REPORT_AUGMENTED['epochs']} epochs at a constant rate (read off its curves, without an "
                     f"interval); the same recipe here reached {ours['accuracy']:.3f} after {int(ours['epochs'])} "
                     + ("epoch" if int(ours["epochs"]) == 1 else "epochs") + (", so this run does not reproduce the report's gain."
                        if ours["ci95_high"] < REPORT_AUGMENTED["accuracy"] else
                        ", in line with the report."))
    return "\n".join(lines)
