"""fer_utils.evaluate: metric values on hand-checked examples, intervals, and metrics files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fer_utils.evaluate import (
    accuracy_interval,
    classification_metrics,
    provenance,
    read_metrics,
    write_metrics,
)


def test_wilson_interval_known_values():
    lo, hi = accuracy_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    lo, hi = accuracy_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    # 3,589 test images at 65 %: about +-1.6 points, as the study guide says
    lo, hi = accuracy_interval(round(0.65 * 3589), 3589)
    assert (hi - lo) / 2 == pytest.approx(0.0156, abs=0.0005)
    with pytest.raises(ValueError):
        accuracy_interval(11, 10)


def test_metrics_on_a_hand_checked_example():
    names = ("a", "b", "c")
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 0, 2, 2])
    m = classification_metrics(y_true, y_pred, names)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["confusion"] == [[3, 1, 0], [1, 1, 0], [0, 0, 2]]
    assert m["per_class"]["a"]["recall"] == pytest.approx(0.75)
    assert m["per_class"]["a"]["precision"] == pytest.approx(0.75)
    assert m["per_class"]["b"]["recall"] == pytest.approx(0.5)
    assert m["balanced_accuracy"] == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    f1_b = 2 * 0.5 * 0.5 / (0.5 + 0.5)
    assert m["macro_f1"] == pytest.approx((0.75 + f1_b + 1.0) / 3)
    np.testing.assert_allclose(np.sum(m["confusion_normalized"], axis=1), 1.0)
    assert m["per_class"]["c"]["support"] == 2


def test_accuracy_hides_what_macro_f1_shows():
    y_true = np.array([0] * 90 + [1] * 10)
    always_majority = np.zeros(100, dtype=int)
    m = classification_metrics(y_true, always_majority, ("major", "minor"))
    assert m["accuracy"] == pytest.approx(0.9)
    assert m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["macro_f1"] < 0.5


def test_bad_labels():
    with pytest.raises(ValueError, match="outside"):
        classification_metrics(np.array([0, 7]), np.array([0, 1]))
    with pytest.raises(ValueError, match="equal, non-empty"):
        classification_metrics(np.array([0, 1]), np.array([0]))


def test_metrics_file_round_trip_with_provenance(tmp_path):
    m = classification_metrics(np.array([0, 1, 2]), np.array([0, 1, 1]))
    info = provenance(profile="smoke", experiment="baseline", epochs=2,
                      data_counts={"Training": 3}, seed=1, wall_seconds=1.234)
    for key in ("profile", "epochs", "data_counts", "seed", "versions", "hardware", "wall_seconds"):
        assert key in info
    assert info["versions"]["keras"] and info["hardware"]["cpu_count"] >= 1
    path = write_metrics(tmp_path / "metrics" / "baseline.json", m, info)
    payload = read_metrics(path)
    assert payload["metrics"]["accuracy"] == pytest.approx(2 / 3)
    assert payload["provenance"]["wall_seconds"] == 1.2
    assert not list(path.parent.glob(".*.tmp"))
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps({"x": 1}))
    with pytest.raises(ValueError, match="not a metrics file"):
        read_metrics(bad)


def test_write_metrics_refuses_nan_and_leaves_no_file(tmp_path):
    with pytest.raises(ValueError):
        write_metrics(tmp_path / "m.json", {"accuracy": float("nan")}, {"profile": "x"})
    assert not (tmp_path / "m.json").exists()


def test_seen_in_training_matches_by_pixels():
    from fer_utils.evaluate import seen_in_training

    rng = np.random.default_rng(0)
    training = rng.integers(0, 256, (5, 48, 48, 1), dtype=np.uint8)
    test = np.concatenate([training[[1, 3]], rng.integers(0, 256, (3, 48, 48, 1), dtype=np.uint8)])
    test[1, 0, 0, 0] ^= 1  # one pixel off: a different image
    assert seen_in_training(test, training).tolist() == [True, False, False, False, False]


def test_accuracy_without_seen_faces_and_its_line():
    from fer_utils.evaluate import accuracy_without_seen, describe_result

    y = np.array([0, 1, 2, 3, 4, 5, 6, 0, 1, 2])
    pred = y.copy()
    pred[:3] = 6  # three wrong ...
    seen = np.zeros(10, bool)
    seen[5:] = True  # ... and the five seen faces all right
    r = accuracy_without_seen(y, pred, seen)
    assert r["n"] == 5 and r["left_out"] == 5
    assert r["accuracy"] == pytest.approx(2 / 5) and r["accuracy_of_left_out"] == 1.0
    assert r["accuracy_ci95"] == pytest.approx(list(accuracy_interval(2, 5)))
    metrics = classification_metrics(y, pred)
    metrics["without_seen_in_training"] = r
    line = describe_result(metrics)
    assert line.splitlines()[0].startswith("PrivateTest accuracy 0.700 (95% CI")
    assert "without the 5 faces also in Training: accuracy 0.400" in line and "seen faces: 1.000" in line
    with pytest.raises(ValueError, match="every image was seen"):
        accuracy_without_seen(y, pred, np.ones(10, bool))
    with pytest.raises(ValueError, match="same length"):
        accuracy_without_seen(y, pred[:5], seen)


def _three_class_probs(tops: list[float]) -> np.ndarray:
    """Rows whose top probability (class 0) is each of ``tops``, the rest split over classes 1 and 2."""
    return np.array([[t, (1 - t) / 2, (1 - t) / 2] for t in tops])


def test_confidence_table_counts_each_band_and_its_accuracy():
    from fer_utils.evaluate import confidence_table

    # band 0.9-1.0: four faces at 0.95, three right; band 0.5-0.7: two at 0.6, one right; 1.0 itself counts
    probs = _three_class_probs([0.95, 0.95, 0.95, 0.95, 0.6, 0.6, 1.0])
    y_true = np.array([0, 0, 0, 1, 0, 2, 0])
    default = confidence_table(probs, y_true)
    assert list(default.index) == ["0.00-0.50", "0.50-0.70", "0.70-0.90", "0.90-0.99", "0.99-1.00"]
    assert default["faces"].tolist() == [0, 2, 0, 4, 1] and default["right"].tolist() == [0, 1, 0, 3, 1]
    t = confidence_table(probs, y_true, edges=(0.0, 0.5, 0.7, 0.9, 1.0))
    assert t["faces"].tolist() == [0, 2, 0, 5] and t["right"].tolist() == [0, 1, 0, 4]
    assert t.loc["0.90-1.00", "accuracy"] == pytest.approx(0.8)
    assert t.loc["0.90-1.00", "mean_probability"] == pytest.approx((4 * 0.95 + 1.0) / 5)
    lo, hi = accuracy_interval(4, 5)
    assert (t.loc["0.90-1.00", "ci95_low"], t.loc["0.90-1.00", "ci95_high"]) == pytest.approx((lo, hi))
    assert np.isnan(t.loc["0.00-0.50", "accuracy"])
    # a probability on an inner edge belongs to the band above it
    edge = confidence_table(_three_class_probs([0.7]), np.array([0]), edges=(0.0, 0.5, 0.7, 0.9, 1.0))
    assert edge.loc["0.70-0.90", "faces"] == 1


def test_confidence_table_rejects_bad_input():
    from fer_utils.evaluate import confidence_table

    with pytest.raises(ValueError, match="probs must be"):
        confidence_table(np.ones((3, 2)) / 2, np.array([0, 1]))
    with pytest.raises(ValueError, match="edges must rise from 0 to 1"):
        confidence_table(np.ones((2, 2)) / 2, np.array([0, 1]), edges=(0.0, 0.6, 0.5, 1.0))
    with pytest.raises(ValueError, match="no faces"):
        confidence_table(np.zeros((0, 3)), np.array([], dtype=int))


def test_describe_confidence_calls_an_over_confident_model_so():
    from fer_utils.evaluate import confidence_table, describe_confidence, describe_face_confidence

    # 200 faces at 0.98, right on half: the mean probability lies far above the interval
    probs = _three_class_probs([0.98] * 200)
    y_true = np.array([0, 1] * 100)
    t = confidence_table(probs, y_true, edges=(0.0, 0.9, 1.0))
    text = describe_confidence(t, "the toy")
    assert "top probability 0.00-0.90: no PrivateTest face" in text
    assert "200 PrivateTest faces (100%), right on 50% of them" in text and "over-confident" in text
    assert "the toy's probabilities run high: in every band" in text
    assert describe_face_confidence(t, 0.93).startswith("0.93: the model was right on 50% of the 200 PrivateTest")
    assert "no measure" in describe_face_confidence(t, 0.5)
    with pytest.raises(ValueError, match="lies in 0..1"):
        describe_face_confidence(t, 1.5)
    # right as often as it says: 0.6 probability, right on 60 of 100
    calibrated = confidence_table(_three_class_probs([0.6] * 100), np.array([0] * 60 + [1] * 40))
    assert "mean what they say" in describe_confidence(calibrated)
    assert "as often as its probabilities say" in describe_confidence(calibrated)
    # right more often than it says
    under = confidence_table(_three_class_probs([0.55] * 100), np.array([0] * 95 + [1] * 5))
    assert "run low" in describe_confidence(under) and "under-confident" in describe_confidence(under)


def test_expected_calibration_error_on_hand_checked_examples():
    from fer_utils.evaluate import expected_calibration_error

    # 10 faces at 0.95 (band 9), 8 right; 10 at 0.55 (band 5), 5 right: ECE = 0.5*0.15 + 0.5*0.05
    probs = _three_class_probs([0.95] * 10 + [0.55] * 10)
    y_true = np.array([0] * 8 + [1] * 2 + [0] * 5 + [2] * 5)
    e = expected_calibration_error(probs, y_true)
    assert e["ece"] == pytest.approx(0.10)
    assert e["accuracy"] == pytest.approx(0.65) and e["mean_probability"] == pytest.approx(0.75)
    assert e["overconfidence"] == pytest.approx(0.10)
    # a model right as often as it says, and one that is under-confident
    assert expected_calibration_error(_three_class_probs([0.6] * 5), np.array([0, 0, 0, 1, 2]))["ece"] == pytest.approx(0)
    under = expected_calibration_error(_three_class_probs([0.4] * 5), np.zeros(5, int))
    assert under["overconfidence"] == pytest.approx(-0.6) and under["ece"] == pytest.approx(0.6)
    # a probability of exactly 1 counts in the top band
    assert expected_calibration_error(_three_class_probs([1.0, 1.0]), np.array([0, 1]))["ece"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="probs must be"):
        expected_calibration_error(np.ones((2, 3)) / 3, np.array([0]))


def test_temperature_scaling_recovers_a_known_over_confidence():
    from fer_utils.evaluate import apply_temperature, expected_calibration_error, fit_temperature

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1.5, (6000, 7))
    true_probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.array([rng.choice(7, p=p) for p in true_probs])
    over = apply_temperature(true_probs, 0.5)  # the same logits doubled: over-confident
    assert over.argmax(1).tolist() == true_probs.argmax(1).tolist()
    np.testing.assert_allclose(over.sum(1), 1, atol=1e-9)
    t = fit_temperature(over, y)
    assert t == pytest.approx(2.0, rel=0.1)
    before, after = expected_calibration_error(over, y), expected_calibration_error(apply_temperature(over, t), y)
    assert before["overconfidence"] > 0.1 and after["ece"] < 0.03
    with pytest.raises(ValueError, match="must be positive"):
        apply_temperature(over, 0)
    with pytest.raises(ValueError, match="probs must be"):
        fit_temperature(over, y[:10])


def test_the_floor_rule_is_one_rule():
    from fer_utils.evaluate import NEAR_FLOOR_MARGIN, majority_floor, near_floor

    labels = np.array([3] * 25 + [6] * 17 + [0] * 58)  # angry is the commonest: 58 of 100
    assert majority_floor(labels) == (pytest.approx(0.58), 0)
    assert NEAR_FLOOR_MARGIN == 0.05
    assert near_floor(0.63, 0.58) and not near_floor(0.631, 0.58) and near_floor(0.40, 0.58)
    assert not near_floor(0.2, float("nan"))  # an unknown floor names nothing


def test_within_noise_reads_two_accuracies_on_the_same_faces():
    from fer_utils.evaluate import accuracy_interval, describe_gap, within_noise

    n = 3589
    lo, hi = accuracy_interval(round(0.669 * n), n)
    assert hi - 0.669 == pytest.approx(0.0154, abs=5e-4)  # about ±1.5 points on 3,589 faces
    assert within_noise(0.683, 0.669, n) and within_noise(0.669, 0.683, n)
    assert not within_noise(0.686, 0.590, n)
    assert describe_gap(0.683, 0.669, n, "with", "without") == (
        "with 0.683 against without 0.669: +1.4 points on 3,589 faces, and their 95 % intervals overlap: within "
        "the noise of one split, as this rough reading goes (McNemar's test on the answers themselves is sharper)")
    assert describe_gap(0.590, 0.686, n, "a", "b").endswith("-9.6 points on 3,589 faces, and their 95 % intervals "
                                                           "do not overlap: more than the noise of one split")
    assert not within_noise(0.60, 0.40, 100) and within_noise(0.55, 0.45, 100)  # the interval widens on fewer faces


def test_intervals_overlap_is_the_one_rule_for_within_noise():
    from fer_utils.beyond import _overlap
    from fer_utils.evaluate import intervals_overlap, within_noise

    assert intervals_overlap((0.60, 0.65), (0.65, 0.70)) and intervals_overlap((0.60, 0.70), (0.62, 0.64))
    assert not intervals_overlap((0.60, 0.64), (0.65, 0.70)) and not intervals_overlap((0.65, 0.70), (0.60, 0.64))
    rows = pd.DataFrame({"ci95_low": [0.60, 0.65], "ci95_high": [0.64, 0.70]})
    assert _overlap(rows.iloc[0], rows.iloc[1]) is False
    # on 3,589 faces, 1.4 points apart overlap and 4 points apart do not
    assert within_noise(0.683, 0.669, 3589) and not within_noise(0.70, 0.66, 3589)
