"""fer_utils.train on a tiny model: checkpoints, history, resume after interruption, skip when done."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from fer_utils.train import epoch_line, read_history, summarize_history, train_model


def tiny_model() -> keras.Model:
    model = keras.Sequential([
        keras.Input((48, 48, 1)),
        keras.layers.Rescaling(1 / 255),
        keras.layers.Conv2D(4, 3, strides=4, activation="relu", name="conv1"),
        keras.layers.Flatten(),
        keras.layers.Dense(7, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(7), 6)
    x = (y[:, None, None, None] * 30 + rng.integers(0, 20, (42, 48, 48, 1))).astype(np.uint8)
    return x, y


class Killed(Exception):
    """Stands in for a killed process."""


def interrupted_and_resumed(make_model, folder, after_epoch: int, **settings):
    """Train ``make_model()`` in ``folder`` until killed after ``after_epoch``, then resume it with a
    fresh model and the same settings; the resumed call's result."""
    with pytest.raises(Killed):
        train_model(make_model(), folder=folder, callbacks=[Interrupt(after_epoch=after_epoch)], **settings)
    return train_model(make_model(), folder=folder, **settings)


class Interrupt(keras.callbacks.Callback):
    """Stops training like a killed process would, after a given epoch's checkpoint."""

    def __init__(self, after_epoch: int):
        super().__init__()
        self.after_epoch = after_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.after_epoch:
            raise Killed


def test_train_writes_checkpoint_history_and_done(tmp_path, arrays):
    result = train_model(tiny_model(), arrays, arrays, tmp_path / "exp", epochs=3, batch_size=16, seed=1)
    assert result.epochs_run == 3 and result.resumed_from == 0
    assert result.history["epoch"] == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds"} <= set(result.history)
    assert result.best_epoch == 1 + int(np.argmax(result.history["val_accuracy"]))
    assert (tmp_path / "exp" / "best.keras").exists()
    assert not (tmp_path / "exp" / "backup").exists()  # removed once finished
    done = json.loads((tmp_path / "exp" / "done.json").read_text())
    assert done["settings"]["epochs"] == 3 and done["settings"]["learning_rate"] == pytest.approx(0.01)
    assert result.images_per_second > 0
    # the kept model is the best epoch's: its validation accuracy is the best recorded
    acc = float(np.mean(result.model.predict(arrays[0], verbose=0).argmax(1) == arrays[1]))
    assert acc == pytest.approx(max(result.history["val_accuracy"]), abs=1e-6)


def test_resume_after_interruption(tmp_path, arrays):
    folder = tmp_path / "exp"
    with pytest.raises(Killed):
        train_model(tiny_model(), arrays, arrays, folder, epochs=4, batch_size=16, seed=1,
                    callbacks=[Interrupt(after_epoch=2)])
    assert read_history(folder / "history.csv")["epoch"] == [1, 2]
    assert (folder / "backup").exists() and not (folder / "done.json").exists()
    result = train_model(tiny_model(), arrays, arrays, folder, epochs=4, batch_size=16, seed=1)
    assert result.resumed_from == 2
    assert result.history["epoch"] == [1, 2, 3, 4]
    assert result.epochs_run == 4


def test_finished_run_is_not_trained_again(tmp_path, arrays):
    folder = tmp_path / "exp"
    train_model(tiny_model(), arrays, arrays, folder, epochs=2, batch_size=16, seed=1)
    mtime = (folder / "best.keras").stat().st_mtime_ns
    again = train_model(tiny_model(), arrays, arrays, folder, epochs=2, batch_size=16, seed=1,
                        callbacks=[Interrupt(after_epoch=1)])  # would raise if it trained
    assert again.resumed_from == 2 and (folder / "best.keras").stat().st_mtime_ns == mtime
    # different settings start afresh
    fresh = train_model(tiny_model(), arrays, arrays, folder, epochs=1, batch_size=16, seed=1)
    assert fresh.resumed_from == 0 and fresh.history["epoch"] == [1]


def finished_with_best_last(folder, arrays, epochs: int):
    """A finished run of ``epochs`` whose kept checkpoint is its last epoch."""
    every = folder.parent / f"{folder.name}_last.keras"
    train_model(tiny_model(), arrays, arrays, folder, epochs=epochs, batch_size=16, seed=1,
                callbacks=[keras.callbacks.ModelCheckpoint(every, save_best_only=False)])
    every.replace(folder / "best.keras")
    done = json.loads((folder / "done.json").read_text())
    (folder / "done.json").write_text(json.dumps({**done, "best_epoch": epochs}))


def test_a_finished_run_given_a_larger_cap_starts_afresh(tmp_path, arrays):
    folder = tmp_path / "exp"
    finished_with_best_last(folder, arrays, epochs=3)
    fresh = train_model(tiny_model(), arrays, arrays, folder, epochs=4, batch_size=16, seed=1)
    assert fresh.resumed_from == 0 and fresh.history["epoch"] == [1, 2, 3, 4]
    # and a change of any other setting starts afresh too
    finished_with_best_last(tmp_path / "b", arrays, epochs=3)
    other = train_model(tiny_model(), arrays, arrays, tmp_path / "b", epochs=4, batch_size=8, seed=1)
    assert other.resumed_from == 0


def test_early_stopping(tmp_path, arrays):
    x, _ = arrays
    noise = np.random.default_rng(5).integers(0, 7, len(x))  # nothing to learn: stops early
    result = train_model(tiny_model(), (x, noise), (x, noise[::-1].copy()), tmp_path / "e", epochs=30,
                         batch_size=16, seed=1, early_stopping_patience=2, monitor="val_loss")
    assert result.epochs_run < 30


def test_bad_arguments(tmp_path, arrays):
    with pytest.raises(ValueError, match="epochs"):
        train_model(tiny_model(), arrays, arrays, tmp_path, epochs=0)
    with pytest.raises(ValueError, match="differ in length"):
        train_model(tiny_model(), (arrays[0], arrays[1][:-1]), arrays, tmp_path, epochs=1)
    uncompiled = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(), keras.layers.Dense(7)])
    with pytest.raises(ValueError, match="compile the model"):
        train_model(uncompiled, arrays, arrays, tmp_path, epochs=1)
    with pytest.raises(ValueError, match="reduce_lr_patience must be at least 1"):
        train_model(tiny_model(), arrays, arrays, tmp_path, epochs=1, reduce_lr_patience=0)
    with pytest.raises(ValueError, match="reduce_lr_factor must be between 0 and 1"):
        train_model(tiny_model(), arrays, arrays, tmp_path, epochs=1, reduce_lr_patience=2, reduce_lr_factor=1.5)


def test_summarize_history_names_the_turning_point():
    history = {"epoch": [1, 2, 3, 4], "accuracy": [0.3, 0.4, 0.5, 0.6],
               "val_accuracy": [0.3, 0.45, 0.44, 0.43], "loss": [2, 1.5, 1.2, 1.0],
               "val_loss": [1.9, 1.6, 1.7, 1.9]}
    text = summarize_history(history, best_epoch=2)
    assert "lowest at epoch 2 (1.600)" in text and "best 0.450 at epoch 2" in text
    rising = summarize_history({**history, "val_loss": [2.0, 1.9, 1.8, 1.7]}, best_epoch=2)
    assert "Validation loss was at its lowest on the last epoch (1.700): no sign of over-fitting yet" in rising
    flat_end = summarize_history({**history, "val_loss": [2.0, 1.9, 1.8, 1.8004]}, best_epoch=2)
    assert "Validation loss was at its lowest at epoch 3 and stayed there to the end (1.800): no sign" in flat_end
    short = summarize_history({k: v[:2] for k, v in history.items()}, best_epoch=2)
    assert "Validation loss went from 1.900 to 1.600: 2 epochs are too few to tell whether over-fitting has started." in short
    assert "over-fitting starts" not in short and "no sign of over-fitting" not in short
    # the verdict on more epochs reads the accuracy curve, the same verdict notebook 06 prints for the training
    from fer_utils.history import stopping_verdict

    assert rising.splitlines()[-1] == ("Would more epochs help? Read on PublicTest accuracy (the curve that chooses "
                                       "the kept epoch): " + stopping_verdict(history, None)[1])
    assert "learning rate" not in text
    scheduled = summarize_history({**history, "learning_rate": [1e-3, 1e-3, 1e-4, 1e-4]}, best_epoch=2)
    assert "started at 0.001 and was lowered on a plateau: from epoch 3 to 0.0001." in scheduled
    floor = summarize_history({**history, "learning_rate": [1e-4, 1.0000000656873453e-05, 1.0000000656873453e-05,
                                                            9.999999747378752e-06]}, best_epoch=2)
    assert "from epoch 2 to 1e-05.\n" in floor  # the float32 rounding at the floor is no drop
    cosine = summarize_history({**history, "learning_rate": [0.05, 0.04, 0.01, 0.0]}, best_epoch=2, scheduled=True)
    assert "followed its schedule: 0.05 at its highest (end of epoch 1), 0 at the end of the last epoch." in cosine
    assert "plateau" not in cosine


def test_a_finished_run_prints_the_same_epoch_lines_as_when_it_trained(tmp_path, arrays, capsys):
    folder = tmp_path / "exp"
    first = train_model(tiny_model(), arrays, arrays, folder, epochs=2, batch_size=16, seed=1)
    trained = capsys.readouterr().out.splitlines()
    assert [line.split(" · ")[0] for line in trained] == ["epoch 1/2", "epoch 2/2"]
    assert " · train accuracy " in trained[0] and " · validation accuracy " in trained[0]
    again = train_model(tiny_model(), arrays, arrays, folder, epochs=2, batch_size=16, seed=1)
    assert capsys.readouterr().out.splitlines() == trained  # read back from history.csv, not trained again
    assert first.describe() == again.describe()
    assert again.describe().startswith("exp: 2 epochs trained; kept epoch ")
    assert "resumed" not in again.describe() and "not trained again" not in again.describe()


def test_epoch_line_reads_logs_and_history_rows_alike():
    logs = {"accuracy": 0.4871, "loss": 2.4932, "val_accuracy": 0.3951, "val_loss": 2.4931,
            "epoch_seconds": 197.3, "learning_rate": 0.001}
    assert epoch_line(3, 30, logs) == ("epoch  3/30 · 197 s · train accuracy 0.487, loss 2.493 · "
                                       "validation accuracy 0.395, loss 2.493 · rate 0.001")
    assert epoch_line(3, 30, {**logs, "epoch_seconds": float("nan"), "learning_rate": ""}) == (
        "epoch  3/30 · train accuracy 0.487, loss 2.493 · validation accuracy 0.395, loss 2.493")


def test_early_stopping_counts_patience_across_an_interruption(tmp_path, arrays):
    """An interrupted run with early stopping stops where an uninterrupted one does.

    With a learning rate of 0 every epoch scores the same, so the first epoch stays the best and a
    run with patience 2 stops after epoch 3, interrupted or not (Keras alone would count patience
    afresh from the resumed epoch and stop after epoch 5)."""
    def frozen():
        model = tiny_model()
        model.compile(optimizer=keras.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    settings = dict(train=arrays, val=arrays, epochs=30, batch_size=16, seed=1,
                    early_stopping_patience=2, monitor="val_loss")
    whole = train_model(frozen(), folder=tmp_path / "whole", **settings)
    assert (whole.epochs_run, whole.best_epoch) == (3, 1)
    folder = tmp_path / "split"
    with pytest.raises(Killed):
        train_model(frozen(), folder=folder, callbacks=[Interrupt(after_epoch=2)], **settings)
    resumed = train_model(frozen(), folder=folder, **settings)
    assert resumed.resumed_from == 2
    assert (resumed.epochs_run, resumed.best_epoch) == (3, 1)


def test_run_killed_before_done_json_is_not_trained_again(tmp_path, arrays):
    folder = tmp_path / "exp"
    train_model(tiny_model(), arrays, arrays, folder, epochs=2, batch_size=16, seed=1)
    (folder / "done.json").unlink()  # as if killed between the last epoch and writing done.json
    again = train_model(tiny_model(), arrays, arrays, folder, epochs=2, batch_size=16, seed=1,
                        callbacks=[Interrupt(after_epoch=1)])  # would raise if it trained
    assert again.resumed_from == 2 and again.epochs_run == 2 and (folder / "done.json").exists()


def test_early_stopping_state():
    from fer_utils.train import early_stopping_state

    assert early_stopping_state([], "max", 3) is None
    state = early_stopping_state([0.2, 0.5, 0.4, 0.5, 0.3], "max", 3)
    assert state == {"best": 0.5, "best_index": 1, "wait": 3, "stop": True}
    assert early_stopping_state([3.0, 1.0, 2.0], "min", 3)["stop"] is False


def test_compare_with_report_curve():
    from fer_utils.train import compare_with_report_curve

    epochs = list(range(1, 21))
    acc = [0.2 + 0.04 * e if e <= 12 else 0.66 - 0.002 * (e - 12) for e in epochs]  # 0.32 at 3, 0.60 at 10
    loss = [2.0 - 0.05 * e if e <= 12 else 1.4 + 0.03 * (e - 12) for e in epochs]   # lowest at 12
    text = compare_with_report_curve({"val_accuracy": acc, "val_loss": loss})
    assert ("Epoch 3: validation accuracy 0.320 against the report's about 0.45 (0.130 below the report's, "
            "more than the ±0.05 that counts as the same)") in text
    assert "Epoch 10: validation accuracy 0.600 against the report's about 0.60 (as the report: within ±0.05)" in text
    assert "lowest at epoch 12 and rose after it (inside the report's epochs 10-15)" in text
    faster = compare_with_report_curve({"val_accuracy": [0.3, 0.4, 0.55], "val_loss": [1.5, 1.4, 1.3]})
    assert "Epoch 3: validation accuracy 0.550 against the report's about 0.45 (0.100 above the report's" in faster
    assert "Best validation accuracy 0.680 at epoch 12" in text
    # read as a whole: the first curve reaches the report's plateau by another path (epoch 3 is no swing: its
    # neighbours 0.28 and 0.36 stay more than 0.05 from 0.45)
    assert text.endswith("As a whole, this curve reaches the report's level by another path (it differs at epoch 3 "
                         "(epochs 2-4: 0.280, 0.320, 0.360)): a different start, not by itself a sign of bad data.")
    # one epoch low between two that straddle the report's 0.45: a swing; the rest as the report's
    swinging = [0.13, 0.18, 0.23, 0.52] + acc[4:]
    assert compare_with_report_curve({"val_accuracy": swinging, "val_loss": loss}).endswith(
        "As a whole, this curve follows the report's: epoch 3's gap is one epoch's swing (epochs 2-4: 0.180, "
        "0.230, 0.520), as validation accuracy jumps from epoch to epoch at a high learning rate; nothing here "
        "calls for a look at the data.")
    # a curve that never nears the report's plateau, as the blurred copy's did: check the data first
    blurred = compare_with_report_curve({"val_accuracy": [min(0.1 + 0.03 * e, 0.35) for e in epochs], "val_loss": loss})
    assert blurred.endswith("As a whole, this curve stays below the report's (best 0.350 against 0.64-0.65): before "
                            "changing the model, check the data against what is known about it (is the copy "
                            "canonical? the first output line says).")
    # a run shorter than the report's anchors (the smoke profile's) is not judged as a whole
    assert compare_with_report_curve({"val_accuracy": swinging[:3], "val_loss": loss[:3]}).endswith(
        "As a whole: 3 epochs are too few to set against the report's curve, which levels off after epoch 10.")
    short = compare_with_report_curve({"val_accuracy": acc[:5], "val_loss": loss[:5]})
    assert "this run stopped after 5 epochs" in short and "still falling at the last epoch (5)" in short
    with pytest.raises(ValueError, match="val_accuracy"):
        compare_with_report_curve({"loss": [1.0]})


def test_plateau_schedule_replays_keras_reductions():
    from fer_utils.train import plateau_schedule

    state = plateau_schedule([0.5, 0.6, 0.6, 0.59, 0.58, 0.7], 1e-3, mode="max", patience=2, factor=0.1)
    assert state["learning_rates"] == pytest.approx([1e-3, 1e-3, 1e-3, 1e-3, 1e-4, 1e-4])
    assert state["next_lr"] == pytest.approx(1e-4) and state["best"] == 0.7 and state["wait"] == 0
    floor = plateau_schedule([1.0, 1.0, 1.0, 1.0], 1e-3, mode="min", patience=1, factor=0.1, min_lr=5e-5)
    assert floor["learning_rates"] == pytest.approx([1e-3, 1e-3, 1e-4, 5e-5]) and floor["next_lr"] == 5e-5
    with pytest.raises(ValueError, match="patience must be at least 1"):
        plateau_schedule([0.1], 1e-3, patience=0)


def test_reduced_learning_rate_carries_across_an_interruption(tmp_path, arrays):
    """A plateau schedule halves a tiny rate after every epoch without improvement; interrupted after
    epoch 2 and resumed, the run trains at the same rates as an uninterrupted one, and says so."""
    def slow():
        model = tiny_model()
        model.compile(optimizer=keras.optimizers.SGD(1e-9), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    settings = dict(train=arrays, val=arrays, epochs=4, batch_size=16, seed=1, monitor="val_loss",
                    reduce_lr_patience=1, reduce_lr_factor=0.5, min_learning_rate=1e-12)
    whole = train_model(slow(), folder=tmp_path / "whole", **settings)
    expected = [1e-9, 1e-9, 5e-10, 2.5e-10]
    assert whole.history["learning_rate"] == pytest.approx(expected, rel=1e-5)
    assert whole.settings["reduce_lr"] == {"monitor": "val_loss", "patience": 1, "factor": 0.5,
                                           "min_learning_rate": 1e-12}
    resumed = interrupted_and_resumed(slow, tmp_path / "split", 2, **settings)
    assert resumed.resumed_from == 2
    assert resumed.history["learning_rate"] == pytest.approx(expected, rel=1e-5)




def test_a_finished_training_is_its_record_and_its_model_loads_only_when_asked(tmp_path, arrays, capsys):
    folder = tmp_path / "exp"
    train_model(tiny_model(), arrays, arrays, folder, epochs=2, batch_size=16, seed=1)
    (folder / "best.keras").unlink()  # the run keeps the training's history and done.json only
    capsys.readouterr()
    again = train_model(tiny_model(), arrays, arrays, folder, epochs=2, batch_size=16, seed=1,
                        callbacks=[Interrupt(after_epoch=1)])  # would raise if it trained
    assert again.epochs_run == 2 and not again.has_model
    assert [line.split(" · ")[0] for line in capsys.readouterr().out.splitlines()] == ["epoch 1/2", "epoch 2/2"]
    with pytest.raises(FileNotFoundError, match=r"^exp: its training finished, but its model \(best.keras\) is not"):
        again.model
    # the copy of the kept epoch the run saved for later notebooks (models/<name>.keras) stands in for it
    (tmp_path / "models").mkdir()
    saved = tiny_model()
    saved.save(tmp_path / "models" / "exp.keras")
    stood_in = train_model(tiny_model(), arrays, arrays, folder, epochs=2, batch_size=16, seed=1)
    assert stood_in.has_model and stood_in.model.count_params() == saved.count_params()


def test_learning_rate_for_each_schedule():
    from fer_utils.train import learning_rate_for

    assert learning_rate_for("constant", 1e-3, epochs=5, train_images=1000, batch_size=100) == 1e-3
    assert learning_rate_for("plateau", 1e-3, epochs=5, train_images=1000, batch_size=100) == 1e-3
    cosine = learning_rate_for("cosine", 1e-3, epochs=5, train_images=1000, batch_size=100)  # 10 steps an epoch
    rates = [float(keras.ops.convert_to_numpy(cosine(step))) for step in (0, 25, 50)]
    assert rates == pytest.approx([1e-3, 0.5e-3, 0.0], abs=1e-9)  # the report's rate first, zero at the end
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'step'; choose one of constant, plateau, cosine"):
        learning_rate_for("step", 1e-3, epochs=5, train_images=1000, batch_size=100)


def test_epochs_that_score_one_emotions_share_are_named():
    from fer_utils.data import EMOTIONS
    from fer_utils.history import describe_one_class_epochs, one_class_epochs

    labels = np.repeat(np.arange(7), [10, 2, 10, 25, 12, 11, 30])  # 100 faces: neutral 0.30, happy 0.25
    curve = [0.30, 0.31, 0.25, 0.40, 0.26, 0.45]  # neutral's share, within 1 face of it, happy's, ..., happy's +1
    assert one_class_epochs(curve, labels) == {1: 6, 2: 6, 3: 3, 5: 3}
    assert one_class_epochs(curve, labels, faces=0) == {1: 6, 3: 3}
    text = describe_one_class_epochs(curve, labels, EMOTIONS)
    assert text.startswith("At epochs 1-2 PublicTest accuracy was 30-31 faces right, within 2 faces of the 30 "
                           "neutral faces (0.300 of 100); at epochs 3 and 5 25-26 faces right, against 25 happy "
                           "(0.250). That is the score of answering the emotion named for every face")
    assert text.endswith("From epoch 6 on, no epoch scores within 2 faces of one emotion's count.")
    assert describe_one_class_epochs([0.4, 0.5], labels, EMOTIONS) == ""
    history = {"epoch": [1, 2, 3], "accuracy": [0.3, 0.4, 0.5], "val_accuracy": [0.30, 0.40, 0.45],
               "loss": [2, 1.5, 1.2], "val_loss": [1.9, 1.6, 1.5]}
    summary = summarize_history(history, best_epoch=3, publictest_labels=labels)
    assert "At epoch 1 PublicTest accuracy was 30 faces right, within 2 faces of the 30 neutral faces" in summary
    assert "answering that emotion for every face" in summary
    assert "one emotion" not in summarize_history(history, best_epoch=3)  # without the labels, nothing to match
