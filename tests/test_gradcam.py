"""fer_utils.gradcam: a model with known evidence locations, shapes and ranges, Sequential vs functional."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fer_utils.gradcam import class_average, gradcam, overlay

SIZE = 16
REGION = (slice(2, 7), slice(2, 7))  # class 0 looks only here


def region_model(sequential: bool) -> keras.Model:
    """conv: channel 0 = ReLU(x - 0.5) (bright), channel 1 = ReLU(0.5 - x) (dark).
    logits: class 0 = sum of channel 0 inside REGION, class 1 = sum of channel 1 everywhere."""
    conv = keras.layers.Conv2D(2, 1, activation="relu", name="conv")
    flat = keras.layers.Flatten(name="flat")
    dense = keras.layers.Dense(2, name="logits")
    soft = keras.layers.Activation("softmax", name="predictions")
    if sequential:
        model = keras.Sequential([keras.Input((SIZE, SIZE, 1)), conv, flat, dense, soft])
    else:
        inp = keras.Input((SIZE, SIZE, 1))
        model = keras.Model(inp, soft(dense(flat(conv(inp)))))
    conv.set_weights([np.array([1.0, -1.0]).reshape(1, 1, 1, 2), np.array([-0.5, 0.5])])
    w = np.zeros((SIZE, SIZE, 2, 2))
    w[REGION[0], REGION[1], 0, 0] = 1.0
    w[:, :, 1, 1] = 1.0
    dense.set_weights([w.reshape(-1, 2), np.zeros(2)])
    return model


def face() -> np.ndarray:
    img = np.full((SIZE, SIZE, 1), 0.5, np.float32)
    img[3:6, 3:6] = 1.0      # bright patch inside the region
    img[10:14, 10:14] = 0.0  # dark patch outside it
    return img


@pytest.mark.parametrize("sequential", [True, False])
def test_map_peaks_where_the_evidence_is(sequential):
    model = region_model(sequential)
    img = face()
    cam0 = gradcam(model, img, "conv", class_index=0)
    assert np.unravel_index(cam0.argmax(), cam0.shape)[0] in range(3, 6)
    assert cam0[3:6, 3:6].mean() > 0.8 and cam0[10:14, 10:14].max() < 0.05
    cam1 = gradcam(model, img, "conv", class_index=1)
    assert cam1[10:14, 10:14].mean() > 0.8 and cam1[3:6, 3:6].max() < 0.05


def test_sequential_and_functional_twins_agree():
    batch = np.stack([face(), face()[::-1]])
    a = gradcam(region_model(True), batch, "conv")
    b = gradcam(region_model(False), batch, "conv")
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_shape_dtype_range_and_input_untouched():
    model = region_model(True)
    batch = np.stack([face()] * 3)
    before = batch.copy()
    maps = gradcam(model, batch, "conv", class_index=np.array([0, 1, 0]))
    assert maps.shape == (3, SIZE, SIZE) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(batch, before)


def test_all_zero_map_has_no_nan():
    model = region_model(True)
    flat = np.full((SIZE, SIZE, 1), 0.5, np.float32)  # no evidence anywhere: every activation is 0
    cam = gradcam(model, flat, "conv", class_index=0)
    assert np.isfinite(cam).all() and cam.max() == 0.0


def test_baseline_layers_and_upsampling():
    from fer_utils.model import build_baseline

    model = build_baseline()
    x = np.random.default_rng(0).integers(0, 256, (2, 48, 48, 1), dtype=np.uint8)
    for layer in ("conv1", "conv3", "conv5"):  # 48x48, 24x24 and 6x6 feature maps
        maps = gradcam(model, x, layer)
        assert maps.shape == (2, 48, 48) and np.isfinite(maps).all()
    with pytest.raises(ValueError, match="no layer 'conv9'; conv layers: conv1"):
        gradcam(model, x, "conv9")
    with pytest.raises(ValueError, match="does not output feature maps"):
        gradcam(model, x, "dense1")


def test_several_layers_in_one_pass_match_each_layer_cut_apart():
    """A chain of layers (Sequential) takes every layer's gradient from one backward pass; its functional
    twin (the same layers and weights) is cut at one layer at a time. The maps agree, in the order asked for."""
    from fer_utils.gradcam import gradcam_layers

    keras.utils.set_random_seed(3)
    chain = keras.Sequential([
        keras.Input((SIZE, SIZE, 1)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1"),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c2"),
        keras.layers.MaxPooling2D(name="pool"),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c3"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(3, name="logits"),
        keras.layers.Activation("softmax", name="predictions")])
    inputs = keras.Input((SIZE, SIZE, 1))
    x = inputs
    for layer in chain.layers:
        copy = type(layer).from_config(layer.get_config())
        x = copy(x)
        copy.set_weights(layer.get_weights())
    twin = keras.Model(inputs, x)
    images = np.random.default_rng(1).random((3, SIZE, SIZE, 1), dtype=np.float32)
    asked = ["c3", "c1", "c2"]
    together = gradcam_layers(chain, images, asked, class_index=np.array([0, 1, 2]))
    assert together.shape == (3, 3, SIZE, SIZE) and together.dtype == np.float32
    with pytest.raises(ValueError, match="at least one layer"):
        gradcam_layers(chain, images, [])
    with pytest.raises(ValueError, match=r"images must be \(N, H, W, C\) or \(H, W, C\)"):
        gradcam(chain, images[0, ..., 0], "c1")
    apart = np.stack([gradcam(twin, images, layer, class_index=np.array([0, 1, 2])) for layer in asked], axis=1)
    np.testing.assert_allclose(together, apart, atol=1e-5)
    assert (together.reshape(9, -1).max(axis=1) > 0).sum() >= 6  # not the trivial all-zero agreement
    # each image's predicted class when none is given: the same maps as asking for it
    predicted = chain.predict(images, verbose=0).argmax(1)
    np.testing.assert_allclose(gradcam_layers(chain, images, asked), gradcam_layers(chain, images, asked, predicted),
                               atol=1e-6)


def test_compiled_passes_give_the_same_maps_and_follow_the_weights():
    """``compiled=True`` (one traced graph, kept with the model): the maps of the passes taken op by op, for
    given and predicted classes, at a second batch size, and after the model's weights change."""
    from fer_utils.gradcam import _COMPILED, gradcam_layers

    keras.utils.set_random_seed(5)
    chain = keras.Sequential([
        keras.Input((SIZE, SIZE, 1)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1"),
        keras.layers.MaxPooling2D(name="pool"),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c2"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(3, name="logits"),
        keras.layers.Activation("softmax", name="predictions")])
    images = np.random.default_rng(2).random((6, SIZE, SIZE, 1), dtype=np.float32)
    classes = np.array([0, 1, 2, 0, 1, 2])
    for rows in (slice(0, 6), slice(0, 4)):  # a second batch size traces once more
        for given in (classes[rows], None):
            eager = gradcam_layers(chain, images[rows], ["c2", "c1"], given)
            compiled = gradcam_layers(chain, images[rows], ["c2", "c1"], given, compiled=True)
            np.testing.assert_allclose(compiled, eager, atol=1e-6)
    assert len(_COMPILED[chain]) == 2  # one graph per kind of class choice, kept for the next call
    assert (eager.reshape(8, -1).max(axis=1) > 0).sum() >= 4  # not the trivial all-zero agreement
    # the same batch size with other faces and classes: nothing of an earlier call is baked into the graph
    others = gradcam_layers(chain, images[2:6], ["c2", "c1"], classes[::-1][:4], compiled=True)
    np.testing.assert_allclose(others, gradcam_layers(chain, images[2:6], ["c2", "c1"], classes[::-1][:4]), atol=1e-6)
    if keras.backend.backend() == "tensorflow":  # traced once, and once more for the second batch size
        assert all(g.step.experimental_get_tracing_count() == 2 for g in _COMPILED[chain].values())
    before = gradcam_layers(chain, images, ["c1"], classes, compiled=True)
    c1 = chain.get_layer("c1")
    c1.set_weights([w[::-1].copy() if w.ndim == 4 else -w for w in c1.get_weights()])  # assigned, same variables
    after = gradcam_layers(chain, images, ["c1"], classes, compiled=True)
    np.testing.assert_allclose(after, gradcam_layers(chain, images, ["c1"], classes), atol=1e-6)
    assert np.abs(after - before).max() > 0.1  # the kept graph read the new weights


def test_class_average_and_overlay():
    model = region_model(True)
    images = np.stack([face(), face()])
    labels = np.array([1, 1])  # the dark patch wins the softmax: both are correctly classified
    maps, counts = class_average(model, images, labels, "conv", num_classes=2)
    assert counts.tolist() == [0, 2] and maps[0].max() == 0.0
    assert maps[1][10:14, 10:14].mean() > 0.8
    rgb = overlay(face(), maps[1])
    assert rgb.shape == (SIZE, SIZE, 3) and 0.0 <= rgb.min() and rgb.max() <= 1.0


@pytest.mark.parametrize("sequential", [True, False])
def test_saved_and_loaded_model_gives_the_same_maps(tmp_path, sequential):
    model = region_model(sequential)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    batch = np.stack([face(), face()[:, ::-1]])
    np.testing.assert_allclose(gradcam(loaded, batch, "conv"), gradcam(model, batch, "conv"), atol=1e-6)


def test_peak_region_names_the_face_part():
    from fer_utils.gradcam import peak_region

    cam = np.zeros((48, 48))
    cam[36:44, 16:32] = 1.0
    assert peak_region(cam) == "mouth and chin (100% of the map, 3.2x an even spread)"  # rows 32-44 of the 42 inside the frame
    cam = np.zeros((48, 48))
    cam[16:22, 8:40] = 1.0
    assert peak_region(cam).startswith("eyes")
    assert peak_region(np.zeros((48, 48))) == "empty map"


def test_peak_region_uses_density_not_band_height():
    from fer_utils.gradcam import peak_region

    cam = np.full((48, 48), 0.2)  # a diffuse map: the tall mouth band holds the most mass ...
    cam[16:24] = 0.6  # ... but the eyes are where it is densest
    # inside the 3-pixel frame (rows 3-44): the eyes' rows 14-23 (10 of 42) hold
    # (2 * 0.2 + 8 * 0.6) / (34 * 0.2 + 8 * 0.6) = 5.2 / 11.6 = 45 % of the map
    assert peak_region(cam) == "eyes (45% of the map, 1.9x an even spread)"  # 0.448 / (10 / 42)


def test_peak_region_says_when_a_map_points_nowhere():
    """A map spread evenly over the face still has a 'densest' band (the first of equals); its share against the
    band's height says 1.0x, which is how a reader tells a flat map from a focused one."""
    from fer_utils.gradcam import peak_region

    # rows 3-13 of the forehead band: 11 of the 42 rows inside the frame
    assert peak_region(np.ones((48, 48))) == "forehead and brows (26% of the map, 1.0x an even spread)"
    assert peak_region(np.ones((48, 48)), short=True) == "forehead and brows 26% (1.0x)"


def test_class_average_by_layer_and_described_evidence():
    from fer_utils.gradcam import class_average_by_layer, describe_evidence

    model = region_model(True)
    # class 0 faces: a bright patch in rows 3-5 (top of the image); class 1 faces: dark everywhere
    bright = face()
    bright[10:14, 10:14] = 0.5  # no dark patch: class 0 wins
    dark = np.zeros((SIZE, SIZE, 1), np.float32)
    images = np.stack([bright, bright, dark])
    labels = np.array([0, 0, 1])
    maps, counts = class_average_by_layer(model, images, labels, ["conv", "conv"], num_classes=3)
    assert maps.shape == (3, 2, SIZE, SIZE) and counts.tolist() == [2, 1, 0]
    table = describe_evidence(maps, counts, ["conv", "conv"], ("top", "all", "none"))
    # the patch covers rows 3-5 of 16: one row of the forehead band (rows 0-3), two of the eyes (4-7)
    assert table.loc["top", "faces"] == 2 and table.loc["top"].iloc[1] == "eyes 67% (2.3x)"  # 4 of the 14 rows inside the frame: 0.67 / (4 / 14)
    assert table.loc["none"].iloc[1] == "no correct face"
    assert list(table.columns) == ["faces", "conv", "conv"]


def test_the_outer_frame_is_measured_and_left_out_of_the_bands():
    """Early conv layers light the image's edge (its zero padding): the frame is measured apart, and a map lit
    only there names no band of the face."""
    from fer_utils.gradcam import densest_band, frame_share, frame_width, peak_region

    assert frame_width(48) == 3 and frame_width(16) == 1
    ring = np.zeros((48, 48))
    ring[:3, :] = ring[-3:, :] = ring[:, :3] = ring[:, -3:] = 1.0
    share, ratio = frame_share(ring)
    assert share == 1.0 and ratio == pytest.approx(1 / (1 - 42 * 42 / 48 ** 2))  # the frame is 23 % of the image
    assert densest_band(ring) is None and peak_region(ring) == "empty map"
    assert frame_share(np.ones((48, 48))) == pytest.approx((0.234375, 1.0))
    assert frame_share(np.zeros((48, 48))) is None
    lit_bottom = np.full((48, 48), 0.1)
    lit_bottom[45:, :] = 5.0  # a bright bottom edge: it used to read as "mouth and chin"
    assert densest_band(lit_bottom)[2] == pytest.approx(1.0)  # inside the frame the map is even
