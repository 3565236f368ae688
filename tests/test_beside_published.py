"""fer_utils.compare.beside_published and describe_beside_published: a run set beside the published run,
and the line that says which numbers the conclusions rest on. Tiny metrics files in tmp folders."""

from __future__ import annotations

import numpy as np

import pytest

import fer_utils.notebook
from fer_utils.compare import beside_published, describe_beside_published, show_beside_published
from fer_utils.data import EMOTIONS
from fer_utils.evaluate import NEAR_FLOOR_MARGIN, write_metrics

#: PrivateTest supports of a full run (happy commonest: 879 of 3,589) and of an 8 % sample (71 of 287).
FULL = {"angry": 491, "disgust": 55, "fear": 528, "happy": 879, "sad": 594, "surprise": 416, "neutral": 626}
SAMPLE = {"angry": 39, "disgust": 4, "fear": 42, "happy": 71, "sad": 48, "surprise": 33, "neutral": 50}


def write(folder, name, accuracy, *, train_images, epochs, support=FULL, macro_f1=None):
    """A metrics file as save_experiment writes it, with only what beside_published reads."""
    per_class = {e: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": support[e]} for e in EMOTIONS}
    metrics = {"n": sum(support.values()), "accuracy": accuracy, "accuracy_ci95": [accuracy - 0.02, accuracy + 0.02],
               "macro_f1": accuracy - 0.01 if macro_f1 is None else macro_f1, "per_class": per_class}
    provenance = {"experiment": name, "epochs": epochs, "data_counts": {"train_images": train_images}}
    write_metrics(folder / "metrics" / f"{name}.json", metrics, provenance)


@pytest.fixture
def published(tmp_path, monkeypatch):
    """A published run's records (baseline 0.670 after 30 epochs, beyond 0.705 after 130, full data)."""
    records = tmp_path / "results" / "reference"
    write(records, "baseline", 0.66955, train_images=28709, epochs=30)
    write(records, "beyond", 0.7047, train_images=28709, epochs=130)
    monkeypatch.setattr(fer_utils.notebook, "published_records", lambda: ("reference", records))
    return records


def test_an_empty_run_points_at_the_published_numbers(tmp_path, published):
    table = beside_published(tmp_path / "runs" / "lab", ["baseline", "beyond", "undersample"])
    assert list(table.index) == ["baseline", "beyond"]  # an experiment neither run has is left out
    assert table["this_accuracy"].isna().all()
    assert table.loc["beyond", "published_epochs"] == 130 and table.loc["beyond", "published_test_faces"] == 3589
    # the floor comes from the published faces where this run has none: 879 happy of 3,589
    assert table.loc["baseline", "majority_share"] == pytest.approx(879 / 3589)
    assert describe_beside_published(table) == (
        "This run has no results for baseline, beyond yet: the published run's numbers (published_* columns) are "
        "the ones to read: baseline 0.670, beyond 0.705 on PrivateTest.")


def test_the_published_run_itself_is_its_own_finding(published):
    table = beside_published(published, ["baseline", "beyond"])
    assert (table["this_accuracy"] == table["published_accuracy"]).all()
    assert describe_beside_published(table) == "This run is the published run: its numbers are the study's findings."
    # printed alone: the table's two halves would only repeat each other
    assert show_beside_published(table) == describe_beside_published(table)


def test_another_run_is_printed_with_its_table(tmp_path, published):
    run = tmp_path / "runs" / "lab"
    write(run, "baseline", 0.378, train_images=2297, epochs=20, support=SAMPLE)
    table = beside_published(run, ["baseline", "beyond"])
    shown = show_beside_published(table, columns=["this_accuracy", "published_accuracy"])
    lines = shown.splitlines()
    assert lines[0].split() == ["this_accuracy", "published_accuracy"] and lines[2].split() == ["baseline", "0.378", "0.670"]
    assert shown.endswith(describe_beside_published(table))
    flipped = show_beside_published(table, transpose=True).splitlines()
    assert flipped[0].split() == ["experiment", "baseline", "beyond"]


def test_a_lab_run_names_its_size_its_near_chance_models_and_what_it_lacks(tmp_path, published):
    run = tmp_path / "runs" / "lab"
    write(run, "baseline", 0.378, train_images=2297, epochs=20, support=SAMPLE)
    write(run, "undersample", 0.268, train_images=245, epochs=100, support=SAMPLE)  # not published: no side to read
    write(run, "oversample", 0.055, train_images=4040, epochs=3, support=SAMPLE)
    table = beside_published(run, ["baseline", "undersample", "oversample", "beyond"])
    assert table.loc["baseline", "majority_share"] == pytest.approx(71 / 287)  # this run's own faces
    assert np.isnan(table.loc["undersample", "published_accuracy"])
    lines = describe_beside_published(table).splitlines()
    assert lines[0] == (
        "This run is not the published run: baseline trained here on 2,297 Training faces for 20 epochs and was "
        "scored on 287 PrivateTest faces; in the published run on 28,709 faces for 30 epochs, scored on 3,589. "
        "This run's numbers show that the code runs and how each method behaves at its size; the conclusions rest "
        "on the published run's: baseline 0.670, beyond 0.705.")
    # 0.268 is within 5 points of 71/287 = 0.247; the baseline's 0.378 is not
    assert lines[1] == ("undersample: 0.268 here is no more than 5 points above the 0.247 that always answering the "
                        "commonest emotion scores: near the floor, no finding.")
    assert lines[2] == ("oversample: 0.055 here is below the 0.247 that always answering the commonest emotion "
                        "scores: no finding.")
    assert lines[3] == "Not in this run: beyond (published: 0.705)."
    assert len(lines) == 4 and NEAR_FLOOR_MARGIN == 0.05


def test_a_run_as_large_as_the_published_one_supports_the_conclusions(tmp_path, published):
    run = tmp_path / "runs" / "gpu"
    write(run, "baseline", 0.675, train_images=28709, epochs=100)
    write(run, "beyond", 0.712, train_images=28709, epochs=300)
    assert describe_beside_published(beside_published(run, ["baseline", "beyond"])) == (
        "This run trained on as many Training faces for as many epochs as the published run, and was scored on as "
        "many PrivateTest faces: its numbers support the conclusions as well as the published ones do.")


def test_without_a_published_run_or_any_result(tmp_path, monkeypatch):
    monkeypatch.setattr(fer_utils.notebook, "published_records", lambda: None)
    run = tmp_path / "runs" / "lab"
    assert beside_published(run, ["baseline"]).empty
    assert describe_beside_published(beside_published(run, ["baseline"])) == (
        "Neither this run nor the published run has results for these experiments yet.")
    write(run, "baseline", 0.378, train_images=2297, epochs=20, support=SAMPLE)
    table = beside_published(run, ["baseline"])
    assert np.isnan(table.loc["baseline", "published_accuracy"])
    assert describe_beside_published(table).startswith("No published run to set this run beside")
