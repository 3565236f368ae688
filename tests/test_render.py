"""fer_study.render_check: the committed notebooks, opened in JupyterLab in Chromium."""

from __future__ import annotations

import json

import nbformat
import pytest

from fer_study import render_check


def test_expected_counts_come_from_the_file(tmp_path):
    nb = nbformat.v4.new_notebook()
    figure = nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})
    code = nbformat.v4.new_code_cell("plot()")
    code.outputs = [figure, nbformat.v4.new_output("stream", text="hi\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), code, nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, tmp_path / "n.ipynb")
    assert render_check.expected(tmp_path / "n.ipynb") == {"cells": 3, "markdown": 1, "images": 1}


def test_missing_browser_says_how_to_install(monkeypatch):
    monkeypatch.setattr(render_check.shutil, "which", lambda name: None)
    with pytest.raises(render_check.RenderCheckUnavailable, match="apt-get install chromium"):
        render_check.find_chromium()
    assert render_check.main(["--out", "/nonexistent/x"]) == 2


@pytest.mark.slow
def test_every_committed_notebook_renders_in_chromium(tmp_path):
    try:
        render_check.find_chromium()
        import playwright  # noqa: F401
    except (render_check.RenderCheckUnavailable, ImportError) as missing:
        pytest.skip(f"no browser for the rendering check: {missing}")
    paths = render_check.committed_notebooks()
    assert len(paths) == 18  # nine teacher notebooks, nine student copies
    assert render_check.main(["--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "render_check.json").read_text())
    assert summary["browser"].startswith("Chromium")
    for row in summary["notebooks"]:
        assert row["ok"] and row["rendered_cells"] == row["cells"], row
        assert row["visible_images"] == row["images"], row
    shots = {p.name for p in tmp_path.glob("*.jpg")}
    assert len(shots) == 18 and "notebooks_08_beyond_the_baseline.jpg" in shots
