"""fer_utils.model: the baseline's exact size, layer names, input scaling and save/load."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fer_utils.model import BASELINE_PARAMS, CONV_LAYERS, PerImageStandardization, build_baseline, compile_model


@pytest.mark.parametrize("options", [{}, {"input_norm": "rescale"}, {"bn_before_relu": True}, {"l2": 0.0}])
def test_parameter_count_matches_the_report(options):
    model = build_baseline(**options)
    assert model.count_params() == BASELINE_PARAMS == 4_496_903
    assert model.output_shape == (None, 7)


def test_layers_are_named_for_later_notebooks():
    model = build_baseline()
    names = [layer.name for layer in model.layers]
    assert [n for n in names if n.startswith("conv")] == list(CONV_LAYERS)
    assert names[-2:] == ["logits", "predictions"]
    assert model.get_layer("conv4").kernel_regularizer is not None
    assert model.get_layer("conv3").kernel_regularizer is None
    assert [model.get_layer(c).filters for c in CONV_LAYERS] == [32, 64, 128, 512, 512]
    assert all(model.get_layer(f"drop{k}").rate == 0.25 for k in range(1, 7))


def test_initial_l2_penalty_is_about_seven():
    model = build_baseline()
    penalty = float(sum(keras.ops.convert_to_numpy(loss) for loss in model.losses))
    assert 6.0 < penalty < 8.5  # the report's loss starts near 8-9 for this reason


def test_softmax_outputs_on_uint8_input():
    model = build_baseline()
    x = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 1), dtype=np.uint8)
    probs = model.predict(x, verbose=0)
    assert probs.shape == (4, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_per_image_standardization():
    layer = PerImageStandardization()
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (3, 48, 48, 1)).astype("float32")
    x[1] = x[1] * 0.3 + 50  # a low-contrast copy of a face maps to the same standardized face
    out = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 1.0, atol=1e-3)
    same = keras.ops.convert_to_numpy(layer(np.stack([x[0], x[0] * 0.3 + 50])))
    np.testing.assert_allclose(same[0], same[1], atol=1e-4)
    blank = keras.ops.convert_to_numpy(layer(np.full((1, 48, 48, 1), 7.0, "float32")))
    assert np.isfinite(blank).all() and np.abs(blank).max() == 0.0


def test_save_and_load_round_trip(tmp_path):
    model = compile_model(build_baseline(input_norm="standardize"))
    x = np.random.default_rng(2).integers(0, 256, (2, 48, 48, 1), dtype=np.uint8)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    assert loaded.get_layer("standardize").min_std == 1.0


def test_bad_options():
    with pytest.raises(ValueError, match="dropout"):
        build_baseline(dropout=1.0)
    with pytest.raises(ValueError, match="input_norm"):
        build_baseline(input_norm="zscore")
    with pytest.raises(ValueError, match="unknown optimizer"):
        compile_model(build_baseline(), optimizer="sgd9")
