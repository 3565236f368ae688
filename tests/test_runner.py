"""fer_study.runner (the papermill runner) and the rules every notebook keeps."""

from __future__ import annotations

import ast
import json
import sys
import time
from pathlib import Path

import nbformat
import pytest

from conftest import SMOKE_TIMES
from fer_study import notebooks as nbfiles
from fer_study import runner as study
from fer_study.classroom import CHECK_TAG
from fer_utils.data import repo_root
from fer_utils.model import BASELINE_PARAMS, build_vgg
from fer_study.runner import StudyError
from fer_utils.experiments import read_peer

NOTEBOOKS = study.notebooks()


def code_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def test_notebooks_are_numbered_in_order():
    names = [p.name for p in NOTEBOOKS]
    assert names == ["00_data_exploration.ipynb", "01_baseline_cnn.ipynb", "02_undersampling.ipynb",
                     "03_oversampling.ipynb", "04_augmentation.ipynb", "05_gradcam.ipynb",
                     "06_results_summary.ipynb", "07_predict_new_faces.ipynb",
                     "08_beyond_the_baseline.ipynb"]
    assert names == sorted(names)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_rules(path):
    """One literal-only parameters cell; no functions or classes defined; kernel python3."""
    params = study.parameter_names(path)
    assert {"profile", "data_dir", "run_dir", "seed", "max_per_class"} <= set(params)
    for source in code_cells(path):
        lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
        tree = ast.parse("\n".join(lines))
        defined = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                              ast.ClassDef, ast.Lambda))]
        assert not defined, f"{path.name} defines logic; move it to fer_utils"
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_run_all_defaults_are_the_lab_profile(path):
    """What JupyterLab's Run All uses is the lab profile: its values in every notebook's parameters cell."""
    import tomllib

    cell = next(c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    values: dict = {}
    exec(cell.source, {}, values)  # literals only
    lab = tomllib.loads((repo_root() / "fer_study" / "profiles.toml").read_text())["lab"]
    assert values["run_dir"] == "runs/lab"
    for name, value in {**lab["common"], **lab.get(path.stem, {})}.items():
        assert values[name] == value, (path.name, name)


def test_profiles_only_set_declared_parameters():
    profiles = study.load_profiles()
    assert {"smoke", "cpu", "reference", "full"} <= set(profiles)
    assert study.DEFAULT_PROFILE == "reference"
    for name in profiles:
        for nb in NOTEBOOKS:
            study.parameters_for(name, nb, {})  # raises on an unknown name


def test_every_profile_sets_its_data_size_for_every_notebook():
    """The notebooks' own defaults are the lab profile's 8 % of the data: a profile that left the data size
    unset would train its full-data epochs on that share without a word."""
    full_data = {"cpu", "reference", "full", "gpu"}
    for name in study.load_profiles():
        for nb in NOTEBOOKS:
            params = study.parameters_for(name, nb, {})
            assert {"fraction", "max_per_class"} <= set(params), (name, nb.name)
            if name in full_data:
                assert params["fraction"] == 1.0 and params["max_per_class"] == 0, (name, nb.name)


def test_unknown_profile_parameter_is_an_error(tmp_path):
    profiles = {"p": {"common": {"seed": 1, "epochz": 3}}}
    with pytest.raises(StudyError, match="sets epochz for 00_data_exploration.ipynb"):
        study.parameters_for("p", NOTEBOOKS[0], {}, profiles)
    with pytest.raises(StudyError, match="unknown profile 'nope'"):
        study.parameters_for("nope", NOTEBOOKS[0], {}, profiles)


def test_unknown_override_is_an_error(tmp_path):
    with pytest.raises(StudyError, match="-p epochz: no notebook"):
        study.plan("smoke", tmp_path, {"epochz": 3})
    steps = study.plan("smoke", tmp_path, {"epochs": 7})
    by_name = {nb.stem: params for nb, _, params in steps}
    assert by_name["01_baseline_cnn"]["epochs"] == 7
    assert "epochs" not in by_name["00_data_exploration"]
    assert by_name["00_data_exploration"]["fraction"] == 0.02


def test_parse_override():
    assert study.parse_override("epochs=3") == ("epochs", 3)
    assert study.parse_override("data_dir=some/where") == ("data_dir", "some/where")
    assert study.parse_override("learning_rate=1e-4") == ("learning_rate", 1e-4)
    with pytest.raises(StudyError, match="name=value"):
        study.parse_override("epochs")


def test_parameters_cell_must_hold_literals(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("epochs = 2 * 3")
    cell.metadata["tags"] = ["parameters"]
    nb.cells.append(cell)
    path = tmp_path / "00_x.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(StudyError, match="epochs is not a literal"):
        study.parameter_names(path)


def test_cli_reports_bad_input_in_one_line(capsys):
    assert study.main(["--profile", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fer-study: unknown profile 'nope'") and "\n" not in err
    assert study.main(["--list"]) == 0
    assert "smoke:" in capsys.readouterr().out


def tiny_study(tmp_path: Path, names: tuple[str, ...], body: str, parameters: str = "") -> tuple[Path, Path]:
    """Notebooks ``names`` (a parameters cell, then ``body``) in ``tmp_path/nbs``, and a profile
    file of one profile ``x``; returns (notebook folder, profile file)."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "x"\nrun_dir = "runs/x"' + parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells += [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder = tmp_path / "nbs"
    folder.mkdir(exist_ok=True)
    for name in names:
        nbformat.write(nb, folder / name)
    profiles = tmp_path / "p.toml"
    profiles.write_text('[x.common]\nprofile = "x"\n')
    return folder, profiles


def test_failing_notebook_stops_the_run_and_names_it(tmp_path, capsys):
    folder, profiles = tiny_study(tmp_path, ("00_fails.ipynb", "01_never.ipynb"), "raise RuntimeError('boom')")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(study, "load_profiles", lambda path=None: study.tomllib.loads(profiles.read_text()))
        with pytest.raises(SystemExit) as exit_info:
            study.run("x", tmp_path / "run", notebook_dir=folder)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "00_fails FAILED" in err and "RuntimeError: boom" in err
    assert "run/notebooks/00_fails.ipynb" in err
    assert not (tmp_path / "run" / "notebooks" / "01_never.ipynb").exists()


def test_skip_finished_runs_only_what_is_new_or_changed(tmp_path, capsys):
    folder, profiles = tiny_study(tmp_path, ("00_a.ipynb", "01_b.ipynb"), "print(n * 2)", "\nn = 1")
    executed = tmp_path / "run" / "notebooks"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(study, "load_profiles", lambda path=None: study.tomllib.loads(profiles.read_text()))
        study.run("x", tmp_path / "run", notebook_dir=folder)
        first = {name: (executed / name).read_bytes() for name in ("00_a.ipynb", "01_b.ipynb")}
        capsys.readouterr()
        study.run("x", tmp_path / "run", notebook_dir=folder, skip_finished=True)
        assert capsys.readouterr().out.count("not run again") == 2
        assert {name: (executed / name).read_bytes() for name in first} == first

        changed = nbformat.read(folder / "01_b.ipynb", as_version=4)
        changed.cells[1].source = "print(n * 3)"  # 01 changed: only 01 runs again
        nbformat.write(changed, folder / "01_b.ipynb")
        study.run("x", tmp_path / "run", notebook_dir=folder, skip_finished=True)
        out = capsys.readouterr().out
        assert "00_a: finished in" in out and "01_b (" in out
        assert (executed / "00_a.ipynb").read_bytes() == first["00_a.ipynb"]
        assert json.loads((executed / "01_b.ipynb").read_text())["cells"][-1]["outputs"][0]["text"] == ["3\n"]

        study.run("x", tmp_path / "run", {"n": 5}, notebook_dir=folder, skip_finished=True)  # new parameters
        assert "not run again" not in capsys.readouterr().out


def test_finished_already_needs_a_clean_finish(tmp_path):
    source = {"cells": [{"cell_type": "code", "source": "x = 1", "metadata": {}}], "metadata": {}}
    (tmp_path / "nb.ipynb").write_text(json.dumps(source))

    def executed(**papermill):
        injected = {"cell_type": "code", "source": "x = 2", "metadata": {"tags": ["injected-parameters"]}}
        meta = {"papermill": {"parameters": {"x": 2}, "end_time": "2026-11-28T10:00:00", "exception": None,
                              **papermill}}
        (tmp_path / "done.ipynb").write_text(json.dumps({"cells": [*source["cells"], injected], "metadata": meta}))
        return study.finished_already(tmp_path / "nb.ipynb", tmp_path / "done.ipynb", {"x": 2})

    assert executed()
    assert not executed(end_time=None)           # interrupted, or still running
    assert not executed(exception=True)          # stopped with an error
    assert not executed(parameters={"x": 3})     # other parameters
    (tmp_path / "done.ipynb").write_text('{"cells": [')  # half-written
    assert not study.finished_already(tmp_path / "nb.ipynb", tmp_path / "done.ipynb", {"x": 2})
    assert not study.finished_already(tmp_path / "nb.ipynb", tmp_path / "missing.ipynb", {"x": 2})


def test_finished_already_survives_publishing_the_run(tmp_path):
    """fer-publish rewrites the source's "No committed outputs yet" note; a run executed before that is
    still the same notebook, and continuing the run must not train it again (it did once, truncating a
    finished training's history before it was stopped). Any other change of a markdown cell counts."""
    pending = (f"# Title\n\n{nbfiles.PENDING_NOTE} Earlier outputs were withdrawn.\n> Run it yourself.\n\n"
               "Read on.")
    code = {"cell_type": "code", "source": "x = 1", "metadata": {}}
    meta = {"papermill": {"parameters": {"x": 2}, "end_time": "2026-11-28T10:00:00", "exception": None}}
    (tmp_path / "done.ipynb").write_text(json.dumps(
        {"cells": [{"cell_type": "markdown", "source": pending, "metadata": {}}, code], "metadata": meta}))

    def source_says(text):
        (tmp_path / "nb.ipynb").write_text(json.dumps(
            {"cells": [{"cell_type": "markdown", "source": text, "metadata": {}}, code], "metadata": {}}))
        return study.finished_already(tmp_path / "nb.ipynb", tmp_path / "done.ipynb", {"x": 2})

    assert source_says(pending)
    assert source_says(f"# Title\n\n{nbfiles.PUBLISHED_NOTE}\n\nRead on.")  # as fer-publish leaves it
    assert not source_says(f"# Title\n\n{nbfiles.PUBLISHED_NOTE}\n\nRead on, and more.")
    assert not source_says("# Another title\n\nRead on.")


#: The notebooks the second backend runs: those whose code takes a backend's own path. 01 trains, saves and
#: reloads the model; 05 takes Grad-CAM's gradient (fer_utils.device.gradient_of_sum). The augmentation
#: layers' compilation under JAX is checked in tests/test_device.py; every other notebook calls only Keras.
SECOND_BACKEND_NOTEBOOKS = ["01", "05"]


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_smoke_profile_runs_the_study_end_to_end(real_data_path, tmp_path, monkeypatch, backend, request, capsys):
    import importlib.util
    import os

    if importlib.util.find_spec(backend) is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI installs the {backend} backend (scripts/test.sh); it is missing")
        pytest.skip(f"Keras backend {backend} not installed (pip install -e '.[{backend}]')")
    monkeypatch.setenv("KERAS_BACKEND", backend)  # the notebooks' kernels inherit it
    only = None if backend == "tensorflow" else SECOND_BACKEND_NOTEBOOKS
    ran = [nb for nb in NOTEBOOKS if only is None or nb.stem[:2] in only]
    started = time.perf_counter()
    if backend == "tensorflow":
        # every notebook alone (in an empty run directory) as a rehearsal copy: the teacher's code and, before
        # each answer, the exercise as the student copy hands it out; this trains every experiment. Then the
        # notebooks that read the others' results run over them all: 06, and 07 on notebook 08's model.
        _every_notebook_alone_as_a_rehearsal(tmp_path / "alone")
        runner_output = capsys.readouterr().out  # the runner's own output: a line per epoch of every training
        executed_dirs = {nb.stem[:2]: tmp_path / "alone" / nb.stem[:2] for nb in ran}
        run_dir = _merged_runs(tmp_path / "alone", tmp_path / "smoke")
        study.run("smoke", run_dir, overrides={"model_name": "beyond", "gradcam_layer": "relu4"}, only=["06", "07"])
    else:
        run_dir = study.run("smoke", tmp_path / "smoke", only=only)
        runner_output = capsys.readouterr().out
        executed_dirs = {nb.stem[:2]: run_dir for nb in ran}
    total = time.perf_counter() - started
    assert "    baseline: epoch 1 of at most " in runner_output
    request.config.stash[SMOKE_TIMES][backend] = {"total": total, "notebooks": {
        nb.stem[:2]: nbformat.read(executed_dirs[nb.stem[:2]] / "notebooks" / nb.name,
                                   as_version=4).metadata["papermill"]["duration"]
        for nb in ran}}
    for nb in ran:
        executed = nbformat.read(executed_dirs[nb.stem[:2]] / "notebooks" / nb.name, as_version=4)
        errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error" and CHECK_TAG not in c.metadata.get("tags", [])]
        assert not errors  # (the checks of the exercises as handed out say "Your turn": checked in the rehearsal)
        first = next(o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
                     if o.get("output_type") == "stream")
        assert first["text"].startswith("data verified: canonical FER-2013, 35,887 of 35,887"), nb.name
        setup = next(c for c in executed.cells if c.cell_type == "code" and c.get("outputs"))
        printed = "".join(o.get("text", "") for o in setup["outputs"] if o.get("output_type") == "stream")
        assert f"Keras backend {backend} on CPU" in printed, nb.name  # the run banner, with the precision
    if backend != "tensorflow":
        # the data set in this process, for the faces the model is moved back with (asked for here, so that the
        # TensorFlow study's notebooks start at once)
        _second_backend_checks(run_dir, backend, request.getfixturevalue("real_data"))
        return
    for line in ("    oversample: epoch 1 of at most ", "    beyond: epoch 1 of at most "):
        assert line in runner_output
    # 2 % of every class and split, rounded (counts from ../shared/fer2013/README.md)
    smoke_counts = {"Training": 574, "PublicTest": 71, "PrivateTest": 73}
    train_sizes = {"baseline": 574, "undersample": 7 * 9, "oversample": 7 * 144, "class_weights": 574,
                   "augment_report": 574, "augment_face": 574, "beyond": 574}
    beyond_params = build_vgg(width=8).count_params()  # notebook 08's headline model, smoke width
    for name, train_images in train_sizes.items():
        payload = json.loads((run_dir / "metrics" / f"{name}.json").read_text())
        m, p = payload["metrics"], payload["provenance"]
        assert p["profile"] == "smoke" and p["seed"] == 42 and p["experiment"] == name
        assert p["data_counts"]["splits"] == smoke_counts
        assert p["data_counts"]["train_images"] == train_images
        assert p["params"] == (BASELINE_PARAMS if name != "beyond" else beyond_params)
        assert p["wall_seconds"] > 0 and p["epochs"] >= 1
        assert m["n"] == 73 and 0.0 <= m["accuracy"] <= 1.0
        lo, hi = m["accuracy_ci95"]
        assert lo <= m["accuracy"] <= hi
        assert sum(map(sum, m["confusion"])) == 73
        assert p["data_counts"]["verification"]["canonical"] is True
        assert p["hardware"]["keras_backend"] == backend
        unseen = m["without_seen_in_training"]  # PrivateTest faces of the sample that Training also holds
        assert unseen["n"] + unseen["left_out"] == 73 and unseen["n"] > 60
        # the baseline's 4.5 M float32 weights (and Adam's two moments) make > 10 MB; 08's smoke width far less
        assert (run_dir / "models" / f"{name}.keras").stat().st_size > (10_000_000 if name != "beyond" else 100_000)
    for fig in ("00_class_distribution", "00_examples_per_class", "00_contrast_by_split",
                "01_training_curves", "01_confusion_normalized", "02_undersample_curves",
                "03_oversample_confusion", "03_per_class_recall", "04_augmented_examples",
                "04_per_class_recall", "05_gradcam_per_emotion", "05_gradcam_class_average",
                "05_gradcam_class_average_by_layer",
                "06_accuracy_vs_report", "06_per_class_recall", "06_training_time", "07_grace_hopper", "07_coffee",
                "08_strong_augmentation", "08_final_curves", "08_accuracy_vs_cost", "08_beyond_confusion",
                "08_gradcam"):
        assert (run_dir / "figures" / f"{fig}.png").exists()
    summary = "".join(o.get("text", "") for c in nbformat.read(run_dir / "notebooks" / "06_results_summary.ipynb",
                                                             as_version=4).cells
                      if c.cell_type == "code" for o in c.get("outputs", []))
    assert ("experiments with results in this run: baseline, undersample, oversample, class_weights, "
            "augment_report, augment_face, beyond\n") in summary  # 06 ran after 08
    assert "report 0.65" in summary  # the baseline's gap to the report is computed
    # what the run cost, from every training's history (08's steps and 02's exercise included)
    assert "Notebooks 01-04 trained 6 models in " in summary and "Notebook 08 trained 5 models in " in summary
    # scripts/setup.sh installs the fer package: 06 scores it and keeps its metrics for the README
    peer = read_peer(run_dir)
    assert (run_dir / "metrics" / "peers" / "fer_package.json").exists()
    assert peer["n"] == 73 and peer["peer"]["params"] == 58_423 and "fer package" in summary
    assert (run_dir / "shipped" / "beyond.keras").exists()  # notebook 08 ships its model
    beyond = json.loads((run_dir / "metrics" / "beyond.json").read_text())["provenance"]
    assert beyond["test_time_augmentation"].startswith("ten-crop") and beyond["label_smoothing"] == 0.1
    beyond_run = nbformat.read(executed_dirs["08"] / "notebooks" / "08_beyond_the_baseline.ipynb", as_version=4)
    steps = "".join(o.get("text", "") for c in beyond_run.cells if c.cell_type == "code" for o in c.get("outputs", []))
    for step in ("0 report's CNN: ", "1 VGG-style network: ", "5 + ten-crop at test time: ", "7 ensemble of 3: "):
        assert step in steps  # every step of the table is scored
    executed_notebooks = [*(tmp_path / "alone").glob("*/notebooks/*.ipynb"), *(run_dir / "notebooks").glob("*.ipynb")]
    assert len(executed_notebooks) == len(NOTEBOOKS) + 2  # every rehearsal, then 06 and 07 over them all
    for executed in executed_notebooks:
        text = executed.read_text()  # no machine paths in outputs or metadata
        assert str(repo_root()) not in text and str(Path.home()) + "/" not in text, executed
    _notebook_07_reads_the_headline_model(run_dir)


def _second_backend_checks(run_dir: Path, backend: str, data) -> None:
    """On the second backend: the baseline trained, saved and reported as on TensorFlow, and Grad-CAM drew
    its maps from that model. The saved model moves back: loaded on this process's backend (TensorFlow in
    CI), it answers the smoke sample's PrivateTest faces as the second backend recorded (every class but
    near-ties, probabilities within 1e-3, where that backend computed in float32); tests/test_device.py moves
    the shipped model the other way."""
    import numpy as np

    from fer_utils.experiments import load_experiment_model

    payload = json.loads((run_dir / "metrics" / "baseline.json").read_text())
    m, p = payload["metrics"], payload["provenance"]
    assert p["hardware"]["keras_backend"] == backend and p["params"] == BASELINE_PARAMS
    assert p["data_counts"]["splits"] == {"Training": 574, "PublicTest": 71, "PrivateTest": 73}
    assert m["n"] == 73 and sum(map(sum, m["confusion"])) == 73
    for fig in ("01_training_curves", "05_gradcam_per_emotion", "05_gradcam_class_average",
                "05_gradcam_class_average_by_layer"):
        assert (run_dir / "figures" / f"{fig}.png").exists(), fig
    recorded = np.load(run_dir / "predictions" / "baseline.npz")
    row = {face: i for i, face in enumerate(data.ids)}
    faces = data.images[[row[face] for face in recorded["ids"]]]
    here = load_experiment_model(run_dir, "baseline").predict(faces, batch_size=256, verbose=0)  # float32
    top_two = np.sort(recorded["probs"], axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > 1e-4  # a near-tie may go either way in another rounding
    assert len(here) == 73 and clear.sum() > 60
    if p["precision"] == "float32":  # as on a CPU: the same computation, rounded otherwise
        assert (here.argmax(1) == recorded["probs"].argmax(1))[clear].all()
        np.testing.assert_allclose(here, recorded["probs"], atol=1e-3)
    else:  # trained in mixed precision (a GPU): its float32 copy settles some faces otherwise
        assert np.mean(here.argmax(1) == recorded["probs"].argmax(1)) >= 0.9


def _notebook_07_reads_the_headline_model(run_dir: Path) -> None:
    """Notebook 07 ran on notebook 08's model (its ``model_name``), with Grad-CAM at one of its ReLU
    outputs: its calibration, its answers on the photos and its maps, from that model."""
    executed = nbformat.read(run_dir / "notebooks" / "07_predict_new_faces.ipynb", as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    printed = "".join(o.get("text", "") for o in outputs)
    assert "the beyond model's probabilities" in printed
    assert "Grace Hopper (matplotlib): face at " in printed
    assert executed.metadata["papermill"]["parameters"]["gradcam_layer"] == "relu4"


def _run_alone(job: tuple[str, Path, Path]) -> str:
    """Run notebook ``number`` of ``notebook_dir`` alone into ``run_dir`` at the smoke profile (in a worker
    process); returns what the runner printed."""
    import contextlib
    import io

    number, run_dir, notebook_dir = job
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            study.run("smoke", run_dir, notebook_dir=notebook_dir, only=[number])
    except SystemExit:  # the runner's way of saying a notebook failed (it printed which cell to stderr)
        raise AssertionError(f"notebook {number} failed when run alone: see {run_dir / 'notebooks'}") from None
    return printed.getvalue()


def _every_notebook_alone_as_a_rehearsal(root: Path) -> None:
    """Each notebook run alone in an empty run directory (``root/<number>``) at the smoke profile's size, no
    earlier notebook run first, as its rehearsal copy (fer_study.classroom.rehearsal_notebook): the teacher's
    code, cell for cell, and the student copy's, each exercise as handed out just before its answer. No
    cell fails, except each check of an empty answer, which says "Your turn" in one line; every check of
    an answer says "correct". The notebooks that need a long training or another notebook's results read
    the shipped models and the published records."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from fer_study.classroom import EXERCISE_TAG, HANDED_OUT_TAG, STUDENT_DIR, rehearsal_notebook

    rehearsals = root / "rehearsal"
    rehearsals.mkdir(parents=True)
    for nb in NOTEBOOKS:
        rehearsal = rehearsal_notebook(nbformat.read(nb, as_version=4), nb.name)
        cells = [c for c in rehearsal.cells if c.cell_type == "code"]
        # what runs is the teacher's code and the student copy's (as handed out in student/), cell for cell
        assert [c.source for c in cells if HANDED_OUT_TAG not in c.metadata.get("tags", [])] == _code_of(nb)
        handed_out = [c.source for c in cells if HANDED_OUT_TAG in c.metadata.get("tags", [])
                      or not {EXERCISE_TAG, CHECK_TAG} & set(c.metadata.get("tags", []))]
        assert handed_out == _code_of(repo_root() / STUDENT_DIR / nb.name), nb.name
        nbformat.write(rehearsal, rehearsals / nb.name)
    # two at a time, each in its own process and run directory: independent runs, so nothing changes but the time
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        printed = list(pool.map(_run_alone, [(nb.stem[:2], root / nb.stem[:2], rehearsals) for nb in NOTEBOOKS]))
    sys.stdout.write("".join(printed))  # the runners' own lines, for the caller's checks
    for nb in NOTEBOOKS:
        executed = nbformat.read(root / nb.stem[:2] / "notebooks" / nb.name, as_version=4)
        assert not any("papermill-error-cell-tag" in c.metadata.get("tags", []) for c in executed.cells)
        empty_checks = answer_checks = 0
        for cell in executed.cells:
            if cell.cell_type != "code":
                continue
            tags = cell.metadata.get("tags", [])
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if CHECK_TAG in tags and HANDED_OUT_TAG in tags:  # the check of an exercise as handed out
                empty_checks += 1
                assert errors and errors[0]["ename"] == "YourTurn", (nb.name, cell.source[:80])
                assert errors[0]["evalue"].startswith("Your turn: exercise"), nb.name
                assert errors[0]["traceback"] == [f"YourTurn: {errors[0]['evalue']}"], nb.name  # one line
                continue
            assert not errors, (nb.name, cell.source[:80])
            if CHECK_TAG in tags:
                printed = "".join(o.get("text", "") for o in cell.get("outputs", []))
                lines = [line for line in printed.splitlines() if line.startswith("exercise ")]
                assert lines and all(": correct." in line for line in lines), (nb.name, printed)
                answer_checks += 1
        assert answer_checks == empty_checks >= 2, nb.name


def _code_of(path: Path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def _merged_runs(alone: Path, merged: Path) -> Path:
    """One run directory holding what the notebooks run alone trained and recorded (not their executed
    notebooks), so that the notebooks, run in order over it, find every training finished. The
    records a notebook wrote for the shipped baseline it compared against (provenance ``source``) are
    left out: notebook 01's own baseline stands in the merged run."""
    import shutil

    for folder in sorted(p for p in alone.iterdir() if p.is_dir() and p.name.isdigit()):
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if path.is_dir() or rel.parts[0] == "notebooks" or (merged / rel).exists():
                continue
            if rel.parts[0] in ("metrics", "predictions") and len(rel.parts) == 2:
                record = folder / "metrics" / f"{path.stem}.json"
                if record.exists() and "source" in json.loads(record.read_text())["provenance"]:
                    continue
            (merged / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, merged / rel)
    return merged


def test_data_path_travels_as_each_notebooks_data_dir_parameter(tmp_path, monkeypatch, capsys):
    copy = tmp_path / "fer2013.csv"
    copy.write_text("emotion,pixels,Usage\n")
    steps = study.plan("smoke", tmp_path / "run", {}, data=copy)
    with_data = {nb.stem[:2]: params.get("data_dir") for nb, _, params in steps}
    declared = {nb.stem[:2] for nb, _, _ in steps if "data_dir" in study.parameter_names(nb)}
    assert declared and {n: with_data[n] for n in declared} == {n: str(copy) for n in declared}
    assert all("data_dir" not in params for nb, _, params in study.plan("smoke", tmp_path / "run", {}))
    seen = {}
    monkeypatch.setattr(study, "plan", lambda *a, **k: seen.setdefault("data", a[5] if len(a) > 5 else k.get("data")) and [])
    monkeypatch.setattr(study, "in_reading_order", lambda steps: steps)
    with pytest.raises(StudyError, match=r"--data .*nowhere: no such file or folder"):
        study.run("smoke", tmp_path / "run", data=tmp_path / "nowhere")
    monkeypatch.chdir(tmp_path)  # a relative path means relative to where fer-study was called
    study.run("smoke", tmp_path / "run", data="fer2013.csv")
    assert seen["data"] == copy.resolve()


def test_cache_and_verification_mode_reach_the_kernels(monkeypatch, tmp_path):
    import os

    from fer_utils.data import CACHE_ENV
    from fer_utils.verify import VERIFY_ENV

    seen = {}
    monkeypatch.setenv(VERIFY_ENV, "warn")  # restored after the test, whatever main sets
    monkeypatch.setenv(CACHE_ENV, "elsewhere")
    monkeypatch.setattr(study, "run", lambda *a, **k: seen.update(
        verify=os.environ.get(VERIFY_ENV), cache=os.environ.get(CACHE_ENV), data=k.get("data")))
    assert study.main(["--profile", "smoke", "--verify", "off", "--cache", str(tmp_path / "c"), "--data", "x.csv"]) == 0
    assert seen == {"verify": "off", "cache": str(tmp_path / "c"), "data": "x.csv"}


def test_strict_data_flag_reaches_the_kernels(monkeypatch):
    import os

    from fer_utils.verify import VERIFY_ENV

    seen = {}
    monkeypatch.setenv(VERIFY_ENV, "warn")  # restored after the test, whatever main sets
    monkeypatch.setattr(study, "run", lambda *a, **k: seen.setdefault("env", os.environ.get(VERIFY_ENV)))
    assert study.main(["--profile", "smoke", "--strict-data"]) == 0
    assert seen["env"] == "strict"


def test_backend_option_sets_the_kernels_backend_and_run_dir(monkeypatch, capsys):
    import importlib.util
    import os

    import keras

    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())  # restored after the test
    seen = {}
    monkeypatch.setattr(study, "run", lambda profile, run_dir, *a, **k: seen.update(
        run_dir=run_dir, env=os.environ["KERAS_BACKEND"]))
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert study.main(["--profile", "smoke"]) == 0
    assert seen == {"run_dir": "runs/smoke", "env": "tensorflow"}
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "jax" else real_find_spec(name, *a))
    assert study.main(["--profile", "smoke", "--backend", "jax"]) == 0
    assert seen == {"run_dir": "runs/smoke-jax", "env": "jax"}  # never mixed with TensorFlow's models
    assert study.main(["--profile", "smoke", "--backend", "jax", "--run-dir", "runs/x"]) == 0
    assert seen["run_dir"] == "runs/x"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert study.main(["--profile", "smoke", "--backend", "torch"]) == 2
    assert "the Keras backend 'torch' is not installed: pip install -e '.[torch]'" in capsys.readouterr().err
    monkeypatch.setenv("KERAS_BACKEND", "mxnet")
    assert study.main(["--profile", "smoke"]) == 2
    assert "unknown Keras backend 'mxnet'" in capsys.readouterr().err


def test_prerequisites_follow_reads_and_wait_for_unlisted_notebooks():
    steps = [(Path(f"{name}.ipynb"), Path("out"), {}) for name in
             ("00_data", "01_base", "03_over", "04_aug", "06_sum", "09_new")]
    needs = study.prerequisites(steps)
    assert needs["00_data"] == set() and needs["01_base"] == set()
    assert needs["03_over"] == {"01_base"}            # 02 is not in this run: not waited for
    assert needs["04_aug"] == {"01_base"}
    assert needs["06_sum"] == {"01_base", "03_over", "04_aug"}
    assert needs["09_new"] == {"00_data", "01_base", "03_over", "04_aug", "06_sum"}  # unlisted: all before


def test_notebooks_run_after_what_they_read_the_summary_last():
    names = ("00_data", "01_base", "02_under", "03_over", "04_aug", "05_cam", "06_sum", "07_predict", "08_beyond")
    steps = [(Path(f"{name}.ipynb"), Path("out"), {}) for name in names]
    order = [nb.stem[:2] for nb, _, _ in study.in_reading_order(steps)]
    assert order == ["00", "01", "02", "03", "04", "05", "07", "08", "06"]
    assert study.prerequisites(study.in_reading_order(steps))["06_sum"] == {"01_base", "02_under", "03_over",
                                                                               "04_aug", "08_beyond"}
    only_some = [s for s in steps if s[0].stem[:2] in ("01", "06")]  # --only 01,06: 08 is not waited for
    assert [nb.stem[:2] for nb, _, _ in study.in_reading_order(only_some)] == ["01", "06"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(study.READS, "01", ("06",))
        with pytest.raises(study.StudyError, match="no order to run these notebooks in: 01_base, 06_sum"):
            study.in_reading_order(only_some)


def test_the_real_study_plans_the_summary_after_notebook_08(tmp_path):
    stems = [nb.stem[:2] for nb, _, _ in study.plan("smoke", tmp_path, {})]
    assert stems.index("06") == len(stems) - 1 and stems.index("08") < stems.index("06")
    assert stems[:6] == ["00", "01", "02", "03", "04", "05"]


def timed_study(tmp_path: Path, names: tuple[str, ...], seconds: float, failing: str = "") -> tuple[Path, Path]:
    """Notebooks that each write ``<stem>.times`` (start and end) next to themselves after sleeping."""
    for name in names:
        stem = name.removesuffix(".ipynb")
        body = (f"import time, pathlib\nt0 = time.time()\ntime.sleep({seconds})\n"
                + ("raise RuntimeError('boom')\n" if stem == failing else "")
                + f"pathlib.Path('{stem}.times').write_text(f'{{t0}} {{time.time()}}')")
        folder, profiles = tiny_study(tmp_path, (name,), body)
    return folder, profiles


def test_jobs_run_independent_notebooks_together_and_wait_for_what_they_read(tmp_path, capsys):
    names = ("00_a.ipynb", "01_b.ipynb", "02_c.ipynb", "03_d.ipynb", "04_e.ipynb")
    folder, profiles = timed_study(tmp_path, names, 6)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(study, "load_profiles", lambda path=None: study.tomllib.loads(profiles.read_text()))
        study.run("x", tmp_path / "run", notebook_dir=folder, jobs=3)
    times = {n[:4]: [float(t) for t in (folder / f"{n[:-6]}.times").read_text().split()] for n in names}
    first = [times[k] for k in ("00_a", "01_b", "02_c")]
    assert max(t[0] for t in first) < min(t[1] for t in first)     # 00, 01 and 02 ran at the same time
    assert times["03_d"][0] >= max(times["01_b"][1], times["02_c"][1])  # 03 reads 01 and 02
    assert times["04_e"][0] >= times["01_b"][1]                     # 04 reads 01
    out = capsys.readouterr().out
    assert "up to 3 at once" in out and "5 notebook(s) run in" in out
    assert all((tmp_path / "run" / "notebooks" / n).exists() for n in names)


def test_jobs_stop_starting_notebooks_after_a_failure(tmp_path, capsys):
    names = ("00_a.ipynb", "01_b.ipynb", "03_d.ipynb")
    folder, profiles = timed_study(tmp_path, names, 0, failing="01_b")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(study, "load_profiles", lambda path=None: study.tomllib.loads(profiles.read_text()))
        with pytest.raises(SystemExit) as exit_info:
            study.run("x", tmp_path / "run", notebook_dir=folder, jobs=2)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "01_b FAILED" in err and "RuntimeError: boom" in err
    assert (folder / "00_a.times").exists()
    assert not (tmp_path / "run" / "notebooks" / "03_d.ipynb").exists()
    with pytest.raises(study.StudyError, match="at least 1"):
        study.run("x", tmp_path / "run", notebook_dir=folder, jobs=0)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_dead_kernel_is_one_line_not_a_traceback(tmp_path, capsys, jobs):
    folder, profiles = tiny_study(tmp_path, ("00_dies.ipynb",), "import os\nos._exit(3)")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(study, "load_profiles", lambda path=None: study.tomllib.loads(profiles.read_text()))
        with pytest.raises(SystemExit) as exit_info:
            study.run("x", tmp_path / "run", notebook_dir=folder, jobs=jobs)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "00_dies FAILED in DeadKernelError" in err and "Traceback" not in err
