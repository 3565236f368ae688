"""fer_study.classroom: exercises in every notebook, and the generated student copies."""

from __future__ import annotations

import re
import shutil

import nbformat
import pytest

from fer_utils.data import repo_root
from fer_study import classroom
from fer_study.runner import notebooks


def teacher(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


def exercise(source, tagged=True):
    cell = nbformat.v4.new_code_cell(source)
    if tagged:
        cell.metadata["tags"] = ["exercise"]
    return cell


def check_cell(source="print(check('01.1', x, equals=1, why='w'))"):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["exercise-check"]
    return cell


def test_stub_replaces_only_the_solution():
    source = "x = None  # the answer\n    ### BEGIN SOLUTION\n    x = secret(1)\n    ### END SOLUTION\nprint(x)"
    stub = classroom.stub_source(source, "exercise 01.2")
    assert stub.splitlines() == ["x = None  # the answer", "    # YOUR CODE HERE (exercise 01.2)", "print(x)"]
    assert "secret" not in stub


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\nx = 1", "without ### END SOLUTION"),
    ("x = 1\n### END SOLUTION", "line 2: ### END SOLUTION without"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "line 2: ### BEGIN SOLUTION inside"),
])
def test_malformed_markers_are_errors(source, message):
    with pytest.raises(classroom.ExerciseError, match=message):
        classroom.stub_source(source, "exercise 00.1")


def test_student_notebook_clears_outputs_stubs_answers_and_lets_checks_raise():
    plain = nbformat.v4.new_code_cell("print(1)")
    plain.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    plain.execution_count = 3
    plain.metadata["tags"] = ["nbval-check-output"]  # compares the committed output, which a student copy lacks
    injected = nbformat.v4.new_code_cell('run_dir = "runs/reference"')
    injected.metadata["tags"] = ["injected-parameters"]
    nb = teacher(nbformat.v4.new_markdown_cell("# 01"), plain, injected,
                 exercise("x = None\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION"), check_cell())
    student = classroom.student_notebook(nb, "01_x.ipynb")
    assert not any("runs/reference" in c.source for c in student.cells)  # a run's values are not the defaults
    assert student.cells[0].source.startswith("*Your copy of the lesson `notebooks/01_x.ipynb`: write each exercise")
    code = [c for c in student.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert "tags" not in code[0].metadata
    assert code[1].metadata["tags"] == ["exercise"] and code[1].source == "x = None\n# YOUR CODE HERE (exercise 01.1)"
    assert code[2].metadata["tags"] == ["exercise-check", "raises-exception"]  # "Your turn" does not stop Run All
    assert nb.cells[1].outputs and "x = 1" in nb.cells[3].source  # the teacher's notebook is untouched
    answered = classroom.student_notebook(nb, "01_x.ipynb", solutions=True)
    assert [c.source for c in answered.cells if c.cell_type == "code"][1] == nb.cells[3].source
    with pytest.raises(classroom.ExerciseError, match="cell 0 has solution markers but no 'exercise' tag"):
        classroom.student_notebook(teacher(exercise("### BEGIN SOLUTION\n### END SOLUTION", tagged=False)), "x")
    with pytest.raises(classroom.ExerciseError, match="cell 0 has no solution markers"):
        classroom.student_notebook(teacher(exercise("print(3)")), "x")
    with pytest.raises(classroom.ExerciseError, match=r"exercise x\.1 \(cell 0\) is not followed by its check cell"):
        classroom.student_notebook(teacher(exercise("### BEGIN SOLUTION\n### END SOLUTION"),
                                           nbformat.v4.new_code_cell("print(2)")), "x")


#: Each notebook's exercises (two to four a notebook).
EXERCISES = {"00": 4, "01": 3, "02": 2, "03": 3, "04": 3, "05": 2, "06": 2, "07": 3, "08": 2}


def test_every_notebook_has_two_to_four_exercises_with_questions():
    """Each exercise: a question with a hint; a cell that sets its answers to None (each with a comment)
    before the solution between the markers; then a check cell that prints a check of every answer."""
    for path in notebooks():
        nb = nbformat.read(path, as_version=4)
        cells = classroom.exercise_cells(nb)
        assert len(cells) == EXERCISES[path.stem[:2]] and 2 <= len(cells) <= 4, path.name
        for number, index in enumerate(cells, start=1):
            label = f"{path.stem[:2]}.{number}"
            question = nb.cells[index - 1]
            assert question.cell_type == "markdown", (path.name, index)
            assert question.source.startswith(f"**Exercise {label} "), (path.name, index)
            assert "def " not in nb.cells[index].source  # notebooks define no functions
            assert re.search(r"^\*\*Hint:\*\*", question.source, re.M), label
            before, _, rest = nb.cells[index].source.partition("### BEGIN SOLUTION")
            assert rest and "### END SOLUTION" in rest, label
            names = re.findall(r"^(\w+) = None\s+# \S", before, re.M)
            assert names, f"{label}: the answers are set to None, with a comment, before the solution"
            check = nb.cells[index + 1]
            assert check.cell_type == "code" and "exercise-check" in check.metadata.get("tags", []), label
            for name in names:
                assert re.search(rf'print\(check\("{label}", {name}\b', check.source), f"{label}: {name} is checked"


def test_student_copies_are_up_to_date():
    """CI fails when a teacher notebook changed and student/ was not regenerated."""
    assert classroom.stale_copies() == []


def test_check_reports_stale_copies(tmp_path, capsys):
    dest = tmp_path / "student"
    shutil.copytree(repo_root() / classroom.STUDENT_DIR, dest)
    assert classroom.main(["--check", str(dest)]) == 0
    (dest / "03_oversampling.ipynb").write_text((dest / "03_oversampling.ipynb").read_text() + " ")
    (dest / "05_gradcam.ipynb").unlink()
    (dest / "09_gone.ipynb").write_text("{}")
    assert classroom.main(["--check", str(dest)]) == 1
    err = capsys.readouterr().err
    assert "03_oversampling.ipynb: out of date" in err and "05_gradcam.ipynb: missing" in err
    assert "09_gone.ipynb: no teacher notebook" in err
    assert classroom.main([str(dest)]) == 0  # regenerate
    assert classroom.stale_copies(dest) == [] and not (dest / "09_gone.ipynb").exists()


