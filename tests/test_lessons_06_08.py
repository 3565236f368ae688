"""What notebooks 06 (results summary) and 08 (beyond the baseline) lean on: the records a summary reads, the
study's training times as a reader reads them, the reading of 08's steps with the length of each training, its
figures (labels clear of markers, every split named) and the notebooks' Run All defaults."""

from __future__ import annotations

import csv

import matplotlib

matplotlib.use("Agg")

import nbformat
import numpy as np
import pandas as pd
import pytest

import fer_utils.notebook
from fer_utils import plots
from fer_utils.beyond import describe_step_lengths, published_step_accuracy
from fer_utils.compare import records_to_summarise, study_trainings, time_table
from fer_utils.data import repo_root
from fer_utils.evaluate import write_metrics


def steps(accuracies, epochs, minutes, predict=None, half_width=0.016):
    """A steps table as :func:`fer_utils.beyond.steps_table` makes it, with only the columns read here."""
    names = ["0 report's CNN", "1 VGG-style network", "2 + SGD, cosine schedule", "3 + strong augmentation",
             "4 + label smoothing", "5 + ten-crop at test time", "6 trained longer (ten-crop)", "7 ensemble of 3"]
    table = pd.DataFrame({"accuracy": accuracies, "epochs": epochs, "minutes": minutes,
                          "predict_minutes": predict if predict is not None else [0, 0, 0, 0, 0, 0.7, 0.5, 0.7]},
                         index=pd.Index(names[:len(accuracies)], name="step"))
    table["ci95_low"], table["ci95_high"] = table["accuracy"] - half_width, table["accuracy"] + half_width
    table["cumulative_minutes"] = table["minutes"].cumsum()
    return table


#: The published run's steps (notebook 08's committed table): every short step below the start, step 6 far above.
PUBLISHED = dict(accuracies=[0.668, 0.619, 0.614, 0.590, 0.587, 0.595, 0.687, 0.660],
                 epochs=[30, 8, 8, 8, 8, 8, 130, np.nan], minutes=[103.4, 24.6, 25.3, 22.5, 19.6, 0.7, 302.0, 0.7])


def test_the_steps_are_read_with_the_length_of_each_training():
    lines = describe_step_lengths(steps(**PUBLISHED), majority_share=0.25).splitlines()
    assert lines[0] == "Steps 1, 2, 3, 4 trained 8 epochs each; step 0 (the starting point) 30; step 6 130 epochs."
    assert lines[1].startswith("At 8 epochs every one of them ends below step 0's 0.668 on PublicTest (0.587 to 0.619), "
                               "and 3 of the 3 changes from one short step to the next lie within the noise of one split")
    assert "the table does not show that these changes hurt: it shows that after so few epochs they had not paid off yet" \
        in lines[1]
    assert lines[2] == ("Step 6, the recipe trained 130 epochs (16 times as many) reaches 0.687 against step 5's 0.595 "
                        "(+9.2 points, more than the noise of one split), above step 0's 0.668 (their intervals "
                        "overlap). Length is what this recipe needed.")
    assert len(lines) == 3  # nothing near the floor of 0.25


def test_near_chance_steps_are_no_finding_and_the_shipped_headline_says_so():
    small = steps(accuracies=[0.62, 0.27, 0.26, 0.25, 0.26, 0.27, 0.69, 0.5],
                  epochs=[30, 8, 8, 8, 8, 8, 130, np.nan], minutes=[100, 2, 2, 2, 2, 0.1, 300, 0.1], half_width=0.05)
    lines = describe_step_lengths(small, majority_share=0.247,
                                  long_note="Its model trained on 28,709 Training faces, the steps here on 2,297.").splitlines()
    assert lines[1] == ("At 8 epochs on this run's data every one of them is near the floor, so the table cannot say what "
                        "any change does; read the published run's figures for the steps.")
    assert lines[2].endswith("Length is what this recipe needed. Its model trained on 28,709 Training faces, the steps "
                             "here on 2,297.")
    assert lines[3] == ("Near the floor on this PublicTest (always answering its commonest emotion scores 0.247): step 1 "
                        "(0.270), step 2 (0.260), step 3 (0.250), step 4 (0.260), step 5 (0.270). A step near the floor is "
                        "no finding: read the published run's figures for it.")
    mixed = steps(accuracies=[0.30, 0.35, 0.28], epochs=[2, 1, 1], minutes=[1, 1, 1], predict=[0, 0, 0])
    assert describe_step_lengths(mixed).splitlines()[1].startswith("At 1 epoch 1 of them end above step 0's 0.300")
    assert describe_step_lengths(mixed.iloc[:1]) == "Too few steps to read."


def test_published_step_accuracy_reads_each_steps_history(tmp_path, monkeypatch):
    records = tmp_path / "results" / "reference"
    records.mkdir(parents=True)
    with open(records / "beyond_vgg_history.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows([["epoch", "val_accuracy"], [0, 0.5], [1, 0.62], [2, 0.61]])
    monkeypatch.setattr(fer_utils.notebook, "published_records", lambda: ("reference", records))
    got = published_step_accuracy({"1 VGG-style network": "beyond_vgg", "2 + SGD": "beyond_sgd"})
    assert got["1 VGG-style network"] == pytest.approx(0.62) and np.isnan(got["2 + SGD"])


def test_a_summary_reads_its_run_else_the_published_records(tmp_path, monkeypatch):
    records = tmp_path / "results" / "reference"
    (records / "metrics").mkdir(parents=True)
    monkeypatch.setattr(fer_utils.notebook, "published_records", lambda: ("reference", records))
    run = tmp_path / "runs" / "lab"
    folder, note = records_to_summarise(run)
    assert folder == records
    assert note.startswith("results: the published reference run's records (") and note.endswith(") has none yet")
    write_metrics(run / "metrics" / "baseline.json", {"accuracy": 0.4}, {"epochs": 1})
    assert records_to_summarise(run)[0] == run
    assert records_to_summarise(run, ["beyond"])[0] == records  # none of the experiments asked for
    monkeypatch.setattr(fer_utils.notebook, "published_records", lambda: None)
    assert records_to_summarise(tmp_path / "empty")[1].endswith("and no published run to read instead")


def test_training_times_leave_exercises_out_and_read_as_durations():
    times = pd.DataFrame({"notebook": ["01", "02", "08"], "epochs": [30, 3, 130],
                          "fastest_epoch_seconds": [183.0, 43.5, 96.3], "hours": [1.72, 0.05, 5.02],
                          "hours_at_fastest": [1.52, 0.04, 3.48], "hours_to_best": [1.65, np.nan, 4.36],
                          "finished": [True, True, True]},
                         index=pd.Index(["baseline", "exercise_undersample_twice", "beyond"], name="training"))
    study = study_trainings(times)
    assert list(study.index) == ["baseline", "beyond"]
    shown = time_table(study)
    assert shown.loc["baseline"].tolist() == ["01", 30, "3 min", "1 h 43 min", "1 h 31 min", "1 h 39 min"]
    assert shown.loc["beyond", "time"] == "5 h 01 min" and shown.loc["beyond", "fastest_epoch"] == "2 min"
    assert time_table(times).loc["exercise_undersample_twice", "to_kept_epoch"] == "–"


def test_accuracy_vs_report_tells_our_values_from_the_reports_and_keeps_the_legend_outside(tmp_path):
    table = pd.DataFrame({"accuracy": [0.670, 0.638], "ci95_low": [0.654, 0.622], "ci95_high": [0.685, 0.654],
                          "report_accuracy": [0.65, 0.70]}, index=["baseline", "augment_report"])
    fig = plots.accuracy_vs_report(table)
    ax = fig.axes[0]
    values = {t.get_text(): (t.get_position()[0], t.get_color()) for t in ax.texts}
    # ours at the foot of its bar, far from every marker; the report's in red, past its marker and our interval
    assert values["0.670"] == (0.01, "white") and values["0.638"] == (0.01, "white")
    assert values["0.65"] == (pytest.approx(0.705), "tab:red") and values["0.70"] == (pytest.approx(0.72), "tab:red")
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.y1 < ax.get_window_extent().y0  # under the axes, clear of every bar
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "this study, on PrivateTest (95 % interval)" in labels
    assert "source report, on its own held-out split (rounded)" in labels
    plots.save_and_show(fig, tmp_path / "acc.png", show=False)


def test_accuracy_vs_cost_names_the_split_of_every_point_and_landmark(tmp_path):
    table = steps(**PUBLISHED)
    landmarks = {"the report's baseline": (0.65, "the report's own held-out split"),
                 "the 2013 challenge's winner (Tang)": (0.712, "PrivateTest")}
    final = {"step": "6 trained longer (ten-crop)", "accuracy": 0.705, "ci95": (0.690, 0.719), "split": "PrivateTest"}
    fig = plots.accuracy_vs_cost(table, landmarks=landmarks, final=final)
    top, bottom = fig.axes
    assert top.get_legend() is None and len(fig.legends) == 1  # one legend, outside the axes
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["the report's baseline: 0.650, on the report's own held-out split",
                      "the 2013 challenge's winner (Tang): 0.712, on PrivateTest",
                      "each step, on PublicTest (95 % interval)",
                      "6 trained longer (ten-crop), on PrivateTest: 0.705 (95 % interval)"]
    fig.canvas.draw()
    assert fig.legends[0].get_window_extent().y1 < bottom.get_window_extent().y0
    costs = [t.get_text() for t in bottom.texts]
    assert costs[0] == "1 h 43 min\n30 epochs" and costs[1] == "25 min\n8 epochs" and costs[5] == "42 s"
    assert [t.get_text() for t in bottom.get_xticklabels()][6] == "6 trained\nlonger (ten-\ncrop)"
    plots.save_and_show(fig, tmp_path / "cost.png", show=False)


def _parameters(name: str) -> dict:
    nb = nbformat.read(repo_root() / "notebooks" / f"{name}.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    values: dict = {}
    exec(cell.source, {}, values)  # literals only
    return values


def test_notebook_08_reads_the_shipped_headline_model_by_default():
    assert _parameters("08_beyond_the_baseline")["epochs_final"] == 0
    source = "\n".join(c.source for c in nbformat.read(repo_root() / "notebooks" / "08_beyond_the_baseline.ipynb",
                                                     as_version=4).cells)
    assert "headline_model(run)" in source and 'model_source(run, "baseline")' in source
    assert "beside_published(run, " in source and "describe_step_lengths(" in source
    summary = "\n".join(c.source for c in nbformat.read(repo_root() / "notebooks" / "06_results_summary.ipynb",
                                                      as_version=4).cells)
    assert "records_to_summarise(run)" in summary and "beside_published(run, " in summary


@pytest.mark.skipif(not (repo_root() / "models" / "beyond.keras").exists(), reason="no shipped headline model")
def test_headline_model_falls_back_on_the_shipped_one(tmp_path):
    from fer_utils.beyond import headline_model

    headline = headline_model(tmp_path / "runs" / "lab")
    assert "as shipped with the study (models/beyond.keras" in headline.note
    assert headline.epochs_run == len(headline.history["val_accuracy"]) and 1 <= headline.best_epoch <= headline.epochs_run
    assert headline.train_images and headline.publictest_n and headline.train_seconds > 0
    assert headline.model.output_shape == (None, 7)
