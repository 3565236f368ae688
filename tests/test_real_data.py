"""The loader on the real FER-2013 files: exact counts, folder and zip forms identical, audit numbers."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from conftest import SHIPPED_BASELINE
from fer_utils.data import EMOTIONS, audit, load_fer2013

pytestmark = pytest.mark.realdata

# ../shared/fer2013/README.md
TRAIN = {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "sad": 4830, "surprise": 3171,
         "neutral": 4965}
TEST = {"angry": 958, "disgust": 111, "fear": 1024, "happy": 1774, "sad": 1247, "surprise": 831,
        "neutral": 1233}


def test_split_and_class_counts(real_data):
    assert real_data.split_counts() == {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}
    assert real_data.split("Training").class_counts() == TRAIN
    test = real_data.subset(real_data.splits > 0).class_counts()
    assert test == TEST
    assert real_data.images.shape == (35887, 48, 48, 1) and real_data.images.dtype == np.uint8
    # a quirk of the image-folder edition: two file names appear under two emotion folders each
    ids, counts = np.unique(real_data.ids, return_counts=True)
    assert sorted(ids[counts > 1].tolist()) == ["Training_52789098", "Training_8475486"]


def test_ids_agree_with_splits_and_labels_with_folders(real_data, real_data_path):
    prefixes = {0: "Training_", 1: "PublicTest_", 2: "PrivateTest_"}
    for s, prefix in prefixes.items():
        assert all(i.startswith(prefix) for i in real_data.ids[real_data.splits == s][:500])
    # spot-check labels against the folder each file lives in
    for idx in np.random.default_rng(0).choice(len(real_data), 50, replace=False):
        top = "train" if real_data.splits[idx] == 0 else "test"
        emotion = EMOTIONS[real_data.labels[idx]]
        assert (real_data_path / top / emotion / f"{real_data.ids[idx]}.jpg").exists()


def test_zip_form_is_identical(real_data, real_data_path, tmp_path):
    target = tmp_path / "archive.zip"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        for path in sorted(real_data_path.rglob("*.jpg")):
            archive.write(path, path.relative_to(real_data_path).as_posix())
    zipped = load_fer2013(target, cache=False)
    assert zipped.verification.canonical and zipped.verification.exact == 35887  # byte for byte
    np.testing.assert_array_equal(zipped.images, real_data.images)
    np.testing.assert_array_equal(zipped.labels, real_data.labels)
    np.testing.assert_array_equal(zipped.splits, real_data.splits)
    np.testing.assert_array_equal(zipped.ids, real_data.ids)


def test_cached_load_equals_cold_load(real_data, real_data_path, real_cache):
    cached = load_fer2013(real_data_path, cache_dir=real_cache)  # real_data left the cache there
    cold = load_fer2013(real_data_path, cache=False)
    np.testing.assert_array_equal(cached.images, cold.images)
    np.testing.assert_array_equal(cached.ids, cold.ids)
    assert cached.verification.to_dict() == cold.verification.to_dict()


def test_audit_matches_the_data_readme(real_data):
    found = audit(real_data)
    assert found["distinct_images"] == 34034
    assert found["duplicate_groups"] == 1516 and found["duplicate_files"] == 3369
    assert found["cross_split_groups"] == 557
    assert found["conflicting_groups"] == 57
    assert found["near_blank"] == 13


def test_splits_have_the_same_sharpness_and_contrast(real_data):
    """The sanity check notebook 00 shows beside the verdict: on the genuine data the splits agree
    (the defective copy's blurred Training images had a median sharpness under half the test splits')."""
    from fer_utils.data import split_sanity

    table = split_sanity(real_data)
    for column in ("median pixel std", "median sharpness"):
        values = table[column].to_numpy()
        assert values.max() / values.min() < 1.05, table


def test_a_blurred_training_split_fails_the_sanity_check(real_data):
    """Exercise 00.4's miniature of the defective copy: 300 real faces a split, the Training ones blurred
    with OpenCV (sigma 3.5). The sanity check, which needs no fingerprint, calls the copy altered."""
    import cv2

    from fer_utils.data import FerData, describe_split_sanity, split_sanity

    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.choice(np.flatnonzero(real_data.splits == s), 300, replace=False) for s in range(3)])
    sample = real_data.subset(rows)
    intact = split_sanity(sample)
    assert describe_split_sanity(intact).startswith("Sanity check passed")
    images = sample.images.copy()
    training = sample.splits == 0
    images[training, ..., 0] = [cv2.GaussianBlur(face, (0, 0), 3.5) for face in images[training, ..., 0]]
    table = split_sanity(FerData(images, sample.labels, sample.splits, sample.ids))
    assert describe_split_sanity(table).startswith("Sanity check FAILED")
    # the blur takes two thirds of the sharpness and a quarter of the contrast (measured: 0.35x and 0.74x)
    assert table.loc["Training", "median sharpness"] < 0.5 * table.loc["PublicTest", "median sharpness"]
    assert table.loc["Training", "median pixel std"] < 0.8 * table.loc["PublicTest", "median pixel std"]
    assert table.loc["PublicTest", "median sharpness"] == intact.loc["PublicTest", "median sharpness"]


def test_smoke_caps(real_data_path, real_cache):
    d = load_fer2013(real_data_path, cache_dir=real_cache, max_per_class=30, seed=42)
    assert d.split_counts() == {"Training": 210, "PublicTest": 210, "PrivateTest": 210}


@pytest.mark.xdist_group(SHIPPED_BASELINE)
def test_shipped_models_load_offline_and_score_their_recorded_accuracy(real_data, shipped_baseline_probabilities):
    """Every model in models/ that results/published.json lists: its sha256, float32, no optimizer,
    the parameters its run recorded (4,496,903 for the report's CNN), and on PrivateTest the accuracy and
    predictions its run recorded (exactly for a float32-trained model, within the stated tolerance for
    one trained in mixed precision), with the test-time augmentation it was scored with (notebook 08's
    ten-crop, on every fourth face), if any."""
    import keras

    import fer_utils.model  # noqa: F401  (registers the model's first layer, as models/README.md says)
    from fer_utils.beyond import tta_probabilities
    from fer_utils.data import repo_root
    from fer_utils.evaluate import read_metrics
    from fer_study.publish import read_manifest, sha256

    root = repo_root()
    shipped = read_manifest(root)["models"]
    assert "baseline" in shipped
    private = real_data.split("PrivateTest")
    for name, entry in shipped.items():
        assert sha256(root / entry["file"]) == entry["sha256"], f"{entry['file']} is not the published file"
        model = keras.saving.load_model(root / entry["file"])
        recorded = read_metrics(root / entry["metrics"])
        assert model.count_params() == recorded["provenance"].get("params", 4_496_903), name
        assert {layer.compute_dtype for layer in model.layers} == {"float32"}
        assert getattr(model, "optimizer", None) is None
        # The run recorded the predictions of the model as trained. A float32-trained model exported in
        # float32 is the same computation (float rounding may flip a near-tie); one trained in mixed
        # bfloat16 predicted in bfloat16, and its float32 export settles near-ties differently: the
        # reference baseline's export disagrees on 6 of 3,589 faces (measured), with the same accuracy.
        mixed = recorded["provenance"].get("precision", "float32") != "float32"
        agreement, tolerance = (0.99, 0.005) if mixed else (0.999, 1e-9)
        with np.load(root / entry["metrics"].replace("/metrics/", "/predictions/").replace(".json", ".npz")) as saved:
            assert saved["ids"].tolist() == private.ids.tolist()
            recorded_pred = saved["y_pred"]
        # the recorded predictions are the recorded accuracy ...
        assert np.mean(recorded_pred == private.labels) == pytest.approx(recorded["metrics"]["accuracy"], abs=1e-9)
        if recorded["provenance"].get("test_time_augmentation"):
            # ... and the shipped model gives them back: ten views a face cost ten predictions, so the
            # ten-crop is checked on every fourth face (898 faces, 8,980 views), the others on all
            rows = np.arange(0, len(private), 4)
            predicted = tta_probabilities(model, private.images[rows]).argmax(1)
        else:
            rows = np.arange(len(private))
            probabilities = (shipped_baseline_probabilities if entry["file"] == "models/baseline.keras"
                             else model.predict(private.images, batch_size=256, verbose=0))
            predicted = probabilities.argmax(1)
            assert np.mean(predicted == private.labels) == pytest.approx(recorded["metrics"]["accuracy"],
                                                                         abs=tolerance)
        assert np.mean(recorded_pred[rows] == predicted) > agreement, name


def test_published_gpu_run_matches_its_predictions(real_data):
    """results/recipe-on-gpu: its metrics are those of its saved predictions on this PrivateTest,
    and it records the canonical data, the H200 and the time box it ran in."""
    from fer_utils.data import repo_root
    from fer_utils.evaluate import classification_metrics, read_metrics

    folder = repo_root() / "results" / "recipe-on-gpu"
    payload = read_metrics(folder / "metrics" / "beyond_gpu.json")
    private = real_data.split("PrivateTest")
    with np.load(folder / "predictions" / "beyond_gpu.npz") as saved:
        assert saved["ids"].tolist() == private.ids.tolist()
        assert saved["y_true"].tolist() == private.labels.tolist()
        recomputed = classification_metrics(private.labels, saved["y_pred"])
    assert recomputed["accuracy"] == payload["metrics"]["accuracy"]
    assert recomputed["macro_f1"] == pytest.approx(payload["metrics"]["macro_f1"])
    prov = payload["provenance"]
    assert prov["data_counts"]["verification"]["canonical"] and prov["data_counts"]["train_images"] == 28_709
    assert prov["hardware"]["gpu"]["name"] == "NVIDIA H200" and prov["hardware"]["keras_backend"] == "jax"
    assert prov["time_box"]["epochs_planned"] == prov["epochs"] == 135
