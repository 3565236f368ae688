"""Checkable copies of the committed notebooks, for nbval in CI.

    python -m fer_study.nbcheck OUT_DIR        # then: pytest --nbval-lax OUT_DIR/*.ipynb

The committed notebooks carry the outputs of a full-data run. Re-running one whole in CI would
mean re-training for hours, so for nbval each is copied with only what its stable cells need:
the parameter cells (the run's parameters put back from its papermill record, since a published
notebook does not keep papermill's injected cell), the setup cell that loads the data, and the marked
cells, with their committed sources and outputs unchanged. A cell is marked by a first line
``# NBVAL_CHECK_OUTPUT`` or by nbval's cell tag ``nbval-check-output`` (the tag changes no source, so
it can mark a cell of a notebook whose run has already finished: ``fer-study --skip-finished`` and
``fer-publish`` compare sources only, and publishing keeps the committed notebook's nbval tags).
nbval then re-executes the copy on the real data and compares the marked cells' outputs with the
committed ones, so a change that silently alters the data counts, the resampling, the model's size or
what the helpers compute from a run's results fails CI. A notebook that trains nothing (data
exploration) is copied whole. Notebooks without outputs, or without marked cells, are left out.

The later notebooks read the run's results and models (notebook 06 summarises the metrics, 05 and 07
load a model). A checkout has those only as published (``results/<profile>/``, ``models/``), so the
copies' ``run_dir`` points at ``OUT_DIR/<profile>``, a run directory filled from the published files
(:func:`published_run`): the marked cells then compute from the very metrics, predictions, histories
and models the committed outputs came from.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat

MARK = "# NBVAL_CHECK_OUTPUT"
#: nbval's cell tag with the same meaning as :data:`MARK`.
MARK_TAG = "nbval-check-output"
#: Code in a cell that makes a notebook too slow to re-run whole in CI.
EXPENSIVE = ("train_model(", "load_experiment_model(", "summary_table(", "Predictor(")


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def is_marked(cell) -> bool:
    """Whether nbval compares this code cell's output (:data:`MARK` or :data:`MARK_TAG`)."""
    return cell.cell_type == "code" and (cell.source.lstrip().startswith(MARK) or MARK_TAG in _tags(cell))


def stable_copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    """The copy of ``nb`` that nbval checks, or None when it has nothing to check."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    marked = [c for c in code if is_marked(c)]
    if not marked or not any(c.get("outputs") for c in code):
        return None
    copy = reinjected(nbformat.from_dict(nb))  # a deep copy: the original is not touched
    if not any(word in c.source for c in code for word in EXPENSIVE):
        copy.cells = [c for c in copy.cells if c.cell_type == "code"]
        return quieted(copy)
    keep, setup_seen = [], False
    for cell in copy.cells:
        if cell.cell_type != "code":
            continue
        tags = _tags(cell)
        if "parameters" in tags or "injected-parameters" in tags:
            keep.append(cell)
        elif not setup_seen:  # the first code cell after the parameters loads the data
            keep.append(cell)
            setup_seen = True
        elif is_marked(cell):
            keep.append(cell)
    copy.cells = keep
    return quieted(copy)


def reinjected(copy: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``copy`` with the run's parameters (its papermill record) set again in a cell tagged
    ``injected-parameters`` right after its ``parameters`` cell, when it has none (in place; returned).
    The data path is left out: the copy reads the data the checking machine points at."""
    from .notebooks import papermill_record, parameters_source

    if any("injected-parameters" in _tags(c) for c in copy.cells):
        return copy
    params = {k: v for k, v in papermill_record(copy).get("parameters", {}).items() if k != "data_dir"}
    at = next((i for i, c in enumerate(copy.cells) if "parameters" in _tags(c)), None)
    if params and at is not None:
        cell = nbformat.v4.new_code_cell(parameters_source(params))
        cell.metadata["tags"] = ["injected-parameters"]
        copy.cells.insert(at + 1, cell)
    return copy


def quieted(copy: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``copy`` with a ``pass`` after each code cell whose last line ends in ``;`` (in place; returned).

    A trailing semicolon tells IPython not to display the cell's last value (``save_and_show(...);``
    shows the figure, not the path it returns). Under nbval the semicolon did not hide it in notebook 08's
    Grad-CAM cell (IPython reads it from its input history, which is the likely difference), and the path
    showed up as an output the committed cell never had. After a ``pass`` there is no last value to
    display, with any kernel."""
    for cell in copy.cells:
        if cell.cell_type == "code" and cell.source.rstrip().endswith(";"):
            cell.source = cell.source.rstrip() + "\npass  # nbcheck: the trailing ';' hides the last value"
    return copy


def pointed_at(copy: nbformat.NotebookNode, run_dir: str) -> nbformat.NotebookNode:
    """``copy`` with the ``run_dir`` its run injected replaced by ``run_dir`` (in place; returned)."""
    for cell in copy.cells:
        if "injected-parameters" in _tags(cell):
            cell.source = re.sub(r"(?m)^run_dir = .*$", f"run_dir = {json.dumps(run_dir)}", cell.source)
    return copy


def published_run(root: str | os.PathLike, out_dir: str | os.PathLike) -> Path | None:
    """A run directory ``out_dir/<profile>`` made from the results published in ``root``, or None when
    nothing is published. Replaces what an earlier call left there. It holds ``results/<profile>/`` as
    published (metrics, predictions, the peers' scores, and each training's ``<name>_history.csv`` and
    machine record, a layout the helpers read as they read a run's ``<name>/history.csv``: a published
    history counts as finished) and the shipped models as ``models/<name>.keras``, where the notebooks
    load a run's models from. The files are copied, not linked: a notebook that writes into its run
    (figures, exported models) leaves the published ones alone."""
    from .publish import MANIFEST

    root = Path(root)
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    profile = manifest["profile"]
    run = Path(out_dir) / profile
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(root / "results" / profile, run, ignore=shutil.ignore_patterns("README.md"))
    for name, entry in manifest.get("models", {}).items():
        (run / "models").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / entry["file"], run / "models" / f"{name}.keras")
    return run


def write_copies(notebooks: list[Path], out_dir: str | os.PathLike,
                 run_dir: str | os.PathLike | None = None) -> list[Path]:
    """Write the stable copy of each notebook that has one into ``out_dir``; return their paths.
    With ``run_dir``, the copies read and write that run directory instead of the one their run
    injected (:func:`pointed_at`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.ipynb"):
        old.unlink()
    written = []
    for path in notebooks:
        copy = stable_copy(nbformat.read(path, as_version=4))
        if copy is not None:
            if run_dir is not None:
                pointed_at(copy, str(run_dir))
            target = out_dir / path.name
            nbformat.write(copy, target)
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: fill ``OUT_DIR/<profile>`` from the published results, write the
    copies of ``notebooks/*.ipynb`` pointed at it, and list them."""
    from fer_utils.data import repo_root
    from .notebooks import notebooks

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    args = parser.parse_args(argv)
    run = published_run(repo_root(), args.out_dir)
    run_dir = None
    if run is not None:  # the notebooks resolve a relative run_dir against the repository, not the cwd
        try:
            run_dir = run.resolve().relative_to(repo_root()).as_posix()
        except ValueError:
            run_dir = str(run.resolve())
    for path in write_copies(notebooks(), args.out_dir, run_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
