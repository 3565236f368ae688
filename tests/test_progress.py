"""fer_study.progress: a line per epoch while a run goes on, and fer-study --status."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

from fer_study import progress
from fer_study import runner as study

HEADER = "epoch,accuracy,epoch_seconds,learning_rate,loss,val_accuracy,val_loss\n"


def history(folder: Path, rows: list[tuple[float, float, float]], partial: str = "") -> Path:
    """A history.csv as train_model writes it: (epoch seconds, learning rate, PublicTest accuracy) per row."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{i},0.5,{s},{lr},1.2,{acc},1.3\n" for i, (s, lr, acc) in enumerate(rows)]
    path = folder / "history.csv"
    path.write_text(HEADER + "".join(lines) + partial)
    return path


def test_describe_epochs_says_where_a_training_stands(tmp_path):
    path = history(tmp_path / "oversample", [(411, 1e-3, 0.181), (400, 1e-3, 0.45), (420, 1e-3, 0.43)])
    rows = progress._rows(path)
    assert progress.describe_epochs("oversample", rows, cap=16) == (
        "oversample: epoch 3 of at most 16 · PublicTest 0.430 (best 0.450 at epoch 2) · learning rate 1e-03 · "
        "7 min this epoch · at most 1.5 h left")  # 13 epochs at the median 411 s
    assert progress.describe_epochs("oversample", rows[:1]) == (
        "oversample: epoch 1 · PublicTest 0.181 (best 0.181 at epoch 1) · learning rate 1e-03 · 7 min this epoch")
    assert progress.describe_epochs("oversample", rows, cap=3).endswith("7 min this epoch")  # nothing left
    assert progress.describe_epochs("baseline", []) == "baseline: no epoch finished yet"


def test_a_row_being_written_is_not_read(tmp_path):
    path = history(tmp_path / "baseline", [(120, 1e-3, 0.3)], partial="1,0.6,11")
    assert len(progress._rows(path)) == 1
    assert progress._rows(tmp_path / "missing.csv") == []


def test_the_watcher_prints_each_new_epoch_once(tmp_path):
    history(tmp_path / "baseline", [(120, 1e-3, 0.3), (121, 1e-3, 0.4)])  # a resumed training: already there
    lines: list[str] = []
    watcher = progress.EpochWatcher(tmp_path, {"baseline": 30, "oversample": 16}, emit=lines.append)
    watcher.check()
    assert lines == []
    history(tmp_path / "baseline", [(120, 1e-3, 0.3), (121, 1e-3, 0.4), (119, 1e-3, 0.5)])
    history(tmp_path / "oversample", [(400, 1e-3, 0.2)])
    watcher.check()
    watcher.check()  # nothing new: nothing printed
    assert lines == [
        "baseline: epoch 3 of at most 30 · PublicTest 0.500 (best 0.500 at epoch 3) · learning rate 1e-03 · "
        "2 min this epoch · at most 54 min left",
        "oversample: epoch 1 of at most 16 · PublicTest 0.200 (best 0.200 at epoch 1) · learning rate 1e-03 · "
        "7 min this epoch · at most 1.7 h left",
    ]
    # a training started again from scratch (other settings) is followed from its first epoch
    history(tmp_path / "baseline", [(118, 1e-3, 0.25)])
    lines.clear()
    watcher.check()
    assert lines == ["baseline: epoch 1 of at most 30 · PublicTest 0.250 (best 0.250 at epoch 1) · learning rate "
                     "1e-03 · 2 min this epoch · at most 57 min left"]


def test_the_watcher_runs_beside_the_work_and_checks_once_more_at_the_end(tmp_path):
    lines: list[str] = []
    with progress.EpochWatcher(tmp_path, emit=lines.append, interval=0.05):
        history(tmp_path / "augment_face", [(100, 1e-3, 0.3)])
        deadline = time.monotonic() + 5
        while not lines and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(lines) == 1  # printed by the thread while the work goes on
        history(tmp_path / "augment_face", [(100, 1e-3, 0.3), (100, 1e-3, 0.35)])
    assert len(lines) == 2 and lines[1].startswith("augment_face: epoch 2 ·")


def test_epoch_caps_follow_the_profiles_and_the_notebooks_parameters(tmp_path):
    caps = progress.epoch_caps(study.plan("reference", tmp_path, {}))
    assert caps == {"baseline": 30, "undersample": 100, "exercise_undersample_twice": 3, "oversample": 24,
                    "class_weights": 24, "augment_report": 24, "augment_face": 24, "beyond_vgg": 8,
                    "beyond_sgd": 8, "beyond_strong": 8, "beyond_smooth": 8, "beyond": 130}
    assert progress.epoch_caps(study.plan("reference", tmp_path, {"epochs_oversample": 4}, only=["03"])) == {
        "oversample": 4, "class_weights": 24}
    # every folder's parameter is declared by the notebook that trains it
    declared = {nb.stem[:2]: study.parameter_names(nb) for nb in study.notebooks()}
    for folder, parameter in progress.EPOCHS_PARAMETER.items():
        notebook = progress.training_notebook(folder)
        assert isinstance(parameter, int) or parameter in declared[notebook], folder


def executed(path: Path, end_time: str | None, exception: bool = False, duration: float = 7260.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"papermill": {"end_time": end_time, "exception": exception, "duration": duration}}
    path.write_text(json.dumps({"cells": [], "metadata": meta, "nbformat": 4, "nbformat_minor": 5}))


def test_run_status_describes_notebooks_and_trainings(tmp_path):
    run = tmp_path / "run"
    steps = study.plan("reference", run, {"epochs_oversample": 16}, only=["00", "01", "02", "03"])
    executed(run / "notebooks" / "00_data_exploration.ipynb", "2026-11-30T03:14:05+00:00", duration=20)
    # 00 executed as the notebook is now, with these parameters; 01's execution has other cells (none)
    record = json.loads(steps[0][1].read_text())
    record["cells"] = json.loads(steps[0][0].read_text())["cells"]
    record["metadata"]["papermill"]["parameters"] = steps[0][2]
    steps[0][1].write_text(json.dumps(record))
    executed(run / "notebooks" / "01_baseline_cnn.ipynb", "2026-11-30T07:00:00+00:00")
    executed(run / "notebooks" / "02_undersampling.ipynb", None, exception=True)
    executed(run / "notebooks" / "03_oversampling.ipynb", None)
    history(run / "baseline", [(240, 1e-3, 0.5)] * 20 + [(240, 1e-4, 0.66)] * 5)
    (run / "baseline" / "done.json").write_text("{}")
    path = history(run / "oversample", [(410, 1e-3, 0.18), (420, 1e-3, 0.45)])
    text = progress.run_status(run, steps, now=path.stat().st_mtime + 300)
    assert text.splitlines() == [
        "notebooks:",
        "  00_data_exploration: finished (its last execution 20 s, ended 2026-11-30 03:14 UTC)",
        "  01_baseline_cnn: finished (its last execution 2.0 h, ended 2026-11-30 07:00 UTC) · but not of the "
        "notebook as it is now (its cells or these parameters differ): --skip-finished runs it again",
        "  02_undersampling: failed",
        "  03_oversampling: running or interrupted",
        "trainings:",
        "  baseline: epoch 25 of at most 30 · PublicTest 0.660 (best 0.660 at epoch 21) · learning rate 1e-04 · "
        "4 min this epoch · finished",
        "  oversample: epoch 2 of at most 16 · PublicTest 0.450 (best 0.450 at epoch 2) · learning rate 1e-03 · "
        "7 min this epoch · at most 1.6 h left · last epoch 5 min ago",
        "Notebooks 01-03 trained 2 models in 1 h 54 min (their epochs' times, summed; 1 h 54 min at each "
        "training's fastest epoch); not finished yet: notebook 02, 03, 04.",
        # the baseline's best is its 21st epoch of 25 (5,040 s), oversampling's its last (830 s)
        "Up to each training's kept epoch (its best on PublicTest) they took 1 h 38 min; the other 16 min went to "
        "epochs after it (those early stopping spends to be sure of a peak, or a schedule's last, low-rate epochs).",
    ]
    assert progress.run_status(tmp_path / "nothing", steps) == "nothing: no such run directory yet (nothing has run)"


def test_fer_study_status_runs_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    history(run / "baseline", [(240, 1e-3, 0.5)])
    assert study.main(["--status", "--run-dir", str(run), "--only", "01"]) == 0
    out = capsys.readouterr().out
    assert "01_baseline_cnn: not run" in out and "baseline: epoch 1 of at most 30" in out
    assert not (run / "notebooks").exists()  # nothing ran, nothing was written
    assert re.search(r"last epoch \d+ s ago", out)


def test_fer_study_status_loads_no_keras(tmp_path):
    """--status is asked from another shell while a run goes on: it reads CSV and JSON files and must not pay
    TensorFlow's seconds of start-up and its log lines (it once did, through the history reader)."""
    run = tmp_path / "run"
    history(run / "baseline", [(240, 1e-3, 0.5)])
    code = ("import sys; from fer_study import runner as study; "
            f"code = study.main(['--status', '--run-dir', {str(run)!r}]); "
            "print('loaded:', sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules)); "
            "sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "baseline: epoch 1 of at most 30" in done.stdout
    assert done.stdout.rstrip().endswith("loaded: []")
    assert "oneDNN" not in done.stderr and "tensorflow" not in done.stderr.lower()
