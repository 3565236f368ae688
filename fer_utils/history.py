"""A training's ``history.csv`` and ``machines.json``, read without Keras.

:func:`fer_utils.train.train_model` appends one row per finished epoch (Keras' ``CSVLogger``) and records
which machine trained which epochs (a long training resumed in another working session may have moved to
another processor). The summary notebook, ``fer-study --status``, the metrics files and the cost
accounting read these files, and none of them needs TensorFlow for it: importing it would cost seconds
and fill a terminal with its start-up log.
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
from pathlib import Path

#: the file in a training folder that says which machine trained which epochs
MACHINES_FILE = "machines.json"


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


def machines_path(history: str | os.PathLike) -> Path:
    """The machine record beside a history file: ``machines.json`` beside a training folder's
    ``history.csv``, ``<name>_machines.json`` beside published results' ``<name>_history.csv``."""
    history = Path(history)
    return history.with_name(history.name[: -len("history.csv")] + MACHINES_FILE)


def read_machines(where: str | os.PathLike) -> list[dict]:
    """Which machine trained which epochs of a training, as segments in epoch order.

    ``where`` is a training folder (its ``history.csv`` and ``machines.json``) or a history file
    (the machine record beside it: :func:`machines_path`). Each segment has ``first_epoch`` and
    ``last_epoch`` (1-based, inclusive), ``name`` (the processor, or the GPU), ``device`` (``cpu``/``gpu``),
    ``backend``, ``precision``, ``bf16_flags`` (the CPU's native bfloat16 flags), ``started_utc``, and
    from the history ``seconds`` (the segment's epoch times, summed) and ``median_epoch_seconds``.
    Consecutive segments on the same kind of machine (same name, device, backend and precision) are
    merged, with ``sessions`` counting them. Epochs of the history that no segment covers (trained
    before the machine was recorded) come as a segment whose ``name`` is None. An unreadable record
    reads as no record. Returns ``[]`` where there is no history."""
    where = Path(where)
    history_csv = where / "history.csv" if where.is_dir() else where
    history = read_history(history_csv)
    epochs = history.get("epoch", [])
    if not epochs:
        return []
    seconds = dict(zip(epochs, history.get("epoch_seconds", [math.nan] * len(epochs))))
    try:
        recorded = json.loads(machines_path(history_csv).read_text()).get("segments", [])
        recorded = [s for s in recorded if isinstance(s, dict) and int(s["first_epoch"]) <= int(s["last_epoch"])]
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        recorded = []
    owner: dict[int, dict] = {}
    for segment in recorded:
        for epoch in range(int(segment["first_epoch"]), int(segment["last_epoch"]) + 1):
            owner[epoch] = segment
    unknown = {"name": None, "device": None, "backend": None, "precision": None, "bf16_flags": None,
               "started_utc": None}
    keys = ("name", "device", "backend", "precision")
    merged: list[dict] = []
    for epoch in epochs:
        source = owner.get(epoch, unknown)
        last = merged[-1] if merged else None
        if last is not None and last["last_epoch"] == epoch - 1 and all(last[k] == source.get(k) for k in keys):
            last["last_epoch"] = epoch
            last["_epochs"].append(epoch)
            if source is not last["_source"]:
                last["sessions"] += 1
                last["_source"] = source
            continue
        merged.append({"first_epoch": epoch, "last_epoch": epoch, **{k: source.get(k) for k in keys},
                       "bf16_flags": source.get("bf16_flags"), "started_utc": source.get("started_utc"),
                       "sessions": 1, "_source": source, "_epochs": [epoch]})
    for segment in merged:
        times = [seconds[e] for e in segment.pop("_epochs") if math.isfinite(seconds.get(e, math.nan))]
        segment.pop("_source")
        segment["seconds"] = round(sum(times), 1) if times else None
        segment["median_epoch_seconds"] = round(statistics.median(times), 1) if times else None
    return merged


def describe_machines(segments: list[dict]) -> str:
    """One line on where a training ran, e.g. ``epochs 1-20 on Intel(R) Xeon(R) Processor (tensorflow,
    mixed_bfloat16, 151 s an epoch at the median), epochs 21-40 on AMD EPYC (...)``; ``""`` without segments."""
    if not segments:
        return ""
    parts = []
    for s in segments:
        span = (f"epoch {s['first_epoch']}" if s["first_epoch"] == s["last_epoch"]
                else f"epochs {s['first_epoch']}-{s['last_epoch']}")
        details = [] if s["name"] is None else [s["backend"], s["precision"]]
        if s.get("median_epoch_seconds") is not None:
            details.append(f"{s['median_epoch_seconds']:.0f} s an epoch at the median")
        where = "a machine not recorded" if s["name"] is None else s["name"]
        parts.append(f"{span} on {where}" + (f" ({', '.join(details)})" if details else ""))
    return ", ".join(parts)
