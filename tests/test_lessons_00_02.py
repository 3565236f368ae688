"""The lessons of notebooks 00-02: the reviewed faces the figures show, and the sentences that read a result
against the source report's figure."""

from __future__ import annotations

import json

import nbformat
import numpy as np
import pandas as pd
import pytest

from fer_utils import plots
from fer_utils.compare import against_report_text, describe_against_report_figure, supporting_records
from fer_utils.data import (CONFLICTING_EXAMPLE_ROWS, EMOTIONS, EXAMPLE_ROWS, SPLITS, FerData, audit,
                            conflicting_faces, csv_rows, describe_conflicting, describe_examples,
                            repo_root, reviewed_examples, sample_fraction)
from fer_utils.evaluate import write_metrics
from fer_utils.verify import Fingerprint, default_fingerprint


def faces(n: int, seed: int = 0) -> np.ndarray:
    """``n`` distinct random 48x48 images (real-looking spread of grey levels)."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 48, 48, 1), dtype=np.uint8)


def fer(images, labels, splits, ids) -> FerData:
    return FerData(np.asarray(images), np.asarray(labels, dtype=np.int64), np.asarray(splits, dtype=np.int8),
                   np.asarray(ids))


# --------------------------------------------------------------------------- csv rows


def test_csv_rows_by_name_then_by_pixels():
    images = faces(5)
    fp = Fingerprint.from_images(images[:4], labels=[0, 1, 2, 3], splits=[0, 0, 1, 2], csv_row=[10, 11, 12, 13],
                                 name=[100, 101, 200, 300])
    data = fer(images[[0, 2, 3, 1, 4]], [0, 2, 3, 1, 4], [0, 1, 2, 0, 0],
               ["Training_100", "PublicTest_200", "csv-row-13", "train/1/whatever", "Training_999"])
    # by Kaggle name, by csv name, by pixels (an unknown name), and -1 for an image FER-2013 does not hold
    assert csv_rows(data, fp).tolist() == [10, 12, 13, 11, -1]


def test_csv_rows_leaves_duplicates_it_cannot_tell_apart():
    image = faces(1)
    fp = Fingerprint.from_images(np.concatenate([image, image]), labels=[0, 1], splits=[0, 0], csv_row=[5, 6],
                                 name=[1, 2])
    assert csv_rows(fer(image, [0], [0], ["elsewhere/a"]), fp).tolist() == [-1]       # same pixels, two rows
    assert csv_rows(fer(image, [1], [0], ["Training_2"]), fp).tolist() == [6]         # its name tells


# --------------------------------------------------------------------------- reviewed example faces


def test_reviewed_examples_keeps_the_list_order_and_skips_what_the_data_lacks():
    rows = {"angry": (7, 3, 5, 9), "happy": (4,)}
    data = fer(faces(6), [0, 0, 0, 3, 0, 1], [0, 0, 0, 0, 1, 0],
               [f"csv-row-{r}" for r in (3, 5, 7, 4, 9, 8)])
    chosen = reviewed_examples(data, "Training", per_class=2, rows=rows)
    assert chosen[0].tolist() == [2, 0]            # rows 7 then 3, in the list's order, at most 2
    assert chosen[3].tolist() == [3]
    assert chosen[1].tolist() == []                # disgust: not listed, so nothing (row 8 is not reviewed)
    public = reviewed_examples(data, "PublicTest", per_class=8, rows=rows)
    assert public[0].tolist() == [4]               # row 9 is a PublicTest face here
    relabelled = fer(data.images, [1, 0, 0, 3, 0, 1], data.splits, data.ids)
    assert reviewed_examples(relabelled, "Training", per_class=8, rows=rows)[0].tolist() == [2, 1]
    with pytest.raises(ValueError, match="split"):
        reviewed_examples(data, "Validation")


def test_describe_examples_names_the_short_rows():
    full = {label: np.arange(3) for label in range(len(EMOTIONS))}
    assert describe_examples(full, 3, "Training").startswith("The 21 Training faces come from the reviewed list")
    short = {**full, 1: np.arange(1), 5: np.arange(0)}
    said = describe_examples(short, 3, "PublicTest")
    assert said.startswith("16 of the grid's 21 PublicTest faces") and "disgust 1, surprise 0" in said


def test_example_rows_are_reviewed_faces_of_their_split_and_emotion():
    """Every listed row is a face of the split and emotion it is listed under, listed once, in no duplicate
    group, and each emotion of each grid has at least 8 of them (the notebook's grid)."""
    fp = default_fingerprint()
    at = {int(r): j for j, r in enumerate(fp.csv_row.tolist())}
    counts = pd.Series(fp.decoded_hash).value_counts()
    seen = set()
    for split, table in EXAMPLE_ROWS.items():
        assert set(table) == set(EMOTIONS)
        for emotion, rows in table.items():
            assert len(rows) >= 8, (split, emotion)
            for row in rows:
                j = at[row]
                assert (SPLITS[fp.usage[j]], EMOTIONS[fp.emotion[j]]) == (split, emotion), row
                assert counts[fp.decoded_hash[j]] == 1, f"row {row} is in a duplicate group"
                assert row not in seen
                seen.add(row)


def test_example_grid_draws_the_given_faces_in_order(tree, tmp_path):
    from fer_utils.data import load_fer2013

    data = load_fer2013(tree, cache=False, verify="off")
    chosen = {label: np.flatnonzero(data.labels == label)[:2][::-1] for label in range(len(EMOTIONS))}
    chosen[1] = np.array([], dtype=np.int64)
    fig = plots.example_grid(data, per_class=3, indices=chosen, title="Reviewed faces")
    assert fig._suptitle.get_text() == "Reviewed faces"
    drawn = [len(ax.images) for ax in fig.axes]
    assert sum(drawn) == 12 and drawn[3:6] == [0, 0, 0]           # disgust's row is empty ...
    assert fig.axes[3].get_ylabel() == "disgust"                   # ... and still labelled
    plots.save_and_show(fig, tmp_path / "grid.png")


# --------------------------------------------------------------------------- conflicting labels


def conflicting_data():
    """Two groups of identical images with conflicting labels (rows 20-22 and 30-31) and one without."""
    a, b, c = faces(3, seed=1)
    images = np.stack([a, a, a, b, b, c, c])
    fp = Fingerprint.from_images(images, labels=[3, 5, 5, 0, 4, 2, 2], splits=[0, 1, 2, 0, 0, 0, 0],
                                 csv_row=[20, 21, 22, 30, 31, 40, 41])
    data = fer(images, [5, 3, 5, 0, 4, 2, 2], [2, 0, 1, 0, 0, 0, 0], [f"x/{i}" for i in range(7)])
    return data, fp


def test_conflicting_faces_picks_the_first_listed_group_present():
    data, fp = conflicting_data()
    findings = audit(data)
    assert findings["conflicting_groups"] == 2
    group = conflicting_faces(data, findings, listed=(99, 22, 30), fingerprint=fp)
    assert group == [1, 2, 0]                                      # happy first, then surprise by split
    assert conflicting_faces(data, findings, listed=(31,), fingerprint=fp) == [3, 4]
    assert conflicting_faces(data, findings, listed=(40,), fingerprint=fp) == []   # no conflict there
    assert conflicting_faces(data, findings, listed=(), fingerprint=fp) == []


def test_describe_conflicting_counts_the_labels_any_answer_contradicts():
    data, fp = conflicting_data()
    said = describe_conflicting(data, conflicting_faces(data, listed=(20,), fingerprint=fp))
    assert said.startswith("The 3 copies of this one face (1 in Training, 1 in PublicTest, 1 in PrivateTest) "
                           "are labelled surprise 2 times and happy 1 time.")
    assert "at least 1 of the 3 labels call the answer wrong" in said
    assert describe_conflicting(data, []).startswith("This data holds none of the reviewed groups")


def test_listed_conflicting_groups_are_conflicting_faces_of_fer2013():
    fp = default_fingerprint()
    at = {int(r): j for j, r in enumerate(fp.csv_row.tolist())}
    for row in CONFLICTING_EXAMPLE_ROWS:
        j = at[row]
        copies = np.flatnonzero(fp.decoded_hash == fp.decoded_hash[j])
        assert len(copies) >= 2 and len(set(fp.emotion[copies].tolist())) >= 2, row
        assert float(fp.std[j]) >= 20, f"row {row} is near-uniform"


# --------------------------------------------------------------------------- a result against the report's figure


def metrics(accuracy, ci, balanced, recall) -> dict:
    return {"n": 3589, "accuracy": accuracy, "accuracy_ci95": list(ci), "macro_f1": accuracy - 0.01,
            "balanced_accuracy": balanced,
            "per_class": {e: {"recall": r, "support": 100 + i} for i, (e, r) in enumerate(zip(EMOTIONS, recall))}}


BASELINE = metrics(0.670, (0.654, 0.685), 0.652, (0.55, 0.64, 0.46, 0.86, 0.56, 0.81, 0.70))
UNDER = metrics(0.470, (0.454, 0.487), 0.508, (0.29, 0.84, 0.35, 0.65, 0.38, 0.64, 0.40))


def test_against_report_text_reads_level_interval_and_reference():
    said = against_report_text("undersample", UNDER, "the published run", "baseline", BASELINE).splitlines()
    assert said[0] == ("Random undersampling, in the published run: PrivateTest accuracy 0.470 (95 % interval "
                       "0.454-0.487), against the report's 40 %: +7.0 points, above the report's, whose figure lies "
                       "below the interval.")
    assert said[1].startswith("The baseline CNN scored 0.670 in the same run: random undersampling is 20.0 points "
                              "lower in accuracy, and 14.4 points lower in balanced accuracy (0.508 against 0.652)")
    assert said[1].endswith("; as in the report, which found it lower (40 % against 65 %).")
    assert said[2] == ("Recall per emotion, against the baseline CNN: rose for disgust (0.640 → 0.840); fell for the "
                       "6 others, most for neutral (0.700 → 0.400).")


def test_against_report_text_verdicts_and_best_worst_emotions():
    inside = metrics(0.655, (0.640, 0.671), 0.64, (0.5, 0.6, 0.4, 0.9, 0.5, 0.8, 0.7))
    said = against_report_text("baseline", inside, "this run").splitlines()
    assert said[0] == ("Baseline CNN, in this run: PrivateTest accuracy 0.655 (95 % interval 0.640-0.671), against "
                       "the report's 65 %: +0.5 points, the report's figure lies inside the interval: reproduced.")
    assert said[1] == ("Recall per emotion: highest for happy (0.900) and surprise (0.800), lowest for sad (0.500) "
                       "and fear (0.400).")
    below = metrics(0.378, (0.33, 0.43), 0.3, (0.3,) * 7)
    assert "below the report's, whose figure lies above the interval" in against_report_text("baseline", below, "x")
    assert "the report gives no figure for it" in against_report_text("class_weights", below, "x")
    # without the faces Training also holds: the baseline's +2.0 points over the report rest on them
    seen = {**BASELINE, "without_seen_in_training": {"n": 3301, "left_out": 288, "accuracy": 0.645,
                                                     "accuracy_ci95": [0.628, 0.661]}}
    said = against_report_text("baseline", seen, "this run").splitlines()
    assert said[0].endswith("+2.0 points, above the report's, whose figure lies below the interval.")
    assert said[1] == ("Without the 288 PrivateTest faces that Training also holds (a model may recognise those from "
                       "memory): 0.645 (0.628-0.661); the report's 65 % lies inside that interval.")


def beside_row(this, published) -> dict:
    keys = ("accuracy", "macro_f1", "train_images", "epochs", "test_faces")
    row = {f"this_{k}": v for k, v in zip(keys, this)}
    row.update({f"published_{k}": v for k, v in zip(keys, published)})
    return row


def test_supporting_records_prefer_this_run_only_at_the_published_size(tmp_path, monkeypatch):
    import fer_utils.notebook as notebook

    published = tmp_path / "published"
    monkeypatch.setattr(notebook, "published_records", lambda: ("reference", published))
    full = (0.67, 0.66, 28709, 30, 3589)
    table = pd.DataFrame({"baseline": beside_row(full, full),
                          "undersample": beside_row((0.2, 0.1, 245, 100, 287), (0.47, 0.44, 3052, 80, 3589)),
                          "oversample": beside_row((0.6, 0.5, 28709, 30, 3589), (np.nan,) * 5)}).T
    assert supporting_records(tmp_path / "run", table, "baseline") == (tmp_path / "run", "this run")
    assert supporting_records(tmp_path / "run", table, "undersample") == (published, "the published run")
    assert supporting_records(tmp_path / "run", table, "oversample") == (tmp_path / "run", "this run")
    assert supporting_records(tmp_path / "run", table, "augment_face") == (tmp_path / "run", "this run")
    monkeypatch.setattr(notebook, "published_records", lambda: None)
    assert supporting_records(tmp_path / "run", table, "undersample") == (tmp_path / "run", "this run")


def test_describe_against_report_figure_reads_the_supporting_records(tmp_path, monkeypatch):
    import fer_utils.notebook as notebook

    published = tmp_path / "published"
    for name, m in (("baseline", BASELINE), ("undersample", UNDER)):
        write_metrics(published / "metrics" / f"{name}.json", m, {"epochs": 30})
    monkeypatch.setattr(notebook, "published_records", lambda: ("reference", published))
    run = tmp_path / "lab"
    write_metrics(run / "metrics" / "undersample.json", metrics(0.2, (0.15, 0.25), 0.18, (0.1,) * 7), {})
    table = pd.DataFrame({"undersample": beside_row((0.2, 0.1, 245, 100, 287), (0.47, 0.44, 3052, 80, 3589))}).T
    said = describe_against_report_figure(run, "undersample", table, reference="baseline")
    assert said.startswith("Random undersampling, in the published run: PrivateTest accuracy 0.470")
    assert "The baseline CNN scored 0.670 in the same run" in said
    assert describe_against_report_figure(tmp_path / "empty", "oversample", pd.DataFrame()).startswith(
        "No result for random oversampling yet")
    json.dumps(said)  # plain text


# --------------------------------------------------------------------------- on the real data


def test_reviewed_faces_and_conflicting_group_on_the_real_data(real_data):
    for split in ("Training", "PublicTest"):
        chosen = reviewed_examples(real_data.split(split), split)
        assert [len(chosen[label]) for label in range(len(EMOTIONS))] == [8] * 7, split
    lab = sample_fraction(real_data, 0.08, seed=42).split("Training")
    assert [len(v) for v in reviewed_examples(lab, "Training").values()] == [8] * 7
    group = conflicting_faces(real_data)
    assert len(group) == 6 and sorted(EMOTIONS[real_data.labels[i]] for i in group) == ["fear"] * 3 + ["sad"] * 3
    assert (csv_rows(real_data.subset(np.array(group))) >= 0).all()


# --------------------------------------------------------------------------- the notebooks' shape

ROOT = repo_root()


def _notebook(stem: str):
    return nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)


@pytest.mark.parametrize("stem", ["01_baseline_cnn", "02_undersampling"])
def test_results_are_read_beside_the_published_run_and_the_report(stem):
    code = " ".join(c.source for c in _notebook(stem).cells if c.cell_type == "code")
    assert "beside_published(run" in code and "show_beside_published(" in code
    assert "describe_against_report_figure(run" in code


def test_the_blurred_copy_is_told_in_00_only():
    for stem in ("01_baseline_cnn", "02_undersampling"):
        prose = " ".join(c.source for c in _notebook(stem).cells)
        assert "blur" not in prose.lower() and "genuine" not in prose.lower(), stem
    figures = " ".join(c.source for c in _notebook("00_data_exploration").cells if c.cell_type == "code")
    assert "reviewed_examples(" in figures and "conflicting_faces(" in figures
