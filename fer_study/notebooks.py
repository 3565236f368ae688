"""The study's notebooks as files: which there are, their parameters, and what papermill recorded when
one was executed. The runner, its progress lines and publishing read notebooks through these."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

from fer_utils.data import repo_root
from fer_utils.notebook import shown

NOTEBOOK_DIR = "notebooks"


class StudyError(RuntimeError):
    """A problem with the runner's input (profile, parameter, notebook), in one line."""


def notebooks(directory: str | os.PathLike | None = None) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``), in order."""
    directory = Path(directory) if directory else repo_root() / NOTEBOOK_DIR
    found = sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise StudyError(f"{shown(directory)}: no numbered notebooks (NN_name.ipynb)")
    return found


def parameter_names(notebook: str | os.PathLike) -> dict[str, object]:
    """Names and literal values of the notebook's cell tagged ``parameters``.

    Raises StudyError when there is not exactly one such cell or it holds anything
    but ``name = literal`` assignments.
    """
    nb = json.loads(Path(notebook).read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise StudyError(f"{Path(notebook).name}: expected one cell tagged 'parameters', found {len(cells)}")
    source = "".join(cells[0]["source"])
    values: dict[str, object] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            raise StudyError(f"{Path(notebook).name}: the parameters cell may hold only 'name = literal' lines")
        try:
            values[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise StudyError(
                f"{Path(notebook).name}: parameter {node.targets[0].id} is not a literal") from None
    return values


def own_cells(nb: dict) -> list[dict]:
    """Every cell of ``nb`` but the one papermill injects the parameters into: the cells a run's executed
    copy shares with its source notebook."""
    return [c for c in nb.get("cells", []) if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]


def notebook_cells(nb: dict) -> list[tuple[str, str]]:
    """(type, source) of every cell but the one papermill injects the parameters into."""
    return [(c["cell_type"], "".join(c["source"])) for c in own_cells(nb)]


def papermill_record(notebook: dict) -> dict:
    """What papermill wrote into an executed notebook's metadata: ``parameters``, ``duration``,
    ``end_time`` (empty until it finished) and ``exception`` (true when a cell failed)."""
    return notebook.get("metadata", {}).get("papermill", {})


def parameters_source(params: dict[str, object]) -> str:
    """The source of a cell that sets ``params`` (one ``name = value`` line each, as papermill writes
    them into its injected cell)."""
    return "\n".join(f"{name} = {value!r}" for name, value in params.items())


def without_injected(notebook: dict) -> bool:
    """Drop, in place, the cell papermill injected the run's parameters into; return whether one was there.

    A committed notebook without it runs with its own defaults under JupyterLab's Run All, and its
    papermill record (``metadata.papermill.parameters``) keeps what the run used. A data path in that
    record is made relative to the repository, so that no machine's path is committed."""
    cells = notebook.get("cells", [])
    kept = own_cells(notebook)
    record = papermill_record(notebook).get("parameters", {})
    data_dir = record.get("data_dir")
    if isinstance(data_dir, str) and os.path.isabs(data_dir):
        record["data_dir"] = os.path.relpath(data_dir, repo_root())
    if len(kept) == len(cells):
        return False
    notebook["cells"] = kept
    return True


#: How a notebook's first cell says that it has no committed outputs (a blockquote opening with this).
PENDING_NOTE = "> **No committed outputs yet.**"
#: What a published notebook says in its place.
PUBLISHED_NOTE = ("The outputs below come from the run named in the first output lines (its data, profile, "
                  "parameters and the day it was executed), published with `fer-publish`. The parameters cell "
                  "shows the defaults that Run All uses; that run's profile replaced some of them, and the line "
                  "starting `Run:` lists every value it used.")


def published_cells(notebook: dict) -> bool:
    """Replace, in place, a markdown cell's "No committed outputs yet" blockquote (:data:`PENDING_NOTE`
    and the quoted lines after it) with :data:`PUBLISHED_NOTE`; return whether anything changed.

    The executed notebooks of a run carry the note their source had while no run was published, and
    it would be false once their outputs are committed."""
    changed = False
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        lines = source.split("\n")
        if not any(line.startswith(PENDING_NOTE) for line in lines):
            continue
        kept, quoting = [], False
        for line in lines:
            if line.startswith(PENDING_NOTE):
                quoting = True
                kept.append(PUBLISHED_NOTE)
            elif quoting and line.startswith(">"):
                continue
            else:
                quoting = False
                kept.append(line)
        cell["source"] = "\n".join(kept)
        changed = True
    return changed


def published_form(notebook: dict) -> list[tuple[str, str]]:
    """:func:`notebook_cells` of ``notebook`` as publishing commits it (:func:`published_cells`, applied in
    place): what must agree between a run's executed copy and the source notebook, before and after the
    run is published, for the two to be the same notebook."""
    published_cells(notebook)
    return notebook_cells(notebook)


def finished_already(notebook: Path, executed: Path, params: dict[str, object]) -> bool:
    """Whether ``executed`` is a finished, error-free run of ``notebook`` as it is now (same cells)
    with the same parameters, so that running it again would only repeat it."""
    try:
        done = json.loads(executed.read_text())
        source = json.loads(notebook.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False
    meta = papermill_record(done)
    return (bool(meta.get("end_time")) and not meta.get("exception")  # publishing may have rewritten the note
            and meta.get("parameters") == params and published_form(done) == published_form(source))
