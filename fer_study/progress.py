"""Where a long run stands: one line per finished epoch while it runs, and a status of a run directory.

A training notebook of the reference run trains for up to two hours inside one papermill cell, so the
runner's own log would say nothing between "03_oversampling ..." and "done". :class:`EpochWatcher`
reads the training folders' ``history.csv`` (written by :func:`fer_utils.train.train_model` after every
epoch) while a notebook runs and prints each new epoch as it lands, with the time the training may
still take. :func:`run_status` (``fer-study --status``) describes a run directory at any time, from
another shell while the run goes on in the background, or after it was interrupted.

Both only read files; neither touches a kernel, the data or TensorFlow.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Callable

from fer_utils.experiments import EPOCHS_PARAMETER, training_notebook, training_order


def epoch_caps(steps: list[tuple[Path, Path, dict]]) -> dict[str, int]:
    """For each training folder, its epoch cap under the parameters of the run's ``steps``
    (:func:`fer_study.runner.plan`; a parameter the profile does not set keeps the notebook's
    own value); folders whose notebook is not in the run are left out."""
    from .notebooks import parameter_names

    by_notebook = {nb.stem[:2]: {**parameter_names(nb), **params} for nb, _, params in steps}
    caps = {}
    for folder, parameter in EPOCHS_PARAMETER.items():
        notebook = training_notebook(folder)
        if notebook not in by_notebook:
            continue
        value = parameter if isinstance(parameter, int) else by_notebook[notebook].get(parameter)
        if isinstance(value, int) and value > 0:
            caps[folder] = value
    return caps


def _rows(path: Path) -> list[dict[str, str]]:
    """The rows of a ``history.csv`` (a row being written is left out: only complete lines count)."""
    import csv
    import io

    try:
        text = path.read_text()
    except OSError:
        return []
    complete = text[: text.rfind("\n") + 1]
    return list(csv.DictReader(io.StringIO(complete)))


def _number(row: dict[str, str], key: str) -> float:
    try:
        return float(row.get(key) or "nan")
    except ValueError:
        return math.nan


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def describe_epochs(name: str, rows: list[dict[str, str]], cap: int | None = None) -> str:
    """One line on a training after its latest epoch: the epoch and its cap, PublicTest accuracy and
    the best so far, the learning rate, the epoch's time, and the time the cap still allows (at the
    median epoch time; early stopping may end it sooner)."""
    if not rows:
        return f"{name}: no epoch finished yet"
    last = rows[-1]
    accuracies = [_number(r, "val_accuracy") for r in rows]
    best = max(range(len(rows)), key=lambda i: -math.inf if math.isnan(accuracies[i]) else accuracies[i])
    seconds = sorted(s for s in (_number(r, "epoch_seconds") for r in rows) if not math.isnan(s))
    epochs = len(rows)
    text = f"{name}: epoch {epochs}" + (f" of at most {cap}" if cap else "")
    if not math.isnan(accuracies[-1]):
        text += f" · PublicTest {accuracies[-1]:.3f} (best {accuracies[best]:.3f} at epoch {best + 1})"
    rate = _number(last, "learning_rate")
    if not math.isnan(rate):
        text += f" · learning rate {rate:.0e}"
    if seconds:
        text += f" · {_duration(_number(last, 'epoch_seconds'))} this epoch"
        if cap and cap > epochs:
            median = seconds[len(seconds) // 2]
            text += f" · at most {_duration(median * (cap - epochs))} left"
    return text


class EpochWatcher:
    """Print a line (:func:`describe_epochs`) for every epoch that lands in ``run/*/history.csv``
    while it runs, checking every ``interval`` seconds; epochs already there when it starts (a resumed
    training) are not printed again, though each new line counts them (epoch number, best so far).

    Use as a context manager around the notebooks' execution; the last check runs on exit."""

    def __init__(self, run: str | os.PathLike, caps: dict[str, int] | None = None, interval: float = 15.0,
                 emit: Callable[[str], None] | None = None):
        self.run, self.caps, self.interval = Path(run), caps or {}, interval
        self.emit = emit or (lambda line: print(f"    {line}", flush=True))
        self._seen = {path.parent.name: len(_rows(path)) for path in self.run.glob("*/history.csv")}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="epoch-watcher", daemon=True)

    def check(self) -> None:
        """Print the epochs that landed since the last check."""
        for path in sorted(self.run.glob("*/history.csv")):
            name = path.parent.name
            rows = _rows(path)
            seen = self._seen.get(name, 0)
            if len(rows) < seen:  # the training started again from scratch (other settings)
                seen = 0
            for k in range(seen + 1, len(rows) + 1):
                self.emit(describe_epochs(name, rows[:k], self.caps.get(name)))
            self._seen[name] = len(rows)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - progress lines must never stop a run
                self.emit(f"(progress not shown: {type(exc).__name__}: {exc})")
                return

    def __enter__(self) -> "EpochWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.check()


def notebook_state(executed: Path) -> str:
    """``finished`` (with the duration and end time of its last execution, from papermill: a notebook run
    again over finished trainings takes seconds, so its trainings' time is in :func:`run_status`'s lines for
    them), ``failed``, ``running or interrupted``,
    ``not run`` or ``unreadable`` for an executed notebook path, from papermill's metadata in it."""
    from .notebooks import papermill_record

    if not executed.exists():
        return "not run"
    try:
        meta = papermill_record(json.loads(executed.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "unreadable"
    if meta.get("exception"):
        return "failed"
    if meta.get("end_time"):
        return (f"finished (its last execution {_duration(meta.get('duration') or 0)}, "
                f"ended {str(meta['end_time'])[:16].replace('T', ' ')} UTC)")
    return "running or interrupted"


def run_status(run: str | os.PathLike, steps: list[tuple[Path, Path, dict]], now: float | None = None) -> str:
    """What a run directory holds, for ``fer-study --status``: each notebook of ``steps`` (finished,
    failed, running or interrupted, not run; a finished one whose execution is not of the notebook as it
    is now, with these parameters, says that ``--skip-finished`` runs it again), each training
    (:func:`describe_epochs`, ``finished`` where its ``done.json`` exists, and how long ago its last
    epoch landed), and the training time so far."""
    from fer_utils.compare import describe_training_time
    from fer_utils.experiments import training_time

    run = Path(run)
    now = time.time() if now is None else now
    if not run.is_dir():
        return f"{run.name}: no such run directory yet (nothing has run)"
    from .notebooks import finished_already

    caps = epoch_caps(steps)
    lines = ["notebooks:"]
    for nb, out, params in steps:
        state = notebook_state(out)
        if state.startswith("finished") and not finished_already(nb, out, params):
            state += (" · but not of the notebook as it is now (its cells or these parameters differ): "
                      "--skip-finished runs it again")
        lines.append(f"  {nb.stem}: {state}")
    histories = sorted(run.glob("*/history.csv"), key=lambda p: training_order(p.parent.name))
    if histories:
        lines.append("trainings:")
    for path in histories:
        name = path.parent.name
        rows = _rows(path)
        line = describe_epochs(name, rows, caps.get(name))
        if (path.parent / "done.json").exists():
            line = line.split(" · at most ")[0] + " · finished"
        else:
            ago = _duration(max(0.0, now - path.stat().st_mtime))
            line += f" · last epoch {ago} ago" if rows else f" · started {ago} ago"
        lines.append(f"  {line}")
    lines.append(describe_training_time(training_time(run)))
    return "\n".join(lines)
