"""A training's ``history.csv``, read without Keras.

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
        added = f"those {patience} epochs added {gain * 100:.1f} points to the best before them"
        noise = f"one standard error of a PublicTest accuracy ({se * 100:.1f} points on {publictest_n:,} faces)"
        if gain < se:
            return facts, (f"{late}, but {added}, less than {noise}: it had levelled off (more epochs might still "
                           "add a fraction of a point).")
        if annealed:
            return facts, f"{late} and {added}, more than {noise}, but {ANNEALED}"
        return facts, f"{late} and {added}, more than {noise}: it was still improving, and more epochs might raise it."
    return facts, f"{late}, " + (f"but {ANNEALED}" if annealed else
                                 "so it may still have been improving and more epochs might raise it.")
