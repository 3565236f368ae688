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
from typing import Callable

import numpy as np
import pandas as pd

from .evaluate import accuracy_interval, classification_metrics, expected_calibration_error


def cosine_schedule(peak_rate: float, *, epochs: int, steps_per_epoch: int, warmup_epochs: int = 1,
                    final_fraction: float = 0.0):
    """A learning rate that rises linearly from 0 to ``peak_rate`` over ``warmup_epochs`` and then
    follows half a cosine down to ``final_fraction * peak_rate`` at the end of ``epochs``
    (Loshchilov & Hutter's annealing, without restarts; Keras' ``CosineDecay``).

    The rate is a function of the optimiser's step counter, which the per-epoch backups keep, so an
    interrupted run resumes at the rate it stopped at. The whole length must be known in advance: a
    run cut short by early stopping never reaches the low rates at the end, where much of the gain comes.
    """
    import keras

    if peak_rate <= 0:
        raise ValueError(f"peak_rate must be positive, got {peak_rate}")
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be at least 1, got {steps_per_epoch}")
    if not 0 <= warmup_epochs < epochs:
        raise ValueError(f"warmup_epochs must lie in 0..{epochs - 1} (epochs={epochs}), got {warmup_epochs}")
    if not 0.0 <= final_fraction < 1.0:
        raise ValueError(f"final_fraction must be in [0, 1), got {final_fraction}")
    warmup = warmup_epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else peak_rate,
        decay_steps=(epochs - warmup_epochs) * steps_per_epoch,
        alpha=final_fraction,
        warmup_target=peak_rate if warmup else None,
        warmup_steps=warmup,
    )


def steps_per_epoch(train_images: int, batch_size: int) -> int:
    """Optimiser steps in one epoch (the last, partial batch counts)."""
    return math.ceil(train_images / batch_size)


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


def step_row(step: str, y_true: np.ndarray, probabilities: np.ndarray, *, cpu_minutes: float,
             params: int, epochs: int | None = None, predict_minutes: float = 0.0,
             images_per_second: float | None = None) -> dict:
    """One row of notebook 08's table: a step's PublicTest accuracy (with its 95 % interval) and
    macro-F1 from its class probabilities, what it cost in CPU-minutes (training and the extra
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
            "overconfidence": calibration["overconfidence"], "epochs": epochs, "cpu_minutes": float(cpu_minutes),
            "predict_minutes": float(predict_minutes),
            "images_per_second": float(images_per_second) if images_per_second else np.nan,
            "params": int(params)}


def steps_table(rows: list[dict]) -> pd.DataFrame:
    """The rows of :func:`step_row` as a table indexed by step, with each step's gain in accuracy
    over the step before it and the cumulative CPU-minutes."""
    if not rows:
        raise ValueError("no steps to tabulate")
    table = pd.DataFrame(rows).set_index("step")
    table["gain"] = table["accuracy"].diff()
    table["cumulative_cpu_minutes"] = table["cpu_minutes"].cumsum()
    return table


def describe_steps(table: pd.DataFrame, split: str = "PublicTest") -> str:
    """What the table of steps says, one line a step: its accuracy and interval, its gain over the step
    before (or that the gain is smaller than the noise of one split: the intervals overlap), its cost;
    then how sure of itself each step is (its mean top probability against its accuracy)."""
    lines = []
    previous = None
    for step, row in table.iterrows():
        line = (f"{step}: {row['accuracy']:.3f} on {split} (95 % CI {row['ci95_low']:.3f}-{row['ci95_high']:.3f}), "
                f"macro-F1 {row['macro_f1']:.3f}, {row['cpu_minutes']:.1f} CPU-min")
        if previous is not None:
            gain = row["accuracy"] - previous["accuracy"]
            overlap = row["ci95_low"] <= previous["ci95_high"] and previous["ci95_low"] <= row["ci95_high"]
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
    total = table["cpu_minutes"].sum()
    if not total:
        return "The steps cost no measured time."
    training = table["cpu_minutes"] - table["predict_minutes"]
    predict, train = table["predict_minutes"].sum(), training.sum()
    costliest = training.idxmax()
    costliest_minutes = training[costliest]

    def amount(minutes: float) -> str:
        return f"{minutes / 60:.1f} CPU-hours" if minutes >= 60 else f"{minutes:.1f} CPU-minutes"

    lines = [f"All steps: {amount(total)}. Training {amount(train)} ({train / total:.0%}), of which "
             f"{costliest} alone {amount(costliest_minutes)} ({costliest_minutes / total:.0%} of all); "
             f"predicting {amount(predict)} ({predict / total:.0%}), the ten views of each face included."]
    speeds = table["images_per_second"].dropna()
    if len(speeds):
        lines.append("Training speed (images of one epoch a second, PublicTest's scoring after each epoch "
                     "included): " + ", ".join(f"{step} {speed:.0f}" for step, speed in speeds.items()) + ".")
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
                   cpu_minutes=predict_minutes + extra_seconds / 60, predict_minutes=predict_minutes,
                   images_per_second=result.images_per_second if extra_seconds else None)
    return row, probs


def where_trained(provenance: dict) -> str:
    """A metrics file's machine in a few words: its GPU, or its CPU and cores; backend and precision."""
    hardware = provenance.get("hardware", {})
    gpu = hardware.get("gpu") or {}
    machine = gpu.get("name") or f"{hardware.get('cpu', 'unknown CPU')}, {hardware.get('cpu_count', '?')} cores"
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


def describe_against_landmarks(metrics: dict, *, baseline: dict | None = None, peer: dict | None = None,
                               landmarks: dict[str, float] = LANDMARKS) -> str:
    """Whether a PrivateTest result (``metrics``: :func:`fer_utils.evaluate.classification_metrics` with its
    ``n``, ``accuracy``, ``accuracy_ci95`` and ``macro_f1``) reached each published accuracy of
    ``landmarks``, read strictly (enough faces right) and against its 95 % interval, and where its
    macro-F1 stands against the ``baseline``'s and a ``peer``'s (:func:`fer_utils.experiment.read_peer`),
    each when given and scored on as many faces.

    A landmark inside the interval is one this test split cannot tell apart from the result, reached
    or not: a published figure is one run on the same 3,589 faces, with the same uncertainty."""
    missing = [key for key in ("n", "accuracy", "accuracy_ci95", "macro_f1") if key not in metrics]
    if missing:
        raise ValueError(f"metrics lack {', '.join(missing)}: pass a PrivateTest metrics dict (save_experiment's)")
    n, accuracy = int(metrics["n"]), float(metrics["accuracy"])
    lo, hi = metrics["accuracy_ci95"]
    right = round(accuracy * n)
    lines = [f"PrivateTest accuracy {accuracy:.3f} ({right:,} of {n:,} faces; 95 % CI {lo:.3f}-{hi:.3f}):"]
    for name, target in landmarks.items():
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
