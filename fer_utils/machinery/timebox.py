"""Train notebook 08's headline recipe within a fixed time, for a machine lent for minutes (a GPU).

A cosine schedule must know its length before the first step, so a time-boxed run has to decide its
epochs up front: :func:`calibrate` times a few steps, one validation pass and one checkpoint of the
very model and batch size to be trained, :func:`epochs_within` turns the time left into epochs, and
:class:`Deadline` stops the training at an epoch's end if the estimate proves optimistic (the
schedule then ends early, which the history shows). :func:`main` does all of it and records what it
did in the metrics file::

    python -m fer_utils.machinery.timebox --run-dir runs/gpu-h200 --seconds 420 --width 64 --epochs 300

It is the run ``scripts/gpu_device_run.sh recipe`` makes on the lent H200; on any machine it is a
way to ask "what does the recipe reach in N minutes here?".
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Callable

import keras
import numpy as np


def epochs_within(seconds: float, seconds_per_epoch: float, *, cap: int, margin: float = 1.1) -> int:
    """Whole epochs of ``seconds_per_epoch`` (times ``margin``) that fit in ``seconds``, at most ``cap``.

    Raises:
        ValueError: for a non-positive epoch time, cap or margin below 1, or when not even one
            epoch fits (the caller should say so rather than train a meaningless fraction).
    """
    if seconds_per_epoch <= 0:
        raise ValueError(f"seconds_per_epoch must be positive, got {seconds_per_epoch}")
    if cap < 1:
        raise ValueError(f"cap must be at least 1, got {cap}")
    if margin < 1:
        raise ValueError(f"margin must be at least 1, got {margin}")
    if seconds <= 0:
        raise ValueError(f"no time is left for training (the time box was used up {-seconds:.0f} s before it "
                         "could start): give the run more time")
    fit = math.floor(seconds / (seconds_per_epoch * margin))
    if fit < 1:
        raise ValueError(f"{seconds:.0f} s leave no room for one epoch of about "
                         f"{seconds_per_epoch * margin:.0f} s: give the run more time")
    return min(fit, cap)


class Deadline(keras.callbacks.Callback):
    """Stop training at the end of the epoch after which another epoch as long as the last one
    would end past ``deadline`` (a ``clock()`` reading, by default ``time.monotonic``).

    ``stopped_at`` is the 1-based epoch after which it stopped (0: it never had to).
    """

    def __init__(self, deadline: float, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.deadline, self.clock = deadline, clock
        self.stopped_at = 0
        self._began = None

    def on_epoch_begin(self, epoch, logs=None):
        self._began = self.clock()

    def on_epoch_end(self, epoch, logs=None):
        now = self.clock()
        if now + (now - self._began) > self.deadline:
            self.model.stop_training = True
            self.stopped_at = epoch + 1


def calibrate(build: Callable[[], keras.Model], train: tuple[np.ndarray, np.ndarray],
              val: tuple[np.ndarray, np.ndarray], *, batch_size: int, steps: int = 40) -> dict:
    """Time one epoch of the model ``build()`` returns (compiled), without training it for real.

    Fits ``steps`` batches once to compile (train and validation functions), then times ``steps``
    more, one pass over ``val`` and one save of the model with its optimizer (the per-epoch
    backup and, on improvement, the best-epoch file).

    Returns:
        ``seconds_per_epoch`` (a full epoch over ``train`` with its validation and checkpoints),
        ``first_call_seconds`` (the compiling call), ``step_seconds``, ``validation_seconds``,
        ``save_seconds`` and ``steps``.
    """
    x, y = train
    steps = max(1, min(steps, math.ceil(len(x) / batch_size)))
    xs, ys = x[: steps * batch_size], y[: steps * batch_size]
    model = build()
    began = time.perf_counter()
    model.fit(xs, ys, batch_size=batch_size, epochs=1, validation_data=val, verbose=0)
    first = time.perf_counter() - began
    began = time.perf_counter()
    model.fit(xs, ys, batch_size=batch_size, epochs=1, verbose=0)
    step = (time.perf_counter() - began) / math.ceil(len(xs) / batch_size)
    began = time.perf_counter()
    model.evaluate(*val, batch_size=batch_size, verbose=0)
    validation = time.perf_counter() - began
    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        model.save(Path(folder) / "probe.keras")
        save = time.perf_counter() - began
    per_epoch = step * math.ceil(len(x) / batch_size) + validation + 2 * save
    return {"seconds_per_epoch": per_epoch, "first_call_seconds": first, "step_seconds": step,
            "validation_seconds": validation, "save_seconds": save, "steps": steps}


def main(argv: list[str] | None = None) -> int:
    """Train the headline recipe (VGG-style, strong augmentation, SGD with a cosine schedule, label
    smoothing; ten-crop at test time) for as many epochs as fit in ``--seconds``, then report it
    once on PrivateTest like notebook 08 does, as experiment ``--name`` of ``--run-dir``."""
    parser = argparse.ArgumentParser(prog="python -m fer_utils.machinery.timebox", description=main.__doc__)
    parser.add_argument("--run-dir", required=True, help="run directory (relative to the repository root)")
    parser.add_argument("--seconds", type=float, required=True,
                        help="the whole run's time, from start to the metrics file")
    parser.add_argument("--epochs", type=int, default=300, help="most epochs (default 300, the full profile's)")
    parser.add_argument("--width", type=int, default=64, help="filters of the first stage (default 64)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-per-class", type=int, default=0, help="cap per class and split (0: all; tests)")
    parser.add_argument("--name", default="beyond_gpu", help="experiment name (default beyond_gpu)")
    parser.add_argument("--reserve", type=float, default=60.0,
                        help="seconds kept for the ten-crop report and the files after training (default 60)")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error(f"--seconds must be positive, got {args.seconds:g}")
    if args.epochs < 2:
        parser.error(f"--epochs must be at least 2 (one warm-up epoch and one of the cosine), got {args.epochs}")
    if args.width < 1 or args.batch_size < 1:
        parser.error("--width and --batch-size must be at least 1")

    started, clock_started = time.perf_counter(), time.monotonic()
    from ..beyond import cosine_schedule, steps_per_epoch, tta_predictor
    from ..data import SPLITS, load_fer2013
    from ..evaluate import describe_result
    from ..experiment import export_model, save_experiment
    from ..model import build_vgg, compile_model
    from ..train import train_model
    from .speed import describe_precision, set_precision
    from .study import resolve, run_banner, shown

    sgd_rate, weight_decay, smoothing, warmup = 0.05, 0.0005, 0.1, 1  # notebook 08's values
    policy = set_precision(args.precision)
    data = load_fer2013(None, max_per_class=args.max_per_class or None, seed=args.seed)
    run = resolve(args.run_dir)
    print(run_banner("timebox", data))
    print(describe_precision(policy))
    train, public, private = (data.split(s) for s in SPLITS)
    per_epoch = steps_per_epoch(len(train), args.batch_size)

    def build(epochs: int) -> keras.Model:
        keras.utils.set_random_seed(args.seed)
        return compile_model(
            build_vgg(width=args.width, augmentation="strong", seed=args.seed), optimizer="sgd",
            weight_decay=weight_decay, label_smoothing=smoothing,
            learning_rate=cosine_schedule(sgd_rate, epochs=epochs, steps_per_epoch=per_epoch,
                                          warmup_epochs=min(warmup, epochs - 1)))

    timing = calibrate(lambda: build(args.epochs), (train.images, train.labels),
                       (public.images, public.labels), batch_size=args.batch_size)
    print(f"calibration: {timing['step_seconds'] * 1000:.1f} ms per step of {args.batch_size}, "
          f"{timing['validation_seconds']:.1f} s per PublicTest pass, {timing['save_seconds']:.2f} s per checkpoint, "
          f"so about {timing['seconds_per_epoch']:.1f} s per epoch; compiling took about "
          f"{timing['first_call_seconds']:.0f} s")
    deadline = clock_started + args.seconds - args.reserve
    left = deadline - time.monotonic() - timing["first_call_seconds"]  # the real model compiles again
    try:
        epochs = epochs_within(left, timing["seconds_per_epoch"], cap=args.epochs)
    except ValueError as error:
        print(f"not trained: {error}")
        return 2
    epochs = max(epochs, 2)  # a cosine with one epoch of warm-up needs a second one
    print(f"training {epochs} epochs (cap {args.epochs}) in the {left:.0f} s left before the report")
    stop = Deadline(deadline)
    result = train_model(build(epochs), (train.images, train.labels), (public.images, public.labels),
                         run / args.name, epochs=epochs, batch_size=args.batch_size, seed=args.seed,
                         callbacks=[stop], verbose=2)
    print(result.describe())
    if stop.stopped_at:
        print(f"stopped after epoch {stop.stopped_at} of {epochs} to leave time for the report: "
              "the schedule had not reached its end")
    metrics = save_experiment(
        result, private, run, name=args.name, predict=tta_predictor(), profile="timebox", seed=args.seed,
        started=started, train_data=train, all_data=data, batch_size=args.batch_size, learning_rate=sgd_rate,
        optimizer="SGD (Nesterov 0.9), cosine schedule", weight_decay=weight_decay, label_smoothing=smoothing,
        augmentation="strong", architecture=f"VGG-style, width {args.width}, 40x40 central crop",
        test_time_augmentation="ten-crop (centre and 4 corners of 40x40, and their mirror images)",
        time_box={"seconds": args.seconds, "epochs_cap": args.epochs, "epochs_planned": epochs,
                  "stopped_at_deadline": stop.stopped_at or None,
                  "calibration": {k: round(v, 4) for k, v in timing.items()}})
    print("The recipe, with test-time augmentation (ten views of each face):")
    print(describe_result(metrics))
    shipped = export_model(run, args.name, run / "shipped" / f"{args.name}.keras")
    print(f"{shown(shipped)} written (float32); whole run {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
