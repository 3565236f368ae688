"""Comparing experiments: tables and verdicts across methods, against the source report and a peer.

*The lesson.* One accuracy on 3,589 faces is uncertain by about ±1.6 points (its 95 % interval), so
two methods are compared on the same faces: McNemar's test counts the faces only one of them gets
right and says whether that difference is more than chance. Accuracy alone hides what rebalancing does,
so every table also carries macro-F1, balanced accuracy and per-class recall. Every sentence here is
computed from the run's files, so the text a notebook prints cannot drift from its numbers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .data import EMOTIONS
from .evaluate import NEAR_FLOOR_MARGIN, expected_calibration_error, mcnemar, near_floor, read_metrics
from .experiments import (
    EXPERIMENTS,
    TRAINED_IN,
    Predictions,
    export_model,
    history_file,
    read_model_run,
    read_predictions,
    read_probabilities,
)
from .history import read_history, stopping_verdict


#: The source report's test accuracies (its text gives these, rounded; it has no intervals).
#: Class weights and the face recipe were not in the report.
REPORT_ACCURACY: dict[str, float] = {
    "baseline": 0.65, "undersample": 0.40, "oversample": 0.60, "augment_report": 0.70,
}


def majority_share(metrics: dict) -> float:
    """The accuracy of always answering the commonest emotion of the faces a metrics dict was scored on
    (from its per-class supports); NaN where it keeps none."""
    support = [c.get("support", 0) for c in metrics.get("per_class", {}).values() if isinstance(c, dict)]
    return max(support) / sum(support) if support and sum(support) else np.nan


def _floor_words(majority_share: float) -> str:
    return (f"no more than {NEAR_FLOOR_MARGIN * 100:.0f} points above the {majority_share:.3f} that always "
            "answering the commonest emotion scores")


def mcnemar_on_same_faces(a: Predictions, b: Predictions, name_a: str, name_b: str) -> dict:
    """:func:`fer_utils.evaluate.mcnemar` of two models' answers ``(ids, y_true, y_pred)``, once their
    ids show they answered the same faces in the same order (ValueError otherwise)."""
    if not np.array_equal(np.asarray(a[0]), np.asarray(b[0])):
        raise ValueError(f"{name_b} was reported on other images than {name_a}")
    return mcnemar(a[1], a[2], b[2])


def _read_experiments(run: Path, names: list[str]) -> tuple[list[dict], dict, dict]:
    """Each listed experiment that has a metrics file: its table row, its provenance and its
    PrivateTest predictions ``(ids, y_true, y_pred)``; every file is read once."""
    rows, provs, preds = [], {}, {}
    for name in names:
        if not (run / "metrics" / f"{name}.json").exists():
            continue
        payload, preds[name] = read_model_run(run, name)
        m, p = payload["metrics"], payload["provenance"]
        provs[name] = p
        lo, hi = m["accuracy_ci95"]
        unseen = m.get("without_seen_in_training") or {}
        rows.append({"experiment": name, "accuracy": m["accuracy"], "ci95_low": lo, "ci95_high": hi,
                     "accuracy_unseen": unseen.get("accuracy", np.nan),
                     "macro_f1": m["macro_f1"], "balanced_accuracy": m["balanced_accuracy"],
                     "epochs": p["epochs"], "train_images": p["data_counts"].get("train_images"),
                     "train_seconds": p.get("train_seconds"), "images_per_second": p.get("images_per_second"),
                     "majority_share": majority_share(m)})
    return rows, provs, preds


def _table(rows: list[dict], preds: dict, reference: str) -> pd.DataFrame:
    table = pd.DataFrame(rows).set_index("experiment") if rows else pd.DataFrame()
    if reference in preds:
        pvalues = {}
        for name, answers in preds.items():
            test = mcnemar_on_same_faces(preds[reference], answers, reference, name)
            pvalues[name] = np.nan if name == reference else test["p_value"]
        table[f"mcnemar_p_vs_{reference}"] = pd.Series(pvalues)
    return table


def describe_mcnemar(p_value: float, alpha: float = 0.05) -> str:
    """What McNemar's p-value says about two models' accuracies on the same faces, in words."""
    if p_value < alpha:
        return (f"p = {p_value:.2g}: a split this lopsided between the two is unlikely if they were equally accurate, "
                "so the difference is more than chance")
    return f"p = {p_value:.2g}: a split like this between the two is common when they are equally accurate: within chance"


def compare(run: str | os.PathLike, names: list[str], reference: str = "baseline") -> pd.DataFrame:
    """One row per experiment found in ``run``: PrivateTest accuracy (95 % CI), macro-F1,
    balanced accuracy, McNemar against ``reference``, epochs, training time and images/s, and
    ``majority_share``, the accuracy of always answering the commonest emotion of its PrivateTest faces.

    ``train_seconds`` is the training's own time, summed over every session of a resumed run
    (a metrics file's ``wall_seconds`` counts only the session that wrote it); NaN in files
    written before it was recorded.

    Experiments without a metrics file are left out; the test images of every
    experiment must be the same (checked by id).
    """
    rows, _, preds = _read_experiments(Path(run), names)
    return _table(rows, preds, reference)


#: The figures :func:`beside_published` sets side by side, for this run and the published one.
_BESIDE_KEYS = ("accuracy", "macro_f1", "train_images", "epochs", "test_faces")


def beside_published(run: str | os.PathLike, names: list[str]) -> pd.DataFrame:
    """This run's PrivateTest results beside the published run's, one row per experiment in ``names``
    that either has: accuracy, macro-F1, Training faces, epochs and PrivateTest faces of each
    (``this_*`` and ``published_*``; NaN where one of them lacks the experiment), and
    ``majority_share``, the accuracy of always answering the commonest PrivateTest emotion (of this
    run's faces where it has the experiment, else of the published run's): the floor a model must clear.

    The published run is the one ``results/published.json`` names (:func:`fer_utils.notebook.published_records`);
    a repository without one gives NaN on the published side."""
    from .notebook import published_records

    published = published_records()
    sides = (("this", Path(run)), ("published", published[1] if published else None))
    rows = []
    for name in names:
        row: dict = {"experiment": name}
        for side, folder in sides:
            path = folder / "metrics" / f"{name}.json" if folder is not None else None
            if path is None or not path.exists():
                row.update({f"{side}_{key}": np.nan for key in _BESIDE_KEYS})
                continue
            payload = read_metrics(path)
            m, p = payload["metrics"], payload["provenance"]
            row.update({f"{side}_accuracy": m["accuracy"], f"{side}_macro_f1": m["macro_f1"],
                        f"{side}_train_images": (p.get("data_counts") or {}).get("train_images", np.nan),
                        f"{side}_epochs": p.get("epochs", np.nan), f"{side}_test_faces": m.get("n", np.nan)})
            if "majority_share" not in row or pd.isna(row["majority_share"]):
                row["majority_share"] = majority_share(m)
        if any(pd.notna(row[f"{side}_accuracy"]) for side, _ in sides):
            rows.append(row)
    columns = [f"{side}_{key}" for side, _ in sides for key in _BESIDE_KEYS] + ["majority_share"]
    if not rows:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="experiment"))
    return pd.DataFrame(rows).set_index("experiment").reindex(columns=columns)


def _count(value) -> str:
    return "?" if pd.isna(value) else f"{int(value):,}"


def describe_beside_published(table: pd.DataFrame) -> str:
    """Which numbers support the notebook's conclusions (``table``: :func:`beside_published`).

    This run's, when it is the published run or trained every experiment on as many Training faces for
    as many epochs; else the published run's, said plainly, with this run's size set against it. Every
    accuracy of this run within :data:`NEAR_FLOOR_MARGIN` of the majority-class floor is named as near
    the floor (no finding), and every experiment this run lacks is named with the published figure to read."""
    if table.empty:
        return "Neither this run nor the published run has results for these experiments yet."
    mine = table[table["this_accuracy"].notna()]
    theirs = table[table["published_accuracy"].notna()]
    if theirs.empty:
        return ("No published run to set this run beside: its numbers are the only ones here, read with their "
                "95 % intervals.")
    if mine.empty:
        return ("This run has no results for " + ", ".join(table.index) + " yet: the published run's numbers "
                "(published_* columns) are the ones to read: " + ", ".join(
                    f"{name} {r.published_accuracy:.3f}" for name, r in theirs.iterrows()) + " on PrivateTest.")
    lines = []
    both = mine[mine["published_accuracy"].notna()]
    identical = (len(both) == len(mine) == len(theirs)
                 and np.allclose(both["this_accuracy"], both["published_accuracy"])
                 and (both["this_train_images"] == both["published_train_images"]).all()
                 and (both["this_test_faces"] == both["published_test_faces"]).all())
    if identical:
        return "This run is the published run: its numbers are the study's findings."
    full = len(both) == len(mine) and all(
        r.this_train_images >= r.published_train_images and r.this_epochs >= r.published_epochs
        and r.this_test_faces >= r.published_test_faces for r in both.itertuples())
    if full:
        lines.append("This run trained on as many Training faces for as many epochs as the published run, and was "
                     "scored on as many PrivateTest faces: its numbers support the conclusions as well as the "
                     "published ones do.")
    else:
        smaller = [name for name, row in both.iterrows() if not (
            row.this_train_images >= row.published_train_images and row.this_epochs >= row.published_epochs
            and row.this_test_faces >= row.published_test_faces)]
        first = (smaller or list(both.index) or list(mine.index))[0]
        r = table.loc[first]
        lines.append(
            f"This run is not the published run: {first} trained here on {_count(r.this_train_images)} Training faces "
            f"for {_count(r.this_epochs)} epochs and was scored on {_count(r.this_test_faces)} PrivateTest faces; in "
            f"the published run on {_count(r.published_train_images)} faces for {_count(r.published_epochs)} epochs, "
            f"scored on {_count(r.published_test_faces)}. This run's numbers show that the code runs and how each "
            "method behaves at its size; the conclusions rest on the published run's: "
            + ", ".join(f"{name} {row.published_accuracy:.3f}" for name, row in theirs.iterrows()) + ".")
    for name, r in mine.iterrows():
        if pd.isna(r.majority_share):
            continue
        floor = f"the {r.majority_share:.3f} that always answering the commonest emotion scores"
        if r.this_accuracy < r.majority_share - NEAR_FLOOR_MARGIN:
            lines.append(f"{name}: {r.this_accuracy:.3f} here is below {floor}: no finding.")
        elif near_floor(r.this_accuracy, r.majority_share):
            lines.append(f"{name}: {r.this_accuracy:.3f} here is no more than {NEAR_FLOOR_MARGIN * 100:.0f} points above {floor}: "
                         "near the floor, no finding.")
    missing = theirs.index.difference(mine.index, sort=False)
    if len(missing):
        lines.append("Not in this run: " + ", ".join(
            f"{name} (published: {theirs.loc[name, 'published_accuracy']:.3f})" for name in missing) + ".")
    return "\n".join(lines)


def show_beside_published(table: pd.DataFrame, columns: list[str] | None = None, transpose: bool = False) -> str:
    """What a notebook prints of :func:`beside_published`: the table (only ``columns``, where given; one
    column per experiment with ``transpose``) and :func:`describe_beside_published`'s reading of it; only the
    reading where this run is the published run (the two halves of the table would repeat each other)."""
    reading = describe_beside_published(table)
    if reading.startswith("This run is the published run") or table.empty:
        return reading
    shown = table.reindex(columns=columns) if columns is not None else table
    shown = shown.round(3).T if transpose else shown
    return shown.to_string(float_format="{:.3f}".format) + "\n" + reading


def records_to_summarise(run: str | os.PathLike, names: list[str] | None = None) -> tuple[Path, str]:
    """The folder whose records a summary reads, and one line saying which: ``run`` when it holds a
    metrics file of any experiment in ``names`` (default: :data:`EXPERIMENTS`), else the published run's
    records (:func:`fer_utils.notebook.published_records`), so that a summary opened on a fresh clone
    still has the study's results to read. Nothing is ever written into the published records."""
    from .notebook import published_records, shown

    run = Path(run)
    names = list(EXPERIMENTS) if names is None else names
    if any((run / "metrics" / f"{name}.json").exists() for name in names):
        return run, f"results: this run's ({shown(run)})"
    published = published_records()
    if published is None:
        return run, f"results: none yet in {shown(run)}, and no published run to read instead"
    profile, records = published
    return records, (f"results: the published {profile} run's records ({shown(records)}), since this run "
                     f"({shown(run)}) has none yet")


def calibration_summary(run: str | os.PathLike, names: list[str]) -> pd.DataFrame:
    """How sure of itself each experiment's model is on PrivateTest, from the class probabilities its
    predictions file keeps (:func:`read_probabilities`): its accuracy, its mean top probability, the
    difference (``overconfidence``: above 0 it claims more than it delivers) and its expected
    calibration error (:func:`fer_utils.evaluate.expected_calibration_error`), and ``majority_share``,
    the accuracy of always answering the commonest emotion of the same faces. Experiments without
    a predictions file, or whose file keeps no probabilities, are left out."""
    rows = {}
    for name in names:
        try:
            y_true, probs = read_probabilities(run, name)
        except (FileNotFoundError, ValueError):
            continue
        e = expected_calibration_error(probs, y_true)
        rows[name] = {"accuracy": e["accuracy"], "mean_probability": e["mean_probability"],
                      "overconfidence": e["overconfidence"], "calibration_error": e["ece"],
                      "majority_share": np.bincount(y_true).max() / len(y_true) if len(y_true) else np.nan}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["accuracy", "mean_probability", "overconfidence",
                                                                 "calibration_error", "majority_share"])


def describe_calibration(table: pd.DataFrame) -> str:
    """What :func:`calibration_summary`'s table says: which models claim more than they deliver, by how
    much, and which is the best and the worst calibrated. Models within :data:`NEAR_FLOOR_MARGIN` of
    always answering the commonest emotion (``majority_share``) are named as near the floor and left out of
    the best and the worst: a model that has learned little can look well calibrated by being unsure
    of everything."""
    if not len(table):
        return "no model of this run keeps its class probabilities"
    over = table[table["overconfidence"] > 0].index.tolist()
    under = table[table["overconfidence"] <= 0].index.tolist()
    if not under:
        head = "Every model here claims more than it delivers: its mean top probability is above its accuracy"
    elif not over:
        head = "No model here claims more than it delivers: each one's mean top probability is at or below its accuracy"
    else:
        head = (f"{', '.join(over)} claim{'s' if len(over) == 1 else ''} more than {'it delivers' if len(over) == 1 else 'they deliver'}; "
                f"{', '.join(under)} {'does' if len(under) == 1 else 'do'} not")
    lines = [head + " (" + "; ".join(f"{name} {row['overconfidence']:+.3f}" for name, row in table.iterrows()) + ")."]
    near = [name for name, row in table.iterrows() if near_floor(row.accuracy, row.get("majority_share", np.nan))]
    if near:
        lines.append(f"Near the floor, so no finding: {', '.join(near)} (each {_floor_words(table.loc[near[0], 'majority_share'])}).")
    ranked = table.drop(index=near)
    if len(ranked) > 1:
        best, worst = ranked["calibration_error"].idxmin(), ranked["calibration_error"].idxmax()
        lines.append(f"Best calibrated: {best} (expected calibration error {ranked.loc[best, 'calibration_error']:.3f}); "
                     f"worst: {worst} ({ranked.loc[worst, 'calibration_error']:.3f}). Notebook 07 reads such a probability "
                     f"band by band, and its exercise 07.3 mends it with one fitted number.")
    return "\n".join(lines)


def per_class_recall(run: str | os.PathLike, names: list[str]) -> pd.DataFrame:
    """Recall per emotion (rows) for each experiment (columns) that has a metrics file."""
    run = Path(run)
    cols = {}
    for name in names:
        path = run / "metrics" / f"{name}.json"
        if path.exists():
            per_class = read_metrics(path)["metrics"]["per_class"]
            cols[name] = [per_class[e]["recall"] for e in EMOTIONS]
    return pd.DataFrame(cols, index=list(EMOTIONS))


#: The smallest change of an emotion's recall that the comparison names (smaller ones are read as none).
RECALL_STEP = 0.02


def describe_comparison(table: pd.DataFrame, recall: pd.DataFrame, reference: str = "baseline") -> str:
    """Plain sentences on what each experiment changed against ``reference``, from the numbers.

    A model within :data:`NEAR_FLOOR_MARGIN` of always answering the commonest emotion (the table's
    ``majority_share``, where it has one) has learned too little for its recall shifts to mean anything:
    it is named as near the floor, with no reading of its recall; when ``reference`` itself is near the floor,
    so is every comparison with it."""
    if reference not in table.index:
        return f"No {reference} metrics in this run: nothing to compare against."
    ref = table.loc[reference]
    floor = ref.get("majority_share", np.nan)
    lines = [f"{reference}: accuracy {ref.accuracy:.3f}, macro-F1 {ref.macro_f1:.3f}, "
             f"balanced accuracy {ref.balanced_accuracy:.3f}."]
    if near_floor(ref.accuracy, floor):
        lines.append(f"{reference} is {_floor_words(floor)}: near the floor, so no difference from it below is a finding.")
    p_col = f"mcnemar_p_vs_{reference}"
    for name, row in table.drop(index=reference).iterrows():
        verdict = ("a significant difference" if row[p_col] < 0.05 else "no significant difference")
        line = (f"{name}: accuracy {row.accuracy - ref.accuracy:+.3f}, macro-F1 {row.macro_f1 - ref.macro_f1:+.3f}, "
                f"balanced accuracy {row.balanced_accuracy - ref.balanced_accuracy:+.3f} "
                f"(McNemar p = {row[p_col]:.3g}: {verdict} in accuracy).")
        if near_floor(row.accuracy, row.get("majority_share", np.nan)):
            lines.append(f"{line} At {row.accuracy:.3f} it is {_floor_words(row.majority_share)}: near the floor, "
                         "so its recall per emotion is no finding.")
            continue
        gains = (recall[name] - recall[reference]).sort_values()
        up, down = gains.index[-1], gains.index[0]
        rose = (f"Recall rose most for {up} ({recall.loc[up, reference]:.2f} -> {recall.loc[up, name]:.2f})"
                if gains[up] >= RECALL_STEP else
                f"No emotion's recall rose by {RECALL_STEP * 100:.0f} points or more")
        fell = (f"fell most for {down} ({recall.loc[down, reference]:.2f} -> {recall.loc[down, name]:.2f})"
                if gains[down] <= -RECALL_STEP else f"none fell by {RECALL_STEP * 100:.0f} points or more")
        lines.append(f"{line} {rose}, and {fell}.")
    return "\n".join(lines)


def describe_stopping(run: str | os.PathLike, names: list[str]) -> str:
    """For each experiment with a history in ``run`` (:func:`history_file`): whether its PublicTest
    accuracy may still have been rising when training stopped, had levelled off, or had peaked well
    before, so that more epochs alone would probably not have helped.

    The best epoch coming late (among the last quarter of the epochs, or the last three) is not enough
    to call a curve rising: at a learning rate lowered a hundredfold, PublicTest accuracy drifts by
    noise and its best epoch often falls late. So the gain of those last epochs over the best before
    them is set against one standard error of a PublicTest accuracy, sqrt(p (1 - p) / n), with ``n``
    the PublicTest count of the experiment's metrics file: a smaller gain is a curve that has levelled
    off (more epochs might still add a fraction of a point); a larger one, or one that cannot be
    judged (no metrics file yet), is a curve that may still have been rising. Runs of fewer than three
    epochs are too short to tell. A training whose learning rate was annealed to nearly zero by a
    schedule (:func:`annealed_schedule`) peaks late by design: there a late gain says that a longer
    schedule might help, not that this training, continued, would.
    """
    return "\n".join(stopping_verdicts(run, names)) or "No experiment of this run has a training history."


def stopping_verdicts(run: str | os.PathLike, names: list[str]) -> list[str]:
    """:func:`describe_stopping`'s sentences, one per experiment with a PublicTest curve
    (:func:`fer_utils.history.stopping_verdict`, the one verdict every notebook prints)."""
    lines = []
    for name in names:
        history = read_history(history_file(run, name))
        if not history.get("val_accuracy"):
            continue
        facts, verdict = stopping_verdict(history, _publictest_count(Path(run), name))
        lines.append(f"{EXPERIMENTS.get(name, name)}: {facts}; {verdict}")
    return lines


def _publictest_count(run: Path, name: str) -> int | None:
    """The PublicTest count recorded in ``run/metrics/<name>.json`` (None without one)."""
    path = run / "metrics" / f"{name}.json"
    if not path.exists():
        return None
    splits = read_metrics(path)["provenance"].get("data_counts", {}).get("splits", {})
    return int(splits["PublicTest"]) if splits.get("PublicTest") else None


def describe_training_time(times: pd.DataFrame) -> str:
    """Sentences on how long a run trained (``times``: :func:`fer_utils.experiments.training_time`): the
    report's methods (the reported experiments of notebooks 01-04; an exercise's training is not part of
    the study's cost) and notebook 08, each as measured and at its trainings' fastest epochs, and how
    much of it went to epochs after each training's kept one."""
    if times.empty:
        return "No training of this run has a history with epoch times."

    def hours(value: float) -> str:
        return duration(value * 3600)

    lines = []
    study = times[(times["notebook"] < "05") & times.index.isin(list(TRAINED_IN))]
    if len(study):
        measured, fastest = study["hours"].sum(), study["hours_at_fastest"].sum()
        untrained = sorted({TRAINED_IN[n] for n in TRAINED_IN if TRAINED_IN[n] < "05" and n not in study.index})
        unfinished = sorted(set(study.loc[~study["finished"].astype(bool), "notebook"]))
        first, last = study["notebook"].min(), study["notebook"].max()
        which = f"Notebook {first}" if first == last else f"Notebooks {first}-{last}"
        line = (f"{which} trained {len(study)} model{'s' if len(study) > 1 else ''} in {hours(measured)} (their "
                f"epochs' times, summed; {hours(fastest)} at each training's fastest epoch)")
        if untrained or unfinished:
            line += "; not finished yet: notebook " + ", ".join(sorted({*untrained, *unfinished}))
        lines.append(line + ".")
        to_best = study["hours_to_best"].to_numpy(dtype=float)
        if len(to_best) and np.isfinite(to_best).all():
            kept = float(to_best.sum())
            lines.append(f"Up to each training's kept epoch (its best on PublicTest) they took {hours(kept)}; the other "
                         f"{hours(measured - kept)} went to epochs after it (those early stopping spends to be sure "
                         "of a peak, or a schedule's last, low-rate epochs).")
    beyond = times[times["notebook"] == "08"]
    if len(beyond):
        measured, fastest = beyond["hours"].sum(), beyond["hours_at_fastest"].sum()
        line = (f"Notebook 08 trained {len(beyond)} model{'s' if len(beyond) > 1 else ''} in {hours(measured)} "
                f"({hours(fastest)} at the fastest epochs)")
        if "beyond" in beyond.index:
            final = beyond.loc["beyond"]
            if bool(final.get("finished", True)):
                line += f"; its final model took {hours(final.hours)} ({hours(final.hours_at_fastest)})"
            else:
                line += (f"; its final model, still training, has taken {hours(final.hours)} so far "
                         f"({hours(final.hours_at_fastest)})")
        lines.append(line + ".")
    unknown = times[times["notebook"] == "?"]
    if len(unknown):
        lines.append(f"Trainings of no known notebook: {', '.join(unknown.index)} ({hours(unknown['hours'].sum())}).")
    return "\n".join(lines)


def study_trainings(times: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`fer_utils.experiments.training_time` that are the study's own trainings (its
    experiments and notebook 08's steps), without an exercise's (``exercise_*``): what an exercise trains
    is the reader's practice, not part of what the study's results cost."""
    return times[[not str(name).startswith("exercise") for name in times.index]]


def time_table(times: pd.DataFrame) -> pd.DataFrame:
    """:func:`fer_utils.experiments.training_time`'s table as a reader reads it: each training's notebook,
    epochs and fastest epoch, and its times as durations ("2 h 54 min", :func:`duration`): measured (the
    epochs' times summed), at its fastest epoch (epochs times the fastest) and up to its kept epoch."""
    def shown(hours) -> str:
        return "–" if pd.isna(hours) else duration(float(hours) * 3600)

    return pd.DataFrame({
        "notebook": times["notebook"], "epochs": times["epochs"],
        "fastest_epoch": [duration(s) for s in times["fastest_epoch_seconds"]],
        "time": [shown(h) for h in times["hours"]],
        "at_fastest_epoch": [shown(h) for h in times["hours_at_fastest"]],
        "to_kept_epoch": [shown(h) for h in times["hours_to_best"]],
    }, index=times.index)


def described_cpu(hardware: dict) -> str | None:
    """A provenance's processor and core count ("AMD EPYC, 2 cores"); None when it has no processor."""
    if not hardware.get("cpu"):
        return None
    return f"{hardware['cpu']}, {hardware.get('cpu_count', '?')} cores"


def summary_table(run: str | os.PathLike, names: list[str] | None = None) -> pd.DataFrame:
    """:func:`compare` over the study's experiments, with the report's accuracy beside ours.

    Adds ``best_epoch``, ``profile``, ``precision`` (float32 for metrics files
    older than the fast path), ``finished_utc`` and ``trained_on`` (the processor of the machine that wrote the metrics file)
    from each metrics file, and ``report_accuracy``
    (NaN where the report has no number). Rows follow :data:`EXPERIMENTS`' order.
    """
    names = list(EXPERIMENTS) if names is None else names
    rows, provs, preds = _read_experiments(Path(run), names)
    table = _table(rows, preds, "baseline")
    if table.empty:
        return table
    extra = {}
    for name, p in provs.items():
        extra[name] = {"best_epoch": p.get("best_epoch"),
                       "profile": p.get("profile"), "precision": p.get("precision", "float32"),
                       "finished_utc": p.get("finished_utc"), "trained_on": described_cpu(p.get("hardware") or {})}
    table = table.join(pd.DataFrame.from_dict(extra, orient="index"))
    table["report_accuracy"] = [REPORT_ACCURACY.get(name, np.nan) for name in table.index]
    return table


def _against_interval(row: pd.Series) -> str:
    """Whether the report's figure lies inside the 95 % interval of ours, said as a verdict."""
    if row.ci95_low <= row.report_accuracy <= row.ci95_high:
        return "reproduced: the report's figure lies inside our 95 % interval"
    if row.report_accuracy < row.ci95_low:
        return "above the report's: its figure lies below our 95 % interval"
    return "below the report's: its figure lies above our 95 % interval"


def _swapped_pairs(ours: list[str], theirs: list[str]) -> list[tuple[str, str]]:
    """The pairs ``(a, b)`` that ``ours`` ranks a above b and ``theirs`` b above a, in ``ours``' order."""
    return [(a, b) for i, a in enumerate(ours) for b in ours[i + 1:] if theirs.index(b) < theirs.index(a)]


def describe_against_report(table: pd.DataFrame, run: str | os.PathLike | None = None) -> str:
    """Sentences, computed from ``table`` (:func:`summary_table`), on how our accuracies and the
    report's compare, in level and in ranking.

    Each shared experiment is *reproduced* when the report's figure lies inside our 95 % interval,
    and above or below the report's otherwise (the report's figures are rounded and have no
    intervals of their own). Where the two rankings differ, each pair of methods that swapped places
    is named; with ``run`` (a run or published results folder), McNemar's test on the two methods'
    PrivateTest predictions says whether the swap is more than chance. An accuracy within
    :data:`NEAR_FLOOR_MARGIN` of always answering the commonest emotion (``majority_share``) is named
    as near the floor, no finding, and left out of the ranking.
    """
    if table.empty:
        return "No experiment has a metrics file in this run directory yet."
    both = table.dropna(subset=["report_accuracy"])
    lines, near = [], []
    for name, row in both.iterrows():
        gap = row.accuracy - row.report_accuracy
        epochs = int(row.epochs)
        ours = (f"{EXPERIMENTS.get(name, name)}: ours {row.accuracy:.3f} "
                f"({row.ci95_low:.3f}-{row.ci95_high:.3f}, {epochs} epoch{'' if epochs == 1 else 's'}), "
                f"report {row.report_accuracy:.2f}")
        if near_floor(row.accuracy, row.get("majority_share", np.nan)):
            near.append(name)
            lines.append(f"{ours}: ours is {_floor_words(row.majority_share)}, near the floor: no finding.")
            continue
        lines.append(f"{ours}: {gap * 100:+.1f} points, {_against_interval(row)}.")
    both = both.drop(index=near)
    if len(both) >= 2:
        ours = list(both.sort_values("accuracy", ascending=False).index)
        theirs = list(both.sort_values("report_accuracy", ascending=False).index)
        same = "the same order as" if ours == theirs else "a different order from"
        lines.append(f"Ranked by accuracy, our runs put these methods in {same} the report "
                     f"(ours: {', '.join(ours)}; report: {', '.join(theirs)}).")
        for a, b in _swapped_pairs(ours, theirs):
            line = f"{a} ranks above {b} here and below it in the report"
            if run is not None:
                answers = {n: read_predictions(Path(run) / "predictions" / f"{n}.npz") for n in (a, b)}
                test = mcnemar_on_same_faces(answers[a], answers[b], a, b)
                verdict = "more than chance" if test["p_value"] < 0.05 else "within chance"
                line += (f" (McNemar on the same faces: {test['a_only']} right only with {a}, {test['b_only']} "
                         f"only with {b}, p = {test['p_value']:.2g}: {verdict})")
            lines.append(line + ".")
    learned = [name for name, row in table.iterrows() if not near_floor(row.accuracy, row.get("majority_share", np.nan))]
    if "baseline" in table.index and not learned:
        lines.append("Every model in this run is near the floor: none is a best to name.")
    elif "baseline" in table.index:
        best = table["accuracy"].idxmax()
        lines.append(f"Best accuracy in this run: {EXPERIMENTS.get(best, best)} ({table.loc[best, 'accuracy']:.3f}); "
                     f"best balanced accuracy: {table['balanced_accuracy'].idxmax()} "
                     f"({table['balanced_accuracy'].max():.3f}).")
    return "\n".join(lines)


def models_to_ship(table: pd.DataFrame) -> list[str]:
    """The experiments whose models a reader gets: the baseline and the most accurate one
    (once if they are the same), from :func:`summary_table`'s result."""
    if table.empty:
        return []
    names = ["baseline"] if "baseline" in table.index else []
    return list(dict.fromkeys(names + [str(table["accuracy"].idxmax())]))


def export_shipped(run: str | os.PathLike, table: pd.DataFrame, dest_dir: str | os.PathLike) -> list[str]:
    """Export :func:`models_to_ship` of ``table`` from ``run`` into ``dest_dir``; one line each
    saying what was written (or that the run directory holds no such model)."""
    lines = []
    for name in models_to_ship(table):
        try:
            path = export_model(run, name, Path(dest_dir) / f"{name}.keras")
        except FileNotFoundError:  # load_experiment_model's check: the run holds no such model
            lines.append(f"{name}: no models/{name}.keras in this run directory, nothing exported")
            continue
        lines.append(f"{name}: {Path(dest_dir).name}/{path.name} in the run directory "
                     f"({path.stat().st_size / 2**20:.1f} MiB, float32, no optimizer state)")
    return lines


def _or_dash(value, scale: float, fmt: str) -> str:
    """``fmt`` of ``value * scale``, or a dash where the metrics file has no such figure."""
    return "–" if value is None or pd.isna(value) else fmt.format(value * scale)


def markdown_summary(table: pd.DataFrame) -> str:
    """:func:`summary_table`'s result as the Markdown table of the README's Results section.

    Computed, not typed: ``tests/test_publish.py`` checks that the README holds this table for the
    published run, so a number in the README cannot drift from its metrics file.
    """
    head = ("| experiment | PrivateTest accuracy (95 % CI) | macro-F1 | balanced accuracy | "
            "McNemar p vs baseline | epochs (kept) | precision | training time | images/s | report |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    p_col = "mcnemar_p_vs_baseline"
    for name, row in table.iterrows():
        p = row.get(p_col, np.nan)
        precision = {"mixed_bfloat16": "bfloat16 mixed"}.get(row.precision, row.precision)
        report = "–" if pd.isna(row.report_accuracy) else f"{row.report_accuracy:.2f}"
        lines.append(
            f"| {EXPERIMENTS.get(name, name)} | {row.accuracy:.3f} ({row.ci95_low:.3f}–{row.ci95_high:.3f}) "
            f"| {row.macro_f1:.3f} | {row.balanced_accuracy:.3f} | {'–' if pd.isna(p) else f'{p:.2g}'} "
            f"| {int(row.epochs)} ({int(row.best_epoch)}) | {precision} | {_or_dash(row.train_seconds, 1 / 60, '{:.0f} min')} "
            f"| {_or_dash(row.images_per_second, 1, '{:.0f}')} | {report} |")
    return "\n".join(lines)


#: Input scalings compared by ``benchmarks/input_scaling.py``, the report's first.
SCALINGS: dict[str, str] = {"rescale": "pixels / 255 (the report's)", "standardize": "per-image standardisation"}


def scaling_comparison(payload: dict, alpha: float = 0.05) -> dict:
    """The input-scaling decision from ``benchmarks/input_scaling.py``'s results, on PublicTest only.

    For each scaling: the kept (best) epoch's PublicTest accuracy with its 95 % interval and the
    mean over the last three epochs (less sensitive to one lucky epoch); then an exact McNemar test
    between the two kept models on the same PublicTest faces. The per-image standardisation becomes
    the default only when it is *measurably* better (higher accuracy and McNemar p < ``alpha``);
    otherwise the report's scaling stays.
    """
    from .evaluate import accuracy_interval

    y = np.asarray(payload["public_labels"])
    rows, preds = {}, {}
    for name in SCALINGS:
        run = payload["runs"][name]
        pred = np.asarray(run["public_predictions"])
        if pred.shape != y.shape:
            raise ValueError(f"{name}: {pred.size} predictions for {y.size} PublicTest faces")
        correct = int((pred == y).sum())
        acc = run["history"]["val_accuracy"]
        rows[name] = {"kept_epoch": int(run["best_epoch"]), "epochs": len(acc),
                      "public_accuracy": correct / y.size,
                      "public_ci95": list(accuracy_interval(correct, y.size)),
                      "mean_last3": float(np.mean(acc[-3:])),
                      "seconds_per_epoch": float(np.mean(run["history"].get("epoch_seconds", [np.nan])))}
        preds[name] = pred
    test = mcnemar(y, preds["rescale"], preds["standardize"])
    better = rows["standardize"]["public_accuracy"] > rows["rescale"]["public_accuracy"]
    choice = "standardize" if better and test["p_value"] < alpha else "rescale"
    return {"scalings": rows, "mcnemar": test, "alpha": alpha, "choice": choice}


def describe_input_scaling(path: str | os.PathLike) -> str:
    """Sentences for notebook 01: which input scaling the study uses, and the measurement behind it
    (``benchmarks/results/input_scaling_cpu.json``), or that the comparison has not been run."""
    path = Path(path)
    if not path.exists():
        return f"{path.name} not found: run benchmarks/input_scaling.py to compare the input scalings."
    payload = json.loads(path.read_text())
    if not set(SCALINGS) <= set(payload.get("runs", {})):
        return f"{path.name}: the comparison is incomplete (has {', '.join(payload.get('runs', {}))})."
    c = scaling_comparison(payload)
    prov = payload["provenance"]
    lines = [f"Input scaling, compared on the full data ({prov['epochs']} epochs each, seed {prov['seed']}, "
             f"{prov['optimizer']}, batch {prov['batch_size']}, {prov['precision']}):"]
    for name, row in c["scalings"].items():
        lo, hi = row["public_ci95"]
        lines.append(f"  {SCALINGS[name]}: PublicTest accuracy {row['public_accuracy']:.3f} ({lo:.3f}-{hi:.3f}) "
                     f"at kept epoch {row['kept_epoch']} of {row['epochs']}; mean of the last 3 epochs "
                     f"{row['mean_last3']:.3f}; {row['seconds_per_epoch']:.0f} s per epoch")
    m = c["mcnemar"]
    lines.append(f"  McNemar between the kept models: {m['a_only']} faces right only with /255, {m['b_only']} only "
                 f"with standardisation, p = {m['p_value']:.3g}.")
    if c["choice"] == "standardize":
        lines.append("Per-image standardisation is measurably better here, so the study uses it.")
    else:
        lines.append("Per-image standardisation is not measurably better (higher accuracy with McNemar p < "
                     f"{c['alpha']}), so the study keeps the report's division by 255.")
    return "\n".join(lines)


def scaling_markdown(path: str | os.PathLike) -> str:
    """The input-scaling comparison (``benchmarks/results/input_scaling_cpu.json``) as the README's
    Markdown table; computed, so that the README cannot drift from the measurement (a test checks)."""
    payload = json.loads(Path(path).read_text())
    c = scaling_comparison(payload)
    lines = ["| input scaling | PublicTest accuracy, kept epoch (95 % CI) | kept epoch | mean of the last 3 epochs "
             "| PublicTest accuracy by epoch | s per epoch |", "|---|---|---|---|---|---|"]
    for name, row in c["scalings"].items():
        lo, hi = row["public_ci95"]
        curve = ", ".join(f"{v:.3f}" for v in payload["runs"][name]["history"]["val_accuracy"])
        lines.append(f"| {SCALINGS[name]} | {row['public_accuracy']:.3f} ({lo:.3f}–{hi:.3f}) | {row['kept_epoch']} of "
                     f"{row['epochs']} | {row['mean_last3']:.3f} | {curve} | {row['seconds_per_epoch']:.0f} |")
    m = c["mcnemar"]
    lines.append("")
    lines.append(f"McNemar between the two kept models on the same 3,589 PublicTest faces: {m['a_only']} right only "
                 f"with /255, {m['b_only']} only with standardisation, p = {m['p_value']:.2g}. Choice: "
                 f"**{SCALINGS[c['choice']]}**.")
    return "\n".join(lines)


def describe_against_peer(table: pd.DataFrame, peer: dict, run: str | os.PathLike | None = None) -> str:
    """Where each experiment of ``table`` (:func:`summary_table`) stands against a peer model's
    PrivateTest metrics (``peer``: :func:`fer_utils.peers.score_fer_package` or :func:`read_peer`), on
    accuracy and on macro-F1.

    With the peer's predictions and ``run`` (the run or published results holding the experiments'
    predictions), McNemar's test on the same faces decides "above", "below" or "level with" (p < 0.05);
    otherwise the 95 % intervals do (overlapping: level), a coarser test that calls more pairs level."""
    if table.empty:
        return "No experiment of this run to compare with."
    name = peer.get("peer", {}).get("name", "the peer")
    plo, phi = peer["accuracy_ci95"]
    theirs = peer.get("predictions") if run is not None else None
    lines = [f"{name}: accuracy {peer['accuracy']:.3f} (95 % CI {plo:.3f}-{phi:.3f}), macro-F1 "
             f"{peer['macro_f1']:.3f} on the same {peer['n']:,} PrivateTest faces."]
    for exp, row in table.iterrows():
        if theirs is not None:
            ours = read_predictions(Path(run) / "predictions" / f"{exp}.npz")
            test = mcnemar_on_same_faces((theirs["ids"], theirs["y_true"], theirs["y_pred"]), ours, name, exp)
            here, there = test["b_only"], test["a_only"]  # faces only the experiment, only the peer got right
            side = "above it" if here > there else "below it"
            level = (f"{side if test['p_value'] < 0.05 else 'level with it'} (McNemar on the same faces: "
                     f"{here} right only here, {there} only there, p = {test['p_value']:.2g})")
        elif row.ci95_high < plo:
            level = "below it"
        elif row.ci95_low > phi:
            level = "above it"
        else:
            level = "level with it (the 95 % intervals overlap)"
        f1 = "higher" if row.macro_f1 > peer["macro_f1"] else "lower"
        lines.append(f"{EXPERIMENTS.get(exp, exp)}: accuracy {row.accuracy:.3f}, {level}; macro-F1 "
                     f"{row.macro_f1:.3f}, {f1} by {abs(row.macro_f1 - peer['macro_f1']) * 100:.1f} points.")
    if theirs is not None and "probs" in theirs:
        e = expected_calibration_error(theirs["probs"], theirs["y_true"])
        lines.append(f"How sure of itself it is: mean top probability {e['mean_probability']:.3f} against its accuracy "
                     f"{e['accuracy']:.3f} ({e['overconfidence']:+.3f}), expected calibration error {e['ece']:.3f}.")
    caveat = peer.get("peer", {}).get("caveat")
    if caveat:
        lines.append(f"Caveat: {caveat}.")
    return "\n".join(lines)


def duration(seconds: float) -> str:
    """``seconds`` as a reader says it: "2 h 54 min" from an hour on, else "41 min" (whole minutes), and
    "12 s" under a minute."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


# --------------------------------------------------------------------------- one experiment against the report's figure


def _experiment_label(name: str) -> str:
    """How the prose names an experiment: its label without the notebook ("random undersampling")."""
    return EXPERIMENTS.get(name, name).rsplit(" (", 1)[0]


def supporting_records(run: str | os.PathLike, table: pd.DataFrame, name: str) -> tuple[Path, str]:
    """The records whose numbers support a notebook's conclusion on experiment ``name``, and how the
    prose names them (``table``: :func:`beside_published` of ``run``).

    This run's (``"this run"``) when it has the experiment, trained on as many Training faces for as
    many epochs and scored on as many PrivateTest faces as the published run, or when there is no
    published result to read; else the published run's records (``"the published run"``)."""
    from .notebook import published_records

    published = published_records()
    row = table.loc[name] if name in table.index else None
    mine = row is not None and pd.notna(row["this_accuracy"])
    theirs = row is not None and pd.notna(row["published_accuracy"]) and published is not None
    if mine and (not theirs or all(row[f"this_{k}"] >= row[f"published_{k}"]
                                   for k in ("train_images", "epochs", "test_faces"))):
        return Path(run), "this run"
    if theirs:
        return published[1], "the published run"
    return Path(run), "this run"


def _recall(metrics: dict) -> dict[str, float]:
    return {e: float(metrics["per_class"][e]["recall"]) for e in EMOTIONS if e in metrics.get("per_class", {})}


def against_report_text(name: str, metrics: dict, where: str, reference: str | None = None,
                        reference_metrics: dict | None = None) -> str:
    """Sentences reading one experiment's PrivateTest result (``metrics``: the ``metrics`` part of its
    metrics file, from the records ``where`` names) against the report's figure
    (:data:`REPORT_ACCURACY`), also without the faces Training holds too (where the metrics say), then against
    ``reference`` (another experiment of the same records:
    accuracy, balanced accuracy and recall per emotion), or, without one, which emotions it recognises
    best and worst."""
    label = _experiment_label(name)
    acc = float(metrics["accuracy"])
    lo, hi = (float(x) for x in metrics["accuracy_ci95"])
    line = (f"{label[0].upper()}{label[1:]}, in {where}: PrivateTest accuracy {acc:.3f} (95 % interval "
            f"{lo:.3f}-{hi:.3f})")
    report = REPORT_ACCURACY.get(name)
    if report is None:
        lines = [line + "; the report gives no figure for it."]
    else:
        if lo <= report <= hi:
            verdict = "the report's figure lies inside the interval: reproduced"
        elif report < lo:
            verdict = "above the report's, whose figure lies below the interval"
        else:
            verdict = "below the report's, whose figure lies above the interval"
        lines = [f"{line}, against the report's {report * 100:.0f} %: {(acc - report) * 100:+.1f} points, {verdict}."]
        unseen = metrics.get("without_seen_in_training") or {}
        if unseen.get("left_out") and unseen.get("accuracy_ci95"):
            ulo, uhi = (float(x) for x in unseen["accuracy_ci95"])
            place = ("inside that interval" if ulo <= report <= uhi else
                     "below that interval" if report < ulo else "above that interval")
            lines.append(f"Without the {unseen['left_out']:,} PrivateTest faces that Training also holds (a model may "
                         f"recognise those from memory): {float(unseen['accuracy']):.3f} ({ulo:.3f}-{uhi:.3f}); the "
                         f"report's {report * 100:.0f} % lies {place}.")
    recall = _recall(metrics)
    if reference is not None and reference_metrics is not None:
        ref_label = _experiment_label(reference)
        racc, rbal = float(reference_metrics["accuracy"]), float(reference_metrics["balanced_accuracy"])
        bal = float(metrics["balanced_accuracy"])

        def way(d: float) -> str:
            return "lower" if d < 0 else "higher"

        said = (f"The {ref_label} scored {racc:.3f} in the same run: {label} is {abs(acc - racc) * 100:.1f} points "
                f"{way(acc - racc)} in accuracy, and {abs(bal - rbal) * 100:.1f} points {way(bal - rbal)} in balanced "
                f"accuracy ({bal:.3f} against {rbal:.3f}), the measure that weighs every emotion alike")
        if name in REPORT_ACCURACY and reference in REPORT_ACCURACY:
            theirs = REPORT_ACCURACY[name] - REPORT_ACCURACY[reference]
            agree = (theirs < 0) == (acc - racc < 0)
            said += (f"; {'as in' if agree else 'unlike'} the report, which found it {way(theirs)} "
                     f"({REPORT_ACCURACY[name] * 100:.0f} % against {REPORT_ACCURACY[reference] * 100:.0f} %)")
        lines.append(said + ".")
        before = _recall(reference_metrics)
        change = {e: (before[e], recall[e]) for e in recall if e in before}
        rose = [e for e, (a, b) in change.items() if b > a]
        fell = sorted((e for e, (a, b) in change.items() if b < a), key=lambda e: change[e][1] - change[e][0])

        def listed(names: list[str]) -> str:
            return ", ".join(f"{e} ({change[e][0]:.3f} → {change[e][1]:.3f})" for e in names)

        parts = []
        if rose:
            parts.append(f"rose for {listed(rose)}")
        if fell:
            parts.append(f"fell for {listed(fell)}" if len(fell) <= 2 else
                         f"fell for the {len(fell)} others, most for {listed(fell[:1])}" if rose else
                         f"fell for all {len(fell)}, most for {listed(fell[:1])}")
        if parts:
            lines.append(f"Recall per emotion, against the {ref_label}: " + "; ".join(parts) + ".")
    elif len(recall) >= 4:
        ranked = sorted(recall, key=lambda e: -recall[e])
        lines.append("Recall per emotion: highest for " + " and ".join(f"{e} ({recall[e]:.3f})" for e in ranked[:2])
                     + ", lowest for " + " and ".join(f"{e} ({recall[e]:.3f})" for e in ranked[-2:]) + ".")
    return "\n".join(lines)


def describe_against_report_figure(run: str | os.PathLike, name: str, table: pd.DataFrame,
                                   reference: str | None = None) -> str:
    """:func:`against_report_text` on the records that support the conclusion
    (:func:`supporting_records`: this run's at the published run's size, else the published run's),
    with ``reference`` read from the same records when they hold it."""
    folder, where = supporting_records(run, table, name)
    path = folder / "metrics" / f"{name}.json"
    if not path.exists():
        return f"No result for {_experiment_label(name)} yet, in this run or a published one."
    ref_path = folder / "metrics" / f"{reference}.json" if reference else None
    ref_metrics = read_metrics(ref_path)["metrics"] if ref_path is not None and ref_path.exists() else None
    return against_report_text(name, read_metrics(path)["metrics"], where, reference, ref_metrics)
