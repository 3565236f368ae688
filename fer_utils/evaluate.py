"""Metrics that tell the whole story on imbalanced data, and metrics files that say where they came from.

*The lesson.* On FER-2013 a model that always answers "happy" scores about 25 % accuracy, so accuracy
alone misleads. Report macro-F1 and balanced accuracy (every emotion counts the same), recall per
emotion, and a 95 % interval (about ±1.6 points on 3,589 test faces); to say that one model beats
another, test their predictions on the same faces with McNemar's test. Write down what produced every
number.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics import (
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from .device import cpu_name
from .data import EMOTIONS

if TYPE_CHECKING:
    import pandas as pd

#: Packages whose versions every metrics file records.
RECORDED_PACKAGES = ("tensorflow-cpu", "tensorflow", "keras", "jax", "numpy", "scikit-learn",
                     "imbalanced-learn", "pillow", "papermill")


def accuracy_interval(correct: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for an accuracy of ``correct / total`` (95 % by default)."""
    if total <= 0:
        raise ValueError("total must be positive")
    if not 0 <= correct <= total:
        raise ValueError(f"correct must lie in 0..{total}, got {correct}")
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


#: How close to the majority-class floor an accuracy may come before it is called near the floor.
NEAR_FLOOR_MARGIN = 0.05


def majority_floor(labels: np.ndarray) -> tuple[float, int]:
    """The accuracy of always answering the commonest class of ``labels``, and that class: the floor a model
    must clear before its answers say anything."""
    counts = np.bincount(np.asarray(labels).astype(int), minlength=len(EMOTIONS))
    return (float(counts.max() / counts.sum()) if counts.sum() else float("nan")), int(counts.argmax())


def near_floor(accuracy: float, majority_share: float, margin: float = NEAR_FLOOR_MARGIN) -> bool:
    """Whether ``accuracy`` is no more than ``margin`` above ``majority_share`` (the accuracy of always
    answering the commonest emotion, :func:`majority_floor`): such a model has learned too little for what
    it shows, or its differences from another model, to mean anything. False when the floor is unknown (NaN).
    Every reading of the study that sets a weak model aside uses this one rule."""
    return bool(np.isfinite(majority_share) and accuracy <= majority_share + margin)


def within_noise(accuracy_a: float, accuracy_b: float, total: int) -> bool:
    """Whether two accuracies measured on the same ``total`` faces lie within the noise of one split: their
    95 % intervals (:func:`accuracy_interval`) overlap. This is the rough reading the notebooks give a table of
    accuracies; McNemar's test (:func:`mcnemar`) on the answers themselves is the sharper one."""
    return intervals_overlap(accuracy_interval(round(accuracy_a * total), total),
                             accuracy_interval(round(accuracy_b * total), total))


def intervals_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two intervals ``(low, high)`` share a point: for two 95 % intervals of accuracy, the rough reading
    "within the noise of one split" (:func:`within_noise`)."""
    return bool(a[0] <= b[1] and b[0] <= a[1])


def describe_gap(accuracy_a: float, accuracy_b: float, total: int, name_a: str, name_b: str) -> str:
    """One phrase setting accuracy ``a`` against ``b`` (both on the same ``total`` faces): the gap in points and
    whether it lies within the noise of one split (:func:`within_noise`), e.g. ``"the ensemble with the baseline
    0.683 against the ensemble of 3 0.669: +1.4 points on 3,589 faces, and their 95 % intervals overlap: within
    the noise of one split, as this rough reading goes (McNemar's test on the answers themselves is sharper)"``."""
    gap = (accuracy_a - accuracy_b) * 100
    verdict = ("their 95 % intervals overlap: within the noise of one split, as this rough reading goes (McNemar's "
               "test on the answers themselves is sharper)" if within_noise(accuracy_a, accuracy_b, total)
               else "their 95 % intervals do not overlap: more than the noise of one split")
    return f"{name_a} {accuracy_a:.3f} against {name_b} {accuracy_b:.3f}: {gap:+.1f} points on {total:,} faces, and {verdict}"


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: tuple[str, ...] = EMOTIONS
) -> dict:
    """Accuracy (with 95 % interval), macro-F1, balanced accuracy, per-class P/R/F1, confusion.

    Args:
        y_true: true labels 0..K-1.
        y_pred: predicted labels 0..K-1.
        class_names: names of the K classes, in label order.

    Returns:
        A JSON-ready dict. ``confusion`` has rows = true class, columns = predicted class;
        ``confusion_normalized`` divides each row by its total (recall on the diagonal).
    """
    y_true = np.asarray(y_true).astype(int).ravel()
    y_pred = np.asarray(y_pred).astype(int).ravel()
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"need equal, non-empty label arrays; got {y_true.shape} and {y_pred.shape}")
    k = len(class_names)
    labels = list(range(k))
    for name, arr in (("y_true", y_true), ("y_pred", y_pred)):
        if arr.min() < 0 or arr.max() >= k:
            raise ValueError(f"{name} holds labels outside 0..{k - 1}")
    correct = int((y_true == y_pred).sum())
    lo, hi = accuracy_interval(correct, y_true.size)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    with np.errstate(invalid="ignore", divide="ignore"):
        cm_norm = np.nan_to_num(cm / cm.sum(axis=1, keepdims=True))
    return {
        "n": int(y_true.size),
        "accuracy": correct / y_true.size,
        "accuracy_ci95": [lo, hi],
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]),
                   "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(class_names)
        },
        "class_names": list(class_names),
        "confusion": cm.tolist(),
        "confusion_normalized": cm_norm.round(6).tolist(),
    }


def predict_labels(model, images: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities and arg-max labels of a Keras model on ``images``."""
    probs = np.asarray(model.predict(images, batch_size=batch_size, verbose=0))
    return probs, probs.argmax(axis=1)


def fit_on_training(model, images: np.ndarray, labels: np.ndarray) -> float:
    """How well ``model`` fits faces it trained on, as it predicts them (augmentation layers and dropout
    are off at inference): its accuracy on ``images``. The accuracy Keras logs while training is on
    augmented faces with dropout on, so it understates how much a model has learned of its training set."""
    _, predicted = predict_labels(model, images)
    return float(np.mean(predicted == labels))


def hardware_info() -> dict:
    """CPU model, core count, memory and accelerators the backend sees."""
    info = {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "system": platform.system()}
    try:
        pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages * page / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    try:
        from .device import device_info

        device = device_info()
        info["keras_backend"] = device["backend"]
        info["accelerators"] = [device["name"]] * device["count"] if device["kind"] == "gpu" else []
        if device["kind"] == "gpu":
            info["gpu"] = {k: device[k] for k in ("name", "count", "memory_gib", "compute_capability")}
    except Exception:  # noqa: BLE001 - provenance must never break a run
        pass
    return info


def library_versions() -> dict:
    """Python and the installed versions of :data:`RECORDED_PACKAGES`."""
    versions = {"python": sys.version.split()[0]}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def provenance(
    *,
    profile: str,
    experiment: str,
    epochs: int,
    data_counts: dict,
    seed: int,
    wall_seconds: float,
    **extra,
) -> dict:
    """Everything a reader needs to know about what produced a metrics file."""
    from datetime import datetime, timezone

    return {
        "profile": profile,
        "experiment": experiment,
        "epochs": epochs,
        "data_counts": data_counts,
        "seed": seed,
        "wall_seconds": round(float(wall_seconds), 1),
        "finished_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": library_versions(),
        "hardware": hardware_info(),
        **extra,
    }


def write_metrics(path: str | os.PathLike, metrics: dict, provenance: dict) -> Path:
    """Write ``{"provenance": ..., "metrics": ...}`` as JSON, whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"provenance": provenance, "metrics": metrics}
    text = json.dumps(payload, indent=2, allow_nan=False)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def read_metrics(path: str | os.PathLike) -> dict:
    """Read a metrics file written by :func:`write_metrics`."""
    payload = json.loads(Path(path).read_text())
    if not {"provenance", "metrics"} <= set(payload):
        raise ValueError(f"{Path(path).name}: not a metrics file (needs provenance and metrics)")
    return payload


def mcnemar(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict:
    """Exact McNemar test of two classifiers on the same images.

    Counts the discordant pairs (``a_only``: A right, B wrong; ``b_only``: the reverse)
    and tests whether they are equally likely with an exact two-sided binomial test,
    which is valid for any number of discordant pairs.
    """
    from scipy.stats import binomtest

    y_true, pred_a, pred_b = (np.asarray(v).ravel() for v in (y_true, pred_a, pred_b))
    if not (y_true.shape == pred_a.shape == pred_b.shape):
        raise ValueError("y_true, pred_a and pred_b must have the same length")
    right_a, right_b = pred_a == y_true, pred_b == y_true
    a_only, b_only = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    n = a_only + b_only
    p = 1.0 if n == 0 else float(binomtest(a_only, n, 0.5).pvalue)
    return {"a_only": a_only, "b_only": b_only, "p_value": p}


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far, in MiB (``getrusage``; Linux reports KiB)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def seen_in_training(images: np.ndarray, training_images: np.ndarray) -> np.ndarray:
    """For each of ``images``: whether the same pixels also occur among ``training_images``.

    FER-2013 holds hundreds of faces twice, once in Training and once in a test split (notebook 00
    counts them); a model can score on those by memory.
    """
    from .verify import pixel_hashes

    training = set(pixel_hashes(training_images).tolist())
    return np.array([h in training for h in pixel_hashes(images).tolist()], dtype=bool)


def accuracy_without_seen(y_true: np.ndarray, y_pred: np.ndarray, seen: np.ndarray) -> dict:
    """Accuracy on the images *not* seen in Training (``seen`` from :func:`seen_in_training`),
    with its 95 % interval, beside how many were left out."""
    y_true, y_pred, seen = (np.asarray(v).ravel() for v in (y_true, y_pred, seen))
    if not (y_true.shape == y_pred.shape == seen.shape):
        raise ValueError("y_true, y_pred and seen must have the same length")
    keep = ~seen
    n = int(keep.sum())
    if n == 0:
        raise ValueError("every image was seen in Training: nothing left to score")
    correct = int((y_true[keep] == y_pred[keep]).sum())
    return {"n": n, "left_out": int(seen.sum()), "accuracy": correct / n,
            "accuracy_ci95": list(accuracy_interval(correct, n)),
            "accuracy_of_left_out": float(np.mean(y_true[seen] == y_pred[seen])) if seen.any() else None}


def describe_result(metrics: dict, split: str = "PrivateTest") -> str:
    """The one line a notebook prints for an experiment: accuracy (95 % CI), macro-F1, balanced accuracy,
    and the accuracy without the faces also seen in Training (when the metrics have it)."""
    lo, hi = metrics["accuracy_ci95"]
    line = (f"{split} accuracy {metrics['accuracy']:.3f} (95% CI {lo:.3f}-{hi:.3f}), "
            f"macro-F1 {metrics['macro_f1']:.3f}, balanced accuracy {metrics['balanced_accuracy']:.3f}")
    unseen = metrics.get("without_seen_in_training")
    if unseen:
        ulo, uhi = unseen["accuracy_ci95"]
        line += (f"\nwithout the {unseen['left_out']} faces also in Training: accuracy {unseen['accuracy']:.3f} "
                 f"(95% CI {ulo:.3f}-{uhi:.3f}) on {unseen['n']} faces")
        if unseen.get("accuracy_of_left_out") is not None:
            line += f"; on the {unseen['left_out']} seen faces: {unseen['accuracy_of_left_out']:.3f}"
    return line


def top_and_right(probs: np.ndarray, y_true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each face's top class probability and whether that top class is its label: what every
    calibration measure here reads. ValueError unless ``probs`` is (N, K) for the N labels, N > 0."""
    probs, y_true = np.asarray(probs, dtype=float), np.asarray(y_true).ravel()
    if probs.ndim != 2 or len(probs) != len(y_true):
        raise ValueError(f"probs must be (N, K) with N = len(y_true) = {len(y_true)}, got shape {probs.shape}")
    if len(y_true) == 0:
        raise ValueError("no faces to score")
    return probs.max(axis=1), probs.argmax(axis=1) == y_true


#: Bands of the top class probability that :func:`confidence_table` reports on.
CONFIDENCE_EDGES = (0.0, 0.5, 0.7, 0.9, 0.99, 1.0)


def confidence_table(probs: np.ndarray, y_true: np.ndarray,
                     edges: tuple[float, ...] = CONFIDENCE_EDGES) -> pd.DataFrame:
    """How often a model is right at each level of its own confidence.

    The faces are grouped by their top class probability into the bands ``edges`` mark
    (``[lo, hi)``, the last one closed at 1). Each row gives the band's face count, how many the model
    got right, that accuracy with its 95 % Wilson interval, and the band's mean top probability.
    A model whose probabilities mean what they say has a mean probability inside each band's
    interval; above it, the model promises more than it delivers (over-confident).

    Args:
        probs: (N, K) class probabilities.
        y_true: N true labels 0..K-1.
        edges: increasing band edges from 0 to 1.

    Returns:
        One row per band, indexed by its label ("0.90-1.00"), with columns ``lo``, ``hi``, ``faces``,
        ``right``, ``accuracy``, ``ci95_low``, ``ci95_high``, ``mean_probability`` (NaN where a band
        holds no face).
    """
    import pandas as pd

    top, right = top_and_right(probs, y_true)
    edges = tuple(float(e) for e in edges)
    if len(edges) < 2 or edges[0] != 0.0 or edges[-1] != 1.0 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"edges must rise from 0 to 1, got {edges}")
    rows = []
    for i, (lo, hi) in enumerate(zip(edges, edges[1:])):
        last = i == len(edges) - 2
        inside = (top >= lo) & ((top <= hi) if last else (top < hi))
        n, k = int(inside.sum()), int(right[inside].sum())
        ci = accuracy_interval(k, n) if n else (math.nan, math.nan)
        rows.append({"band": f"{lo:.2f}-{hi:.2f}", "lo": lo, "hi": hi, "faces": n, "right": k,
                     "accuracy": k / n if n else math.nan, "ci95_low": ci[0], "ci95_high": ci[1],
                     "mean_probability": float(top[inside].mean()) if n else math.nan})
    return pd.DataFrame(rows).set_index("band")


def _band_of(table: pd.DataFrame, probability: float):
    """The row of ``table`` (:func:`confidence_table`) whose band holds ``probability``."""
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"a probability lies in 0..1, got {probability}")
    for _, row in table.iterrows():
        if row["lo"] <= probability < row["hi"] or (probability == row["hi"] == 1.0):
            return row
    raise ValueError(f"no band of the table holds {probability}")


def _probability(p: float) -> str:
    """A probability with two decimals, or three above 0.99, where two would round it to 1.00."""
    return f"{p:.3f}" if 0.99 < p < 1 else f"{p:.2f}"


def _band_verdict(row) -> str:
    """Whether a band's mean probability lies above, inside or below its accuracy interval."""
    if row["mean_probability"] > row["ci95_high"]:
        return "over-confident"
    if row["mean_probability"] < row["ci95_low"]:
        return "under-confident"
    return "as often as its probabilities say"


def describe_confidence(table: pd.DataFrame, name: str = "the model", split: str = "PrivateTest") -> str:
    """One line per band of :func:`confidence_table` (share of faces, accuracy with its interval, mean
    probability, verdict) and a closing line on how to read this model's probabilities."""
    total = int(table["faces"].sum())
    lines = []
    for band, row in table.iterrows():
        if not row["faces"]:
            lines.append(f"top probability {band}: no {split} face")
            continue
        lines.append(f"top probability {band}: {int(row['faces']):,} {split} faces ({row['faces'] / total:.0%}), "
                     f"right on {row['accuracy']:.0%} of them (95% CI {row['ci95_low']:.0%}-{row['ci95_high']:.0%}) "
                     f"against a mean probability of {_probability(row['mean_probability'])}: {_band_verdict(row)}")
    filled = table[table["faces"] > 0]
    over = filled[filled["mean_probability"] > filled["ci95_high"]]
    under = filled[filled["mean_probability"] < filled["ci95_low"]]
    if len(over) and not len(under):
        where = ("in every band" if len(over) == len(filled) else
                 f"in the bands that hold {int(over['faces'].sum()) / total:.0%} of the {split} faces")
        lines.append(f"So {name}'s probabilities run high: {where} it claims more than it delivers. Read a "
                     f"probability from it as the accuracy of its band above, not as itself.")
    elif len(under) and not len(over):
        lines.append(f"So {name}'s probabilities run low: it is right more often than it says.")
    elif len(over) or len(under):
        lines.append(f"So {name}'s probabilities mean different things in different bands: read each through "
                     f"the accuracy of its band above.")
    else:
        lines.append(f"So {name}'s probabilities mean what they say on {split}, within the intervals above.")
    return "\n".join(lines)


def describe_face_confidence(table: pd.DataFrame, probability: float, split: str = "PrivateTest") -> str:
    """What one answer's top probability was worth on ``split``: the accuracy of its band in
    :func:`confidence_table`, e.g. "0.93: the model was right on 78% of the 919 PrivateTest faces it gave 0.90-0.99"."""
    row = _band_of(table, probability)
    if not row["faces"]:
        return f"{probability:.2f}: no {split} face had a top probability of {row.name}, so no measure of it"
    return (f"{probability:.2f}: the model was right on {row['accuracy']:.0%} of the {int(row['faces']):,} {split} "
            f"faces it gave {row.name} (95% CI {row['ci95_low']:.0%}-{row['ci95_high']:.0%})")


#: How far below its overall accuracy a model must be on a group of faces for its answers there to be "worth much
#: less" (10 percentage points).
MUCH_LESS = 0.1


def describe_close_calls(right: np.ndarray, close: np.ndarray) -> str:
    """How often the model is right on its close calls (``close``: the faces whose top two probabilities are
    near each other) against all faces (``right``: which faces it gets right)."""
    right, close = np.asarray(right, dtype=bool), np.asarray(close, dtype=bool)
    if right.shape != close.shape:
        raise ValueError(f"right and close must have the same shape, got {right.shape} and {close.shape}")
    if not close.any():
        return "no face is a close call"
    on_close, overall = right[close].mean(), right.mean()
    line = f"on those faces the model is right {on_close:.0%} of the time, against {overall:.0%} overall"
    if on_close < overall - MUCH_LESS:
        line += ": where it hesitates between two emotions, its answer is worth much less"
    return line


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 10) -> dict:
    """How far a model's top probabilities are from how often it is right (Guo et al. 2017).

    The faces are put into ``n_bins`` equal bands of top probability; the expected calibration error
    is the face-weighted mean of ``|accuracy - mean probability|`` over the bands: 0 for a model
    whose probabilities mean what they say. ``overconfidence`` is the signed difference over all
    faces (mean top probability minus accuracy): above 0, the model claims more than it delivers.

    Returns:
        ``{"ece", "mean_probability", "accuracy", "overconfidence"}``.
    """
    top, right = top_and_right(probs, y_true)
    right = right.astype(float)
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    band = np.minimum((top * n_bins).astype(int), n_bins - 1)  # a probability of 1.0 belongs to the top band
    ece = 0.0
    for b in np.unique(band):
        inside = band == b
        ece += inside.mean() * abs(right[inside].mean() - top[inside].mean())
    return {"ece": float(ece), "mean_probability": float(top.mean()), "accuracy": float(right.mean()),
            "overconfidence": float(top.mean() - right.mean())}


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Class probabilities softened (``temperature`` > 1) or sharpened (< 1): the softmax of
    ``log(probs) / temperature``, which is the softmax of the model's logits divided by it. The top
    class, and so the accuracy, never changes."""
    if not temperature > 0:
        raise ValueError(f"the temperature must be positive, got {temperature}")
    logits = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, None)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit_temperature(probs: np.ndarray, y_true: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """Temperature scaling (Guo et al. 2017): the one number that, dividing a model's logits, gives
    its probabilities the lowest log-loss on held-out faces (fit it on PublicTest, judge it on
    PrivateTest). Above 1 it softens the probabilities (the model was over-confident by the measure of
    log-loss), below 1 it sharpens them."""
    from scipy.optimize import minimize_scalar
    from sklearn.metrics import log_loss

    top_and_right(probs, y_true)  # the same checks as every calibration measure here
    probs, y_true = np.asarray(probs, dtype=np.float64), np.asarray(y_true).ravel()
    labels = np.arange(probs.shape[1])
    found = minimize_scalar(lambda t: log_loss(y_true, apply_temperature(probs, t), labels=labels),
                            bounds=bounds, method="bounded", options={"xatol": 1e-3})
    return float(found.x)
