"""fer_utils.machinery.timebox: the epochs that fit a time box, the deadline callback, the timing probe,
and the whole time-boxed run on a tiny synthetic data set."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from fer_utils.machinery import timebox
from fer_utils.model import build_baseline, compile_model


def test_epochs_within():
    assert timebox.epochs_within(100, 10, cap=300, margin=1.0) == 10
    assert timebox.epochs_within(100, 10, cap=300) == 9  # 10 % margin: 11 s an epoch
    assert timebox.epochs_within(10_000, 1.2, cap=300) == 300
    assert timebox.epochs_within(11, 10, cap=5, margin=1.0) == 1


@pytest.mark.parametrize("args, message", [
    ((100, 0), "seconds_per_epoch must be positive"),
    ((100, 10, {"cap": 0}), "cap must be at least 1"),
    ((100, 10, {"margin": 0.9}), "margin must be at least 1"),
    ((9, 10), "9 s leave no room for one epoch of about 11 s"),
    ((-107, 10), "no time is left for training \\(the time box was used up 107 s before it could start\\)"),
])
def test_epochs_within_errors(args, message):
    kwargs = {"cap": 300, **(args[2] if len(args) > 2 else {})}
    with pytest.raises(ValueError, match=message):
        timebox.epochs_within(args[0], args[1], **kwargs)


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_deadline_stops_before_an_epoch_would_overrun():
    clock, model = _Clock(), keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    stop = timebox.Deadline(deadline=35.0, clock=clock)
    stop.set_model(model)
    model.stop_training = False  # what fit sets before the first epoch
    for epoch, length in enumerate([10, 10, 10]):
        stop.on_epoch_begin(epoch)
        clock.now += length
        stop.on_epoch_end(epoch)
        if model.stop_training:
            break
    # after epoch 2 (t=20) one more 10-s epoch ends at 30 <= 35: go on; after epoch 3 (t=30) it would end at 40
    assert stop.stopped_at == 3 and model.stop_training


def test_deadline_stops_a_real_fit():
    clock = _Clock()

    class Tick(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            clock.now += 10

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((8, 2), np.float32)
    stop = timebox.Deadline(deadline=25.0, clock=clock)
    history = model.fit(x, x[:, :1], epochs=10, verbose=0, callbacks=[Tick(), stop])
    assert len(history.history["loss"]) == 2 and stop.stopped_at == 2  # at t=20 a third would end at 30


def test_calibrate_measures_the_parts_of_an_epoch():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 255, (96, 48, 48, 1)).astype("uint8"), rng.integers(0, 7, 96)
    timing = timebox.calibrate(lambda: compile_model(build_baseline()), (x, y), (x[:16], y[:16]),
                               batch_size=32, steps=50)
    assert timing["steps"] == 3  # no more than one epoch of 96 images
    for key in ("step_seconds", "validation_seconds", "save_seconds", "first_call_seconds"):
        assert timing[key] > 0
    expected = 3 * timing["step_seconds"] + timing["validation_seconds"] + 2 * timing["save_seconds"]
    assert timing["seconds_per_epoch"] == pytest.approx(expected)


def test_main_trains_within_the_time_box_on_a_synthetic_set(tree, tmp_path, monkeypatch, capsys):
    from conftest import make_tree

    make_tree(tree, {"Training": 6, "PublicTest": 2, "PrivateTest": 2})  # 6 training faces per class
    monkeypatch.setenv("FER2013_DIR", str(tree))
    monkeypatch.setenv("FER2013_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FER2013_VERIFY", "off")
    run = tmp_path / "run"
    code = timebox.main(["--run-dir", str(run), "--seconds", "600", "--epochs", "3", "--width", "8",
                         "--batch-size", "16", "--reserve", "30",
                         "--precision", "float32"])  # the global policy would outlive the test
    out = capsys.readouterr().out
    assert code == 0, out
    assert "calibration:" in out and "training 3 epochs (cap 3)" in out
    payload = json.loads((run / "metrics" / "beyond_gpu.json").read_text())
    box = payload["provenance"]["time_box"]
    assert box["seconds"] == 600 and box["epochs_cap"] == 3 and box["epochs_planned"] == 3
    assert box["stopped_at_deadline"] is None and box["calibration"]["seconds_per_epoch"] > 0
    assert payload["provenance"]["epochs"] == 3 and payload["provenance"]["profile"] == "timebox"
    assert payload["metrics"]["confusion"] and len(payload["metrics"]["confusion"]) == 7
    assert (run / "shipped" / "beyond_gpu.keras").exists()
    assert len((run / "beyond_gpu" / "history.csv").read_text().splitlines()) == 4  # header and 3 epochs


def test_main_says_when_not_one_epoch_fits(tree, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FER2013_DIR", str(tree))
    monkeypatch.setenv("FER2013_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FER2013_VERIFY", "off")
    run = tmp_path / "run"
    code = timebox.main(["--run-dir", str(run), "--seconds", "5", "--width", "8", "--batch-size", "16",
                         "--precision", "float32"])
    out = capsys.readouterr().out
    assert code == 2 and "not trained:" in out and "give the run more time" in out
    assert not (run / "metrics").exists()


@pytest.mark.parametrize("argv, message", [
    (["--seconds", "0"], "--seconds must be positive"),
    (["--seconds", "60", "--epochs", "1"], "--epochs must be at least 2"),
    (["--seconds", "60", "--width", "0"], "--width and --batch-size must be at least 1"),
])
def test_main_refuses_bad_arguments(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        timebox.main(["--run-dir", str(tmp_path / "run"), *argv])
    assert stopped.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
