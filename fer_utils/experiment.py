"""One experiment's outputs in a run directory, and the comparison of several.

    run/models/<name>.keras         the kept model
    run/metrics/<name>.json         PrivateTest metrics with provenance
    run/predictions/<name>.npz      PrivateTest ids, true and predicted labels, probabilities
    run/metrics/peers/fer_package.json   the ``fer`` package's model scored on the same faces (notebook 06)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from .data import EMOTIONS, FerData
from .evaluate import (
    accuracy_without_seen,
    classification_metrics,
    expected_calibration_error,
    mcnemar,
    predict_labels,
    provenance,
    read_metrics,
    seen_in_training,
    write_metrics,
)
from .history import read_history, read_machines

if TYPE_CHECKING:  # keras (and TensorFlow) load only where a model is touched
    from .train import TrainResult


def save_experiment(
    result: TrainResult,
    report_on: FerData,
    run: str | os.PathLike,
    *,
    name: str,
    profile: str,
    seed: int,
    started: float,
    train_data: FerData,
    all_data: FerData,
    predict: Callable | None = None,
    **extra,
) -> dict:
    """Evaluate the kept model once on ``report_on`` (PrivateTest) and write model, predictions, metrics.

    Args:
        result: what :func:`fer_utils.train.train_model` returned.
        report_on: the split to report on, used for nothing else.
        run: the run directory.
        name: experiment name (file stem), e.g. ``baseline``.
        profile, seed: recorded in the provenance.
        started: ``time.perf_counter()`` at the notebook's start, for the wall time.
        train_data: the (possibly resampled) training set the model saw, for its counts.
        all_data: the data set as loaded, for the split counts.
        predict: ``predict(model, images) -> class probabilities`` (e.g. test-time augmentation,
            :func:`fer_utils.beyond.tta_predictor`; say so in ``extra``); None: the model's own prediction.
        extra: further provenance fields (batch size, learning rate, method, ...).

    Returns:
        The metrics dict (also written to ``run/metrics/<name>.json``).
    """
    run = Path(run)
    if predict is None:
        probs, predicted = predict_labels(result.model, report_on.images)
    else:
        probs = np.asarray(predict(result.model, report_on.images))
        predicted = probs.argmax(axis=1)
    metrics = classification_metrics(report_on.labels, predicted)
    seen = seen_in_training(report_on.images, all_data.split("Training").images)
    if not seen.all():
        metrics["without_seen_in_training"] = accuracy_without_seen(report_on.labels, predicted, seen)
    for folder in ("models", "predictions"):
        (run / folder).mkdir(parents=True, exist_ok=True)
    result.model.save(run / "models" / f"{name}.keras")
    write_predictions(run / "predictions" / f"{name}.npz", report_on.ids, report_on.labels, predicted, probs=probs)
    info = provenance(
        profile=profile, experiment=name, epochs=result.epochs_run,
        data_counts={"splits": all_data.split_counts(), "train_images": len(train_data),
                     "train_classes": train_data.class_counts(), "report_images": len(report_on),
                     "source": all_data.source,
                     "verification": all_data.verification.to_dict() if all_data.verification else None},
        seed=seed, wall_seconds=time.perf_counter() - started,
        best_epoch=result.best_epoch, train_seconds=round(result.train_seconds, 1),
        images_per_second=round(result.images_per_second, 1), resumed_from=result.resumed_from,
        training_machines=read_machines(result.folder),
        params=int(result.model.count_params()), precision=result.settings.get("precision", "float32"), **extra,
    )
    write_metrics(run / "metrics" / f"{name}.json", metrics, info)
    return metrics


def read_model_run(folder: str | os.PathLike, name: str) -> tuple[dict, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A reported model of a run or published results folder, as :func:`save_experiment` wrote it:
    its metrics payload and its PrivateTest predictions ``(ids, y_true, y_pred)``
    (``metrics/<name>.json``, ``predictions/<name>.npz``)."""
    folder = Path(folder)
    return read_metrics(folder / "metrics" / f"{name}.json"), read_predictions(folder / "predictions" / f"{name}.npz")


Predictions = tuple[np.ndarray, np.ndarray, np.ndarray]


def read_probabilities(folder: str | os.PathLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A reported model's PrivateTest labels and class probabilities ``(y_true, probs)``, from the
    ``predictions/<name>.npz`` :func:`save_experiment` wrote: the probabilities its reported answers
    came from (with test-time augmentation where its metrics say so)."""
    path = Path(folder) / "predictions" / f"{name}.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no predictions of {name!r}; run the notebook that trains it first")
    with np.load(path) as npz:
        if "probs" not in npz:
            raise ValueError(f"{path} holds answers but no class probabilities")
        return npz["y_true"], npz["probs"]


def write_predictions(path: str | os.PathLike, ids: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray,
                      **extra: np.ndarray) -> Path:
    """A model's PrivateTest answers as an ``.npz`` (``ids``, ``y_true``, ``y_pred`` and any ``extra``
    arrays, e.g. ``probs``), written whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, ids=np.asarray(ids), y_true=np.asarray(y_true), y_pred=np.asarray(y_pred), **extra)
    os.replace(tmp, path)
    return path


def read_predictions(path: str | os.PathLike) -> Predictions:
    """``(ids, y_true, y_pred)`` from a file :func:`write_predictions` wrote."""
    with np.load(path) as npz:
        return npz["ids"], npz["y_true"], npz["y_pred"]


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
                     "train_seconds": p.get("train_seconds"), "images_per_second": p.get("images_per_second")})
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


def compare(run: str | os.PathLike, names: list[str], reference: str = "baseline") -> pd.DataFrame:
    """One row per experiment found in ``run``: PrivateTest accuracy (95 % CI), macro-F1,
    balanced accuracy, McNemar against ``reference``, epochs, training time and images/s.

    ``train_seconds`` is the training's own time, summed over every session of a resumed run
    (a metrics file's ``wall_seconds`` counts only the session that wrote it); NaN in files
    written before it was recorded.

    Experiments without a metrics file are left out; the test images of every
    experiment must be the same (checked by id).
    """
    rows, _, preds = _read_experiments(Path(run), names)
    return _table(rows, preds, reference)


def calibration_summary(run: str | os.PathLike, names: list[str]) -> pd.DataFrame:
    """How sure of itself each experiment's model is on PrivateTest, from the class probabilities its
    predictions file keeps (:func:`read_probabilities`): its accuracy, its mean top probability, the
    difference (``overconfidence``: above 0 it claims more than it delivers) and its expected
    calibration error (:func:`fer_utils.evaluate.expected_calibration_error`). Experiments without
    a predictions file, or whose file keeps no probabilities, are left out."""
    rows = {}
    for name in names:
        try:
            y_true, probs = read_probabilities(run, name)
        except (FileNotFoundError, ValueError):
            continue
        e = expected_calibration_error(probs, y_true)
        rows[name] = {"accuracy": e["accuracy"], "mean_probability": e["mean_probability"],
                      "overconfidence": e["overconfidence"], "calibration_error": e["ece"]}
    return pd.DataFrame.from_dict(rows, orient="index",
                                  columns=["accuracy", "mean_probability", "overconfidence", "calibration_error"])


def describe_calibration(table: pd.DataFrame) -> str:
    """What :func:`calibration_summary`'s table says: which models claim more than they deliver, by how
    much, and which is the best and the worst calibrated."""
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
    if len(table) > 1:
        best, worst = table["calibration_error"].idxmin(), table["calibration_error"].idxmax()
        lines.append(f"Best calibrated: {best} (expected calibration error {table.loc[best, 'calibration_error']:.3f}); "
                     f"worst: {worst} ({table.loc[worst, 'calibration_error']:.3f}). Notebook 07 reads such a probability "
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


def recorded_verification(run: str | os.PathLike, names: list[str] | None = None) -> str:
    """The data verdict that the experiments of ``run`` recorded in their metrics files, as one line
    (for notebooks that load no data themselves): the verdict when they all agree, each one otherwise."""
    names = list(EXPERIMENTS) if names is None else names
    verdicts: dict[str, list[str]] = {}
    for name in names:
        path = Path(run) / "metrics" / f"{name}.json"
        if path.exists():
            v = read_metrics(path)["provenance"].get("data_counts", {}).get("verification")
            summary = v["summary"] if v else "data not verified (metrics written before verification existed)"
            verdicts.setdefault(summary, []).append(name)
    if not verdicts:
        return "data: no experiment of this run has written its metrics yet"
    if len(verdicts) == 1:
        return next(iter(verdicts))
    return "experiments of this run saw different data: " + "; ".join(
        f"{', '.join(n)}: {v}" for v, n in verdicts.items())


def describe_comparison(table: pd.DataFrame, recall: pd.DataFrame, reference: str = "baseline") -> str:
    """Plain sentences on what each experiment changed against ``reference``, from the numbers."""
    if reference not in table.index:
        return f"No {reference} metrics in this run: nothing to compare against."
    ref = table.loc[reference]
    lines = [f"{reference}: accuracy {ref.accuracy:.3f}, macro-F1 {ref.macro_f1:.3f}, "
             f"balanced accuracy {ref.balanced_accuracy:.3f}."]
    p_col = f"mcnemar_p_vs_{reference}"
    for name, row in table.drop(index=reference).iterrows():
        gains = (recall[name] - recall[reference]).sort_values()
        verdict = ("a significant difference" if row[p_col] < 0.05 else "no significant difference")
        lines.append(
            f"{name}: accuracy {row.accuracy - ref.accuracy:+.3f}, macro-F1 {row.macro_f1 - ref.macro_f1:+.3f}, "
            f"balanced accuracy {row.balanced_accuracy - ref.balanced_accuracy:+.3f} "
            f"(McNemar p = {row[p_col]:.3g}: {verdict} in accuracy). Recall rose most for "
            f"{gains.index[-1]} ({recall.loc[gains.index[-1], reference]:.2f} -> "
            f"{recall.loc[gains.index[-1], name]:.2f}) and fell most for {gains.index[0]} "
            f"({recall.loc[gains.index[0], reference]:.2f} -> {recall.loc[gains.index[0], name]:.2f})."
        )
    return "\n".join(lines)


def history_file(run: str | os.PathLike, name: str) -> Path:
    """Where experiment ``name``'s epochs are: ``<name>/history.csv`` in a run directory,
    ``<name>_history.csv`` in published results (``results/<profile>/``)."""
    folder = Path(run) / name / "history.csv"
    return folder if folder.exists() else Path(run) / f"{name}_history.csv"


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
    return "\n".join(_stopping_lines(run, names)) or "No experiment of this run has a training history."


def _stopping_lines(run: str | os.PathLike, names: list[str]) -> list[str]:
    """:func:`describe_stopping`'s sentences, one per experiment with a PublicTest curve."""
    lines = []
    for name in names:
        history = read_history(history_file(run, name))
        if not history.get("val_accuracy"):
            continue
        acc, loss = np.asarray(history["val_accuracy"]), np.asarray(history["val_loss"])
        epochs, best, low = len(acc), int(np.nanargmax(acc)) + 1, int(np.nanargmin(loss)) + 1
        top = float(np.nanmax(acc))
        label = EXPERIMENTS.get(name, name)
        facts = (f"best PublicTest accuracy {top:.3f} at epoch {best} of {epochs}, "
                 f"validation loss lowest at epoch {low}")
        patience = max(3, epochs // 4)
        annealed = annealed_schedule(history)
        if epochs < 3:
            lines.append(f"{label}: {facts}; too few epochs to tell whether it was still improving.")
            continue
        if epochs - best >= patience:
            lines.append(f"{label}: {facts}; no better epoch in the last {epochs - best}, so more epochs "
                         "alone would probably not have helped.")
            continue
        late = f"the best epoch came within the last {patience}"
        before = acc[:epochs - patience]
        gain = top - float(np.nanmax(before)) if np.any(np.isfinite(before)) else np.nan
        n = _publictest_count(Path(run), name)
        if n and np.isfinite(gain):
            se = float(np.sqrt(top * (1 - top) / n))
            added = f"those {patience} epochs added {gain * 100:.1f} points to the best before them"
            noise = f"one standard error of a PublicTest accuracy ({se * 100:.1f} points on {n:,} faces)"
            if gain < se:
                lines.append(f"{label}: {facts}; {late}, but {added}, less than {noise}: it had levelled off "
                             "(more epochs might still add a fraction of a point).")
            elif annealed:
                lines.append(f"{label}: {facts}; {late} and {added}, more than {noise}, but {ANNEALED}")
            else:
                lines.append(f"{label}: {facts}; {late} and {added}, more than {noise}: it was still "
                             "improving, and more epochs might raise it.")
            continue
        lines.append(f"{label}: {facts}; {late}, " + (f"but {ANNEALED}" if annealed else
                     "so it may still have been improving and more epochs might raise it."))
    return lines


#: What a late best means for a training whose learning rate followed a schedule to its end.
ANNEALED = ("its learning rate followed a schedule down to nearly zero at the last epoch, and such a schedule "
            "puts the best epochs late by design: at that rate, training this model on would barely change it, "
            "and whether more epochs help takes a new run with a longer schedule.")


def annealed_schedule(history: dict) -> bool:
    """Whether a training's learning rate followed a schedule to (nearly) zero, as a cosine does: it
    changed at most epochs (a drop on a plateau changes it at a few) and its last epoch's rate is at
    most 1 % of its highest. Under such a schedule the best epoch comes late by design, so a late
    best does not mean that the same training, continued, would still be improving."""
    rates = np.asarray(history.get("learning_rate") or [], dtype=float)
    rates = rates[np.isfinite(rates)]
    if len(rates) < 3 or rates.max() <= 0:
        return False
    changes = int(np.count_nonzero(np.diff(rates)))
    return changes >= (len(rates) - 1) / 2 and rates[-1] <= 0.01 * rates.max()


def _publictest_count(run: Path, name: str) -> int | None:
    """The PublicTest count recorded in ``run/metrics/<name>.json`` (None without one)."""
    path = run / "metrics" / f"{name}.json"
    if not path.exists():
        return None
    splits = read_metrics(path)["provenance"].get("data_counts", {}).get("splits", {})
    return int(splits["PublicTest"]) if splits.get("PublicTest") else None


def load_experiment_model(run: str | os.PathLike, name: str):
    """The model an earlier notebook saved as ``run/models/<name>.keras``, in float32 whatever
    precision it trained in (see :func:`fer_utils.machinery.speed.float32_copy`), or a one-line error."""
    from .machinery.speed import float32_copy

    return float32_copy(_load_saved_model(run, name))


def describe_against_recorded(run: str | os.PathLike, name: str, ids: np.ndarray, y_pred: np.ndarray) -> str:
    """One line setting the answers of experiment ``name``'s saved model, computed here on PrivateTest
    (``ids``, ``y_pred``), beside those its training notebook recorded (``predictions/<name>.npz``), so that
    a reader who sees two accuracies for one model knows why: its notebook may have computed in bfloat16
    while a model loaded with :func:`load_experiment_model` computes in float32 (the same weights, other
    rounding), or may have reported test-time-augmented answers. Without recorded answers, or with
    answers of other faces (another cap or fraction than its notebook's), the line says so."""
    try:
        metrics, (rec_ids, y_true, rec_pred) = read_model_run(run, name)
    except FileNotFoundError:
        return f"no recorded answers of {name} in {Path(run).name} to set these beside"
    if not np.array_equal(np.asarray(rec_ids), np.asarray(ids)):
        return (f"{name}'s recorded answers are of other faces ({len(rec_ids):,}) than these ({len(ids):,}): "
                "its notebook ran with another data set, cap or fraction, so the two are not compared")
    y_pred = np.asarray(y_pred)
    differ, right = int(np.sum(y_pred != rec_pred)), int(np.sum(rec_pred == y_true))
    here, there = float(np.mean(y_pred == y_true)), right / len(y_true)
    info = metrics["provenance"]
    notebook = TRAINED_IN.get(name)
    whose = f"notebook {notebook}" if notebook else "its notebook"
    recorded = f"{whose} reported {there:.3f} ({right:,} of {len(y_true):,} right)"
    if info.get("test_time_augmentation"):
        return (f"{recorded} with test-time augmentation ({info['test_time_augmentation']}); this model, "
                f"one view a face, gets {here:.3f}, answering {differ:,} faces differently")
    if differ == 0:
        return f"the same answers as {whose} reported: {there:.3f} ({right:,} right)"
    precision = info.get("precision", "float32")
    why = (f"it computed in {precision}, this float32 copy of the same weights rounds otherwise"
           if precision != "float32" else "the same weights and precision, so the difference is the "
           "machine's arithmetic (another processor or library version)")
    return (f"{recorded}; this copy gets {here:.3f}, answering {differ:,} of the faces differently: {why} "
            "(notebook 06's table keeps the reported figure)")


def _load_saved_model(run: str | os.PathLike, name: str):
    """``run/models/<name>.keras`` as saved (its training precision, compiled), or a one-line error."""
    import keras

    from . import model as _registers_custom_layers  # noqa: F401  (PerImageStandardization)

    path = Path(run) / "models" / f"{name}.keras"
    if not path.exists():
        raise FileNotFoundError(
            f"{path.name} not found in {Path(run).name}/models: run the notebook that trains "
            f"'{name}' (01 for the baseline) with this run directory first")
    from .augment import load_model

    return load_model(path)


#: The study's experiments in reading order (notebooks 01-04 and 08), with a label for tables and charts.
EXPERIMENTS: dict[str, str] = {
    "baseline": "baseline CNN (01)",
    "undersample": "random undersampling (02)",
    "oversample": "random oversampling (03)",
    "class_weights": "class-weighted loss (03)",
    "augment_report": "augmentation, report's recipe (04)",
    "augment_face": "augmentation, face recipe (04)",
    "beyond": "beyond the report: VGG-style, ten-crop (08)",
}

#: The notebook that trains each experiment (the number in its :data:`EXPERIMENTS` label).
TRAINED_IN: dict[str, str] = {name: label.rsplit("(", 1)[1].rstrip(")") for name, label in EXPERIMENTS.items()}

#: A run's training folders that are not experiments of their own, and the notebook that trains each:
#: an exercise's model (02) and notebook 08's steps before its final model.
OTHER_TRAININGS: dict[str, str] = {
    "exercise_undersample_twice": "02",
    "beyond_vgg": "08", "beyond_sgd": "08", "beyond_strong": "08", "beyond_smooth": "08",
}

def training_notebook(folder: str) -> str:
    """The notebook (its number) that trains into a run's training folder ``folder``; "?" for a folder
    of no known notebook (:data:`TRAINED_IN`, :data:`OTHER_TRAININGS`)."""
    return TRAINED_IN.get(folder) or OTHER_TRAININGS.get(folder, "?")


def training_order(folder: str) -> tuple:
    """Sort key for a run's training folders: by notebook, then in the study's order within it."""
    known = [*EXPERIMENTS, *OTHER_TRAININGS]
    return (training_notebook(folder), known.index(folder) if folder in known else len(known), folder)


#: The time each part of the reference run may take, in hours of this project's 2-core machine:
#: the report's study (notebooks 00-07; issue 14) and the final model of notebook 08 (issue 17).
TIME_BUDGET_HOURS: dict[str, float] = {"study": 8.0, "final model of 08": 6.0}


def training_time(run: str | os.PathLike) -> pd.DataFrame:
    """Every training of a run, read from its histories: ``<name>/history.csv`` in a run directory,
    ``<name>_history.csv`` in published results (``results/<profile>/``).

    One row per training, in notebook order: ``notebook`` (which trains it; "?" for a folder this
    module does not know), ``epochs``, ``fastest_epoch_seconds``, ``hours`` (the epochs' times summed,
    across every session of a resumed training) and ``hours_at_fastest`` (``epochs`` times the fastest
    epoch: what the training would have taken had every epoch run as fast as its fastest, an estimate
    of its time with the machine to itself where some epochs shared it; an epoch that includes a
    compilation or a slower machine only makes the estimate longer) and ``hours_to_best`` (the epochs'
    times up to and including the best PublicTest accuracy, the epoch a training keeps; NaN without a
    PublicTest curve), ``machines`` (:func:`machine_names`: the processors or GPUs that trained it, as
    its machine record says) and ``finished`` (its ``done.json`` exists; a published history is always
    finished)."""
    run = Path(run)
    found = {p.parent.name: p for p in run.glob("*/history.csv")}
    found.update({p.name[: -len("_history.csv")]: p for p in run.glob("*_history.csv")})
    rows = []
    for name, path in found.items():
        history = read_history(path)
        every = np.asarray(history.get("epoch_seconds", []), dtype=float)
        seconds = every[np.isfinite(every)]
        if not len(seconds):
            continue
        accuracy = np.asarray(history.get("val_accuracy", []), dtype=float)
        to_best = (float(np.nansum(every[:int(np.nanargmax(accuracy)) + 1])) / 3600
                   if len(accuracy) == len(every) and np.isfinite(accuracy).any() else np.nan)
        rows.append({"training": name, "notebook": training_notebook(name),
                     "epochs": len(seconds), "fastest_epoch_seconds": float(seconds.min()),
                     "hours": float(seconds.sum()) / 3600, "hours_at_fastest": float(len(seconds) * seconds.min()) / 3600,
                     "hours_to_best": to_best, "machines": machine_names(read_machines(path)),
                     "finished": path.name != "history.csv" or (path.parent / "done.json").exists()})
    columns = ["notebook", "epochs", "fastest_epoch_seconds", "hours", "hours_at_fastest", "hours_to_best", "machines",
               "finished"]
    if not rows:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="training"))
    table = pd.DataFrame(rows).set_index("training")
    return table.loc[sorted(table.index, key=training_order), columns]


#: what :func:`machine_names` says for epochs whose machine was not recorded
NOT_RECORDED = "not recorded"


def machine_names(segments: list[dict]) -> str:
    """The machines of a training's segments (:func:`fer_utils.history.read_machines`), each named once in
    the order they trained, ``"; "``-joined; epochs without a record count as :data:`NOT_RECORDED`."""
    names = dict.fromkeys(s["name"] or NOT_RECORDED for s in segments)
    return "; ".join(names)


def describe_training_time(times: pd.DataFrame, budgets: dict[str, float] | None = None) -> str:
    """Sentences on how long a run trained (``times``: :func:`training_time`): the study's notebooks
    (01-04) and notebook 08, each as measured and at its trainings' fastest epochs, against
    ``budgets`` (hours; default :data:`TIME_BUDGET_HOURS`)."""
    budgets = TIME_BUDGET_HOURS if budgets is None else budgets
    if times.empty:
        return "No training of this run has a history with epoch times."

    def hours(value: float) -> str:
        return f"{value:.1f} h" if value >= 1 else f"{value * 60:.0f} min"

    def verdict(measured: float, fastest: float, budget: float | None, whose: str, what: str) -> str:
        if budget is None:
            return ""
        budget_text = f"{whose} budget of {budget:g} h" + (f" for {what}" if what else "")
        if measured <= budget:
            return f", within {budget_text}"
        if fastest <= budget:
            return (f": over {budget_text} as measured but within it at the fastest epochs, so the excess is "
                    "time the epochs lost to sharing the machine")
        return f": over {budget_text} even at the fastest epochs"

    lines = []
    study = times[times["notebook"] < "05"]
    if len(study):
        measured, fastest = study["hours"].sum(), study["hours_at_fastest"].sum()
        untrained = sorted({"01", "02", "03", "04"} - set(study["notebook"]))
        # a notebook that has trained some of its models but not all is still training
        unfinished = set(study.loc[~study["finished"].astype(bool), "notebook"]) if "finished" in study else set()
        unfinished |= {TRAINED_IN[name] for name in TRAINED_IN if TRAINED_IN[name] in set(study["notebook"])
                       and name not in study.index}
        training = sorted(unfinished)
        missing = sorted([*untrained, *training])
        not_yet = "; ".join(
            [(f"notebook {untrained[0]} has" if len(untrained) == 1
              else f"notebooks {', '.join(untrained)} have") + " not trained yet"] * bool(untrained)
            + [(f"notebook {training[0]} is" if len(training) == 1
                else f"notebooks {', '.join(training)} are") + " still training"] * bool(training))
        within = (f" so far; {not_yet}" if missing
                  else verdict(measured, fastest, budgets.get("study"), "the study's", "notebooks 00-07"))
        first, last = study["notebook"].min(), study["notebook"].max()
        which = f"Notebook {first}" if first == last else f"Notebooks {first}-{last}"
        lines.append(f"{which} trained {len(study)} model{'s' if len(study) > 1 else ''} in "
                     f"{hours(measured)} (their epochs' times, summed; {hours(fastest)} at each training's fastest "
                     f"epoch){within}.")
        to_best = study["hours_to_best"].to_numpy(dtype=float)
        budget = budgets.get("study")
        if len(to_best) and np.isfinite(to_best).all():
            kept = float(to_best.sum())
            why = ""
            if budget is not None and not missing and kept > budget:
                why = (f": even stopping every training at its best epoch, were it known in advance, would not "
                       f"fit the budget of {budget:g} h")
            elif budget is not None and not missing and measured > budget:
                why = (f": the budget of {budget:g} h would have held had every training stopped at its best epoch, "
                       "which a training can only know from the epochs after it")
            lines.append(f"Up to each training's kept epoch (its best on PublicTest) they took {hours(kept)}; the other "
                         f"{hours(measured - kept)} went to epochs after it (those early stopping spends to be sure "
                         f"of a peak, or a cap allowed){why}.")
    beyond = times[times["notebook"] == "08"]
    if len(beyond):
        measured, fastest = beyond["hours"].sum(), beyond["hours_at_fastest"].sum()
        line = f"Notebook 08 trained {len(beyond)} model{'s' if len(beyond) > 1 else ''} in {hours(measured)} ({hours(fastest)} at the fastest epochs)"
        if "beyond" in beyond.index:
            final = beyond.loc["beyond"]
            if bool(final.get("finished", True)):
                within = verdict(final.hours, final.hours_at_fastest, budgets.get("final model of 08"), "its", "")
                line += f"; its final model took {hours(final.hours)} ({hours(final.hours_at_fastest)}){within}"
            else:
                line += (f"; its final model, still training, has taken {hours(final.hours)} so far "
                         f"({hours(final.hours_at_fastest)})")
        lines.append(line + ".")
    if "machines" in times:
        named = list(dict.fromkeys(n for cell in times["machines"] for n in str(cell).split("; ")
                                   if n and n != NOT_RECORDED))
        unrecorded = [t for t, cell in times["machines"].items() if NOT_RECORDED in str(cell).split("; ")]
        missing = f"where {', '.join(unrecorded)} trained is not recorded"
        if len(named) > 1:
            where = ", ".join(named[:-1]) + " and " + named[-1]
            lines.append(f"These times come from {len(named)} machines ({where}): a processor's speed moves every "
                         "epoch's time, so compare trainings across them with care" + (f"; {missing}." if unrecorded else "."))
        elif named and unrecorded:
            lines.append(f"The recorded epochs ran on {named[0]}; {missing} (it may have been another processor).")
        elif named:
            lines.append(f"Every epoch ran on {named[0]}.")
    unknown = times[times["notebook"] == "?"]
    if len(unknown):
        lines.append(f"Trainings of no known notebook: {', '.join(unknown.index)} ({hours(unknown['hours'].sum())}).")
    return "\n".join(lines)


#: The source report's test accuracies (its text gives these, rounded; it has no intervals).
#: Class weights and the face recipe were not in the report.
REPORT_ACCURACY: dict[str, float] = {
    "baseline": 0.65, "undersample": 0.40, "oversample": 0.60, "augment_report": 0.70,
}


def described_cpu(hardware: dict) -> str | None:
    """A provenance's processor and core count ("AMD EPYC, 2 cores"); None when it has no processor."""
    if not hardware.get("cpu"):
        return None
    return f"{hardware['cpu']}, {hardware.get('cpu_count', '?')} cores"


def trained_on(provenance: dict) -> str | None:
    """Where a metrics file's model trained: the machines of its ``training_machines`` record, in the order
    they trained (a training resumed on another machine names both, joined by " then "), else the
    machine that wrote the file (:func:`described_cpu`, the only record older trainings have); None when
    neither is recorded."""
    hardware = provenance.get("hardware") or {}
    names: list[str] = []
    for segment in provenance.get("training_machines") or []:
        name = segment.get("name") if isinstance(segment, dict) else None
        if name and name not in names:
            names.append(name)
    if names == [hardware.get("cpu")] or not names:  # one machine, the one that wrote the file: say its cores too
        return described_cpu(hardware)
    return " then ".join(names)


def describe_machines_of(table: pd.DataFrame, fallback: str) -> str:
    """The machine(s) whose numbers :func:`summary_table`'s ``table`` holds, for a sentence: ``fallback``
    when every experiment's model trained on one machine (or none is recorded; the table's ``trained_on``:
    :func:`trained_on`), else each machine with the notebooks whose models it trained ("AMD EPYC, 2 cores
    (notebooks 01, 03) and Intel(R) Xeon(R) Processor, 2 cores (notebook 04)"), in the order of their
    first notebook. A run carried across working sessions may change machines between notebooks, and the
    table's training times and images per second are each machine's own."""
    if "trained_on" not in table or table["trained_on"].dropna().nunique() < 2:
        return fallback
    by_cpu: dict[str, list[str]] = {}
    for name, cpu in table["trained_on"].items():
        if cpu is None or (isinstance(cpu, float) and np.isnan(cpu)):
            cpu = "an unrecorded processor"
        notebook = TRAINED_IN.get(name, "?")
        if notebook not in by_cpu.setdefault(cpu, []):
            by_cpu[cpu].append(notebook)
    parts = [f"{cpu} (notebook{'s' if len(nbs) > 1 else ''} {', '.join(sorted(nbs))})"
             for cpu, nbs in sorted(by_cpu.items(), key=lambda item: min(item[1]))]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def summary_table(run: str | os.PathLike, names: list[str] | None = None) -> pd.DataFrame:
    """:func:`compare` over the study's experiments, with the report's accuracy beside ours.

    Adds ``best_epoch``, ``profile``, ``precision`` (float32 for metrics files
    older than the fast path), ``finished_utc`` and ``trained_on`` (where the model trained: :func:`trained_on`)
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
                       "finished_utc": p.get("finished_utc"), "trained_on": trained_on(p)}
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
    PrivateTest predictions says whether the swap is more than chance.
    """
    if table.empty:
        return "No experiment has a metrics file in this run directory yet."
    both = table.dropna(subset=["report_accuracy"])
    lines = []
    for name, row in both.iterrows():
        gap = row.accuracy - row.report_accuracy
        epochs = int(row.epochs)
        lines.append(f"{EXPERIMENTS.get(name, name)}: ours {row.accuracy:.3f} "
                     f"({row.ci95_low:.3f}-{row.ci95_high:.3f}, {epochs} epoch{'' if epochs == 1 else 's'}), "
                     f"report {row.report_accuracy:.2f}: {gap * 100:+.1f} points, {_against_interval(row)}.")
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
    if "baseline" in table.index:
        best = table["accuracy"].idxmax()
        lines.append(f"Best accuracy in this run: {EXPERIMENTS.get(best, best)} ({table.loc[best, 'accuracy']:.3f}); "
                     f"best balanced accuracy: {table['balanced_accuracy'].idxmax()} "
                     f"({table['balanced_accuracy'].max():.3f}).")
    return "\n".join(lines)


def export_model(run: str | os.PathLike, name: str, dest: str | os.PathLike) -> Path:
    """Write experiment ``name``'s model to ``dest`` for inference only: architecture and weights
    (batch-norm statistics included) without the optimizer's state, a third of the training file.

    The file is written whole or not at all. Returns ``dest``.
    """
    from .machinery.speed import float32_copy

    # one copy, float32 (the file runs the same on any machine) and uncompiled (no optimizer state)
    bare = float32_copy(_load_saved_model(run, name), always_copy=True)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.stem}.tmp.keras")
    bare.save(tmp)
    os.replace(tmp, dest)
    return dest


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
             f"{prov['optimizer']}, batch {prov['batch_size']}, {prov['precision']}; {prov['hardware']['cpu']}):"]
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


#: Where notebook 06 keeps the ``fer`` package's PrivateTest metrics in a run (and fer-publish in results/).
PEER_METRICS = Path("metrics") / "peers" / "fer_package.json"
#: ... and its PrivateTest answers, for McNemar's test against the study's models.
PEER_PREDICTIONS = Path("predictions") / "peers" / "fer_package.npz"


def save_peer(run: str | os.PathLike, peer: dict) -> Path:
    """Write a peer model's PrivateTest metrics (:func:`fer_utils.peers.score_fer_package`) into the
    run directory as a metrics file (:func:`fer_utils.evaluate.write_metrics`: whole or not at all),
    its ``peer`` facts as the provenance, and its ``predictions``, where given, beside the experiments'
    (:data:`PEER_PREDICTIONS`, also whole or not at all), so that the published results can cite them."""
    metrics = {key: value for key, value in peer.items() if key not in ("peer", "predictions")}
    path = write_metrics(Path(run) / PEER_METRICS, metrics, {"peer": peer.get("peer", {})})
    answers = peer.get("predictions")
    if answers is not None:
        write_predictions(Path(run) / PEER_PREDICTIONS, answers["ids"], answers["y_true"], answers["y_pred"],
                          **{key: answers[key] for key in ("probs",) if key in answers})
    return path


def read_peer(run: str | os.PathLike) -> dict | None:
    """The peer metrics :func:`save_peer` wrote into ``run`` (with ``predictions`` where they were
    kept), or None where none were (the ``fer`` package was not installed when notebook 06 ran)."""
    path = Path(run) / PEER_METRICS
    if not path.exists():
        return None
    payload = read_metrics(path)
    peer = {**payload["metrics"], "peer": payload["provenance"]["peer"]}
    answers = Path(run) / PEER_PREDICTIONS
    if answers.exists():
        with np.load(answers) as npz:
            peer["predictions"] = {key: npz[key] for key in ("ids", "y_true", "y_pred", "probs") if key in npz}
    return peer


def _duration(seconds: float) -> str:
    """``seconds`` as hours to one decimal from an hour on, else as whole minutes."""
    return f"{seconds / 3600:.1f} hours" if seconds >= 3600 else f"{seconds / 60:.0f} minutes"


def readme_results(results: str | os.PathLike, manifest: dict) -> str:
    """The README's results for a published run, computed from its files: which run and machine and
    how long it took (``manifest``: ``results/published.json``), :func:`markdown_summary`, the
    sentences of :func:`describe_against_report`, the baseline's curve against the report's
    (:func:`fer_utils.train.compare_with_report_curve`), how each training ended
    (:func:`describe_stopping`) and, where notebook 06 scored it, :func:`describe_against_peer`; a
    notebook the manifest lists as pending (still running when the run was published) is named as
    missing. ``fer-publish`` writes it into the README, and a test checks the README still holds it, so
    no number there can drift from its metrics file."""
    table = summary_table(results)
    hardware = manifest.get("hardware", {})
    machine = f"{hardware.get('cpu', 'an unrecorded CPU')}, {hardware.get('cpu_count', '?')} cores"
    accelerators = hardware.get("accelerators") or []
    if accelerators:
        names = [a.get("name", "?") if isinstance(a, dict) else str(a) for a in accelerators]
        machine += f", {', '.join(names)}"
    notebooks = manifest.get("notebooks", {})
    train = _duration(sum(n.get("train_seconds") or 0 for n in notebooks.values()))
    wall = _duration(sum(n.get("executed_in_s") or 0 for n in notebooks.values()))
    pending = manifest.get("pending") or []
    finished = "its published notebooks finished by" if pending else "finished"
    machine = describe_machines_of(table, machine)
    lines = [f"The `{manifest['profile']}` run, {finished} {manifest['run_finished_utc']} on {machine}: "
             f"{train} of training (the epochs' times, summed across interruptions), and "
             f"{wall} for the notebooks' kept executions. Computed by `fer-publish` from "
             f"`results/{manifest['profile']}/`; the run's notebooks say more.", "", markdown_summary(table),
             "", "What it cost:", ""]
    if pending:
        names = ", ".join(f"`notebooks/{name}`" for name in pending)
        lines[1:1] = ["", f"Not in it yet: {names}, still running in this run when it was published (so "
                      f"{'its' if len(pending) == 1 else 'their'} committed copy has no outputs, and "
                      f"{'its' if len(pending) == 1 else 'their'} experiments are neither in the table nor in "
                      "the costs); the run is published again once it finishes."]
    lines += [f"- {line}" for line in describe_training_time(training_time(results)).splitlines()]
    lines += ["", "Against the source report:", ""]
    lines += [f"- {line}" for line in describe_against_report(table, results).splitlines()]
    baseline = read_history(history_file(results, "baseline"))
    if baseline.get("val_accuracy"):
        from .train import compare_with_report_curve

        lines += ["", "The baseline's PublicTest curve against the report's:", ""]
        lines += [f"- {line}" for line in compare_with_report_curve(baseline).splitlines()]
    stopping = _stopping_lines(results, list(table.index))
    if stopping:
        lines += ["", "How each training ended (from its PublicTest curve):", ""]
        lines += [f"- {line}" for line in stopping]
    peer = read_peer(results)
    if peer is not None:
        lines += ["", "Against a peer readers will try:", ""]
        lines += [f"- {line}" for line in describe_against_peer(table, peer, results).splitlines()]
    return "\n".join(lines)
