"""The teaching kit: student copies of the notebooks, generated from the teacher's.

Every notebook holds exercises: a markdown cell asking the question (with a hint), a code cell
tagged ``exercise`` that sets the answer's names to ``None`` and then gives the reference solution
between nbgrader's markers, and a code cell tagged ``exercise-check`` that checks the answer with
:func:`fer_utils.exercises.check`::

    largest = None  # the emotion with the most Training faces
    ### BEGIN SOLUTION
    ...the teacher's answer, which runs with the notebook...
    ### END SOLUTION

:func:`student_notebook` replaces each solution with ``# YOUR CODE HERE`` (the answer stays ``None``),
tags each check cell ``raises-exception`` (its "Your turn" error then does not stop JupyterLab's
"run all", nbclient or the study's runner; no later cell uses what an exercise computes), and clears
every output. With ``solutions=True`` it keeps the answers (the copy CI runs to see every check pass).
The copies are generated, never edited by hand::

    python -m fer_study.classroom            # write student/
    python -m fer_study.classroom --check    # exit 1 when student/ is out of date
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path

import nbformat

from fer_utils.data import repo_root
from .notebooks import StudyError, notebooks

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
#: The tags of an exercise's code cell and of its check cell, and the tag that lets a cell raise
#: without stopping a run.
EXERCISE_TAG, CHECK_TAG, RAISES_TAG = "exercise", "exercise-check", "raises-exception"
#: Where the student copies go, relative to the repository.
STUDENT_DIR = "student"
GENERATED_NOTE = ("*Student copy, generated from `notebooks/{name}` by `python -m fer_study.classroom`: "
                  "edit the teacher's notebook, not this one. Each exercise's check cell says \"Your turn\" until "
                  "you answer it, and \"correct\" once you have; the rest of the notebook runs without your "
                  "answers.*")


class ExerciseError(ValueError):
    """A notebook's solution markers are malformed."""


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def exercise_cells(nb) -> list[int]:
    """Indices of the code cells tagged ``exercise``."""
    return [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and EXERCISE_TAG in _tags(cell)]


def check_cells(nb) -> list[int]:
    """Indices of the code cells tagged ``exercise-check``."""
    return [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and CHECK_TAG in _tags(cell)]


def stub_source(source: str, label: str) -> str:
    """``source`` with every solution region replaced by ``# YOUR CODE HERE``.

    Lines outside the markers are kept (the answer's names set to ``None``, a start the exercise
    gives). Raises :class:`ExerciseError` for a marker without its partner or nested markers.
    """
    out: list[str] = []
    inside = False
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ExerciseError(f"{label}: line {number}: {BEGIN} inside a solution")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}# YOUR CODE HERE ({label})")
        elif stripped == END:
            if not inside:
                raise ExerciseError(f"{label}: line {number}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ExerciseError(f"{label}: {BEGIN} without {END}")
    return "\n".join(out)


def student_notebook(nb, name: str, solutions: bool = False):
    """The student copy of teacher notebook ``nb`` (named ``name`` for messages): solutions stubbed
    (kept with ``solutions=True``), check cells tagged ``raises-exception``, outputs and execution
    records cleared. Every code cell tagged ``exercise`` must hold a solution, and no other cell may;
    the next code cell after it must be its check (tagged ``exercise-check``)."""
    student = copy.deepcopy(nb)
    student.metadata.pop("papermill", None)
    # the values papermill injected into an executed notebook are a run's, not the student's defaults
    student.cells = [c for c in student.cells if "injected-parameters" not in _tags(c)]
    number = 0
    for index, cell in enumerate(student.cells):
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if "tags" in cell.metadata:  # nbval's marks check the committed outputs, which a student copy has not
            cell.metadata["tags"] = [t for t in cell.metadata["tags"] if not t.startswith("nbval-")]
        if "tags" in cell.metadata and not cell.metadata["tags"]:
            del cell.metadata["tags"]
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        has_solution = BEGIN in cell.source or END in cell.source
        tagged = EXERCISE_TAG in _tags(cell)
        if has_solution != tagged:
            problem = "has solution markers but no 'exercise' tag" if has_solution else "has no solution markers"
            raise ExerciseError(f"{name}: cell {index} {problem}")
        if tagged:
            number += 1
            label = f"exercise {Path(name).stem[:2]}.{number}"
            following = [c for c in student.cells[index + 1:] if c.cell_type == "code"][:1]
            if not following or CHECK_TAG not in _tags(following[0]):
                raise ExerciseError(f"{name}: {label} (cell {index}) is not followed by its check cell "
                                    f"(a code cell tagged '{CHECK_TAG}')")
            stubbed = stub_source(cell.source, label)
            if not solutions:
                cell.source = stubbed
        if CHECK_TAG in _tags(cell) and RAISES_TAG not in _tags(cell):
            cell.metadata["tags"] = _tags(cell) + [RAISES_TAG]
    student.cells.insert(0, nbformat.v4.new_markdown_cell(GENERATED_NOTE.format(name=name)))
    student.cells[0].pop("id", None)
    return student


def _teacher_notebooks(folder: Path) -> list[Path]:
    """The numbered notebooks in ``folder`` (none for an empty or missing student folder)."""
    try:
        return notebooks(folder)
    except StudyError:
        return []


def _render(nb) -> str:
    return nbformat.writes(nb) + "\n"


def student_copies(source_dir: str | os.PathLike | None = None, solutions: bool = False) -> dict[str, str]:
    """``{file name: notebook text}`` of the student copies of every teacher notebook (with the reference
    answers kept, for ``solutions=True``)."""
    source = Path(source_dir) if source_dir else repo_root() / "notebooks"
    copies = {}
    for path in _teacher_notebooks(source):
        nb = nbformat.read(path, as_version=4)
        student = student_notebook(nb, path.name, solutions=solutions)
        for i, cell in enumerate(student.cells):  # stable ids, so regenerating changes nothing
            cell["id"] = f"{path.stem[:2]}-{i:03d}"
        copies[path.name] = _render(student)
    return copies


def write_student_copies(dest_dir: str | os.PathLike | None = None,
                         source_dir: str | os.PathLike | None = None, solutions: bool = False) -> list[Path]:
    """Write the student copies into ``dest_dir`` (default ``student/``); each file is written whole
    (a temporary file renamed into place), and copies of notebooks that no longer exist are removed.
    ``solutions=True`` keeps the reference answers (the copies CI runs to see every check pass)."""
    dest = Path(dest_dir) if dest_dir else repo_root() / STUDENT_DIR
    dest.mkdir(parents=True, exist_ok=True)
    copies = student_copies(source_dir, solutions)
    written = []
    for name, text in copies.items():
        target = dest / name
        tmp = dest / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, target)
        written.append(target)
    for stale in _teacher_notebooks(dest):
        if stale.name not in copies:
            stale.unlink()
    return written


def stale_copies(dest_dir: str | os.PathLike | None = None,
                 source_dir: str | os.PathLike | None = None) -> list[str]:
    """What differs between ``dest_dir`` and freshly generated copies: one line per file."""
    dest = Path(dest_dir) if dest_dir else repo_root() / STUDENT_DIR
    copies = student_copies(source_dir)
    problems = []
    for name, text in copies.items():
        target = dest / name
        if not target.exists():
            problems.append(f"{name}: missing")
        elif target.read_text() != text:
            problems.append(f"{name}: out of date")
    problems += [f"{p.name}: no teacher notebook" for p in _teacher_notebooks(dest) if p.name not in copies]
    return problems


def main(argv: list[str] | None = None) -> int:
    """``python -m fer_study.classroom [--check] [DEST]``."""
    parser = argparse.ArgumentParser(prog="python -m fer_study.classroom",
                                     description="Generate (or check) the student copies of the notebooks.")
    parser.add_argument("dest", nargs="?", default=None, help=f"default: {STUDENT_DIR}/ in the repository")
    parser.add_argument("--check", action="store_true", help="only check that the copies are up to date")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = stale_copies(args.dest)
            for line in problems:
                print(f"student copy {line}", file=sys.stderr)
            if problems:
                print("regenerate them: python -m fer_study.classroom", file=sys.stderr)
            return 1 if problems else 0
        for path in write_student_copies(args.dest):
            print(f"wrote {path.name}")
    except ExerciseError as exc:
        print(f"classroom: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
