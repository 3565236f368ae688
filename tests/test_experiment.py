"""fer_utils.experiment: saved outputs, the comparison table, McNemar, and the computed prose."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fer_utils.evaluate import classification_metrics, mcnemar, write_metrics
from fer_utils.experiment import compare, describe_comparison, per_class_recall


def test_mcnemar_exact_values():
    y = np.zeros(20, int)
    a = np.zeros(20, int)
    b = a.copy()
    b[:6] = 1  # B wrong on 6 images A gets right; no reverse cases
    r = mcnemar(y, a, b)
    assert (r["a_only"], r["b_only"]) == (6, 0)
    assert r["p_value"] == pytest.approx(2 * 0.5**6)  # exact two-sided binomial
    assert mcnemar(y, a, a)["p_value"] == 1.0
    with pytest.raises(ValueError):
        mcnemar(y, a, b[:5])


def fake_experiment(run, name, y_true, y_pred, ids):
    m = classification_metrics(y_true, y_pred)
    write_metrics(run / "metrics" / f"{name}.json", m,
                  {"profile": "t", "epochs": 1, "wall_seconds": 1.0, "images_per_second": 10.0,
                   "data_counts": {"train_images": 100}})
    (run / "predictions").mkdir(parents=True, exist_ok=True)
    np.savez(run / "predictions" / f"{name}.npz", ids=ids, y_true=y_true, y_pred=y_pred)


def test_compare_table_and_prose(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, 300)
    ids = np.array([f"PrivateTest_{i}" for i in range(300)])
    base = np.where(rng.random(300) < 0.6, y, 3)  # a happy-heavy model
    fair = np.where(rng.random(300) < 0.5, y, rng.integers(0, 7, 300))
    fake_experiment(tmp_path, "baseline", y, base, ids)
    fake_experiment(tmp_path, "oversample", y, fair, ids)
    table = compare(tmp_path, ["baseline", "oversample", "missing"])
    assert list(table.index) == ["baseline", "oversample"]
    assert table.loc["baseline", "accuracy"] == pytest.approx(np.mean(base == y))
    assert np.isnan(table.loc["baseline", "mcnemar_p_vs_baseline"])
    assert table.loc["oversample", "mcnemar_p_vs_baseline"] == pytest.approx(mcnemar(y, base, fair)["p_value"])
    recall = per_class_recall(tmp_path, ["baseline", "oversample"])
    assert recall.shape == (7, 2) and recall.index[1] == "disgust"
    text = describe_comparison(table, recall)
    delta = table.loc["oversample", "accuracy"] - table.loc["baseline", "accuracy"]
    assert f"oversample: accuracy {delta:+.3f}" in text


def test_compare_refuses_different_test_images(tmp_path):
    y = np.arange(7).repeat(3)
    fake_experiment(tmp_path, "baseline", y, y, np.array([f"a{i}" for i in range(21)]))
    fake_experiment(tmp_path, "other", y, y, np.array([f"b{i}" for i in range(21)]))
    with pytest.raises(ValueError, match="other was reported on other images"):
        compare(tmp_path, ["baseline", "other"])
    assert describe_comparison(pd.DataFrame(), pd.DataFrame()).startswith("No baseline")
