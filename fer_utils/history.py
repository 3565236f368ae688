"""A training's ``history.csv``, read without Keras, and what its curves say.

*The lesson.* A training's curves say more than its final number: whether it was still improving when
it stopped (:func:`stopping_verdict`, read on PublicTest accuracy), how its learning rate moved, and what
a different schedule or length did to the same model (:func:`describe_schedules`).

:func:`fer_utils.train.train_model` appends one row per finished epoch (Keras' ``CSVLogger``). The
summary notebook, ``fer-study --status`` and the cost accounting read these files, and none of them
needs TensorFlow for it: importing it would cost seconds and fill a terminal with its start-up log.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np


def history_file(run: str | os.PathLike, name: str) -> Path:
    """Where experiment ``name``'s epochs are: ``<name>/history.csv`` in a run directory,
    ``<name>_history.csv`` in published results (``results/<profile>/``)."""
    folder = Path(run) / name / "history.csv"
    return folder if folder.exists() else Path(run) / f"{name}_history.csv"


def read_history(path: str | os.PathLike) -> dict[str, list[float]]:
    """Read a CSVLogger file into ``{metric: [value per epoch]}`` (``epoch`` is 1-based); an empty
    value (a metric missing in that epoch) reads as NaN, and a missing file as ``{}``."""
    if not Path(path).exists():
        return {}
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    history: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            history.setdefault(key, []).append(float(value) if value not in ("", None) else math.nan)
    if "epoch" in history:
        history["epoch"] = [int(e) + 1 for e in history["epoch"]]
    return history


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


def stopping_verdict(history: dict[str, list[float]], publictest_n: int | None) -> tuple[str, str]:
    """Whether a training's PublicTest accuracy may still have been rising when it stopped, had levelled
    off, or had peaked well before: ``(facts, verdict)``, two phrases read from its history.

    It reads the PublicTest *accuracy* curve, the one that chooses the kept epoch (the loss is given as a
    fact, not judged: under augmentation or label smoothing it can keep falling while accuracy is flat).
    The best epoch coming late (among the last quarter of the epochs, or the last three) is not enough to
    call a curve rising: at a low learning rate PublicTest accuracy drifts by noise and its best epoch
    often falls late. So the gain of those last epochs over the best before them is set against one
    standard error of a PublicTest accuracy, sqrt(p (1 - p) / n), with ``publictest_n`` the PublicTest
    count: a smaller gain is a curve that has levelled off; a larger one, or one that cannot be judged
    (``publictest_n`` None), may still have been rising. A training whose rate was annealed to nearly
    zero by a schedule (:func:`annealed_schedule`) peaks late by design: there a late gain says that a
    longer schedule might help, not that this training, continued, would. Under three epochs is too short
    to tell."""
    acc, loss = np.asarray(history["val_accuracy"], dtype=float), np.asarray(history["val_loss"], dtype=float)
    epochs, best, low = len(acc), int(np.nanargmax(acc)) + 1, int(np.nanargmin(loss)) + 1
    top = float(np.nanmax(acc))
    facts = f"best PublicTest accuracy {top:.3f} at epoch {best} of {epochs}, validation loss lowest at epoch {low}"
    patience = max(3, epochs // 4)
    annealed = annealed_schedule(history)
    if epochs < 3:
        return facts, "too few epochs to tell whether it was still improving."
    if epochs - best >= patience:
        return facts, f"no better epoch in the last {epochs - best}, so more epochs alone would probably not have helped."
    late = f"the best epoch came within the last {patience}"
    before = acc[:epochs - patience]
    gain = top - float(np.nanmax(before)) if np.any(np.isfinite(before)) else math.nan
    if publictest_n and math.isfinite(gain):
        se = math.sqrt(top * (1 - top) / publictest_n)
        added = (f"those {patience} epochs only equalled the best before them" if gain * publictest_n < 0.5 else
                 f"those {patience} epochs added {gain * 100:.2f} points to the best before them")
        noise = f"one standard error of a PublicTest accuracy ({se * 100:.2f} points on {publictest_n:,} faces)"
        if gain < se:
            return facts, (f"{late}, but {added}, less than {noise}: it had levelled off (more epochs might still "
                           "add a fraction of a point).")
        if annealed:
            return facts, f"{late} and {added}, more than {noise}, but {ANNEALED}"
        return facts, f"{late} and {added}, more than {noise}: it was still improving, and more epochs might raise it."
    return facts, f"{late}, " + (f"but {ANNEALED}" if annealed else
                                 "so it may still have been improving and more epochs might raise it.")


def one_class_epochs(val_accuracy: list[float], labels: np.ndarray, faces: int = 2) -> dict[int, int]:
    """The epochs (1-based) whose validation accuracy is, to within ``faces`` faces, the share of one class
    among ``labels`` (the validation split's labels): what a model scores when it answers that class for
    every face. Returns ``{epoch: class}``. Such a score is what a young or unbalanced training often shows
    before it learns to tell the emotions apart; the history alone cannot prove the model answered only that
    class, but a match to the face is a strong hint."""
    labels = np.asarray(labels)
    total = len(labels)
    if not total:
        return {}
    counts = np.bincount(labels)
    found = {}
    for epoch, accuracy in enumerate(val_accuracy, start=1):
        if not math.isfinite(accuracy):
            continue
        gaps = np.abs(counts - accuracy * total)
        best = int(np.argmin(gaps))
        if counts[best] and gaps[best] <= faces:
            found[epoch] = best
    return found


def _epoch_runs(epochs: list[int]) -> str:
    """``[2, 3, 4, 6]`` as ``"2-4 and 6"``."""
    runs: list[list[int]] = []
    for e in epochs:
        if runs and e == runs[-1][-1] + 1:
            runs[-1].append(e)
        else:
            runs.append([e])
    parts = [f"{r[0]}" if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def describe_one_class_epochs(val_accuracy: list[float], labels: np.ndarray, class_names: tuple[str, ...],
                              faces: int = 2, split: str = "PublicTest") -> str:
    """A sentence on the epochs at which validation accuracy was the score of answering one emotion for every
    face (:func:`one_class_epochs`), with the faces right and the emotion's count so that a reader can check the
    match, or ``""`` when there are none."""
    found = one_class_epochs(val_accuracy, labels, faces)
    if not found:
        return ""
    counts = np.bincount(np.asarray(labels), minlength=len(class_names))
    total = int(counts.sum())
    by_class: dict[int, list[int]] = {}
    for epoch, label in found.items():
        by_class.setdefault(label, []).append(epoch)
    parts = []
    for k, (c, e) in enumerate(sorted(by_class.items(), key=lambda item: item[1][0])):
        at = f"epoch{'s' if len(e) > 1 else ''} {_epoch_runs(e)}"
        right = sorted({round(val_accuracy[i - 1] * total) for i in e})
        right_text = (f"{right[0]:,}" if len(right) == 1 else f"{right[0]:,}-{right[-1]:,}") + " faces right"
        parts.append(f"at {at} {split} accuracy was {right_text}, within {faces} faces of the {counts[c]:,} "
                     f"{class_names[c]} faces ({counts[c] / total:.3f} of {total:,})" if k == 0 else
                     f"at {at} {right_text}, against {counts[c]:,} {class_names[c]} ({counts[c] / total:.3f})")
    text = "; ".join(parts)
    last = max(found)
    named = "that emotion" if len(by_class) == 1 else "the emotion named"
    when = "that epoch" if len(found) == 1 else "those epochs"
    return (text[0].upper() + text[1:] + f". That is the score of answering {named} for every face, so at {when} "
            "the model most likely did just that: it had not yet found features that carry over from its "
            "training faces to new ones, a common stage early in a training, and in one on few or reweighted faces."
            + (f" From epoch {last + 1} on, no epoch scores within {faces} faces of one emotion's count."
               if last < len(val_accuracy) else ""))


def rate_drops(history: dict[str, list[float]]) -> list[int]:
    """The epochs (1-based) at which the learning rate fell to at most half of the epoch before's: the
    cuts of a plateau rule. An annealed schedule (:func:`annealed_schedule`) lowers it a little every
    epoch and has none of these until its last steps."""
    rates = [r for r in history.get("learning_rate", []) if math.isfinite(r)]
    return [i + 1 for i in range(1, len(rates)) if rates[i - 1] > 0 and rates[i] <= 0.5 * rates[i - 1]]


def schedule_summary(history_path: str | os.PathLike, metrics_path: str | os.PathLike, schedule: str) -> dict:
    """One training described by how its learning rate went and where it ended: ``schedule`` (a label),
    ``epochs``, ``rate`` (a phrase), ``best_epoch`` and ``best_publictest`` (PublicTest accuracy),
    ``last_train_accuracy`` (logged on the augmented faces with dropout on), ``training_fit`` (the kept
    model on its Training faces, augmentation and dropout off; NaN when not recorded) and ``privatetest``."""
    import json

    history = read_history(history_path)
    if not history:
        raise FileNotFoundError(f"no history at {Path(history_path).name}")
    metrics = json.loads(Path(metrics_path).read_text())["metrics"]
    acc = np.asarray(history["val_accuracy"], dtype=float)
    drops = rate_drops(history)
    if len(acc) < 3:
        rate = "too few epochs to show a schedule"
    elif annealed_schedule(history):
        rate = "annealed to zero along a cosine"
    elif drops:
        rate = "cut tenfold at epoch" + ("s " if len(drops) > 1 else " ") + " and ".join(map(str, drops))
    else:
        rate = "constant"
    provenance = json.loads(Path(metrics_path).read_text()).get("provenance", {})
    return {"schedule": schedule, "epochs": len(acc), "rate": rate,
            "train_images": provenance.get("data_counts", {}).get("train_images"),
            "best_epoch": int(np.nanargmax(acc)) + 1, "best_publictest": float(np.nanmax(acc)),
            "last_train_accuracy": float(history["accuracy"][-1]),
            "training_fit": float(metrics.get("training_fit", {}).get("accuracy", math.nan)),
            "privatetest": float(metrics["accuracy"]), "privatetest_n": int(metrics.get("n", 0)) or None}


def describe_schedules(summaries: dict[str, list[dict]]) -> str:
    """What the same recipes trained on different schedules say, from :func:`schedule_summary` rows
    grouped by recipe: one line per training, then which length scored higher and whether each training
    ended while still learning (its best PublicTest epoch among its last quarter)."""
    lines, late, gains = [], [], []
    for recipe, rows in summaries.items():
        for r in rows:
            fit = f", {r['training_fit']:.3f} on its Training faces as it predicts" if math.isfinite(r["training_fit"]) else ""
            lines.append(f"{recipe}, {r['schedule']}: {r['epochs']} epoch{'s' if r['epochs'] > 1 else ''}, rate {r['rate']}; training accuracy "
                         f"{r['last_train_accuracy']:.3f} at the last epoch (augmented faces){fit}; best PublicTest "
                         f"{r['best_publictest']:.3f} at epoch {r['best_epoch']}; PrivateTest {r['privatetest']:.3f}.")
            late.append(r["epochs"] >= 3 and r["epochs"] - r["best_epoch"] < max(3, r["epochs"] // 4))
        if len(rows) >= 2:
            longest = max(rows, key=lambda r: r["epochs"])
            shortest = min(rows, key=lambda r: r["epochs"])
            if longest is not shortest and longest.get("train_images") == shortest.get("train_images"):
                gains.append((recipe, longest, shortest))
    for recipe, longest, shortest in gains:
        delta = (longest["privatetest"] - shortest["privatetest"]) * 100
        line = (f"{recipe}: the {longest['epochs']}-epoch training scored {delta:+.1f} points on PrivateTest "
                f"against the {shortest['epochs']}-epoch one")
        n = shortest.get("privatetest_n")
        if n:
            p = shortest["privatetest"]
            half = 196 * math.sqrt(p * (1 - p) / n)  # points: half the width of one model's 95 % interval
            line += (f", {'less than' if abs(delta) < half else 'more than'} the ±{half:.1f} points of one "
                     "model's 95 % interval on these faces")
        lines.append(line + ".")
    if late and all(late):
        lines.append("Every one of these trainings had its best PublicTest epoch among its last: each ended while "
                     "still learning.")
    if gains:
        lines.append("The trainings of a recipe differ in length and in schedule at once, so this comparison "
                     "cannot say which of the two made the difference.")
    return "\n".join(lines)


def schedules_beside(plateau: str | os.PathLike, run: str | os.PathLike, published: str | os.PathLike | None,
                     names: list[str]) -> dict[str, list[dict]]:
    """Notebook 04's longer trainings under the plateau rule, as :func:`describe_schedules` reads it: each of ``names`` as
    trained under the plateau rule (the records in ``plateau``) beside its training in ``run`` when that run
    trained on as many Training faces, else beside the published run's (``published``), whose records are
    full-size; a training missing from either side is left out. Files are ``<name>/history.csv`` or
    ``<name>_history.csv`` and ``metrics/<name>.json`` in each folder."""
    import json

    def images(folder: Path, name: str) -> int | None:
        path = folder / "metrics" / f"{name}.json"
        if not path.exists():
            return None
        return json.loads(path.read_text()).get("provenance", {}).get("data_counts", {}).get("train_images")

    plateau, run = Path(plateau), Path(run)
    out: dict[str, list[dict]] = {}
    for name in names:
        if images(plateau, name) is None:
            continue
        other, label = run, "this run"
        if images(run, name) != images(plateau, name) and published is not None:
            other, label = Path(published), "the published run"
        if images(other, name) is None or not history_file(other, name).exists():
            continue
        out[name] = [schedule_summary(history_file(plateau, name), plateau / "metrics" / f"{name}.json", "plateau rule"),
                     schedule_summary(history_file(other, name), other / "metrics" / f"{name}.json", label)]
    return out
