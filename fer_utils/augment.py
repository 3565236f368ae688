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
