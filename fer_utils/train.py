"""Seeded training with per-epoch checkpoints, resume after interruption, and kept history.

*The lesson.* Training repeats passes (epochs) over the Training images; after each one the model is
scored on PublicTest, and the epoch that scores best there is the one kept. When training accuracy
keeps rising while validation accuracy stalls and validation loss turns up, the model has begun to
memorise (over-fit). PrivateTest is never used to choose anything.

One experiment lives in one folder (``run_dir / name``)::

    backup/        Keras BackupAndRestore state, written after every epoch (removed when done)
    history.csv    one row per finished epoch (kept across interruptions)
    machines.json  which machine trained which epochs (a run resumed in another session may have
                   moved to another processor; :func:`fer_utils.history.read_machines` reads it)
    best.keras     the model of the epoch with the best validation score so far
    done.json      written last: the settings and the best epoch of a finished run

Calling :func:`train_model` again with the same settings resumes an interrupted
run at the next epoch, and returns a finished run without training again.
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
from .history import MACHINES_FILE, read_history  # read_history is kept importable from here; it needs no Keras

#: Keras' progress output: 1 = progress bar (interactive), 2 = one line per epoch (logs, papermill).
DEFAULT_VERBOSE = 2


@dataclass
class TrainResult:
    """What :func:`train_model` returns.

    Attributes:
        model: the model of the best epoch (chosen on the validation data), loaded from disk.
        history: per-epoch metrics, keyed like Keras' History (``loss``, ``val_accuracy``, ...).
        best_epoch: 1-based epoch whose model was kept.
        epochs_run: epochs finished (fewer than asked when early stopping fired).
        train_seconds: wall time spent in ``fit`` (this call and earlier interrupted calls).
        images_per_second: training images processed per second of ``fit`` (validation included).
        resumed_from: epochs already done when this call started (0 for a fresh run).
        folder: the experiment folder.
    """

    model: keras.Model
    history: dict[str, list[float]]
    best_epoch: int
    epochs_run: int
    train_seconds: float
    images_per_second: float
    resumed_from: int
    folder: Path
    settings: dict = field(default_factory=dict)

    def describe(self) -> str:
        """One line: what this call did (trained, resumed, or found a finished run), and the kept epoch."""
        if self.resumed_from >= self.epochs_run:
            what = f"finished run found ({self.epochs_run} epochs), not trained again"
        elif self.resumed_from:
            what = f"resumed after epoch {self.resumed_from}, trained to epoch {self.epochs_run}"
        else:
            what = f"trained {self.epochs_run} epoch(s)"
        return (f"{self.folder.name}: {what}; kept epoch {self.best_epoch} "
                f"(best on validation); {self.images_per_second:.1f} training images/s")


class _EpochTimer(keras.callbacks.Callback):
    """Adds ``epoch_seconds`` to the epoch logs (so CSVLogger keeps it)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


class _RateLogger(keras.callbacks.Callback):
    """Adds ``learning_rate`` (the schedule's rate at the end of the epoch) to the epoch logs."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class _MachineLog(keras.callbacks.Callback):
    """Records in ``machines.json`` which machine trained which epochs, one segment per call of ``fit``:
    its first and last epoch (1-based), the processor (or GPU), the Keras backend and the precision.
    A training resumed in another working session may run on another processor, and its epoch times
    (and so its images per second) then mix two machines; the segments say which epochs ran where.
    Segments that an earlier, longer attempt left beyond the first epoch of this one are cut back."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self.segment: dict | None = None
        self.earlier: list[dict] = []

    def on_epoch_begin(self, epoch, logs=None):
        if self.segment is not None:
            return
        from .machinery.backend import device_info
        from .machinery.speed import BF16_FLAGS, cpu_flags

        first = epoch + 1
        try:
            earlier = json.loads(self.path.read_text()).get("segments", [])
        except (OSError, ValueError, AttributeError):
            earlier = []
        self.earlier = []
        for segment in earlier if isinstance(earlier, list) else []:
            try:  # a record it cannot read is dropped, never a reason to stop a training
                if int(segment["first_epoch"]) < first:
                    self.earlier.append({**segment, "last_epoch": min(int(segment["last_epoch"]), first - 1)})
            except (TypeError, KeyError, ValueError):
                continue
        device = device_info()
        self.segment = {
            "first_epoch": first, "last_epoch": first - 1,
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "device": device["kind"], "name": device["name"], "count": device["count"],
            "cpu_cores": device["cores"], "bf16_flags": sorted(BF16_FLAGS & cpu_flags()),
            "backend": device["backend"], "precision": self.model.dtype_policy.name,
        }

    def on_epoch_end(self, epoch, logs=None):
        if self.segment is None:
            return
        self.segment["last_epoch"] = epoch + 1
        _write_json_atomic(self.path, {"segments": [*self.earlier, self.segment]})


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

    A run that finished at its epoch cap with its best epoch last goes on when called again with a
    larger ``epochs`` and otherwise the same settings (its checkpoint is its last epoch's state);
    any other change of settings starts afresh.

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
        verbose: Keras progress output (1 bar, 2 one line per epoch).

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
    backup_dir, done_path, machines_path = folder / "backup", folder / "done.json", folder / MACHINES_FILE
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
    extending = False
    if done_path.exists() and best_path.exists():
        done = json.loads(done_path.read_text())
        if done.get("settings") == settings:
            return _result(folder, done, resumed_from=int(done["epochs_run"]))
        extending = _extendable(done, settings, previous) and holds_optimizer_state(best_path)
    if extending:  # a finished run given more epochs: go on from its last epoch, as after an interruption
        shutil.rmtree(backup_dir, ignore_errors=True)
        _restore_state(model, best_path)
    resuming = extending or history_csv.exists() and not done_path.exists() and (
        backup_dir.exists()
        or (best_path.exists() and _finished(previous, monitor, mode, epochs, early_stopping_patience)))
    if not resuming:  # a fresh run: nothing of an older, different run may leak in
        for stale in (history_csv, best_path, done_path, machines_path):
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
        _MachineLog(machines_path),
        keras.callbacks.BackupAndRestore(str(backup_dir)),
        *plateau,  # before the CSVLogger, which then records each epoch's rate
        *([_RateLogger()] if schedule is not None else []),
        checkpoint,
        keras.callbacks.CSVLogger(str(history_csv), append=True),
    ]
    if early_stopping_patience is not None:
        callbacks.append(_ResumableEarlyStopping(
            previous.get(monitor, []), monitor=monitor, mode=mode, patience=early_stopping_patience))
    if extending:  # the old done.json goes once the first new epoch is in the backup and the history
        callbacks.append(_RemoveAfterFirstEpoch(done_path))
    callbacks.extend(extra_callbacks)

    if resumed_from and _finished(previous, monitor, mode, epochs, early_stopping_patience):
        # stopped after its last epoch but before done.json was written: nothing left to train
        shutil.rmtree(backup_dir, ignore_errors=True)
    else:
        model.fit(
            x_train, y_train,
            batch_size=batch_size, epochs=epochs, validation_data=val, shuffle=True,
            class_weight=class_weight, callbacks=callbacks, verbose=verbose,
            initial_epoch=resumed_from if extending else 0,  # otherwise BackupAndRestore sets it
        )
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


def _extendable(done: dict, settings: dict, history: dict[str, list[float]]) -> bool:
    """Whether a finished run (``done``) can go on to the larger epoch cap of ``settings``: every
    other setting is the same, it ran to its old cap (early stopping did not end it), its history
    holds those epochs, and its best epoch was the last, so that its checkpoint is the state the
    last epoch left (weights, batch-norm statistics and optimizer), the state an interrupted run
    resumes from. Otherwise the last epoch's state is gone and the run must start afresh."""
    old = done.get("settings") or {}
    epochs_run = int(done.get("epochs_run", -1))
    return ({k: v for k, v in old.items() if k != "epochs"} == {k: v for k, v in settings.items() if k != "epochs"}
            and int(old.get("epochs", 0)) < settings["epochs"]
            and epochs_run == int(old.get("epochs", 0)) == len(history.get("epoch", []))
            and int(done.get("best_epoch", -1)) == epochs_run)


def holds_optimizer_state(checkpoint: str | os.PathLike) -> bool:
    """Whether a ``.keras`` file holds an optimizer's state (its step count and moments), as a
    training checkpoint does and a model slimmed by :func:`slim_checkpoint` or exported for inference
    does not. Reads the file's weights table only; False for a file that is not a readable ``.keras``."""
    import io
    import zipfile

    import h5py

    try:
        with zipfile.ZipFile(checkpoint) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as f:
            return "optimizer" in f and len(f["optimizer"].get("vars", {})) > 0
    except (OSError, KeyError, zipfile.BadZipFile):
        return False


def slim_checkpoint(checkpoint: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Write ``checkpoint`` (a ``best.keras``) to ``dest`` without its optimizer's state: the same layers,
    precision policy and weights (batch-norm statistics included), so it predicts exactly as the
    checkpoint does, in a third of the bytes.

    A checkpoint's optimizer state is read only when a finished training is given more epochs and its
    best epoch was its last (:func:`train_model` goes on from it); a slimmed one makes such a training
    start afresh instead. Written whole or not at all; returns ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.stem}.tmp.keras")
    try:
        load_model(checkpoint, compile=False).save(tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _restore_state(model: keras.Model, checkpoint: Path) -> None:
    """Load a checkpoint's weights and optimizer state (its step count and moments) into ``model``."""
    saved = load_model(checkpoint)
    model.set_weights(saved.get_weights())
    model.optimizer.build(model.trainable_variables)
    if len(model.optimizer.variables) != len(saved.optimizer.variables):
        raise ValueError(f"{checkpoint.name}: its optimizer state does not fit this model's optimizer")
    for mine, theirs in zip(model.optimizer.variables, saved.optimizer.variables):
        mine.assign(theirs)


class _RemoveAfterFirstEpoch(keras.callbacks.Callback):
    """Deletes a file at the end of the first epoch of a fit (after the checkpointing callbacks)."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        self.path.unlink(missing_ok=True)


def _finished(history: dict[str, list[float]], monitor: str, mode: str, epochs: int,
              patience: int | None) -> bool:
    """Whether ``history`` already holds a whole run: all ``epochs``, or early stopping's verdict."""
    if len(history.get("epoch", [])) >= epochs:
        return True
    state = early_stopping_state(history.get(monitor, []), mode, patience or 0)
    return patience is not None and state is not None and state["stop"]


def _result(folder: Path, done: dict, resumed_from: int) -> TrainResult:
    return TrainResult(
        model=load_model(folder / "best.keras"),
        history=read_history(folder / "history.csv"),
        best_epoch=int(done["best_epoch"]),
        epochs_run=int(done["epochs_run"]),
        train_seconds=float(done["train_seconds"]),
        images_per_second=float(done["images_per_second"]),
        resumed_from=resumed_from,
        folder=folder,
        settings=done["settings"],
    )


def summarize_history(history: dict[str, list[float]], best_epoch: int, scheduled: bool = False) -> str:
    """A few sentences on what the curves say, with this run's numbers.

    ``scheduled``: the rate followed a schedule set in advance (a cosine, say) rather than dropping on
    plateaus; the sentence on the learning rate then describes the schedule."""
    epochs = history["epoch"]
    val_loss, val_acc, acc = history["val_loss"], history["val_accuracy"], history["accuracy"]
    low = int(np.nanargmin(val_loss))
    lines = [
        f"{len(epochs)} epoch(s). Training accuracy went from {acc[0]:.3f} to {acc[-1]:.3f}; "
        f"validation (PublicTest) accuracy from {val_acc[0]:.3f} to {val_acc[-1]:.3f}, "
        f"best {max(val_acc):.3f} at epoch {best_epoch}.",
    ]
    if low < len(epochs) - 1:
        lines.append(
            f"Validation loss was lowest at epoch {epochs[low]} ({val_loss[low]:.3f}) and ended at "
            f"{val_loss[-1]:.3f}: past that point the model fits the training set more than it "
            "generalises (over-fitting starts)."
        )
    else:
        lines.append(
            f"Validation loss was still falling at the last epoch ({val_loss[-1]:.3f}): this run "
            "stopped before over-fitting set in, so longer training would still help."
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
    if "epoch_seconds" in history:
        lines.append(f"Mean time per epoch: {np.nanmean(history['epoch_seconds']):.0f} s.")
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
                         f"this run stopped after {len(acc)} epoch(s).")
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
        lines.append(f"As a whole: {len(acc)} epoch(s) are too few to set against the report's curve, which "
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
