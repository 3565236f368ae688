"""Seeded training with per-epoch checkpoints, resume after interruption, and kept history.

*The lesson.* Training repeats passes (epochs) over the Training images; after each one the model is
scored on PublicTest, and the epoch that scores best there is the one kept. When training accuracy
keeps rising while validation accuracy stalls and validation loss turns up, the model has begun to
memorise (over-fit). PrivateTest is never used to choose anything.

One experiment lives in one folder (``run_dir / name``)::

    backup/        Keras BackupAndRestore state, written after every epoch (removed when done)
    history.csv    one row per finished epoch (kept across interruptions)
    best.keras     the model of the epoch with the best validation score so far
    done.json      written last: the settings and the best epoch of a finished run

Calling :func:`train_model` again with the same settings resumes an interrupted
run at the next epoch, and returns a finished run without training again; either way it prints the
same line for every epoch (:func:`epoch_line`), the recorded epochs' from the history. A finished
training is its ``history.csv`` and ``done.json``: its model is loaded only when asked for, so a run
directory that keeps a training's record without its model still reads as finished.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from .augment import load_model
from .history import read_history, stopping_verdict  # read_history is kept importable from here; it needs no Keras

#: Progress output: 0 = none, 1 = Keras' progress bar, 2 = one line per epoch (:func:`epoch_line`).
DEFAULT_VERBOSE = 2


@dataclass
class TrainResult:
    """What :func:`train_model` returns.

    Attributes:
        model: the model of the best epoch (chosen on the validation data), loaded from ``best.keras`` when
            first asked for: a finished training is readable from its history without it.
        history: per-epoch metrics, keyed like Keras' History (``loss``, ``val_accuracy``, ...).
        best_epoch: 1-based epoch whose model was kept.
        epochs_run: epochs finished (fewer than asked when early stopping fired).
        train_seconds: wall time spent in ``fit`` (this call and earlier interrupted calls).
        images_per_second: training images processed per second of ``fit`` (validation included).
        resumed_from: epochs already done when this call started (0 for a fresh run).
        folder: the experiment folder.
    """

    history: dict[str, list[float]]
    best_epoch: int
    epochs_run: int
    train_seconds: float
    images_per_second: float
    resumed_from: int
    folder: Path
    settings: dict = field(default_factory=dict)
    _model: keras.Model | None = field(default=None, repr=False)

    @property
    def model(self) -> keras.Model:
        """The kept model, loaded on first use: ``best.keras``, else the copy of the same kept epoch that the
        run saved for later notebooks (``<run>/models/<folder name>.keras``,
        :func:`fer_utils.experiments.save_experiment`); a one-line FileNotFoundError when the run keeps only the
        training's record (its history and ``done.json``)."""
        if self._model is None:
            path = self._model_path()
            if path is None:
                raise FileNotFoundError(f"{self.folder.name}: its training finished, but its model (best.keras) is "
                                        "not in this run directory; train it again in a new run directory to get one")
            self._model = load_model(path)
        return self._model

    def _model_path(self) -> Path | None:
        for path in (self.folder / "best.keras", self.folder.parent / "models" / f"{self.folder.name}.keras"):
            if path.exists():
                return path
        return None

    @property
    def has_model(self) -> bool:
        """Whether the kept model is there to load."""
        return self._model is not None or self._model_path() is not None

    def describe(self) -> str:
        """One line: the epochs trained, the kept epoch and the training speed."""
        return (f"{self.folder.name}: {self.epochs_run} epoch{'s' if self.epochs_run != 1 else ''} trained; kept "
                f"epoch {self.best_epoch} (best on validation); {self.images_per_second:.1f} training images/s")


class _EpochTimer(keras.callbacks.Callback):
    """Adds ``epoch_seconds`` to the epoch logs (so CSVLogger keeps it)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


def epoch_line(epoch: int, epochs: int, logs: dict) -> str:
    """One epoch as :func:`train_model` prints it, from Keras' epoch logs or a row of ``history.csv``:
    ``epoch  3/30 · 212 s · train accuracy 0.487, loss 2.493 · validation accuracy 0.395, loss 2.493 ·
    rate 0.001``. The same line whether the epoch was just trained or read back from the history."""

    def number(key: str) -> float | None:
        value = logs.get(key)
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
        return value if math.isfinite(value) else None

    parts = [f"epoch {epoch:>{len(str(epochs))}}/{epochs}"]
    seconds = number("epoch_seconds")
    if seconds is not None:
        parts.append(f"{seconds:.0f} s")
    for prefix, what in (("", "train"), ("val_", "validation")):
        acc, loss = number(f"{prefix}accuracy"), number(f"{prefix}loss")
        shown = [f"accuracy {acc:.3f}"] * (acc is not None) + [f"loss {loss:.3f}"] * (loss is not None)
        if shown:
            parts.append(f"{what} {', '.join(shown)}")
    rate = number("learning_rate")
    if rate is not None:
        parts.append(f"rate {rate:.2g}")
    return " · ".join(parts)


class _EpochPrinter(keras.callbacks.Callback):
    """Prints :func:`epoch_line` at the end of every epoch (after the callbacks that add the epoch's time
    and rate to its logs)."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        print(epoch_line(epoch + 1, self.epochs, logs or {}), flush=True)


def print_recorded_epochs(history: dict[str, list[float]], epochs: int) -> None:
    """Print :func:`epoch_line` for every epoch recorded in ``history`` (as :func:`read_history` reads it)."""
    for i in range(len(history.get("epoch", []))):
        print(epoch_line(i + 1, epochs, {key: values[i] for key, values in history.items()
                                         if i < len(values)}), flush=True)


class _RateLogger(keras.callbacks.Callback):
    """Adds ``learning_rate`` (the schedule's rate at the end of the epoch) to the epoch logs."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


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


#: How a training's learning rate may move: held constant, lowered tenfold on a PublicTest plateau
#: (``train_model``'s ``reduce_lr_patience``), or annealed along half a cosine to zero by the last epoch.
SCHEDULES: tuple[str, ...] = ("constant", "plateau", "cosine")


def learning_rate_for(schedule: str, rate: float, *, epochs: int, train_images: int, batch_size: int):
    """What to give :func:`fer_utils.model.compile_model` as its learning rate under ``schedule``
    (:data:`SCHEDULES`): ``rate`` itself for ``constant`` and ``plateau`` (the plateau rule is
    :func:`train_model`'s ``reduce_lr_patience``), or a cosine from ``rate`` down to zero over ``epochs``
    for ``cosine`` (:func:`cosine_schedule`, no warm-up: its first epochs run at the
    report's rate, as the baseline's do). The cosine needs the whole length in advance, so a training
    under it runs to its last epoch rather than stopping early."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if schedule != "cosine":
        return rate
    return cosine_schedule(rate, epochs=epochs, steps_per_epoch=steps_per_epoch(train_images, batch_size),
                           warmup_epochs=0)


def _schedule_of(optimizer) -> keras.optimizers.schedules.LearningRateSchedule | None:
    """The optimiser's learning-rate schedule, or None for a constant rate."""
    rate = getattr(optimizer, "_learning_rate", None)
    return rate if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule) else None


class _ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' EarlyStopping that carries on from the epochs of an interrupted run.

    Keras resets ``best`` and ``wait`` at the start of every ``fit``, so a resumed run would count
    its patience from the first resumed epoch and could train longer than an uninterrupted one.
    This one starts from the best score and the epochs since it in ``past`` (the earlier history).
    """

    def __init__(self, past: list[float], **kwargs):
        super().__init__(**kwargs)
        self._past = [float(v) for v in past]

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        state = early_stopping_state(self._past, self.mode, self.patience)
        if state is not None:
            self.best, self.best_epoch, self.wait = state["best"], state["best_index"], state["wait"]


def early_stopping_state(past: list[float], mode: str, patience: int) -> dict | None:
    """Where early stopping stands after the epochs ``past`` (monitored values, oldest first).

    Returns ``None`` for no epochs, else ``best`` (the best value), ``best_index`` (0-based epoch
    of its first occurrence, as Keras counts strict improvements), ``wait`` (epochs since) and
    ``stop`` (whether ``wait`` already reached ``patience``).
    """
    values = np.asarray(past, dtype=float)
    if values.size == 0 or np.all(np.isnan(values)):
        return None
    best_index = int(np.nanargmin(values) if mode == "min" else np.nanargmax(values))
    wait = len(values) - 1 - best_index
    return {"best": float(values[best_index]), "best_index": best_index, "wait": wait,
            "stop": wait >= patience}


class _ResumableReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """Keras' ReduceLROnPlateau that carries on from the epochs of an interrupted run: its count of
    epochs without improvement, its best score and the learning rate they led to are replayed from
    ``past`` (the earlier history) by :func:`plateau_schedule`, instead of starting afresh."""

    def __init__(self, past: list[float], initial_lr: float, **kwargs):
        super().__init__(**kwargs)
        self._past = [float(v) for v in past]
        self._initial_lr = float(initial_lr)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._past:
            state = plateau_schedule(self._past, self._initial_lr, mode=self.mode, patience=self.patience,
                                     factor=self.factor, min_lr=self.min_lr, min_delta=self.min_delta)
            self.best, self.wait = state["best"], state["wait"]
            self.model.optimizer.learning_rate = state["next_lr"]


def plateau_schedule(past: list[float], initial_lr: float, *, mode: str = "max", patience: int = 3,
                     factor: float = 0.1, min_lr: float = 1e-5, min_delta: float = 1e-4) -> dict:
    """The learning rates a plateau schedule gives over the epochs ``past`` (monitored values, oldest
    first), as Keras' ``ReduceLROnPlateau`` (no cooldown) sets them: after ``patience`` epochs
    without an improvement larger than ``min_delta``, the rate is multiplied by ``factor``, never
    below ``min_lr``.

    Returns ``learning_rates`` (the rate each past epoch trained at), ``next_lr`` (the rate of the
    next epoch), ``best`` and ``wait`` (epochs since the last improvement, reset by a reduction).
    """
    if patience < 1:
        raise ValueError(f"patience must be at least 1, got {patience}")
    if not 0 < factor < 1:
        raise ValueError(f"factor must be between 0 and 1, got {factor}")
    lr, best, wait, rates = float(initial_lr), None, 0, []
    for value in past:
        rates.append(lr)
        better = best is None or (value > best + min_delta if mode == "max" else value < best - min_delta)
        if better:
            best, wait = float(value), 0
            continue
        wait += 1
        if wait >= patience and lr > np.float32(min_lr):
            lr, wait = max(lr * factor, min_lr), 0
    return {"learning_rates": rates, "next_lr": lr, "best": best, "wait": wait}


def _write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


def train_model(
    model: keras.Model,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    folder: str | os.PathLike,
    *,
    epochs: int,
    batch_size: int = 128,
    seed: int = 0,
    monitor: str = "val_accuracy",
    early_stopping_patience: int | None = None,
    reduce_lr_patience: int | None = None,
    reduce_lr_factor: float = 0.1,
    min_learning_rate: float = 1e-5,
    reduce_lr_monitor: str = "val_loss",
    class_weight: dict[int, float] | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int | str = DEFAULT_VERBOSE,
) -> TrainResult:
    """Train a compiled model, checkpointing every epoch; resume or skip when already run.

    Called again with the same settings, an interrupted run resumes at its next epoch and a finished
    one is returned without training; any change of settings starts afresh.

    Args:
        model: a compiled Keras model (its weights are replaced when resuming).
        train: ``(images, labels)`` to fit on.
        val: ``(images, labels)`` to choose the epoch on (PublicTest in this study).
        folder: the experiment folder (created).
        epochs: epochs to run in total, counting epochs of earlier interrupted calls.
        batch_size: images per step.
        seed: seeds Python, NumPy and the backend before training (shuffling, dropout).
        monitor: validation metric that picks the best epoch (max for accuracy, min for loss).
        early_stopping_patience: stop after this many epochs without improvement (None: never).
        reduce_lr_patience: multiply the learning rate by ``reduce_lr_factor`` after this many
            epochs without improvement of ``reduce_lr_monitor``, down to ``min_learning_rate``
            (Keras' ReduceLROnPlateau, carried across interruptions; None: a constant rate). The
            rate each epoch trained at is in the history (``learning_rate``).
        reduce_lr_monitor: the score the rate follows; validation loss by default, since during
            the first epochs, while the L2 penalty shrinks the weights, validation loss falls steadily
            but validation accuracy can stall, and a rate lowered then slows everything after.
        class_weight: optional per-class loss weights, passed to ``fit``.
        callbacks: extra Keras callbacks, run after the checkpointing ones.
        verbose: progress output: 2 (default) one line per epoch (:func:`epoch_line`), the epochs of a
            finished or interrupted run read back from its history first, so that the output is the
            same whether it trained now or earlier; 1 Keras' progress bar; 0 nothing.

    Returns:
        A :class:`TrainResult` whose model is the best epoch's.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if reduce_lr_patience is not None and reduce_lr_patience < 1:
        raise ValueError(f"reduce_lr_patience must be at least 1 (or None for a constant rate), got "
                         f"{reduce_lr_patience}")
    if not 0 < reduce_lr_factor < 1:
        raise ValueError(f"reduce_lr_factor must be between 0 and 1, got {reduce_lr_factor}")
    x_train, y_train = train
    if len(x_train) != len(y_train) or len(val[0]) != len(val[1]):
        raise ValueError("images and labels differ in length")
    if len(x_train) == 0 or len(val[0]) == 0:
        raise ValueError("training and validation data must not be empty")
    if getattr(model, "optimizer", None) is None:
        raise ValueError("compile the model before training (fer_utils.model.compile_model)")
    schedule = _schedule_of(model.optimizer)
    if schedule is not None and reduce_lr_patience is not None:
        raise ValueError("the optimiser follows a learning-rate schedule: reduce_lr_patience cannot also "
                         "change its rate (pass None)")

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    history_csv, best_path = folder / "history.csv", folder / "best.keras"
    backup_dir, done_path = folder / "backup", folder / "done.json"
    settings = {
        "epochs": epochs, "batch_size": batch_size, "seed": seed, "monitor": monitor,
        "early_stopping_patience": early_stopping_patience,
        "class_weight": {str(k): v for k, v in (class_weight or {}).items()} or None,
        "train_images": int(len(y_train)), "val_images": int(len(val[1])),
        "layers": len(model.layers), "params": int(model.count_params()),
        "optimizer": type(model.optimizer).__name__,
        "learning_rate": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
    }
    # recorded only when used, so runs of older versions without them still match
    if schedule is not None:
        settings["learning_rate_schedule"] = {"class": type(schedule).__name__, **schedule.get_config()}
    decay = getattr(model.optimizer, "weight_decay", None)
    if decay:
        settings["weight_decay"] = float(decay)
    if type(model.optimizer).__name__ == "SGD":
        settings["momentum"] = float(model.optimizer.momentum)
        settings["nesterov"] = bool(model.optimizer.nesterov)
    smoothing = getattr(model.loss, "smoothing", 0.0)
    if smoothing:
        settings["label_smoothing"] = float(smoothing)
    if reduce_lr_patience is not None:
        settings["reduce_lr"] = {"monitor": reduce_lr_monitor, "patience": reduce_lr_patience,
                                 "factor": reduce_lr_factor, "min_learning_rate": min_learning_rate}
    policy = model.dtype_policy.name
    if policy != "float32":  # recorded only when it differs, so float32 runs of older versions still match
        settings["precision"] = policy
    mode = "min" if "loss" in monitor else "max"

    previous = read_history(history_csv)
    if done_path.exists() and previous.get("epoch"):  # a finished training is its record; its model may be gone
        done = json.loads(done_path.read_text())
        if done.get("settings") == settings:
            if verbose == 2:
                print_recorded_epochs(previous, epochs)
            return _result(folder, done, resumed_from=int(done["epochs_run"]))
    resuming = history_csv.exists() and not done_path.exists() and (
        backup_dir.exists()
        or (best_path.exists() and _finished(previous, monitor, mode, epochs, early_stopping_patience)))
    if not resuming:  # a fresh run: nothing of an older, different run may leak in
        for stale in (history_csv, best_path, done_path):
            stale.unlink(missing_ok=True)
        shutil.rmtree(backup_dir, ignore_errors=True)
        previous = {}
    resumed_from = len(previous.get("epoch", []))

    keras.utils.set_random_seed(seed + resumed_from)
    checkpoint = keras.callbacks.ModelCheckpoint(
        best_path, monitor=monitor, mode=mode, save_best_only=True, verbose=0
    )
    if previous.get(monitor):  # keep the best of the epochs before the interruption
        past = np.asarray(previous[monitor])
        checkpoint.best = float(np.nanmin(past) if mode == "min" else np.nanmax(past))
    extra_callbacks = list(callbacks or [])
    plateau = [] if reduce_lr_patience is None else [_ResumableReduceLROnPlateau(
        previous.get(reduce_lr_monitor, []), settings["learning_rate"], monitor=reduce_lr_monitor,
        mode="min" if "loss" in reduce_lr_monitor else "max", patience=reduce_lr_patience,
        factor=reduce_lr_factor, min_lr=min_learning_rate)]
    callbacks = [
        _EpochTimer(),
        keras.callbacks.BackupAndRestore(str(backup_dir)),
        *plateau,  # before the CSVLogger, which then records each epoch's rate
        *([_RateLogger()] if schedule is not None else []),
        checkpoint,
        *([_EpochPrinter(epochs)] if verbose == 2 else []),
        keras.callbacks.CSVLogger(str(history_csv), append=True),
    ]
    if early_stopping_patience is not None:
        callbacks.append(_ResumableEarlyStopping(
            previous.get(monitor, []), monitor=monitor, mode=mode, patience=early_stopping_patience))
    callbacks.extend(extra_callbacks)

    if verbose == 2 and resumed_from:  # the epochs trained before the interruption, as they were printed then
        print_recorded_epochs(previous, epochs)
    if resumed_from and _finished(previous, monitor, mode, epochs, early_stopping_patience):
        # stopped after its last epoch but before done.json was written: nothing left to train
        shutil.rmtree(backup_dir, ignore_errors=True)
    else:
        model.fit(
            x_train, y_train,
            batch_size=batch_size, epochs=epochs, validation_data=val, shuffle=True,
            class_weight=class_weight, callbacks=callbacks, verbose=1 if verbose == 1 else 0,
        )  # BackupAndRestore sets the first epoch of a resumed run
    history = read_history(history_csv)
    scores = np.asarray(history[monitor])
    best_index = int(np.nanargmin(scores) if mode == "min" else np.nanargmax(scores))
    train_seconds = float(np.nansum(history.get("epoch_seconds", [math.nan])))
    epochs_run = len(history["epoch"])
    done = {
        "settings": settings,
        "epochs_run": epochs_run,
        "best_epoch": history["epoch"][best_index],
        "train_seconds": train_seconds,
        "images_per_second": len(y_train) * epochs_run / train_seconds if train_seconds else 0.0,
    }
    _write_json_atomic(done_path, done)
    return _result(folder, done, resumed_from=resumed_from)


def _finished(history: dict[str, list[float]], monitor: str, mode: str, epochs: int,
              patience: int | None) -> bool:
    """Whether ``history`` already holds a whole run: all ``epochs``, or early stopping's verdict."""
    if len(history.get("epoch", [])) >= epochs:
        return True
    state = early_stopping_state(history.get(monitor, []), mode, patience or 0)
    return patience is not None and state is not None and state["stop"]


def _result(folder: Path, done: dict, resumed_from: int) -> TrainResult:
    return TrainResult(
        history=read_history(folder / "history.csv"),
        best_epoch=int(done["best_epoch"]),
        epochs_run=int(done["epochs_run"]),
        train_seconds=float(done["train_seconds"]),
        images_per_second=float(done["images_per_second"]),
        resumed_from=resumed_from,
        folder=folder,
        settings=done["settings"],
    )


def summarize_history(history: dict[str, list[float]], best_epoch: int, scheduled: bool = False,
                      publictest_n: int | None = None, publictest_labels: np.ndarray | None = None) -> str:
    """A few sentences on what the curves say, with this run's numbers, ending on the one verdict on
    whether more epochs would help (:func:`fer_utils.history.stopping_verdict`, the verdict notebook 06
    prints for the same training; ``publictest_n``: the PublicTest count it weighs a late gain against).

    ``scheduled``: the rate followed a schedule set in advance (a cosine, say) rather than dropping on
    plateaus; the sentence on the learning rate then describes the schedule. ``publictest_labels``: the
    PublicTest labels (their count then stands for ``publictest_n``); with them, the epochs whose accuracy
    is the score of answering one emotion for every face are named
    (:func:`fer_utils.history.describe_one_class_epochs`)."""
    from .data import EMOTIONS
    from .history import describe_one_class_epochs

    if publictest_labels is not None and publictest_n is None:
        publictest_n = len(publictest_labels)
    epochs = history["epoch"]
    val_loss, val_acc, acc = history["val_loss"], history["val_accuracy"], history["accuracy"]
    low = int(np.nanargmin(val_loss))
    lines = [
        f"{len(epochs)} epoch{'s' if len(epochs) != 1 else ''}. Training accuracy went from {acc[0]:.3f} to {acc[-1]:.3f}; "
        f"validation (PublicTest) accuracy from {val_acc[0]:.3f} to {val_acc[-1]:.3f}, "
        f"best {max(val_acc):.3f} at epoch {best_epoch}.",
    ]
    if len(epochs) < 3:
        lines.append(
            f"Validation loss went from {val_loss[0]:.3f} to {val_loss[-1]:.3f}: {len(epochs)} epoch"
            f"{'s are' if len(epochs) != 1 else ' is'} too few to tell whether over-fitting has started."
        )
    elif low < len(epochs) - 1 and val_loss[-1] > val_loss[low] * 1.005:  # a rise, not a rounding-level wobble
        lines.append(
            f"Validation loss was lowest at epoch {epochs[low]} ({val_loss[low]:.3f}) and ended at "
            f"{val_loss[-1]:.3f}: past that point the model fits the training set more than it "
            "generalises (over-fitting starts)."
        )
    else:
        at = "on the last epoch" if low == len(epochs) - 1 else f"at epoch {epochs[low]} and stayed there to the end"
        lines.append(
            f"Validation loss was at its lowest {at} ({val_loss[-1]:.3f}): no sign of over-fitting yet in the loss."
        )
    rates = history.get("learning_rate", [])
    # a real drop, not the float32 rounding of a rate already at its floor (1.00000007e-05 -> 9.9999997e-06)
    drops = [(epochs[i], rates[i]) for i in range(1, len(rates)) if rates[i] < 0.99 * rates[i - 1]]
    if scheduled and rates:
        peak = int(np.argmax(rates))
        lines.append(f"The learning rate followed its schedule: {rates[peak]:.3g} at its highest (end of epoch "
                     f"{epochs[peak]}), {rates[-1]:.3g} at the end of the last epoch.")
    elif drops:
        lines.append(
            f"The learning rate started at {rates[0]:g} and was lowered on a plateau: "
            + ", ".join(f"from epoch {e} to {r:g}" for e, r in drops) + ".")
    if publictest_labels is not None:
        one_class = describe_one_class_epochs(val_acc, publictest_labels, EMOTIONS)
        if one_class:
            lines.append(one_class)
    if "epoch_seconds" in history:
        lines.append(f"Mean time per epoch: {np.nanmean(history['epoch_seconds']):.0f} s.")
    _, verdict = stopping_verdict(history, publictest_n)
    lines.append(f"Would more epochs help? Read on PublicTest accuracy (the curve that chooses the kept epoch): "
                 f"{verdict}")
    return "\n".join(lines)


#: The source report's baseline curves, read from its figures: validation accuracy near 0.45 at epoch 3
#: and 0.60 at epoch 10, then flat near 0.64-0.65; validation loss lowest near epochs 10-15, rising after.
REPORT_CURVE: dict = {"val_accuracy": {3: 0.45, 10: 0.60}, "val_loss_turn": (10, 15), "plateau": (0.64, 0.65)}


def compare_with_report_curve(history: dict[str, list[float]], tolerance: float = 0.05) -> str:
    """Sentences that set this run's PublicTest curve beside the report's (:data:`REPORT_CURVE`).

    For each of the report's anchor epochs: our validation accuracy there and whether it lies within
    ``tolerance`` of the report's; where our validation loss turned up against the report's epochs
    10-15; and our best validation accuracy against the report's plateau. Anchors past the end of the
    run are said to be out of reach, not guessed.

    A last sentence reads the curve as a whole, the way this study learnt to: an anchor missed while the
    epochs beside it (one before, one after) straddle the report's value is one epoch's swing, which
    validation accuracy shows at a high learning rate; a best accuracy that never comes near the report's
    plateau (within ``tolerance``) in a run as long as the report's anchors is a curve below the report's,
    the cue to check the data before the model (a blurred copy of FER-2013 once gave such a curve).
    """
    acc, loss = history.get("val_accuracy", []), history.get("val_loss", [])
    if not acc or not loss:
        raise ValueError("history lacks val_accuracy and val_loss")
    lines, swings, misses = [], [], []
    for epoch, theirs in REPORT_CURVE["val_accuracy"].items():
        if epoch > len(acc):
            lines.append(f"Epoch {epoch}: the report's validation accuracy was about {theirs:.2f}; "
                         f"this run stopped after {len(acc)} epoch{'s' if len(acc) != 1 else ''}.")
            continue
        ours = acc[epoch - 1]
        gap = ours - theirs
        if abs(gap) > tolerance:
            around = acc[max(epoch - 2, 0):epoch + 1]  # epochs epoch-1 .. epoch+1
            straddled = min(around) - tolerance <= theirs <= max(around) + tolerance
            span = f"epochs {max(epoch - 1, 1)}-{min(epoch + 1, len(acc))}: " + ", ".join(f"{a:.3f}" for a in around)
            (swings if straddled else misses).append((epoch, span))
        verdict = (f"as the report: within ±{tolerance:.2f}" if abs(gap) <= tolerance else
                   f"{abs(gap):.3f} {'above' if gap > 0 else 'below'} the report's, more than the "
                   f"±{tolerance:.2f} that counts as the same")
        lines.append(f"Epoch {epoch}: validation accuracy {ours:.3f} against the report's about {theirs:.2f} "
                     f"({verdict}).")
    low = int(np.nanargmin(loss)) + 1
    first, last = REPORT_CURVE["val_loss_turn"]
    if low == len(loss):
        where = f"was still falling at the last epoch ({low}), so this run never saw it turn up"
    else:
        where = (f"was lowest at epoch {low} and rose after it ("
                 + ("inside" if first <= low <= last else "before" if low < first else "after")
                 + f" the report's epochs {first}-{last})")
    lines.append(f"Validation loss {where}.")
    lo, hi = REPORT_CURVE["plateau"]
    best = float(np.nanmax(acc))
    lines.append(f"Best validation accuracy {best:.3f} at epoch {int(np.nanargmax(acc)) + 1}; the report's curve "
                 f"levelled off near {lo:.2f}-{hi:.2f}.")
    swung = "; ".join(f"epoch {e}'s gap is one epoch's swing ({span})" for e, span in swings)
    last_anchor = max(REPORT_CURVE["val_accuracy"])
    if len(acc) < last_anchor:
        lines.append(f"As a whole: {len(acc)} epoch{'s are' if len(acc) != 1 else ' is'} too few to set against the report's curve, which "
                     f"levels off after epoch {last_anchor}.")
    elif best < lo - tolerance:
        lines.append(f"As a whole, this curve stays below the report's (best {best:.3f} against {lo:.2f}-{hi:.2f}): "
                     "before changing the model, check the data against what is known about it (is the copy "
                     "canonical? the first output line says).")
    elif misses:
        where = ", ".join(f"epoch {e} ({span})" for e, span in misses)
        lines.append(f"As a whole, this curve reaches the report's level by another path (it differs at {where}"
                     + (f"; {swung}" if swung else "") + "): a different start, not by itself a sign of bad data.")
    else:
        lines.append("As a whole, this curve follows the report's" + (f": {swung}, as validation accuracy jumps from "
                     "epoch to epoch at a high learning rate" if swung else "")
                     + "; nothing here calls for a look at the data.")
    return "\n".join(lines)
