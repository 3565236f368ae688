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
    assert classroom.solution_source(source) == "x = secret(1)"  # dedented


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




def leaks_of(*cells):
    return classroom.answer_leaks(teacher(*cells), "01_x.ipynb")


def code(source):
    return nbformat.v4.new_code_cell(source)


ANSWER = exercise("x = None  # the answer\n### BEGIN SOLUTION\nhelper = 2\nx = helper + 1\n### END SOLUTION")


@pytest.mark.parametrize("later, leak", [
    ("print(x)", "cell 3 reads 'x', which exercise 01.1's answer sets"),  # None in the student copy
    ("print(helper)", "cell 3 reads 'helper'"),  # missing in the student copy
    ("x = 5\nprint(x)", None),  # set again before it is read
    ("for x in range(3):\n    print(x)", None),  # the loop sets it first
    ("print([x for x in range(3)])", None),  # the comprehension's own x
    ("print(list(map(lambda helper: helper, [1])))", None),  # the lambda's own helper
    ("y = x if True else 0", "cell 3 reads 'x'"),
])
def test_answer_leaks_find_reads_of_what_an_answer_set(later, leak):
    found = leaks_of(code("y = 1"), ANSWER, check_cell("print(check('01.1', x, equals=3, why='w'))"), code(later))
    if leak is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0].startswith(f"01_x.ipynb: {leak}")
        assert found[0].endswith("in the student copy it is None or missing there")


def test_answer_leaks_follow_what_the_student_copy_runs():
    setup = code("import numpy as np\nresults = {}")
    # a check reads its own exercise's answer; a helper that only the answer sets is missing at the check
    assert leaks_of(ANSWER, check_cell("print(check('01.1', x, equals=helper + 1, why='w'))")) == [
        "01_x.ipynb: cell 1 reads 'helper', which exercise 01.1's answer sets: in the student copy it is None "
        "or missing there"]
    # the check stops at its first check(...) in the student copy: what it sets after that is missing
    assert leaks_of(ANSWER, check_cell("print(check('01.1', x, equals=3, why='w'))\nz = 1"), code("print(z)"))
    assert not leaks_of(ANSWER, check_cell("z = 1\nprint(check('01.1', x, equals=3, why='w'))"), code("print(z)"))
    # an answer that changes an object the notebook holds, or imports what no earlier cell imported
    changes = exercise("x = None  # a\n### BEGIN SOLUTION\nresults['a'] = 1\nimport pandas as pd\nimport numpy as np"
                       "\nx = 1\n### END SOLUTION")
    found = leaks_of(setup, changes, check_cell(), code("print(results, pd.DataFrame(), np.zeros(1))"))
    assert [f.split(" reads ")[1].split(",")[0] for f in found] == ["'pd'", "'results'"]  # numpy was imported
    # a later exercise's cell as handed out may not read an earlier answer (its solution may)
    second = exercise("y = None  # b\n### BEGIN SOLUTION\ny = x + 1\n### END SOLUTION")
    assert not leaks_of(ANSWER, check_cell(), second, check_cell("print(check('01.2', y, equals=4, why='w'))"))
    reads_earlier = exercise("y = x  # b\n### BEGIN SOLUTION\ny = 1\n### END SOLUTION")
    assert "cell 2 reads 'x'" in leaks_of(ANSWER, check_cell(), reads_earlier, check_cell())[0]
    assert leaks_of(code("print(("))[0].startswith("01_x.ipynb: cell 0 is not Python (")


def test_the_study_notebooks_answers_do_not_leak():
    """No cell after an exercise reads what its answer set: the student copies run without the answers."""
    for path in notebooks():
        assert classroom.answer_leaks(nbformat.read(path, as_version=4), path.name) == [], path.name
    nb = nbformat.read(notebooks()[1], as_version=4)  # 01: exercise 01.1 finds the 8 worst mistakes
    nb.cells.append(code("print(worst[:2])"))
    assert classroom.answer_leaks(nb, "01_baseline_cnn.ipynb") == [
        f"01_baseline_cnn.ipynb: cell {len(nb.cells) - 1} reads 'worst', which exercise 01.1's answer sets: in the "
        "student copy it is None or missing there"]


def test_rehearsal_runs_every_cell_of_the_student_copy_and_of_the_teachers():
    plain = code("print(1)")
    nb = teacher(plain, nbformat.v4.new_markdown_cell("**Exercise 01.1**"), ANSWER, check_cell(), code("print(2)"))
    rehearsal = classroom.rehearsal_notebook(nb, "01_x.ipynb")
    student = classroom.student_notebook(nb, "01_x.ipynb")
    cells = [(c.source, c.metadata.get("tags", [])) for c in rehearsal.cells if c.cell_type == "code"]
    handed_out = [source for source, tags in cells if classroom.HANDED_OUT_TAG in tags]
    assert handed_out == [c.source for c in student.cells if c.cell_type == "code"][1:3]
    assert [source for source, tags in cells if classroom.HANDED_OUT_TAG not in tags] == \
        [c.source for c in nb.cells if c.cell_type == "code"]  # the teacher's code, cell for cell
    assert [tags for _, tags in cells][1:5] == [["exercise", "as-handed-out"],
                                                ["exercise-check", "raises-exception", "as-handed-out"],
                                                ["exercise"], ["exercise-check", "raises-exception"]]


def test_check_reports_answer_leaks(monkeypatch, capsys):
    monkeypatch.setattr(classroom, "answer_leaks",
                        lambda nb, name: [f"{name}: cell 3 reads 'x'"] if name[:2] == "02" else [])
    assert classroom.main(["--check"]) == 1
    assert capsys.readouterr().err == "answer leaks: 02_undersampling.ipynb: cell 3 reads 'x'\n"
