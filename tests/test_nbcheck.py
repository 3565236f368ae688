"""fer_study.nbcheck: the copies of the committed notebooks that nbval re-executes in CI."""

from __future__ import annotations

import json

import nbformat

from fer_utils.experiments import training_time
from fer_study import nbcheck
from fer_study.notebooks import PENDING_NOTE
from fer_study.runner import notebooks


def cell(source, tags=(), text=None):
    c = nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)} if tags else {})
    if text is not None:
        c.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    return c


def notebook(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# title"), *cells]
    return nb


def test_training_notebook_keeps_parameters_setup_and_marked_cells():
    nb = notebook(cell("epochs = 5", ["parameters"]), cell("epochs = 30", ["injected-parameters"]),
                  cell("data = load()", text="loaded\n"), cell("r = train_model(m)", text="trained\n"),
                  cell("# NBVAL_CHECK_OUTPUT\nprint(n)", text="4,496,903\n"), cell("plot(r)"))
    copy = nbcheck.stable_copy(nb)
    assert [c.source.splitlines()[0] for c in copy.cells] == ["epochs = 5", "epochs = 30", "data = load()",
                                                               "# NBVAL_CHECK_OUTPUT"]
    assert copy.cells[-1].outputs[0].text == "4,496,903\n"  # the committed output, unchanged
    assert len(nb.cells) == 7  # the original is untouched


def test_cheap_notebook_is_copied_whole_and_empty_ones_are_left_out():
    cheap = notebook(cell("x = 1", ["parameters"]), cell("y = 2", text="a\n"), cell("# NBVAL_CHECK_OUTPUT\nx", text="1"))
    assert len(nbcheck.stable_copy(cheap).cells) == 3  # every code cell, markdown dropped
    assert nbcheck.stable_copy(notebook(cell("# NBVAL_CHECK_OUTPUT\nx"))) is None  # never run: nothing to compare
    assert nbcheck.stable_copy(notebook(cell("x", text="1"))) is None  # nothing marked


def test_committed_notebooks_have_checkable_copies(tmp_path):
    """Every committed notebook with outputs gets a checkable copy; bare sources (no run published for them
    yet) are left out. Notebooks 04-08 are marked by tags (their run was under way or finished when the marks came)."""
    written = {p.name: p for p in nbcheck.write_copies(notebooks(), tmp_path)}
    executed = {p.name for p in notebooks()
                if any(c.get("outputs") for c in nbformat.read(p, as_version=4).cells if c.cell_type == "code")}
    assert set(written) == executed
    if not executed:  # between two publications: no notebook has outputs, and each says so
        assert all(PENDING_NOTE in p.read_text() for p in notebooks())
        return
    assert {"00_data_exploration.ipynb", "01_baseline_cnn.ipynb", "02_undersampling.ipynb", "03_oversampling.ipynb",
            "04_augmentation.ipynb", "05_gradcam.ipynb", "06_results_summary.ipynb",
            "07_predict_new_faces.ipynb", "08_beyond_the_baseline.ipynb"} <= set(written)
    exploration = nbformat.read(written["00_data_exploration.ipynb"], as_version=4)
    committed = nbformat.read(notebooks()[0], as_version=4)
    # notebook 00 whole (its code cells), plus the run's parameters set again after its parameters cell
    assert len(exploration.cells) == sum(c.cell_type == "code" for c in committed.cells) + 1
    assert "injected-parameters" in exploration.cells[1].metadata.get("tags", [])
    for name in ("04_augmentation.ipynb", "05_gradcam.ipynb", "06_results_summary.ipynb", "07_predict_new_faces.ipynb",
                 "08_beyond_the_baseline.ipynb"):
        copy = nbformat.read(written[name], as_version=4)
        marked = [c for c in copy.cells if nbcheck.is_marked(c)]
        assert marked and all(c.outputs for c in marked), name  # each compares committed outputs
        assert not any("train_model(" in c.source for c in copy.cells), name  # and trains nothing


def test_a_tag_marks_a_cell_like_the_comment():
    nb = notebook(cell("epochs = 5", ["parameters"]), cell("data = load()", text="loaded\n"),
                  cell("r = train_model(m)", text="trained\n"),
                  cell("print(table)", [nbcheck.MARK_TAG], text="0.670\n"), cell("print(other)", text="x\n"))
    copy = nbcheck.stable_copy(nb)
    assert [c.source for c in copy.cells] == ["epochs = 5", "data = load()", "print(table)"]
    assert copy.cells[-1].outputs[0].text == "0.670\n"
    assert not nbcheck.is_marked(nbformat.v4.new_markdown_cell("x", metadata={"tags": [nbcheck.MARK_TAG]}))


def test_copies_point_at_the_given_run_dir(tmp_path):
    nb = notebook(cell('profile = "reference"\nrun_dir = "runs/reference"\nseed = 42', ["injected-parameters"]),
                  cell("data = load()", text="loaded\n"), cell("# NBVAL_CHECK_OUTPUT\nprint(run_dir)", text="x\n"))
    nbformat.write(nb, tmp_path / "04_x.ipynb")
    (copy_path,) = nbcheck.write_copies([tmp_path / "04_x.ipynb"], tmp_path / "out", ".nbval/reference")
    injected = nbformat.read(copy_path, as_version=4).cells[0].source
    assert injected == 'profile = "reference"\nrun_dir = ".nbval/reference"\nseed = 42'
    assert 'run_dir = "runs/reference"' in nbformat.read(tmp_path / "04_x.ipynb", as_version=4).cells[1].source


def test_published_run_holds_the_published_results_and_models(tmp_path):
    root = tmp_path / "repo"
    results = root / "results" / "reference"
    for rel, text in {"metrics/baseline.json": "{}", "metrics/peers/fer_package.json": "{}",
                      "predictions/baseline.npz": "npz",
                      "baseline_history.csv": "epoch,epoch_seconds,val_accuracy\n0,100.0,0.5\n",
                      "augment_face_history.csv": "epoch,epoch_seconds,val_accuracy\n0,90.0,0.4\n",
                      "README.md": "about these files"}.items():
        (results / rel).parent.mkdir(parents=True, exist_ok=True)
        (results / rel).write_text(text)
    (root / "models").mkdir()
    (root / "models" / "baseline.keras").write_bytes(b"weights")
    (root / "results" / "published.json").write_text(json.dumps(
        {"profile": "reference", "models": {"baseline": {"file": "models/baseline.keras"}}}))

    run = nbcheck.published_run(root, tmp_path / "out")
    assert run == tmp_path / "out" / "reference"
    files = sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())
    assert files == ["augment_face_history.csv", "baseline_history.csv",
                     "metrics/baseline.json", "metrics/peers/fer_package.json", "models/baseline.keras",
                     "predictions/baseline.npz"]
    times = training_time(run)  # the helpers read the published layout: its histories count as finished
    assert list(times.index) == ["baseline", "augment_face"] and times["finished"].all()
    (run / "figures").mkdir()
    (run / "models" / "baseline.keras").write_bytes(b"changed")  # a notebook writing into its run...
    assert (root / "models" / "baseline.keras").read_bytes() == b"weights"  # ...leaves the published file alone
    assert nbcheck.published_run(root, tmp_path / "out") == run
    assert not (run / "figures").exists()  # a second call starts from the published files again
    assert nbcheck.published_run(tmp_path / "empty", tmp_path / "out2") is None  # nothing published


def test_a_trailing_semicolon_still_hides_the_last_value_in_the_copy():
    """The copy ends such a cell with ``pass``, so no kernel displays the value the ';' hid (the path
    ``save_and_show`` returns showed up in notebook 08's Grad-CAM cell under nbval); other cells are
    left as they are."""
    nb = notebook(cell("epochs = 5", ["parameters"]), cell("data = load()", text="loaded\n"),
                  cell("r = train_model(m)", text="trained\n"),
                  cell('plots.save_and_show(fig, "a.png");  ', [nbcheck.MARK_TAG]),
                  cell("print(table)", [nbcheck.MARK_TAG], text="0.670\n"))
    copy = nbcheck.stable_copy(nb)
    assert copy.cells[-2].source.splitlines() == ['plots.save_and_show(fig, "a.png");',
                                                  "pass  # nbcheck: the trailing ';' hides the last value"]
    assert copy.cells[-1].source == "print(table)"
    assert nb.cells[4].source == 'plots.save_and_show(fig, "a.png");  '  # the original is untouched


def test_a_published_notebook_gets_its_run_parameters_back_from_its_papermill_record(tmp_path):
    """Publishing drops papermill's injected cell; the checkable copy sets the recorded parameters again,
    right after the parameters cell, without the data path (the checking machine's data is read)."""
    nb = notebook(cell('profile = "lab"\nrun_dir = "runs/lab"\nepochs = 20', ["parameters"]),
                  cell("data = load()", text="loaded\n"), cell("r = train_model(m)", text="trained\n"),
                  cell("# NBVAL_CHECK_OUTPUT\nprint(run_dir)", text="x\n"))
    nb.metadata["papermill"] = {"parameters": {"profile": "reference", "run_dir": "runs/reference", "epochs": 30,
                                               "data_dir": "../shared/fer2013"}}
    nbformat.write(nb, tmp_path / "01_x.ipynb")
    (copy_path,) = nbcheck.write_copies([tmp_path / "01_x.ipynb"], tmp_path / "out", ".nbval/reference")
    cells = nbformat.read(copy_path, as_version=4).cells
    assert cells[1].metadata["tags"] == ["injected-parameters"]
    assert sorted(cells[1].source.splitlines()) == ["epochs = 30", "profile = 'reference'", 'run_dir = ".nbval/reference"']
    assert "data_dir" not in cells[1].source
    # a copy that still has its injected cell is not given a second one
    assert len([c for c in nbcheck.stable_copy(nbformat.read(copy_path, as_version=4)).cells
                if "injected-parameters" in c.metadata.get("tags", [])]) == 1
