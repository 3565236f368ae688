"""fer_utils.machinery.carry: a run packed at a session's end and unpacked at the next goes on exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fer_utils.evaluate import classification_metrics, write_metrics
from fer_utils.experiment import write_predictions
from fer_utils.machinery import carry
from fer_utils.machinery import study
from fer_utils.machinery.study import StudyError
from fer_utils.train import read_history, train_model

from test_publish import executed_notebook
from test_train import Interrupt, Killed, arrays, tiny_model  # noqa: F401  (arrays is a fixture)

SETTINGS = dict(epochs=4, batch_size=16, seed=1)


def scored(run: Path, name: str, share: float) -> None:
    """Metrics and predictions of experiment ``name``, right on about ``share`` of 200 faces."""
    rng = np.random.default_rng(len(name))
    y = rng.integers(0, 7, 200)
    pred = np.where(rng.random(200) < share, y, (y + 1) % 7)
    write_metrics(run / "metrics" / f"{name}.json", classification_metrics(y, pred),
                  {"profile": "reference", "epochs": 2, "best_epoch": 1, "data_counts": {}})
    write_predictions(run / "predictions" / f"{name}.npz", np.array([f"PrivateTest_{i}" for i in range(200)]),
                      y, pred)


@pytest.fixture
def stopped_run(tmp_path, arrays):
    """A run stopped in notebook 03: 00, 01, 02 and 04 finished (undersampling the most accurate),
    03's oversampling killed after epoch 2 of 4."""
    run = tmp_path / "runs" / "reference"
    for number, name, finished in (("00", "data", True), ("01", "baseline_cnn", True), ("02", "undersampling", True),
                                   ("03", "oversampling", False), ("04", "augmentation", True)):
        executed_notebook(run / "notebooks" / f"{number}_{name}.ipynb",
                          end_time="2026-12-01T12:00:00+00:00" if finished else None)
    for name, share in (("baseline", 0.4), ("undersample", 0.6), ("augment_report", 0.5)):
        result = train_model(tiny_model(), arrays, arrays, run / name, epochs=2, batch_size=16, seed=1)
        (run / "models").mkdir(exist_ok=True)
        result.model.save(run / "models" / f"{name}.keras")
        scored(run, name, share)
    with pytest.raises(Killed):
        train_model(tiny_model(), arrays, arrays, run / "oversample", callbacks=[Interrupt(after_epoch=2)], **SETTINGS)
    (run / "run.log").write_text("[1/10] 00_data_exploration ...\n")
    (run / "NOTES.txt").write_text("started\n")
    (run / "figures").mkdir()
    (run / "figures" / "01_curves.png").write_bytes(b"png")
    (run / "shipped").mkdir()
    (run / "shipped" / "baseline.keras").write_bytes(b"exported by notebook 06")
    return run


def test_the_plan_keeps_what_the_run_reads_again(stopped_run):
    actions = carry.plan(stopped_run)
    assert carry.finished_notebooks(stopped_run) == {"00", "01", "02", "04"}
    assert carry.models_read_later(stopped_run) == ["baseline", "undersample"]
    # the training that was running: everything, its last epoch's state included
    running = {rel: a for rel, a in actions.items() if rel.startswith("oversample/")}
    assert "oversample/best.keras" in running and any(rel.startswith("oversample/backup/") for rel in running)
    # its best model without the optimizer's state (read only from the backup); the rest as it is
    assert running.pop("oversample/best.keras") == "slim" and set(running.values()) == {"copy"}
    # finished notebooks' trainings: their histories and verdicts, not their checkpoints
    for name in ("baseline", "undersample", "augment_report"):
        assert actions[f"{name}/history.csv"] == actions[f"{name}/done.json"] == actions[f"{name}/machines.json"] == "copy"
        assert actions[f"{name}/best.keras"].startswith("leave: notebook")
    # models read later are exported; one no later notebook reads is left out
    assert actions["models/baseline.keras"] == actions["models/undersample.keras"] == "export"
    assert actions["models/augment_report.keras"] == ("leave: notebook 04 finished and no later notebook "
                                                      "reads this model")
    assert actions["notebooks/03_oversampling.ipynb"] == "leave: this notebook has not finished; it runs again"
    # notebook 06 runs again after the unfinished training notebooks, and exports the shipped models again
    assert actions["shipped/baseline.keras"] == ("leave: notebook 06 exports the shipped models again once "
                                                 "notebooks 03 and 08 have finished")
    for rel in ("notebooks/01_baseline_cnn.ipynb", "run.log", "NOTES.txt", "figures/01_curves.png",
                "metrics/baseline.json", "predictions/undersample.npz"):
        assert actions[rel] == "copy", rel


def test_the_shipped_models_are_kept_once_every_training_notebook_finished(tmp_path):
    from fer_utils.experiment import TRAINED_IN

    run = tmp_path / "run"
    for number in sorted({"00", "06", *TRAINED_IN.values()}):
        executed_notebook(run / "notebooks" / f"{number}_x.ipynb", end_time="2026-12-01T12:00:00+00:00")
    (run / "shipped").mkdir()
    (run / "shipped" / "baseline.keras").write_bytes(b"exported by notebook 06")
    assert carry.plan(run)["shipped/baseline.keras"] == "copy"  # the finished run: 06 does not run again
    executed_notebook(run / "notebooks" / "08_x.ipynb", end_time=None)  # 08 still training
    assert carry.plan(run)["shipped/baseline.keras"] == ("leave: notebook 06 exports the shipped models again once "
                                                         "notebook 08 has finished")


def test_save_then_restore_goes_on_exactly_as_the_run_would_have(stopped_run, tmp_path, arrays):
    held = tmp_path / "results" / "reference-in-progress"
    manifest = carry.save(stopped_run, held, note="session 1")
    stored = json.loads((held / carry.MANIFEST).read_text())
    assert stored == manifest and manifest["note"] == "session 1"
    assert manifest["finished_notebooks"] == ["00", "01", "02", "04"]
    assert (held / "run_log.txt").exists() and not (held / "run.log").exists()  # *.log is ignored by git
    assert not (held / "baseline" / "best.keras").exists() and not (held / "models" / "augment_report.keras").exists()
    assert manifest["files"]["models/baseline.keras"]["exported"] == "float32, without the optimizer's state"
    assert "models/augment_report.keras" in manifest["left_out"]
    assert "Not a result." in (held / "README.md").read_text()
    # an exported model is a third of the training file, and predicts the same
    from fer_utils.augment import load_model

    original, exported = stopped_run / "models" / "baseline.keras", held / "models" / "baseline.keras"
    assert exported.stat().st_size < 0.6 * original.stat().st_size
    np.testing.assert_allclose(load_model(exported).predict(arrays[0], verbose=0),
                               load_model(original).predict(arrays[0], verbose=0), atol=1e-6)

    # the running training's best model, slimmed: the same predictions in a third of the bytes
    original, slimmed = stopped_run / "oversample" / "best.keras", held / "oversample" / "best.keras"
    assert manifest["files"]["oversample/best.keras"]["exported"] == carry.SLIMMED["slim"]
    assert slimmed.stat().st_size < 0.6 * original.stat().st_size
    np.testing.assert_array_equal(load_model(slimmed).predict(arrays[0], verbose=0),
                                  load_model(original).predict(arrays[0], verbose=0))

    fresh = tmp_path / "next-session" / "reference"
    carry.restore(fresh, held)
    assert (fresh / "run.log").read_text() == (stopped_run / "run.log").read_text()
    assert carry.finished_notebooks(fresh) == {"00", "01", "02", "04"}
    # the killed training resumes at its next epoch, in both copies alike
    there = train_model(tiny_model(), arrays, arrays, fresh / "oversample", **SETTINGS)
    here = train_model(tiny_model(), arrays, arrays, stopped_run / "oversample", **SETTINGS)
    assert there.resumed_from == here.resumed_from == 2
    assert read_history(fresh / "oversample" / "history.csv")["epoch"] == [1, 2, 3, 4]
    for a, b in zip(there.model.get_weights(), here.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # a finished notebook's training, its checkpoint left out, trains afresh if its notebook runs again
    again = train_model(tiny_model(), arrays, arrays, fresh / "baseline", epochs=2, batch_size=16, seed=1)
    assert again.resumed_from == 0 and again.epochs_run == 2 and (fresh / "baseline" / "best.keras").exists()


def test_save_replaces_the_old_carry_whole(stopped_run, tmp_path):
    held = tmp_path / "results" / "held"
    carry.save(stopped_run, held)
    (held / "stale.txt").write_text("from an older save")
    carry.save(stopped_run, held)
    assert not (held / "stale.txt").exists()
    assert [p.name for p in held.parent.iterdir()] == ["held"]  # no building or old folder left behind


def test_restore_refuses_to_mix_runs_and_checks_every_file(stopped_run, tmp_path):
    held = tmp_path / "held"
    carry.save(stopped_run, held)
    with pytest.raises(StudyError, match="already holds files"):
        carry.restore(stopped_run, held)
    (held / "NOTES.txt").write_text("changed\n")
    with pytest.raises(StudyError, match=r"NOTES.txt: its sha256 differs"):
        carry.restore(tmp_path / "new", held)
    assert not (tmp_path / "new").exists()  # checked before anything was written
    with pytest.raises(StudyError, match="no CARRY.json; nothing was carried"):
        carry.restore(tmp_path / "new", tmp_path / "nothing")
    with pytest.raises(StudyError, match="no such run directory"):
        carry.plan(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"attempts must be at least 1 \(got 0\)"):
        carry.save(stopped_run, held, attempts=0)


def test_command_line(stopped_run, tmp_path, capsys):
    held = tmp_path / "held"
    assert carry.main(["show", str(stopped_run)]) == 0
    out = capsys.readouterr().out
    assert "export   models/baseline.keras" in out
    assert "leave    notebooks/03_oversampling.ipynb (this notebook has not finished; it runs again)" in out
    assert carry.main(["save", str(stopped_run), "--carry", str(held)]) == 0
    out = capsys.readouterr().out
    assert "notebooks finished: 00, 01, 02, 04" in out and "left out (" in out
    assert carry.main(["restore", str(stopped_run), "--carry", str(held)]) == 2
    assert "already holds files" in capsys.readouterr().err
    shutil.rmtree(stopped_run)
    assert carry.main(["restore", str(stopped_run), "--carry", str(held)]) == 0
    assert "restored from" in capsys.readouterr().out


def test_going_on_without_restoring_a_carried_run_is_refused(stopped_run, tmp_path, monkeypatch):
    held = tmp_path / "results" / "reference-in-progress"
    carry.save(stopped_run, held)
    monkeypatch.setattr(carry, "default_carry", lambda run: held)
    fresh = tmp_path / "next" / "reference"
    message = carry.unrestored(fresh)
    assert "holds this run as saved" in message and "notebook(s) 00, 01, 02, 04 finished" in message
    assert "fer-carry restore" in message
    with pytest.raises(StudyError, match="holds this run as saved"):
        study.run("reference", fresh, skip_finished=True)
    carry.restore(fresh, held)
    assert carry.unrestored(fresh) is None


def test_a_model_exported_once_keeps_its_bytes_from_save_to_save(stopped_run, tmp_path):
    held = tmp_path / "results" / "held"
    first = carry.save(stopped_run, held)["files"]["models/baseline.keras"]
    exported = (held / "models" / "baseline.keras").read_bytes()
    assert carry.save(stopped_run, held)["files"]["models/baseline.keras"] == first  # same source: not re-exported
    fresh = tmp_path / "next" / "reference"
    carry.restore(fresh, held)
    again = carry.save(fresh, held)["files"]["models/baseline.keras"]  # the next session's save
    assert again == first and (held / "models" / "baseline.keras").read_bytes() == exported
    (stopped_run / "models" / "baseline.keras").unlink()  # a new baseline (its notebook ran again): exported anew
    shutil.copy2(stopped_run / "models" / "undersample.keras", stopped_run / "models" / "baseline.keras")
    assert carry.save(stopped_run, held)["files"]["models/baseline.keras"]["from_sha256"] != first["from_sha256"]


def test_a_training_finished_at_its_cap_with_its_best_epoch_last_keeps_its_optimizer_state(stopped_run, tmp_path,
                                                                                           arrays):
    """Raising such a training's cap goes on from its best.keras, optimizer included (fer_utils.train), so
    while its notebook has not finished the carry keeps that file whole; any other finished one is slimmed."""
    from test_train import finished_with_best_last

    shutil.rmtree(stopped_run / "oversample")
    finished_with_best_last(stopped_run / "oversample", arrays, epochs=3)
    assert carry.plan(stopped_run)["oversample/best.keras"] == "copy"
    done = json.loads((stopped_run / "oversample" / "done.json").read_text())
    (stopped_run / "oversample" / "done.json").write_text(json.dumps({**done, "best_epoch": 2}))
    assert carry.plan(stopped_run)["oversample/best.keras"] == "slim"
    (stopped_run / "oversample" / "done.json").write_text("{not json")
    assert carry.plan(stopped_run)["oversample/best.keras"] == "slim"


def test_a_slimmed_model_keeps_its_bytes_from_save_to_save_and_is_slimmed_anew_when_it_changes(stopped_run, tmp_path,
                                                                                             arrays):
    held = tmp_path / "held"
    first = carry.save(stopped_run, held)["files"]["oversample/best.keras"]
    slimmed = (held / "oversample" / "best.keras").read_bytes()
    assert carry.save(stopped_run, held)["files"]["oversample/best.keras"] == first
    assert (held / "oversample" / "best.keras").read_bytes() == slimmed
    # a later, better epoch rewrites the checkpoint: slimmed anew, from the new file
    shutil.copy2(stopped_run / "undersample" / "best.keras", stopped_run / "oversample" / "best.keras")
    again = carry.save(stopped_run, held)["files"]["oversample/best.keras"]
    assert again["from_sha256"] == carry._sha256(stopped_run / "undersample" / "best.keras") != first["from_sha256"]
    from fer_utils.augment import load_model

    np.testing.assert_array_equal(load_model(held / "oversample" / "best.keras").predict(arrays[0], verbose=0),
                                  load_model(stopped_run / "undersample" / "best.keras").predict(arrays[0], verbose=0))


def test_cost_adds_up_the_diffs_since_a_commit(tmp_path, capsys, monkeypatch):
    import subprocess

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    git("init", "-q")
    (tmp_path / "a.txt").write_text("start\n")
    git("add", "."), git("commit", "-qm", "start")
    assert carry.submission_bytes("HEAD", tmp_path) == 0
    blob = np.random.default_rng(0).bytes(300_000)  # incompressible, as a model's weights are
    (tmp_path / "m.bin").write_bytes(blob)
    git("add", "."), git("commit", "-qm", "add")
    added = carry.submission_bytes("HEAD~1", tmp_path)
    assert 1.2 * len(blob) < added < 1.4 * len(blob)  # base85 of the deflated bytes
    (tmp_path / "m.bin").unlink()  # removed, uncommitted: its old bytes count again
    assert 2.4 * len(blob) < carry.submission_bytes("HEAD~1", tmp_path) < 2.8 * len(blob)
    with pytest.raises(StudyError, match="nosuch: not a commit"):
        carry.submission_bytes("nosuch", tmp_path)
    monkeypatch.setattr(carry, "repo_root", lambda: tmp_path)
    assert carry.main(["cost", "--since", "HEAD~1"]) == 0
    assert "MiB of diffs" in capsys.readouterr().out
    monkeypatch.setattr(carry, "SUBMISSION_LIMIT", 1000)
    assert carry.main(["cost", "--since", "HEAD~1"]) == 1
    assert carry.main(["cost", "--since", "nosuch"]) == 2 and "not a commit" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        carry.main(["cost"])
    assert "cost needs --since" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        carry.main(["show"])
    assert "show needs the run directory" in capsys.readouterr().err


def test_a_save_of_finished_notebooks_only_leaves_the_running_training_out(stopped_run, tmp_path):
    held = tmp_path / "held"
    manifest = carry.save(stopped_run, held, finished_only=True)
    assert manifest["finished_only"] is True
    assert not any(rel.startswith("oversample/") for rel in manifest["files"])
    assert manifest["left_out"]["oversample/history.csv"]["why"] == ("notebook 03 has not finished "
                                                                     "(a save of finished notebooks only)")
    assert "models/baseline.keras" in manifest["files"] and "baseline/history.csv" in manifest["files"]
    full = carry.save(stopped_run, held)
    assert full["bytes"] > manifest["bytes"] and "oversample/history.csv" in full["files"]


def test_a_save_made_while_the_training_writes_an_epoch_is_made_again(stopped_run, tmp_path, monkeypatch):
    """The run goes on during a save: an epoch ending while the folder is copied (its backup, best model and
    history rewritten) must not leave a carried state mixed from two epochs."""
    held = tmp_path / "held"
    history = stopped_run / "oversample" / "history.csv"
    copies, real_copy = [], shutil.copy2

    def copy_while_an_epoch_ends(source, target, *args, **kwargs):
        copies.append(Path(source))
        if len(copies) == 3:  # the epoch ends while the save is under way
            history.write_text(history.read_text() + "3,0.1,0.2,0.3,0.4,1.0,0.001\n")
        return real_copy(source, target, *args, **kwargs)

    monkeypatch.setattr(carry.shutil, "copy2", copy_while_an_epoch_ends)
    manifest = carry.save(stopped_run, held, wait=0)
    assert len(copies) > len(manifest["files"])  # copied twice over, at least in part
    assert (held / "oversample" / "history.csv").read_text() == history.read_text()
    assert manifest["files"]["oversample/history.csv"]["sha256"] == carry._sha256(history)
    assert not (tmp_path / ".held.building").exists()


def test_a_run_that_never_holds_still_is_not_saved_and_the_old_carry_stays(stopped_run, tmp_path, monkeypatch):
    held = tmp_path / "held"
    first = carry.save(stopped_run, held)
    history = stopped_run / "oversample" / "history.csv"
    real_copy = shutil.copy2

    def copy_while_writing(source, target, *args, **kwargs):
        history.write_text(history.read_text() + "9,0.1,0.2,0.3,0.4,1.0,0.001\n")
        return real_copy(source, target, *args, **kwargs)

    monkeypatch.setattr(carry.shutil, "copy2", copy_while_writing)
    with pytest.raises(StudyError, match=r"kept changing while it was copied \(3 tries, 0 s apart\): stop the run"):
        carry.save(stopped_run, held, attempts=3, wait=0)
    assert json.loads((held / "CARRY.json").read_text()) == first
    assert not (tmp_path / ".held.building").exists()


def test_a_save_is_committed_and_a_later_save_of_the_same_session_amends_it(tmp_path):
    import subprocess
    from datetime import datetime, timezone

    def git(*args) -> str:
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True).stdout

    git("init", "-q"), git("config", "user.name", "t"), git("config", "user.email", "t@t")
    (tmp_path / "a.txt").write_text("start\n")
    git("add", "."), git("commit", "-qm", "Carry the r run: a save an earlier session committed (landed)")
    since = git("rev-parse", "HEAD").strip()
    held = tmp_path / "results" / "r-in-progress"
    held.mkdir(parents=True)
    (held / "state.bin").write_bytes(b"epoch 3")
    (held / "old.txt").write_text("goes later\n")
    (tmp_path / "b.txt").write_text("work in progress\n")
    git("add", "b.txt")  # staged foreground work must stay out of the carry commit
    message = "Carry the r run: full save"
    # the landed carry commit the session started from is never amended
    assert carry.commit_carry(held, since, message, tmp_path).endswith("committed as " + git("rev-parse", "--short", "HEAD").strip())
    assert git("rev-parse", "HEAD~1").strip() == since
    assert git("diff", "--cached", "--name-only").split() == ["b.txt"]
    assert sorted(git("show", "--name-only", "--format=", "HEAD").split()) == ["results/r-in-progress/old.txt",
                                                                                "results/r-in-progress/state.bin"]
    # a second save of the same session replaces the first: one carry commit, the newest bytes
    (held / "state.bin").write_bytes(b"epoch 9")
    (held / "old.txt").unlink()
    assert "amended this session's carry commit" in carry.commit_carry(held, since, message + " again", tmp_path)
    assert git("rev-list", "--count", f"{since}..HEAD").strip() == "1"
    assert git("show", "HEAD:results/r-in-progress/state.bin") == "epoch 9"
    assert git("ls-tree", "-r", "--name-only", "HEAD").split() == ["a.txt", "results/r-in-progress/state.bin"]
    assert git("log", "-1", "--format=%s").strip() == message + " again"
    assert git("diff", "--cached", "--name-only").split() == ["b.txt"]  # still staged, still not committed
    assert carry.commit_carry(held, since, message, tmp_path).endswith("nothing changed since the last commit; "
                                                                       "nothing committed")
    # after another commit, a save is a commit of its own
    git("commit", "-qm", "foreground work")
    (held / "state.bin").write_bytes(b"epoch 12")
    assert carry.commit_carry(held, since, message, tmp_path).startswith("results/r-in-progress: committed as ")
    assert git("rev-list", "--count", f"{since}..HEAD").strip() == "3"
    # a save names the commit of the code that made it, not this session's carry commit (amended away next time)
    assert carry._commit(tmp_path) == git("rev-parse", "--short", "HEAD~1").strip()
    with pytest.raises(StudyError, match="nosuch: not a commit"):
        carry.commit_carry(held, "nosuch", message, tmp_path)
    tip = git("rev-parse", "HEAD").strip()
    git("checkout", "-q", "-b", "side", since)  # a commit after HEAD is no session's start
    with pytest.raises(StudyError, match="not an ancestor of HEAD"):
        carry.commit_carry(held, tip, message, tmp_path)
    with pytest.raises(ValueError, match="begins with 'Carry the '"):
        carry.commit_carry(held, since, "save", tmp_path)
    # --at: the seconds until the next such UTC time
    noon = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
    assert carry.wait_until("12:30", noon) == 1800 and carry.wait_until("11:00", noon) == 23 * 3600
    with pytest.raises(ValueError, match="HH:MM"):
        carry.wait_until("25:00", noon)


def test_commit_and_at_go_with_save_and_commit_needs_since(capsys):
    for argv, expected in ((["show", "runs/x", "--commit"], "--commit and --at go with save"),
                           (["save", "runs/x", "--commit"], "save --commit needs --since"),
                           (["save", "runs/x", "--at", "9"], "--at takes a UTC time as HH:MM")):
        with pytest.raises(SystemExit):
            carry.main(argv)
        assert expected in capsys.readouterr().err
