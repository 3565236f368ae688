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
