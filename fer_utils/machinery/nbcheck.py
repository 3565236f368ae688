"""Checkable copies of the committed notebooks, for nbval in CI.

    python -m fer_utils.machinery.nbcheck OUT_DIR        # then: pytest --nbval-lax OUT_DIR/*.ipynb

The committed notebooks carry the outputs of a full-data run. Re-running one whole in CI would
mean re-training for hours, so for nbval each is copied with only what its stable cells need:
the parameter cells (as the run injected them), the setup cell that loads the data, and the cells
marked ``# NBVAL_CHECK_OUTPUT``, with their committed sources and outputs unchanged. nbval then
re-executes the copy on the real data and compares the marked cells' outputs with the committed
ones, so a change that silently alters the data counts, the resampling or the model's size fails
CI. A notebook that trains nothing (data exploration) is copied whole. Notebooks without outputs,
or without marked cells, are left out.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nbformat

MARK = "# NBVAL_CHECK_OUTPUT"
#: Code in a cell that makes a notebook too slow to re-run whole in CI.
EXPENSIVE = ("train_model(", "load_experiment_model(", "summary_table(", "Predictor(")


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def stable_copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    """The copy of ``nb`` that nbval checks, or None when it has nothing to check."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    marked = [c for c in code if c.source.lstrip().startswith(MARK)]
    if not marked or not any(c.get("outputs") for c in code):
        return None
    copy = nbformat.from_dict(nb)  # a deep copy: the original is not touched
    if not any(word in c.source for c in code for word in EXPENSIVE):
        copy.cells = [c for c in copy.cells if c.cell_type == "code"]
        return copy
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
        elif cell.source.lstrip().startswith(MARK):
            keep.append(cell)
    copy.cells = keep
    return copy


def write_copies(notebooks: list[Path], out_dir: str | os.PathLike) -> list[Path]:
    """Write the stable copy of each notebook that has one into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.ipynb"):
        old.unlink()
    written = []
    for path in notebooks:
        copy = stable_copy(nbformat.read(path, as_version=4))
        if copy is not None:
            target = out_dir / path.name
            nbformat.write(copy, target)
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: write the copies of ``notebooks/*.ipynb`` and list them."""
    from .study import notebooks

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    args = parser.parse_args(argv)
    for path in write_copies(notebooks(), args.out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
