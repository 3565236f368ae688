"""fer_utils.exercises.check: the messages a student reads."""

from __future__ import annotations

import numpy as np
import pytest

from fer_utils.exercises import NotYetRight, YourTurn, check


def test_an_unanswered_exercise_says_your_turn_without_giving_the_answer_away():
    with pytest.raises(YourTurn, match=r"^Your turn: exercise 00\.1 has no answer yet") as caught:
        check("00.1", None, equals="happy", why="happy has the most Training faces")
    assert "happy" not in str(caught.value)
    assert isinstance(caught.value, AssertionError)  # a plain assert-style failure in the notebook
    # Jupyter (IPython) shows the message alone, not a traceback into fer_utils
    assert caught.value._render_traceback_() == [f"YourTurn: {caught.value}"]


def test_a_right_answer_passes_and_says_why():
    assert check("00.1", "happy", equals="happy", why="it has the most faces.") == \
        "exercise 00.1: correct. it has the most faces."
    assert check("03.1", 1.0004, close_to=1.0, tolerance=1e-3, why="w").startswith("exercise 03.1: correct")
    assert check("04.2", np.zeros((8, 48, 48, 1)), shape=(8, 48, 48, 1), between=None, why="w")
    assert check("01.1", [0, 1], equals=[0, 1], why="w")
    assert check("06.1", "disgust", one_of={"disgust", "fear"}, why="w")


@pytest.mark.parametrize("answer, conditions, expected", [
    ("sad", {"equals": "happy"}, "expected 'happy', got 'sad'"),
    (0.5, {"close_to": 0.25, "tolerance": 0.01}, "expected 0.25 (within 0.01), got 0.5"),
    ("x", {"close_to": 0.25}, "expected a number close to 0.25, got 'x'"),
    (1.5, {"between": (0.0, 1.0)}, "expected a number between 0 and 1, got 1.5"),
    (np.zeros((2, 3)), {"shape": (8, 48, 48, 1)}, "expected shape (8, 48, 48, 1), got (2, 3)"),
    (np.array([1, 2]), {"equals": np.array([1, 3])}, "expected [1 3], got [1 2]"),
    (3, {"satisfies": lambda v: v % 2 == 0, "expected": "an even number"}, "expected an even number, got 3"),
    ("joy", {"one_of": ["happy", "sad"]}, "expected one of ['happy', 'sad'], got 'joy'"),
])
def test_a_wrong_answer_says_what_was_expected_and_why(answer, conditions, expected):
    with pytest.raises(NotYetRight) as caught:
        check("02.1", answer, why="Because.", **conditions)
    assert str(caught.value) == f"Not yet: exercise 02.1 {expected}. Because."


def test_a_check_needs_a_condition():
    with pytest.raises(ValueError, match="needs at least one condition"):
        check("00.1", 3, why="w")


def test_answers_in_other_forms_are_read_as_the_check_says():
    import pandas as pd

    shares = pd.Series({"sad": 0.2, "angry": 0.1})
    assert check("00.2", shares, order=["angry", "sad"], close_to=[0.1, 0.2], why="w")
    with pytest.raises(NotYetRight, match=r"expected a value for each of \['angry', 'sad', 'fear'\] \(missing: \['fear'\]\)"):
        check("00.2", shares, order=["angry", "sad", "fear"], close_to=[0.1, 0.2, 0.0], why="w")
    with pytest.raises(NotYetRight, match=r"expected \[0\.1 0\.3\] \(each within 1e-06\)"):
        check("00.2", shares, order=["angry", "sad"], close_to=[0.1, 0.3], why="w")
    std = np.array([5.0, 1.0, 3.0, 2.0])
    assert check("00.3", [1, 3], subset_of=[1, 2, 3], through=std, close_to=[1.0, 2.0], why="w")
    with pytest.raises(NotYetRight, match="expected only elements of the 3 allowed ones"):
        check("00.3", [0, 1], subset_of=[1, 2, 3], through=std, close_to=[5.0, 1.0], why="w")
    with pytest.raises(NotYetRight, match="expected valid indices into an array of 4"):
        check("00.3", [9], through=std, close_to=[1.0], why="w")
    assert check("00.4", "Sanity check FAILED: x", starts_with="Sanity check FAILED", why="w")
    with pytest.raises(NotYetRight, match="expected text starting with 'Sanity check FAILED'"):
        check("00.4", "Sanity check passed", starts_with="Sanity check FAILED", why="w")


def test_augmented_copies_must_change_but_stay_recognisable():
    from fer_utils.exercises import changed_but_recognisable

    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (3, 48, 48, 1)).astype(float)
    holds = changed_but_recognisable(faces)
    assert holds(np.clip(faces + rng.normal(0, 10, faces.shape), 0, 255))
    assert not holds(faces)  # unchanged
    assert not holds(rng.integers(0, 256, faces.shape))  # other faces
    assert not holds(faces * 2)  # out of range
    assert not holds(faces[:2])  # not one copy per face


def test_faces_with_contrast_leave_out_blank_images():
    from fer_utils.exercises import faces_with_contrast

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 48, 48, 1)).astype("uint8")
    images[0] = 128          # blank: no spread at all
    images[3] = images[3] // 20  # faint: grey levels 0-12, a spread near 4
    chosen = faces_with_contrast(images, n=8)
    assert chosen.shape == (8, 48, 48, 1)
    np.testing.assert_array_equal(chosen, images[[1, 2, 4, 5, 6, 7, 8, 9]])
    with pytest.raises(ValueError, match="only 8 of 10 images have a pixel spread of at least 20"):
        faces_with_contrast(images, n=9)
