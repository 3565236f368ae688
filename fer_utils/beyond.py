"""Beyond the report (notebook 08): the steps from the report's CNN towards the 2013 challenge's winning 71.2 %.

*The lesson.* The report stops near 65 %, where a person does. The challenge was won at 71.2 % on
PrivateTest without extra data, and a tuned VGG-style network reached 73.3 %. Nothing in between is
magic: a network shaped for 48x48 faces, an optimiser with a schedule that anneals the rate to zero,
augmentation that never shows the same face twice, softer targets for labels this noisy, and averaging
over several views of each test face. Notebook 08 adds them one at a time, measures each on PublicTest
(where choices are made) with its cost, and reports the final model once on PrivateTest.

This module holds what those steps need beyond :mod:`fer_utils.model` (:func:`~fer_utils.model.build_vgg`,
label smoothing in :func:`~fer_utils.model.compile_model`) and :mod:`fer_utils.augment` (the ``strong``
recipe): the learning-rate schedule, test-time augmentation, ensembles and the table of steps.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .evaluate import accuracy_interval, classification_metrics, expected_calibration_error, intervals_overlap, near_floor
from .train import cosine_schedule, steps_per_epoch  # noqa: F401  (notebook 08 imports them from here)


def crop_margin(model) -> int:
    """Pixels between the input's border and the model's central crop (its ``CenterCrop`` layer), 0
    for a model without one. Test-time shifts up to this margin show the model a corner crop."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.CenterCrop):
            size = int(model.input_shape[1])
            return (size - int(layer.height)) // 2
    return 0


def shifted(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``images`` (N, H, W, C) moved by ``dy`` rows and ``dx`` columns, the uncovered border filled with
    the nearest edge pixels (so a shift works on any model, and a model's central crop of a shifted
    image is a crop of the original, pixel for pixel, while the shift is within its margin)."""
    if dy == 0 and dx == 0:
        return images
    n, h, w, _ = images.shape
    pad = max(abs(dy), abs(dx))
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    return padded[:, pad - dy:pad - dy + h, pad - dx:pad - dx + w]


def tta_views(shift: int, flip: bool = True) -> list[tuple[int, int, bool]]:
    """The views of test-time augmentation as ``(dy, dx, mirrored)``: the image itself, its four
    diagonal shifts by ``shift`` pixels (with a central crop: the four corner crops), and the mirror
    image of each when ``flip``. ``shift=4, flip=True`` is the ten-crop of the literature."""
    if shift < 0:
        raise ValueError(f"shift must be >= 0, got {shift}")
    offsets = [(0, 0)] + ([(-shift, -shift), (-shift, shift), (shift, -shift), (shift, shift)] if shift else [])
    return [(dy, dx, mirrored) for mirrored in ((False, True) if flip else (False,)) for dy, dx in offsets]


def tta_probabilities(model, images: np.ndarray, *, shift: int | None = None, flip: bool = True,
                      batch_size: int = 256) -> np.ndarray:
    """Class probabilities averaged over the views of :func:`tta_views` (test-time augmentation).

    Args:
        model: a Keras model taking ``images``.
        images: uint8 or float ``(N, H, W, C)``.
        shift: pixels of the diagonal shifts; None: the model's :func:`crop_margin` (0, flips only,
            for a model without a central crop).
        flip: add the mirror image of every view.
        batch_size: images per prediction batch.

    Returns:
        float32 ``(N, classes)``, each row summing to 1.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}")
    shift = crop_margin(model) if shift is None else shift
    views = tta_views(shift, flip)
    stacked = np.concatenate([shifted(images, dy, dx)[:, :, ::-1] if mirrored else shifted(images, dy, dx)
                              for dy, dx, mirrored in views])  # one prediction call for all the views
    probs = np.asarray(model.predict(stacked, batch_size=batch_size, verbose=0), dtype=np.float64)
    return probs.reshape(len(views), len(images), -1).mean(axis=0).astype(np.float32)


def tta_predictor(shift: int | None = None, flip: bool = True) -> Callable:
    """A ``predict(model, images) -> probabilities`` with test-time augmentation, for
    :func:`fer_utils.experiment.save_experiment`'s ``predict``."""
    def predict(model, images: np.ndarray) -> np.ndarray:
        return tta_probabilities(model, images, shift=shift, flip=flip)
    return predict


def ensemble_probabilities(probabilities: list[np.ndarray], weights: list[float] | None = None) -> np.ndarray:
    """The (weighted) mean of several models' class probabilities for the same images."""
    if not probabilities:
        raise ValueError("an ensemble needs at least one model's probabilities")
    shapes = {np.shape(p) for p in probabilities}
    if len(shapes) != 1:
        raise ValueError(f"the models' probabilities differ in shape: {sorted(shapes)}")
    w = np.ones(len(probabilities)) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (len(probabilities),) or np.any(w < 0) or w.sum() == 0:
        raise ValueError("weights must be one non-negative number per model, not all zero")
    return (np.tensordot(w / w.sum(), np.stack(probabilities).astype(np.float64), axes=1)).astype(np.float32)


def step_row(step: str, y_true: np.ndarray, probabilities: np.ndarray, *, minutes: float,
             params: int, epochs: int | None = None, predict_minutes: float = 0.0,
             images_per_second: float | None = None) -> dict:
    """One row of notebook 08's table: a step's PublicTest accuracy (with its 95 % interval) and
    macro-F1 from its class probabilities, what it cost in minutes (training and the extra
    predictions; for a step that trains nothing, the predictions only), the part of that cost spent
    predicting (``predict_minutes``), the training's images per second where the step trains, and
    its parameter count; and how far its probabilities are from how often it is right
    (:func:`fer_utils.evaluate.expected_calibration_error`: ``calibration_error`` and the signed
    ``overconfidence``)."""
    y_true = np.asarray(y_true)
    predicted = np.asarray(probabilities).argmax(axis=1)
    m = classification_metrics(y_true, predicted)
    lo, hi = accuracy_interval(int((predicted == y_true).sum()), len(y_true))
    calibration = expected_calibration_error(probabilities, y_true)
    return {"step": step, "accuracy": m["accuracy"], "ci95_low": lo, "ci95_high": hi,
            "macro_f1": m["macro_f1"], "calibration_error": calibration["ece"],
            "overconfidence": calibration["overconfidence"], "epochs": epochs, "minutes": float(minutes),
            "predict_minutes": float(predict_minutes),
            "images_per_second": float(images_per_second) if images_per_second else np.nan,
            "params": int(params)}


def steps_table(rows: list[dict]) -> pd.DataFrame:
    """The rows of :func:`step_row` as a table indexed by step, with each step's gain in accuracy
    over the step before it and the cumulative minutes."""
    if not rows:
        raise ValueError("no steps to tabulate")
    table = pd.DataFrame(rows).set_index("step")
    table["epochs"] = table["epochs"].astype("Int64")  # whole epochs; <NA> for a step that trains nothing
    table["gain"] = table["accuracy"].diff()
    table["cumulative_minutes"] = table["minutes"].cumsum()
    return table


def describe_steps(table: pd.DataFrame, split: str = "PublicTest") -> str:
    """What the table of steps says, one line a step: its accuracy and interval, its gain over the step
    before (or that the gain is smaller than the noise of one split: the intervals overlap), its cost;
    then how sure of itself each step is (its mean top probability against its accuracy)."""
    lines = []
    previous = None
    for step, row in table.iterrows():
        line = (f"{step}: {row['accuracy']:.3f} on {split} (95 % CI {row['ci95_low']:.3f}-{row['ci95_high']:.3f}), "
                f"macro-F1 {row['macro_f1']:.3f}, {row['minutes']:.1f} min")
        if previous is not None:
            gain = row["accuracy"] - previous["accuracy"]
            overlap = _overlap(row, previous)
            line += f"; {gain:+.3f} over the step before" + (" (the intervals overlap)" if overlap else "")
        lines.append(line)
        previous = row
    lines.append("How sure of itself each step is (mean top probability minus accuracy; above 0: it claims more "
                 "than it delivers), with its expected calibration error: " + "; ".join(
                     f"{step} {row['overconfidence']:+.3f} ({row['calibration_error']:.3f})"
                     for step, row in table.iterrows()) + ".")
    return "\n".join(lines)


def describe_cost(table: pd.DataFrame) -> str:
    """Where the machine time of notebook 08's steps (``table``: :func:`steps_table`) went: training
    against predicting, the costliest training, and the training speeds."""
    total = table["minutes"].sum()
    if not total:
        return "The steps cost no measured time."
    training = table["minutes"] - table["predict_minutes"]
    predict, train = table["predict_minutes"].sum(), training.sum()
    costliest = training.idxmax()
    costliest_minutes = training[costliest]

    def amount(minutes: float) -> str:
        return f"{minutes / 60:.1f} hours" if minutes >= 60 else f"{minutes:.1f} minutes"

    lines = [f"All steps: {amount(total)}. Training {amount(train)} ({train / total:.0%}), of which "
             f"{_step(costliest)} ({_name(costliest)}) alone {amount(costliest_minutes)} ({costliest_minutes / total:.0%} of all); "
             f"predicting {amount(predict)} ({predict / total:.0%}), the ten views of each face included."]
    speeds = table["images_per_second"].dropna()
    if len(speeds):
        lines.append("Training speed (training images per second over an epoch, PublicTest's scoring after each "
                     "epoch included): " + ", ".join(f"{step} {speed:.0f}" for step, speed in speeds.items()) + ".")
    return "\n".join(lines)


def evaluate_step(step: str, result, images: np.ndarray, labels: np.ndarray, *, tta: bool = False,
                  extra_seconds: float = 0.0) -> tuple[dict, np.ndarray]:
    """Score a trained step on the validation split (PublicTest): its :func:`step_row` and its class
    probabilities (for ensembles). The cost is the training's seconds, plus the prediction's when
    ``tta`` (ten views of each face cost ten predictions), plus ``extra_seconds``.

    Args:
        step: the step's name in the table.
        result: what :func:`fer_utils.train.train_model` returned (its kept model is scored).
        images, labels: the split to score on.
        tta: average over :func:`tta_views` (:func:`tta_probabilities`) instead of one view.
        extra_seconds: further cost to count (e.g. a step that reuses another's training counts 0 of it).
    """
    import time

    started = time.perf_counter()
    if tta:
        probs = tta_probabilities(result.model, images)
    else:
        probs = np.asarray(result.model.predict(images, batch_size=256, verbose=0), dtype=np.float32)
    predict_seconds = time.perf_counter() - started
    predict_minutes = (predict_seconds if tta else 0.0) / 60
    row = step_row(step, labels, probs, params=int(result.model.count_params()), epochs=result.epochs_run,
                   minutes=predict_minutes + extra_seconds / 60, predict_minutes=predict_minutes,
                   images_per_second=result.images_per_second if extra_seconds else None)
    return row, probs


def where_trained(provenance: dict) -> str:
    """How a metrics file's model trained, in a few words: on a GPU or a CPU, the Keras backend and the
    precision (the machine itself is in the metrics file's provenance)."""
    hardware = provenance.get("hardware", {})
    machine = "GPU" if hardware.get("gpu") else "CPU"
    backend = hardware.get("keras_backend")
    return ", ".join(part for part in (machine, backend, provenance.get("precision")) if part)


def compare_runs(runs: dict[str, dict], predictions: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
                 ) -> pd.DataFrame:
    """One row per model of other runs: PrivateTest accuracy (95 % CI), without the faces seen in
    Training, macro-F1, epochs, training minutes and images/s, and where it trained. ``runs`` maps
    a label to a metrics payload (:func:`fer_utils.experiment.read_model_run`).

    With ``predictions`` (label -> ``(ids, y_true, y_pred)``, for every label), ``same_faces`` says
    whether each model was reported on the same faces as the first (a smoke run reports on a
    sample), and for those, ``mcnemar_p_vs_first`` tests the difference on the same faces.
    """
    if not runs:
        raise ValueError("no runs to compare")
    rows = []
    for label, payload in runs.items():
        m, p = payload["metrics"], payload["provenance"]
        lo, hi = m["accuracy_ci95"]
        rows.append({"model": label, "accuracy": m["accuracy"], "ci95_low": lo, "ci95_high": hi,
                     "accuracy_unseen": (m.get("without_seen_in_training") or {}).get("accuracy", np.nan),
                     "macro_f1": m["macro_f1"], "epochs": p.get("epochs"),
                     "train_minutes": (p.get("train_seconds") or np.nan) / 60,
                     "images_per_second": p.get("images_per_second", np.nan), "trained_on": where_trained(p)})
    table = pd.DataFrame(rows).set_index("model")
    if predictions:
        from .evaluate import mcnemar

        ids, y_true, y_pred = predictions[next(iter(runs))]
        same, pvalues = {}, {}
        for i, label in enumerate(runs):
            other_ids, _, other_pred = predictions[label]
            same[label] = bool(np.array_equal(other_ids, ids))
            pvalues[label] = mcnemar(y_true, y_pred, other_pred)["p_value"] if i and same[label] else np.nan
        table["same_faces"] = pd.Series(same)
        table["mcnemar_p_vs_first"] = pd.Series(pvalues)
    return table


def describe_runs(table: pd.DataFrame) -> str:
    """What :func:`compare_runs`' table says: each model against the first, in accuracy (and
    whether the difference is more than chance, where the table has McNemar's p-value) and in
    training time."""
    first, base = table.index[0], table.iloc[0]
    lines = [f"{first}: {base['accuracy']:.3f} on PrivateTest (95 % CI {base['ci95_low']:.3f}-{base['ci95_high']:.3f}), "
             f"macro-F1 {base['macro_f1']:.3f}, {base['epochs']} epochs in {base['train_minutes']:.1f} minutes of "
             f"training ({base['trained_on']})"]
    for label, row in table.iloc[1:].iterrows():
        same = row.get("same_faces", True)
        gain = f"{(row['accuracy'] - base['accuracy']) * 100:+.1f} points, " if same else ""
        line = (f"{label}: {row['accuracy']:.3f} (95 % CI {row['ci95_low']:.3f}-{row['ci95_high']:.3f}), "
                f"{gain}macro-F1 {row['macro_f1']:.3f}, {row['epochs']} epochs in "
                f"{row['train_minutes']:.1f} minutes of training ({row['trained_on']})")
        p = row.get("mcnemar_p_vs_first", np.nan)
        if not same:
            line += f"; reported on other faces than {first}, so the two accuracies do not compare"
        elif not np.isnan(p):
            line += (f"; McNemar p = {p:.2g}: " + ("more than chance" if p < 0.05 else
                                                   "within what chance gives on one test split"))
        lines.append(line)
    return "\n".join(lines)


#: Published single-model PrivateTest accuracies without extra data that notebook 08 measures its
#: headline model against.
LANDMARKS = {"the 2013 challenge's winner (Tang)": 0.712, "Khaireddin & Chen 2021": 0.733}
#: The split each landmark was measured on (``../shared/STUDY_GUIDE.md``'s table of anchors), so that a
#: figure never sets a PrivateTest figure on a PublicTest axis unlabelled.
LANDMARK_SPLITS = {"the 2013 challenge's winner (Tang)": "PrivateTest", "Khaireddin & Chen 2021": "PublicTest"}


def describe_against_landmarks(metrics: dict, *, baseline: dict | None = None, peer: dict | None = None,
                               landmarks: dict[str, float] = LANDMARKS) -> str:
    """Whether a PrivateTest result (``metrics``: :func:`fer_utils.evaluate.classification_metrics` with its
    ``n``, ``accuracy``, ``accuracy_ci95`` and ``macro_f1``) reached each published accuracy of
    ``landmarks``, read strictly (enough faces right) and against its 95 % interval, and where its
    macro-F1 stands against the ``baseline``'s and a ``peer``'s (:func:`fer_utils.experiment.read_peer`),
    each when given and scored on as many faces.

    A landmark inside the interval is one this test split cannot tell apart from the result, reached
    or not: a published figure is one run on the same 3,589 faces, with the same uncertainty. A landmark
    measured on another split (:data:`LANDMARK_SPLITS`) is named with its split and not judged."""
    missing = [key for key in ("n", "accuracy", "accuracy_ci95", "macro_f1") if key not in metrics]
    if missing:
        raise ValueError(f"metrics lack {', '.join(missing)}: pass a PrivateTest metrics dict (save_experiment's)")
    n, accuracy = int(metrics["n"]), float(metrics["accuracy"])
    lo, hi = metrics["accuracy_ci95"]
    right = round(accuracy * n)
    lines = [f"PrivateTest accuracy {accuracy:.3f} ({right:,} of {n:,} faces; 95 % CI {lo:.3f}-{hi:.3f}):"]
    for name, target in landmarks.items():
        split = LANDMARK_SPLITS.get(name, "PrivateTest")
        if split != "PrivateTest":  # another split's figure: a landmark to read beside, not a test of this result
            lines.append(f"  {name}, {target * 100:.1f} %: measured on {split}, not PrivateTest, so neither reached nor "
                         "missed here; it shows the level that work reports.")
            continue
        needed = math.ceil(target * n - 1e-9)
        if right >= needed:
            verdict = f"reached ({right - needed:,} faces to spare)"
        else:
            verdict = f"not reached ({needed - right:,} faces short)"
        if lo <= target <= hi:
            where = "inside the interval: this test split cannot tell the two apart"
        elif target > hi:
            where = "above the interval: a gap larger than chance on this test split explains"
        else:
            where = "below the interval: beaten beyond chance"
        lines.append(f"  {name}, {target * 100:.1f} %: {verdict}; {where}.")
    for label, other in (("the baseline", baseline), ("the fer package", peer)):
        if other is None:
            lines.append(f"  macro-F1 against {label}: not in this run (yet).")
        elif int(other["n"]) != n:
            lines.append(f"  macro-F1 against {label}: scored on {int(other['n']):,} faces, not these {n:,}.")
        else:
            gap = (metrics["macro_f1"] - other["macro_f1"]) * 100
            lines.append(f"  macro-F1 {metrics['macro_f1']:.3f} against {label}'s {other['macro_f1']:.3f} on the same "
                         f"faces: {'higher' if gap > 0 else 'not higher'} ({gap:+.1f} points).")
    return "\n".join(lines)


@dataclass
class RecordedTraining:
    """A finished training read back from its records, usable where notebook 08 uses what
    :func:`fer_utils.train.train_model` returns (``model``, ``history``, ``best_epoch``, ``epochs_run``,
    ``train_seconds``, ``images_per_second``), with ``note`` (one line: which model it is) and
    ``records`` (the folder of its metrics, predictions and history), ``train_images`` and
    ``publictest_n`` (the PublicTest faces its history was scored on)."""

    model: object
    history: dict
    best_epoch: int
    epochs_run: int
    train_seconds: float
    images_per_second: float
    note: str
    records: Path
    train_images: int | None
    publictest_n: int | None


def headline_model(run: str | os.PathLike, name: str = "beyond") -> RecordedTraining:
    """Notebook 08's headline model without training it: the run's own finished one, else the one the
    study ships (``models/beyond.keras``, :func:`fer_utils.notebook.model_source`), with the history and
    provenance of the training that made it, so that a Run All within minutes still reads the
    headline model of a training that took hours."""
    from .evaluate import read_metrics
    from .experiments import history_file, load_experiment_model
    from .history import read_history
    from .notebook import model_source

    source = model_source(run, name)
    provenance = read_metrics(source.records / "metrics" / f"{name}.json")["provenance"]
    history = read_history(history_file(source.records, name))
    return RecordedTraining(
        model=load_experiment_model(source.folder, name), history=history,
        best_epoch=int(provenance.get("best_epoch") or len(history.get("epoch", [])) or 0),
        epochs_run=int(provenance["epochs"]), train_seconds=float(provenance.get("train_seconds") or 0.0),
        images_per_second=float(provenance.get("images_per_second") or np.nan), note=source.note,
        records=source.records, train_images=(provenance.get("data_counts") or {}).get("train_images"),
        publictest_n=((provenance.get("data_counts") or {}).get("splits") or {}).get("PublicTest"))


def published_step_accuracy(folders: dict[str, str]) -> dict[str, float]:
    """The published run's best PublicTest accuracy (one view a face, from its history) of each step
    trained into ``folders``' training folder (step -> folder, e.g. ``{"1 VGG-style network":
    "beyond_vgg"}``); NaN for a step the published run has no history of."""
    from .experiments import history_file
    from .history import read_history
    from .notebook import published_records

    published = published_records()
    out = {}
    for step, folder in folders.items():
        history = read_history(history_file(published[1], folder)) if published else {}
        accuracy = np.asarray(history.get("val_accuracy") or [np.nan], dtype=float)
        out[step] = float(np.nanmax(accuracy)) if np.isfinite(accuracy).any() else np.nan
    return out


def _name(name: str) -> str:
    """A step's name without its number ("trained longer (ten-crop)")."""
    first, _, rest = str(name).partition(" ")
    return rest if first.isdigit() and rest else str(name)


def beside_headline(best_ensemble: float, headline: float) -> str:
    """A clause setting the better of two ensembles' accuracies beside the headline model alone (exercise 08.2)."""
    if best_ensemble > headline:
        return f"; the better ensemble beats the headline model alone ({headline:.3f}) by {(best_ensemble - headline) * 100:.1f} points"
    return (f"; neither ensemble beats the headline model alone ({headline:.3f}): averaging it with weaker models "
            "pulls it down")


def _step(name: str) -> str:
    """A step of the table by its number ("step 3"), or by its name where it has no number."""
    first = str(name).split(" ")[0]
    return f"step {first}" if first.isdigit() else str(name)


def _overlap(a: pd.Series, b: pd.Series) -> bool:
    """Whether two rows' 95 % intervals of accuracy overlap (:func:`fer_utils.evaluate.intervals_overlap`)."""
    return intervals_overlap((a["ci95_low"], a["ci95_high"]), (b["ci95_low"], b["ci95_high"]))


def describe_step_lengths(table: pd.DataFrame, majority_share: float | None = None, split: str = "PublicTest",
                          long_note: str = "") -> str:
    """What the table of steps (:func:`steps_table`) shows once the length of each training is read with
    it: the short steps (those that trained the fewest epochs) against the starting point (the table's
    first row) and against each other, the long one (the same recipe trained far longer) against the step
    before it, and every accuracy near ``majority_share`` (always answering the commonest emotion on ``split``;
    :func:`fer_utils.evaluate.near_floor`) named as near the floor. ``long_note`` is added to the long step's sentence (say,
    that its model is the shipped one, trained on more data than this run's steps).

    A short training measures how fast a recipe learns, not where it ends: a change made to pay off over a
    long schedule (augmentation, label smoothing, a rate annealed to zero) can cost accuracy after a few
    epochs and still be what the long training needs. The sentences say which of the two the numbers show."""
    if len(table) < 2:
        return "Too few steps to read."
    start_name, start = _step(table.index[0]), table.iloc[0]
    rest = table.iloc[1:]
    trained = rest[rest["epochs"].notna() & (rest["minutes"] > rest["predict_minutes"])]
    if trained.empty:
        return "No step after the first trained a model."
    short_len = int(trained["epochs"].min())
    short = trained[trained["epochs"] == short_len]
    long = trained[trained["epochs"] > short_len]
    names = ", ".join(s.split(" ")[0] for s in short.index)
    line = f"Step{'s' if len(short) > 1 else ''} {names} trained {short_len} epoch{'s' if short_len != 1 else ''} each"
    if pd.notna(start["epochs"]):
        line += f"; {start_name} (the starting point) {int(start['epochs'])}"
    if len(long):
        line += "; " + ", ".join(f"{_step(s)} {int(r['epochs'])}" for s, r in long.iterrows())
    line += " epochs"
    lines = [line + "."]
    below = short[short["accuracy"] < start["accuracy"]]
    noise = sum(_overlap(table.iloc[i], table.iloc[i - 1]) for i in range(2, len(table))
                if table.index[i] in short.index and table.index[i - 1] in short.index)
    pairs = sum(1 for i in range(2, len(table)) if table.index[i] in short.index and table.index[i - 1] in short.index)
    near_chance = (majority_share is not None
                   and all(near_floor(a, majority_share) for a in short["accuracy"]))
    if near_chance:
        lines.append(f"At {short_len} epoch{'s' if short_len != 1 else ''} on this run's data every one of them is near the floor, so the table cannot "
                     "say what any change does; read the published run's figures for the steps.")
    elif len(below) == len(short):
        lines.append(
            f"At {short_len} epoch{'s' if short_len != 1 else ''} every one of them ends below {start_name}'s {start['accuracy']:.3f} on {split} "
            f"({short['accuracy'].min():.3f} to {short['accuracy'].max():.3f}), and "
            + (f"{noise} of the {pairs} changes from one short step to the next lie within the noise of one split "
               "(their intervals overlap)" if pairs else "none of them is compared at equal length with the start")
            + ". So the table does not show that these changes hurt: it shows that after so few epochs they had not "
            "paid off yet. Augmentation and label smoothing make every epoch's task harder and an annealed rate "
            "spends its first epochs high; what each is worth at full length would take each step trained as long "
            "as the long run, which is not measured here.")
    elif len(below):
        lines.append(f"At {short_len} epoch{'s' if short_len != 1 else ''} {len(short) - len(below)} of them end above {start_name}'s "
                     f"{start['accuracy']:.3f} on {split} and {len(below)} below; {noise} of the {pairs} changes from one "
                     "short step to the next lie within the noise of one split. A short training measures how fast a "
                     "recipe learns, not where it ends.")
    else:
        lines.append(f"At {short_len} epoch{'s' if short_len != 1 else ''} every one of them ends above {start_name}'s {start['accuracy']:.3f} on "
                     f"{split}, even so short a training.")
    for step, r in long.iterrows():
        position = table.index.get_loc(step)
        before_name, before = _step(table.index[position - 1]), table.iloc[position - 1]
        gain = (r["accuracy"] - before["accuracy"]) * 100
        verdict = "within the noise of one split" if _overlap(r, before) else "more than the noise of one split"
        against = ("above" if r["accuracy"] > start["accuracy"] else "not above") + f" {start_name}'s {start['accuracy']:.3f}"
        if _overlap(r, start):
            against += " (their intervals overlap)"
        times = r["epochs"] / short_len
        lines.append(f"{_step(step).capitalize()}, the recipe trained {int(r['epochs'])} epochs ({times:.0f} times as many) reaches "
                     f"{r['accuracy']:.3f} against {before_name}'s {before['accuracy']:.3f} ({gain:+.1f} points, "
                     f"{verdict}), {against}." + (" Length is what this recipe needed." if gain > 0 and not
                                                   _overlap(r, before) and r["accuracy"] > start["accuracy"] else "")
                     + (f" {long_note}" if long_note else ""))
    if majority_share is not None and np.isfinite(majority_share):
        near = table[[near_floor(a, majority_share) for a in table["accuracy"]]]
        if len(near):
            lines.append(f"Near the floor on this {split} (always answering its commonest emotion scores "
                         f"{majority_share:.3f}): " + ", ".join(f"{_step(s)} ({r['accuracy']:.3f})" for s, r in near.iterrows())
                         + ". A step near the floor is no finding: read the published run's figures for it.")
    return "\n".join(lines)
