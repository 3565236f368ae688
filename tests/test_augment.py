"""fer_utils.augment: recipes, training-only behaviour, no parameters added."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fer_utils.augment import augment_examples, augmentation_layers
from fer_utils.model import BASELINE_PARAMS, build_baseline


def face_like() -> np.ndarray:
    img = np.zeros((1, 48, 48, 1), np.float32)
    img[0, 30:36, 14:34] = 255.0  # a "mouth" in the lower half
    return img


@pytest.mark.parametrize("recipe", ["report", "face"])
def test_layers_are_identity_at_inference(recipe):
    pipeline = keras.Sequential(augmentation_layers(recipe, seed=1))
    x = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 1)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(pipeline(x, training=False)), x)
    assert build_baseline(augmentation=recipe).count_params() == BASELINE_PARAMS


def test_face_recipe_never_turns_a_face_upside_down():
    out = augment_examples(face_like(), "face", copies=40, seed=3)[0]
    rows = out[..., 0].astype(float).sum(axis=2)  # brightness per row, per copy
    lower_half_share = rows[:, 24:].sum(axis=1) / rows.sum(axis=1)
    assert (lower_half_share > 0.9).all()  # the mouth stays low (flips are horizontal only)
    assert len({copy.tobytes() for copy in out}) > 30  # and the copies do differ


def test_report_recipe_flips_vertically_sometimes():
    out = augment_examples(face_like(), "report", copies=40, seed=3)[0]
    rows = out[..., 0].astype(float).sum(axis=2)
    upper = rows[:, :24].sum(axis=1) / rows.sum(axis=1)
    assert (upper > 0.9).any() and (upper < 0.1).any()


def test_input_unchanged_and_unknown_recipe():
    x = face_like()
    before = x.copy()
    augment_examples(x, "face", copies=2)
    np.testing.assert_array_equal(x, before)
    with pytest.raises(ValueError, match="unknown augmentation recipe 'mixup'"):
        augmentation_layers("mixup")
