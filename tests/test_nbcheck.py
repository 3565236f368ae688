"""fer_utils.machinery.nbcheck: the copies of the committed notebooks that nbval re-executes in CI."""

from __future__ import annotations

import nbformat

from fer_utils.machinery import nbcheck
from fer_utils.machinery.study import notebooks


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


#: Published notebooks that nbval does not check yet: none of their cells is both cheap and stable without the
#: run's trained models and metrics, which a checkout lacks (a gap noted on issue #14: each needs a marked cell
#: that a clean checkout can re-run, added when the run's notebooks are next executed).
NOT_YET_CHECKED = {"04_augmentation.ipynb", "05_gradcam.ipynb", "06_results_summary.ipynb",
                   "07_predict_new_faces.ipynb"}


def test_committed_notebooks_have_checkable_copies(tmp_path):
    """Every committed notebook with outputs gets a checkable copy, but for the ones listed as not yet
    checked (which must then have outputs and no marked cell); bare sources (no run published for them yet)
    are left out."""
    written = {p.name: p for p in nbcheck.write_copies(notebooks(), tmp_path)}
    executed = {p.name for p in notebooks()
                if any(c.get("outputs") for c in nbformat.read(p, as_version=4).cells if c.cell_type == "code")}
    assert NOT_YET_CHECKED <= executed  # an entry for a notebook without outputs is stale: remove it
    assert set(written) == executed - NOT_YET_CHECKED
    assert {"00_data_exploration.ipynb", "01_baseline_cnn.ipynb", "02_undersampling.ipynb",
            "03_oversampling.ipynb"} <= set(written)
    exploration = nbformat.read(written["00_data_exploration.ipynb"], as_version=4)
    committed = nbformat.read(notebooks()[0], as_version=4)
    assert len(exploration.cells) == sum(c.cell_type == "code" for c in committed.cells)
