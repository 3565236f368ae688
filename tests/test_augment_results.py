"""Reading notebook 04's results: the answer to its question, the schedules' lesson, fits and references."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from fer_utils.augment import describe_augmentation
from fer_utils.history import describe_schedules, rate_drops, schedule_summary


def table(rows):
    return pd.DataFrame(rows).set_index("experiment")


def row(name, acc, p=None, f1=0.6, epochs=24, half=0.016):
    return {"experiment": name, "accuracy": acc, "ci95_low": acc - half, "ci95_high": acc + half, "macro_f1": f1,
            "epochs": epochs, "mcnemar_p_vs_baseline": np.nan if p is None else p}


def test_the_answer_follows_the_numbers():
    worse = table([row("baseline", 0.670, f1=0.659, epochs=30), row("augment_report", 0.621, 3.1e-10, 0.550),
                   row("augment_face", 0.640, 0.002, 0.58)])
    text = describe_augmentation(worse, {"baseline": 0.975, "augment_report": 0.661, "augment_face": 0.67},
                                 {"augment_report": "it was still improving."})
    lines = text.splitlines()
    assert lines[0] == ("augment_report: PrivateTest 0.621 (0.605–0.637) against the baseline's 0.670 (0.654–0.686), "
                        "-4.9 points, more than chance on the same faces (McNemar p = 3.1e-10); macro-F1 0.550 against 0.659.")
    assert "So, after 24 epochs, augmentation costs this model accuracy" in text
    assert "0.661 (augment_report), 0.670 (augment_face), against the baseline's 0.975" in text
    assert "augment_report's PublicTest curve: it was still improving." in text
    assert "reached 0.621 after 24 epochs, so this run does not reproduce the report's gain." in text

    better = table([row("baseline", 0.670), row("augment_report", 0.700, 0.001, epochs=60)])
    text = describe_augmentation(better, {"baseline": 0.97, "augment_report": 0.93}, {})
    assert "So, after 60 epochs, augmentation helps this model: augment_report beat the baseline" in text
    assert "fit their own training faces far less" not in text  # within FIT_GAP
    assert "in line with the report." in text

    mixed = table([row("baseline", 0.670), row("augment_face", 0.672, 0.8)])
    assert ("after 24 epochs, no recipe differs from the baseline by more than chance on the same PrivateTest faces"
            in describe_augmentation(mixed, {}, {}))
    assert describe_augmentation(table([row("augment_face", 0.6)]), {}, {}).startswith("The comparison needs the baseline")


def write_history(path, val, lr, acc=None):
    acc = acc or [v + 0.01 for v in val]
    lines = ["epoch,accuracy,learning_rate,loss,val_accuracy,val_loss"]
    lines += [f"{i},{a},{r},1.0,{v},1.0" for i, (a, r, v) in enumerate(zip(acc, lr, val))]
    path.write_text("\n".join(lines) + "\n")


def test_rate_drops_and_schedules(tmp_path):
    plateau_lr = [1e-3] * 4 + [1e-4] * 3 + [1e-5] * 3
    assert rate_drops({"learning_rate": plateau_lr}) == [5, 8]
    cosine_lr = [1e-3 * 0.5 * (1 + math.cos(math.pi * e / 10)) for e in range(1, 11)]
    assert rate_drops({"learning_rate": cosine_lr[:6]}) == []
    write_history(tmp_path / "p.csv", [0.3, 0.4, 0.5, 0.55, 0.58, 0.6, 0.61, 0.62, 0.625, 0.63], plateau_lr)
    write_history(tmp_path / "c.csv", [0.3, 0.45, 0.52, 0.56, 0.6, 0.61, 0.615, 0.62, 0.622, 0.624], cosine_lr)
    for name, acc, fit in (("p", 0.638, None), ("c", 0.621, 0.661)):
        m = {"accuracy": acc, **({"training_fit": {"accuracy": fit, "n": 10}} if fit else {})}
        (tmp_path / f"{name}.json").write_text(json.dumps({"metrics": m, "provenance": {}}))
    p = schedule_summary(tmp_path / "p.csv", tmp_path / "p.json", "plateau rule")
    c = schedule_summary(tmp_path / "c.csv", tmp_path / "c.json", "cosine")
    assert p["rate"] == "cut tenfold at epochs 5 and 8" and c["rate"] == "annealed to zero along a cosine"
    assert (p["epochs"], p["best_epoch"], p["privatetest"]) == (10, 10, 0.638) and math.isnan(p["training_fit"])
    text = describe_schedules({"augment_report": [p, c]})
    assert ("augment_report, cosine: 10 epochs, rate annealed to zero along a cosine; training accuracy 0.634 at the "
            "last epoch (augmented faces), 0.661 on its Training faces as it predicts; best PublicTest 0.624 at "
            "epoch 10; PrivateTest 0.621.") in text
    assert "each ended while still learning" in text
    # a longer training of the same recipe: its gain set against one model's interval, and no cause claimed
    longer, shorter = {**p, "epochs": 40, "privatetest_n": 3589}, {**c, "epochs": 24, "privatetest_n": 3589}
    text = describe_schedules({"augment_report": [longer, shorter]})
    assert ("augment_report: the 40-epoch training scored +1.7 points on PrivateTest against the 24-epoch one, less "
            "than the ±1.6 points of one model's 95 % interval on these faces.") not in text  # 1.7 > 1.59
    assert ("augment_report: the 40-epoch training scored +1.7 points on PrivateTest against the 24-epoch one, more "
            "than the ±1.6 points of one model's 95 % interval on these faces.") in text
    assert text.endswith("differ in length and in schedule at once, so this comparison cannot say which of the two "
                         "made the difference.")
    close = describe_schedules({"augment_face": [{**longer, "privatetest": 0.633}, shorter]})
    assert "+1.2 points on PrivateTest against the 24-epoch one, less than the ±1.6 points" in close
    with pytest.raises(FileNotFoundError, match="no history at missing.csv"):
        schedule_summary(tmp_path / "missing.csv", tmp_path / "p.json", "x")


def tiny_data(n_train=14, n_test=14, seed=0):
    from fer_utils.data import FerData

    rng = np.random.default_rng(seed)
    n = n_train + n_test
    return FerData(images=rng.integers(0, 256, (n, 48, 48, 1), dtype=np.uint8), labels=np.arange(n) % 7,
                   splits=np.array([0] * n_train + [2] * n_test, dtype=np.int8),
                   ids=np.array([f"Training_{i}" for i in range(n_train)] + [f"PrivateTest_{i}" for i in range(n_test)]))


def test_a_run_without_a_baseline_compares_against_the_shipped_one_and_says_so(tmp_path):
    """Notebooks 02-04 run alone in an empty run directory: their reference is the shipped baseline model,
    answering this run's faces, recorded as such; a later call (or a real baseline) is not replaced."""
    from fer_utils.compare import compare
    from fer_utils.evaluate import read_metrics
    from fer_utils.experiments import reference_for_comparison

    data = tiny_data()
    private = data.split("PrivateTest")
    line = reference_for_comparison(tmp_path, private, data)
    assert line.startswith("baseline: the model the study ships (models/baseline.keras), trained by the published "
                           "run on 28,709 Training faces for ")
    payload = read_metrics(tmp_path / "metrics" / "baseline.json")
    assert payload["provenance"]["source"] in line and payload["metrics"]["n"] == len(private)
    assert payload["provenance"]["data_counts"]["train_images"] == 28709
    table = compare(tmp_path, ["baseline"])
    assert table.loc["baseline", "train_images"] == 28709
    before = (tmp_path / "metrics" / "baseline.json").read_text()
    assert reference_for_comparison(tmp_path, private, data) == line  # read back, not scored again
    assert (tmp_path / "metrics" / "baseline.json").read_text() == before
    other = tiny_data(seed=1)  # other faces: scored again on them
    other.ids[-1] = "PrivateTest_99"
    reference_for_comparison(tmp_path, other.split("PrivateTest"), other)
    assert read_metrics(tmp_path / "metrics" / "baseline.json")["metrics"]["n"] == len(private)


def test_fit_on_training_is_the_accuracy_of_the_model_on_those_faces():
    from fer_utils.evaluate import fit_on_training

    class Fixed:  # answers class (first pixel % 7) with certainty
        def predict(self, images, batch_size=256, verbose=0):
            return np.eye(7)[images[:, 0, 0, 0] % 7]

    images = np.zeros((4, 48, 48, 1), dtype=np.uint8)
    images[:, 0, 0, 0] = [0, 1, 2, 3]
    assert fit_on_training(Fixed(), images, np.array([0, 1, 2, 5])) == pytest.approx(0.75)


def test_curves_beside_draws_one_line_per_training_on_two_panels():
    from fer_utils import plots

    fig = plots.curves_beside({"baseline": {"accuracy": [0.3, 0.5, 0.7], "val_accuracy": [0.3, 0.45, 0.5]},
                               "augment_report": {"accuracy": [0.2, 0.3], "val_accuracy": [0.25, 0.35]}}, "t")
    left, right = fig.axes
    assert [len(line.get_xdata()) for line in left.get_lines()] == [3, 2]
    assert [t.get_text() for t in right.get_legend().get_texts()] == ["baseline", "augment_report"]
    assert right.get_title() == "PublicTest accuracy per epoch"
    with pytest.raises(ValueError, match="no training to draw"):
        plots.curves_beside({})


def test_a_near_chance_run_draws_no_conclusion():
    small = table([row("baseline", 0.616, epochs=30), row("augment_report", 0.247, 1e-6, epochs=1)])
    text = describe_augmentation(small, {"baseline": 0.97, "augment_report": 0.25}, {}, floor=0.247)
    assert text.splitlines()[-1] == ("augment_report scored no more than 5 points above the 0.247 that always "
                                     "answering the commonest emotion gets: near the floor, so this run is too small to say "
                                     "whether augmentation helps; read the published run's numbers below.")
    assert "So," not in text


def test_the_plateau_runs_are_set_beside_this_run_only_at_the_same_size(tmp_path):
    from fer_utils.history import schedules_beside

    def folder(name, images, val, lr, layout="run"):
        root = tmp_path / name
        (root / "metrics").mkdir(parents=True)
        history = root / "augment_face" / "history.csv" if layout == "run" else root / "augment_face_history.csv"
        history.parent.mkdir(parents=True, exist_ok=True)
        write_history(history, val, lr)
        (root / "metrics" / "augment_face.json").write_text(json.dumps(
            {"metrics": {"accuracy": max(val)}, "provenance": {"data_counts": {"train_images": images}}}))
        return root

    plateau = folder("plateau", 28709, [0.3, 0.5, 0.6, 0.62], [1e-3, 1e-3, 1e-4, 1e-4], layout="published")
    published = folder("published", 28709, [0.3, 0.5, 0.55, 0.6], [1e-3, 7e-4, 2e-4, 0.0], layout="published")
    small = folder("small", 2297, [0.2, 0.3, 0.3, 0.31], [1e-3, 7e-4, 2e-4, 0.0])
    full = folder("full", 28709, [0.3, 0.5, 0.56, 0.61], [1e-3, 7e-4, 2e-4, 0.0])
    rows = schedules_beside(plateau, small, published, ["augment_face", "augment_report"])
    assert list(rows) == ["augment_face"]  # augment_report has no plateau record
    assert [r["schedule"] for r in rows["augment_face"]] == ["plateau rule", "the published run"]
    assert rows["augment_face"][1]["privatetest"] == 0.6
    rows = schedules_beside(plateau, full, published, ["augment_face"])
    assert [r["schedule"] for r in rows["augment_face"]] == ["plateau rule", "this run"]
    assert rows["augment_face"][0]["rate"] == "cut tenfold at epoch 3"
