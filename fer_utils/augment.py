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
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

RECIPES: tuple[str, ...] = ("report", "face")


def augmentation_layers(recipe: str, seed: int | None = None) -> list[layers.Layer]:
    """The preprocessing layers of a recipe, named ``aug_*`` (float32 under any precision policy)."""
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
    raise ValueError(f"unknown augmentation recipe {recipe!r}; expected one of {', '.join(RECIPES)}")


def augment_examples(images: np.ndarray, recipe: str, copies: int = 5, seed: int = 0) -> np.ndarray:
    """``copies`` augmented versions of each image, as the model sees them in training.

    Returns uint8 ``(len(images), copies, H, W, C)``; the input is not modified.
    """
    pipeline = keras.Sequential(augmentation_layers(recipe, seed=seed))
    x = np.asarray(images, dtype="float32")
    out = [keras.ops.convert_to_numpy(pipeline(x, training=True)) for _ in range(copies)]
    return np.clip(np.stack(out, axis=1), 0, 255).round().astype(np.uint8)
