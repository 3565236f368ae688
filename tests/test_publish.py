"""fer_study.publish: a finished run is checked, then copied into the repository with a manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fer_study import classroom, publish as pub
from fer_study import notebooks as nbfiles
from fer_utils.evaluate import classification_metrics, write_metrics
from fer_utils.experiments import EXPERIMENTS, save_peer
from fer_study.publish import readme_results


def source_notebook(path: Path, text: str = "reference") -> None:
    """A committed notebook of one markdown cell, the one :func:`executed_notebook` runs by default."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": [{"cell_type": "markdown", "metadata": {}, "source": text}],
                                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


def executed_notebook(path: Path, profile: str = "reference", end_time: str | None = "2026-11-28T12:00:01+00:00",
                      exception: bool | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"papermill": {"parameters": {"profile": profile, "run_dir": "runs/x"}, "duration": 61.25,
                          "end_time": end_time, "exception": exception}}
    path.write_text(json.dumps({"cells": [{"cell_type": "markdown", "metadata": {}, "source": profile}],
                                "metadata": meta, "nbformat": 4, "nbformat_minor": 5}))


def finished_run(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(run dir, repository root, notebook dir) of a complete synthetic run of two notebooks."""
    run, root = tmp_path / "run", tmp_path / "repo"
    nbdir = root / "notebooks"
    for name in ("00_a.ipynb", "03_b.ipynb"):
        source_notebook(nbdir / name)
        executed_notebook(run / "notebooks" / name)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, 200)
    for i, name in enumerate(EXPERIMENTS):
        share = 0.3 + 0.05 * i if name != "beyond" else 0.25  # augment_face stays the most accurate here
        pred = np.where(rng.random(200) < share, y, 3)
        write_metrics(run / "metrics" / f"{name}.json", classification_metrics(y, pred),
                      {"profile": "reference", "epochs": 10 + i, "best_epoch": 3, "train_seconds": 100.0 * i,
                       "wall_seconds": 120.0, "precision": "mixed_bfloat16",
                       "hardware": {"cpu": "Test CPU", "cpu_count": 2, "accelerators": []},
                       "versions": {"keras": "3"}, "data_counts": {}})
        (run / "predictions").mkdir(parents=True, exist_ok=True)
        np.savez(run / "predictions" / f"{name}.npz", ids=np.array([f"PrivateTest_{i}" for i in range(200)]),
                 y_true=y, y_pred=pred)
        (run / name).mkdir()
        (run / name / "history.csv").write_text(f"epoch,accuracy,epoch_seconds\n0,0.{i},{100.0 * i}\n")
    # the baseline's curve, 12 epochs (of no time, as before), to set beside the report's (PublicTest loss lowest at epoch 8)
    rows = [f"{e},0.5,0.0,{0.2 + 0.04 * min(e, 9):.2f},{1.9 - 0.1 * e if e < 8 else 1.2 + 0.05 * e:.2f}"
            for e in range(12)]
    (run / "baseline" / "history.csv").write_text("epoch,accuracy,epoch_seconds,val_accuracy,val_loss\n"
                                                  + "\n".join(rows) + "\n")
    (run / "beyond_vgg").mkdir()  # a step of notebook 08: not an experiment, but its time counts
    (run / "beyond_vgg" / "history.csv").write_text("epoch,accuracy,epoch_seconds\n0,0.2,1200.0\n")
    (run / "shipped").mkdir()
    (run / "shipped" / "baseline.keras").write_bytes(b"model bytes")
    (run / "shipped" / "augment_face.keras").write_bytes(b"best model bytes")
    (run / "figures").mkdir()
    for fig in ("00_new.png", "01_curves.png"):
        (run / "figures" / fig).write_bytes(fig.encode())
    (root / "figures").mkdir()
    (root / "figures" / "01_old_only.png").write_bytes(b"old")   # a numbered figure the new run no longer makes
    (root / "figures" / "logo.png").write_bytes(b"kept")          # not a run's figure: left alone
    (root / "models").mkdir()
    (root / "models" / "oversample.keras").write_bytes(b"an older run's best model")
    peer_pred = np.where(rng.random(200) < 0.6, y, 3)
    peer = classification_metrics(y, peer_pred)
    peer["peer"] = {"name": "a peer", "caveat": "it saw these faces"}
    peer["predictions"] = {"ids": np.array([f"PrivateTest_{i}" for i in range(200)]), "y_true": y, "y_pred": peer_pred}
    save_peer(run, peer)
    (root / "README.md").write_text(f"# Study\n\n## Results\n\n{pub.README_BEGIN}\nold numbers\n{pub.README_END}\n\n"
                                    "## Next\n")
    return run, root, nbdir


def test_publish_copies_a_finished_run_and_writes_the_manifest(tmp_path):
    run, root, nbdir = finished_run(tmp_path)
    assert pub.check_run(run, nbdir) == ("reference", [])
    (root / "results" / "reference" / "metrics" / "peers").mkdir(parents=True)
    (root / "results" / "reference" / "metrics" / "peers" / "older.json").write_text("{}")  # an older run's
    (root / "results" / "reference" / "beyond_old_history.csv").write_text("epoch,epoch_seconds\n0,1\n")
    manifest = pub.publish(run, root, nbdir)

    assert json.loads((nbdir / "03_b.ipynb").read_text())["metadata"]["papermill"]["duration"] == 61.25
    assert sorted(p.name for p in (root / "figures").iterdir()) == ["00_new.png", "01_curves.png", "logo.png"]
    assert manifest["figures_removed"] == ["01_old_only.png"]
    results = root / "results" / "reference"
    assert sorted(p.name for p in (results / "metrics").glob("*.json")) == sorted(f"{n}.json" for n in EXPERIMENTS)
    assert (results / "class_weights_history.csv").read_text() == "epoch,accuracy,epoch_seconds\n0,0.3,300.0\n"
    assert sorted(p.name for p in results.glob("*_history.csv")) == sorted(
        f"{n}_history.csv" for n in [*EXPERIMENTS, "beyond_vgg"])  # the older run's step is gone
    assert (root / "models" / "baseline.keras").read_bytes() == b"model bytes"
    assert sorted(p.name for p in (root / "models").glob("*.keras")) == ["augment_face.keras", "baseline.keras"]
    assert manifest["models_removed"] == ["oversample.keras"]
    # the student copies are made from the notebooks just published (their first note names the run)
    assert {p.name: p.read_text() for p in (root / "student").iterdir()} == classroom.student_copies(nbdir)
    assert "`notebooks/03_b.ipynb`" in (root / "student" / "03_b.ipynb").read_text()

    assert manifest == pub.read_manifest(root)
    assert manifest["profile"] == "reference" and manifest["run_finished_utc"] == "2026-11-28 12:00 UTC"
    assert manifest["models"]["baseline"]["sha256"] == pub.sha256(root / "models" / "baseline.keras")
    assert manifest["models"]["baseline"]["metrics"] == "results/reference/metrics/baseline.json"
    assert manifest["experiments"]["augment_face"]["epochs"] == 15
    assert manifest["notebooks"]["00_a.ipynb"]["executed_in_s"] == 61.2
    # notebook 03 trains oversampling (200 s here) and class weights (300 s)
    assert manifest["notebooks"]["03_b.ipynb"]["train_seconds"] == 500.0
    assert manifest["notebooks"]["00_a.ipynb"]["train_seconds"] == 0.0
    accuracy = manifest["experiments"]["baseline"]["accuracy"]
    readme = (root / "models" / "README.md").read_text()
    assert f"{accuracy:.3f}" in readme and manifest["models"]["baseline"]["sha256"][:16] in readme
    assert "`reference` run" in readme and "Test CPU, 2 cores" in readme
    assert "the baseline and the run's most accurate model (augment_face)" in readme

    # the README's results are computed from what was just published, and nothing else there changes
    top = (root / "README.md").read_text()
    assert top.startswith("# Study\n\n## Results\n\n") and top.endswith(f"{pub.README_END}\n\n## Next\n")
    block = pub.readme_results_block(top)
    assert block == readme_results(results, manifest) and "old numbers" not in block
    assert block.startswith("The `reference` run, finished 2026-11-28 12:00 UTC: 8 min of "
                            "training (the epochs' times, summed), and 2 min for the notebooks' own execution")
    assert "Test CPU" not in block and "each metrics file records the machine and versions" in block
    assert f"| baseline CNN (01) | {accuracy:.3f} (" in block
    assert ("What it cost:\n\n- Notebooks 01-04 trained 6 models in 25 min (their epochs' times, summed; 25 min at "
            "each training's fastest epoch).\n"
            "- Notebook 08 trained 2 models in 30 min (30 min at the fastest epochs); its final model took 10 min "
            "(10 min).\n\nAgainst the source report:\n\n- baseline CNN (01): ours") in block
    assert "Against a peer readers will try:\n\n- a peer: accuracy" in block and "- Caveat: it saw these faces." in block
    assert sorted(p.name for p in (results / "metrics" / "peers").iterdir()) == ["fer_package.json"]
    assert sorted(p.name for p in (results / "predictions" / "peers").iterdir()) == ["fer_package.npz"]
    assert "- baseline CNN (01): accuracy" in block and "(McNemar on the same faces: " in block.split("a peer:")[1]
    # the baseline's curve against the report's, and how each training with a PublicTest curve ended
    assert ("The baseline's PublicTest curve against the report's:\n\n- Epoch 3: validation accuracy 0.280 against "
            "the report's about 0.45") in block
    assert "- Validation loss was lowest at epoch 8 and rose after it (before the report's epochs 10-15)." in block
    assert ("How each training ended (from its PublicTest curve):\n\n- baseline CNN (01): best PublicTest accuracy "
            "0.560 at epoch 10 of 12, validation loss lowest at epoch 8; the best epoch came within the last 3") in block
    assert block.count("best PublicTest accuracy") == 1  # the other trainings' histories have no PublicTest curve


def running_beyond(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A finished run (:func:`finished_run`) whose notebook 08 is still training: it has started (its
    executed copy has no end time, a step's history and a figure exist) but has no final metrics."""
    run, root, nbdir = finished_run(tmp_path)
    source = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": f"# 08\n\n{nbfiles.PENDING_NOTE} Run it."},
                        {"cell_type": "code", "metadata": {}, "source": "x = 1", "outputs": [],
                         "execution_count": None}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (nbdir / "08_c.ipynb").write_text(json.dumps(source))
    executed_notebook(run / "notebooks" / "08_c.ipynb", end_time=None)
    for part in ("metrics/beyond.json", "predictions/beyond.npz", "beyond/history.csv"):
        (run / part).unlink()
    (run / "figures" / "08_steps.png").write_bytes(b"a figure of the running notebook")
    older = root / "results" / "reference"
    (older / "metrics").mkdir(parents=True)
    (older / "metrics" / "beyond.json").write_text("{}")     # an older run's final model of 08
    (older / "beyond_history.csv").write_text("epoch,epoch_seconds\n0,1\n")
    return run, root, nbdir


def test_a_model_scored_with_test_time_augmentation_says_how_to_predict_with_it(tmp_path):
    run, root, nbdir = finished_run(tmp_path)
    metrics = json.loads((run / "metrics" / "beyond.json").read_text())
    metrics["provenance"]["test_time_augmentation"] = "ten-crop (centre and 4 corners of 40x40)"
    (run / "metrics" / "beyond.json").write_text(json.dumps(metrics))
    (run / "shipped" / "beyond.keras").write_bytes(b"vgg bytes")
    manifest = pub.publish(run, root, nbdir)
    assert manifest["experiments"]["beyond"]["test_time_augmentation"].startswith("ten-crop")
    assert manifest["experiments"]["baseline"]["test_time_augmentation"] is None
    readme = (root / "models" / "README.md").read_text()
    assert ("The accuracy of `beyond.keras` was measured with test-time augmentation (ten-crop (centre and 4 "
            "corners of 40x40)): predict the same way with `fer_utils.beyond.tta_probabilities") in readme
    assert "`fer-predict --model ... --tta`" in readme


def test_the_no_outputs_note_becomes_the_line_naming_the_run(tmp_path):
    run, root, nbdir = finished_run(tmp_path)
    executed = json.loads((run / "notebooks" / "03_b.ipynb").read_text())
    note = {"cell_type": "markdown", "metadata": {}, "source": [
        "# 03 · B\n", "\n", "Re-run with `fer-study --only 03`.\n", "\n",
        f"{nbfiles.PENDING_NOTE} This notebook's earlier outputs came from a defective copy\n",
        "> of the data. Run it yourself.\n", "\n", "## 1. Next"]}
    executed["cells"].insert(0, note)
    (run / "notebooks" / "03_b.ipynb").write_text(json.dumps(executed))
    source = json.loads((nbdir / "03_b.ipynb").read_text())
    source["cells"].insert(0, note)  # the committed source the run executed, note and all
    (nbdir / "03_b.ipynb").write_text(json.dumps(source))
    untouched = (run / "notebooks" / "00_a.ipynb").read_bytes()
    pub.publish(run, root, nbdir)

    published = json.loads((nbdir / "03_b.ipynb").read_text())
    assert published["cells"][0]["source"] == ("# 03 · B\n\nRe-run with `fer-study --only 03`.\n\n"
                                               f"{nbfiles.PUBLISHED_NOTE}\n\n## 1. Next")
    assert published["cells"][1:] == executed["cells"][1:]
    assert published["metadata"] == executed["metadata"]
    assert (nbdir / "00_a.ipynb").read_bytes() == untouched  # nothing to change: copied byte for byte
    assert (run / "notebooks" / "03_b.ipynb").read_text() == json.dumps(executed)  # the run is only read


def test_publishing_keeps_the_committed_notebooks_nbval_tags(tmp_path):
    """A cell tagged nbval-check-output after the run executed its notebook keeps the tag when the run's
    copy (without it) is published; a tag the committed notebook no longer has goes; other tags stay."""
    run, root, nbdir = finished_run(tmp_path)
    code = {"cell_type": "code", "execution_count": None, "outputs": [], "source": "print(table)"}
    injected = {"cell_type": "code", "execution_count": None, "outputs": [], "source": "profile = 'reference'",
                "metadata": {"tags": ["injected-parameters"]}}
    source = json.loads((nbdir / "03_b.ipynb").read_text())
    answer = "x = None\n### BEGIN SOLUTION\nx = 2\n### END SOLUTION"
    checking = "print(check('03.1', x, equals=2, why='w'))"
    source["cells"] += [{**code, "metadata": {"tags": ["nbval-check-output"]}},
                        {**code, "source": answer, "metadata": {"tags": ["exercise"]}},
                        {**code, "source": checking, "metadata": {"tags": ["exercise-check"]}}]
    (nbdir / "03_b.ipynb").write_text(json.dumps(source))
    executed = json.loads((run / "notebooks" / "03_b.ipynb").read_text())
    executed["cells"] += [injected, {**code, "metadata": {}, "outputs": [{"output_type": "stream", "name": "stdout",
                                                                         "text": "0.67\n"}]},
                          {**code, "source": answer, "metadata": {"tags": ["exercise", "nbval-skip"]}},
                          {**code, "source": checking, "metadata": {"tags": ["exercise-check"]}}]
    (run / "notebooks" / "03_b.ipynb").write_text(json.dumps(executed))
    pub.publish(run, root, nbdir)

    published = json.loads((nbdir / "03_b.ipynb").read_text())["cells"]
    # papermill's injected cell is dropped: Run All uses the notebook's own parameters
    assert [c.get("metadata", {}).get("tags") for c in published] == [
        None, ["nbval-check-output"], ["exercise"], ["exercise-check"]]
    assert published[1]["outputs"][0]["text"] == "0.67\n"  # the run's outputs, the committed copy's marks
    student = json.loads((root / "student" / "03_b.ipynb").read_text())["cells"]
    assert "".join(student[-2]["source"]) == "x = None\n# YOUR CODE HERE (exercise 03.1)"
    assert student[-1]["metadata"]["tags"] == ["exercise-check", "raises-exception"]


@pytest.mark.parametrize("breakage, expected", [
    (lambda run: (run / "metrics" / "oversample.json").unlink(), "metrics/oversample.json: missing"),
    (lambda run: (run / "augment_face" / "history.csv").unlink(), "augment_face/history.csv: missing"),
    (lambda run: (run / "notebooks" / "03_b.ipynb").unlink(), "notebooks/03_b.ipynb: not executed in this run"),
    (lambda run: executed_notebook(run / "notebooks" / "03_b.ipynb", end_time=None),
     "notebooks/03_b.ipynb: not finished"),
    (lambda run: executed_notebook(run / "notebooks" / "03_b.ipynb", exception=True),
     "notebooks/03_b.ipynb: stopped with an error"),
    (lambda run: executed_notebook(run / "notebooks" / "03_b.ipynb", profile="smoke"),
     "different profiles: reference, smoke"),
    (lambda run: [m.unlink() for m in (run / "shipped").glob("*.keras")], "shipped/*.keras: no exported model"),
    (lambda run: (run / "shipped" / "mystery.keras").write_bytes(b"?"),
     "shipped/mystery.keras: not a model of the experiments published"),
    (lambda run: (run / "notebooks" / "03_b.ipynb").write_text('{"cells": [{"cell_'),
     "notebooks/03_b.ipynb: not a readable notebook"),
    (lambda run: (run / "metrics" / "undersample.json").write_text(
        (run / "metrics" / "undersample.json").read_text().replace('"profile": "reference"', '"profile": "cpu"')),
     "metrics/undersample.json: written under profile 'cpu', not this run's 'reference'"),
    # the notebook was edited after the run executed it: publishing would put the old cells back
    (lambda run: source_notebook(run.parent / "repo" / "notebooks" / "03_b.ipynb", "reference, edited since"),
     "notebooks/03_b.ipynb: the run executed another version of it .its cells differ from the committed "
     "notebook's, which publishing would overwrite.: run it again in this run directory .fer-study --only 03 "
     "--skip-finished re-runs only what changed.$"),
    # an exercise whose answer has no markers: its student copy would give the answer away
    (lambda run: (run.parent / "repo" / "notebooks" / "00_a.ipynb").write_text(json.dumps(
        {"cells": [{"cell_type": "code", "metadata": {"tags": ["exercise"]}, "source": "print(1)", "outputs": [],
                    "execution_count": None}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})),
     "the student copies cannot be made: 00_a.ipynb: cell 0 has no solution markers"),
])
def test_an_incomplete_run_is_refused_before_anything_is_copied(tmp_path, breakage, expected):
    run, root, nbdir = finished_run(tmp_path)
    breakage(run)
    with pytest.raises(pub.PublishError, match=expected.replace("*", r"\*")):
        pub.publish(run, root, nbdir)
    assert not (root / "results").exists() and not (root / "models" / "baseline.keras").exists()
    assert (root / "models" / "oversample.keras").exists()
    assert (root / "figures" / "01_old_only.png").exists()
    assert json.loads((nbdir / "00_a.ipynb").read_text())["metadata"] == {}
    assert not (root / "student").exists()


def test_command_line_check_and_errors(tmp_path, capsys, monkeypatch):
    run, root, nbdir = finished_run(tmp_path)
    (run / "metrics" / "undersample.json").unlink()
    listed = pub.notebooks
    monkeypatch.setattr(pub, "notebooks", lambda directory=None: listed(directory or nbdir))
    assert pub.main([str(run), "--check"]) == 1
    out = capsys.readouterr().out
    assert "metrics/undersample.json: missing" in out and "1 problem(s)" in out
    assert pub.main([str(tmp_path / "nowhere")]) == 2
    assert "no such run directory" in capsys.readouterr().err


def test_read_manifest_without_a_published_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="publish a run first"):
        pub.read_manifest(tmp_path)


def test_the_committed_results_are_one_published_run():
    """Every committed notebook ran in the run results/published.json names, and the committed
    metrics are the ones it lists: no notebook or number of another run slipped in."""
    from fer_utils.data import repo_root
    from fer_utils.evaluate import read_metrics
    from fer_study.runner import notebooks

    root = repo_root()
    manifest = pub.read_manifest(root)
    committed = notebooks(root / "notebooks")
    assert sorted(manifest["notebooks"]) == sorted(nb.name for nb in committed)
    pending = [nb.name for nb in committed if nbfiles.PENDING_NOTE in nb.read_text()]
    # between two publications (the lessons changed, the run not yet published again) every notebook says it has
    # no outputs and has none; never a mix of published and unpublished notebooks
    assert pending in ([], [nb.name for nb in committed]), f"published and unpublished notebooks mixed: {pending}"
    for nb in committed:
        notebook = json.loads(nb.read_text())
        papermill = notebook["metadata"].get("papermill", {})
        if pending:
            assert not papermill and not any(c.get("outputs") for c in notebook["cells"]), nb.name
            continue
        assert papermill.get("parameters") == manifest["notebooks"][nb.name]["parameters"], nb.name
        assert papermill.get("exception") is None and papermill.get("end_time"), nb.name
    for name, entry in manifest["experiments"].items():
        metrics = read_metrics(root / "results" / manifest["profile"] / "metrics" / f"{name}.json")
        assert metrics["metrics"]["accuracy"] == entry["accuracy"], name
        assert metrics["provenance"]["profile"] == manifest["profile"], name
    for name, entry in manifest["models"].items():
        assert (root / entry["file"]).stat().st_size == pytest.approx(entry["mib"] * 2**20, rel=0.01), name


def test_the_readme_results_are_computed_from_the_published_metrics():
    from fer_utils.data import repo_root
    from fer_utils.compare import markdown_summary, summary_table

    root = repo_root()
    manifest = pub.read_manifest(root)
    results = root / "results" / manifest["profile"]
    readme = (root / "README.md").read_text()
    block = pub.readme_results_block(readme)
    assert block is not None, "README.md lacks fer-publish's results markers"
    assert block == readme_results(results, manifest)
    assert markdown_summary(summary_table(results)) in readme


def test_readme_results_need_both_markers(tmp_path):
    assert not pub.write_readme_results(tmp_path, "x")  # no README: nothing written, no error
    (tmp_path / "README.md").write_text(f"intro\n{pub.README_BEGIN}\nno end marker\n")
    assert not pub.write_readme_results(tmp_path, "x")
    assert (tmp_path / "README.md").read_text() == f"intro\n{pub.README_BEGIN}\nno end marker\n"
    (tmp_path / "README.md").write_text(f"{pub.README_END}\nintro\n{pub.README_BEGIN}\nold\n{pub.README_END}\nend\n")
    assert pub.write_readme_results(tmp_path, "new\nlines")
    assert (tmp_path / "README.md").read_text() == (f"{pub.README_END}\nintro\n{pub.README_BEGIN}\nnew\nlines\n"
                                                    f"{pub.README_END}\nend\n")
    assert pub.readme_results_block((tmp_path / "README.md").read_text()) == "new\nlines"


def test_same_model_ignores_when_a_model_was_saved(tmp_path):
    import time

    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.save(tmp_path / "a.keras")
    time.sleep(1.1)  # metadata.json and the zip entries record the saving time
    model.save(tmp_path / "b.keras")
    assert (tmp_path / "a.keras").read_bytes() != (tmp_path / "b.keras").read_bytes()
    assert pub.same_model(tmp_path / "a.keras", tmp_path / "b.keras")
    model.layers[0].kernel.assign(model.layers[0].kernel + 1.0)
    model.save(tmp_path / "c.keras")
    assert not pub.same_model(tmp_path / "a.keras", tmp_path / "c.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    assert not pub.same_model(tmp_path / "a.keras", tmp_path / "junk.keras")
    assert not pub.same_model(tmp_path / "a.keras", tmp_path / "missing.keras")


def test_the_findings_scaling_table_is_computed_from_the_benchmark():
    from fer_utils.compare import scaling_markdown
    from fer_utils.data import repo_root

    path = repo_root() / "benchmarks" / "results" / "input_scaling_cpu.json"
    assert scaling_markdown(path) in (repo_root() / "docs" / "findings.md").read_text()


def test_the_committed_models_readme_is_generated_from_the_manifest():
    from fer_utils.data import repo_root

    root = repo_root()
    assert (root / "models" / "README.md").read_text() == pub.models_readme(pub.read_manifest(root))


def test_a_published_notebook_keeps_no_injected_cell_and_no_machine_path():
    """What JupyterLab's Run All uses is the notebook's own parameters cell; the run's parameters stay in
    the papermill record, with the data path made relative to the repository."""
    from fer_study.notebooks import without_injected
    from fer_utils.data import repo_root

    nb = {"cells": [{"cell_type": "code", "source": "epochs = 5", "metadata": {"tags": ["parameters"]}},
                    {"cell_type": "code", "source": "epochs = 30", "metadata": {"tags": ["injected-parameters"]}},
                    {"cell_type": "code", "source": "print(epochs)", "metadata": {}}],
          "metadata": {"papermill": {"parameters": {"epochs": 30,
                                                    "data_dir": str(repo_root().parent / "shared" / "fer2013")}}}}
    assert without_injected(nb)
    assert [c["source"] for c in nb["cells"]] == ["epochs = 5", "print(epochs)"]
    assert nb["metadata"]["papermill"]["parameters"] == {"epochs": 30, "data_dir": "../shared/fer2013"}
    assert not without_injected(nb)  # nothing left to drop
