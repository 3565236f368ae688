"""Checking your answer to an exercise.

*The lesson.* An answer you can check teaches more than one you cannot. Each exercise in the notebooks
asks for one or more named values (``answer = None`` until you set it); the cell after it runs
:func:`check`, which says "correct" and why, or what it expected and why, or "Your turn" while the
answer is still ``None``. The checks compare against what the notebook itself measured or against
properties any right answer has (a count that adds up, a shape, a range), so they hold whatever the
size of the data you run on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


class _Said(AssertionError):
    """A check's verdict: Jupyter shows its message alone, not a traceback into this module."""

    def _render_traceback_(self) -> list[str]:  # IPython's hook for how an exception is shown
        return [f"{type(self).__name__}: {self}"]


class YourTurn(_Said):
    """The exercise has no answer yet (its answer is still ``None``)."""


class NotYetRight(_Said):
    """The answer is there but does not pass the check; the message says what was expected and why."""


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}" if value.size > 8 else np.array2string(value, precision=4)
    return repr(value)


def check(label: str, answer: Any, *, why: str, equals: Any = None, close_to: Any = None,
          tolerance: float = 1e-6, between: tuple[float, float] | None = None, one_of: Any = None,
          shape: tuple[int, ...] | None = None, subset_of: Any = None, through: Any = None,
          order: Sequence[str] | None = None, starts_with: str | None = None,
          satisfies: Callable[[Any], bool] | None = None, expected: str = "") -> str:
    """Check the answer to exercise ``label`` ("00.1"); return the line to print when it passes.

    Give one or more conditions: ``equals`` (exact; arrays element-wise), ``close_to`` within
    ``tolerance`` (absolute; a number, or an array compared element-wise), ``between`` (inclusive
    bounds), ``one_of`` (a collection), ``shape`` (of the answer as an array), ``subset_of`` (every
    element of the answer is in this collection), ``starts_with`` (of the answer as text), ``satisfies``
    (a predicate from ``fer_utils``, described by ``expected``). Two options change what is compared:
    ``order`` reads an answer given as a pandas Series in that order of its labels (e.g. ``EMOTIONS``),
    and ``through`` compares ``through[answer]`` instead of the answer (an answer of row indices
    checked by the values at those rows). ``why`` says in one sentence why a right answer must meet
    them; it ends every message but "Your turn".

    Raises :class:`YourTurn` while ``answer`` is None (without ``why``, which may give the answer
    away), :class:`NotYetRight` with what was expected and why when a condition fails.
    """
    if answer is None:
        raise YourTurn(f"Your turn: exercise {label} has no answer yet. Write it in the cell above, run that "
                       "cell, then this one.")
    conditions = [c is not None for c in (equals, close_to, between, one_of, shape, subset_of, starts_with,
                                          satisfies)]
    if not any(conditions):
        raise ValueError(f"exercise {label}: check() needs at least one condition")

    def fail(wanted: str) -> None:
        raise NotYetRight(f"Not yet: exercise {label} expected {wanted}, got {_shown(answer)}. {why}")

    if order is not None and hasattr(answer, "reindex"):
        missing = [name for name in order if name not in answer.index]
        if missing:
            fail(f"a value for each of {list(order)} (missing: {missing})")
        answer = np.asarray(answer.reindex(list(order)), dtype=float)
    if starts_with is not None and not str(answer).startswith(starts_with):
        fail(f"text starting with {starts_with!r}")
    if subset_of is not None:
        allowed = set(np.asarray(subset_of).ravel().tolist())
        if not set(np.asarray(answer).ravel().tolist()) <= allowed:
            fail(f"only elements of the {len(allowed)} allowed ones")
    if through is not None:
        try:
            answer = np.asarray(through)[np.asarray(answer)]
        except (IndexError, TypeError, ValueError):
            fail(f"valid indices into an array of {len(through)}")

    if shape is not None:
        got = np.shape(answer)
        if tuple(got) != tuple(shape):
            raise NotYetRight(f"Not yet: exercise {label} expected shape {tuple(shape)}, got {tuple(got)}. {why}")
    if equals is not None:
        same = (np.array_equal(np.asarray(answer), np.asarray(equals))
                if isinstance(equals, (np.ndarray, list, tuple)) else answer == equals)
        if not same:
            fail(_shown(equals))
    if close_to is not None and np.ndim(close_to) > 0:
        try:
            values = np.asarray(answer, dtype=float)
        except (TypeError, ValueError):
            fail(f"{len(close_to)} numbers close to {_shown(np.asarray(close_to, dtype=float))}")
        target = np.asarray(close_to, dtype=float)
        if values.shape != target.shape or not np.allclose(values, target, rtol=0, atol=tolerance):
            fail(f"{_shown(target)} (each within {tolerance:.2g})")
    elif close_to is not None:
        try:
            value = float(answer)
        except (TypeError, ValueError):
            fail(f"a number close to {close_to:.4g}")
        if not abs(value - close_to) <= tolerance:
            fail(f"{close_to:.4g} (within {tolerance:.2g})")
    if between is not None:
        low, high = between
        try:
            value = float(answer)
        except (TypeError, ValueError):
            fail(f"a number between {low:.4g} and {high:.4g}")
        if not low <= value <= high:
            fail(f"a number between {low:.4g} and {high:.4g}")
    if one_of is not None and answer not in one_of:
        fail(f"one of {sorted(one_of) if isinstance(one_of, (set, frozenset)) else list(one_of)}")
    if satisfies is not None and not satisfies(answer):
        fail(expected or "an answer that passes the check")
    return f"exercise {label}: correct. {why}"


def changed_but_recognisable(originals: np.ndarray, min_correlation: float = 0.5) -> Callable[[Any], bool]:
    """A condition for :func:`check` (its ``satisfies``): augmented copies of ``originals`` (same shape)
    whose pixels stay within 0-255, differ from the originals, and still correlate above
    ``min_correlation`` with their own original face, pixel by pixel."""
    originals = np.asarray(originals, dtype=float)

    def holds(copies: Any) -> bool:
        copies = np.asarray(copies, dtype=float)
        if copies.shape != originals.shape or copies.min() < 0 or copies.max() > 255 or np.allclose(copies, originals):
            return False
        return min(np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(copies, originals)) > min_correlation

    return holds


def faces_with_contrast(images: np.ndarray, n: int = 8, min_std: float = 20.0) -> np.ndarray:
    """The first ``n`` of ``images`` whose pixels spread with a standard deviation of at least ``min_std``
    (grey levels): faces to augment in an exercise, leaving out the near-blank images FER-2013 holds, which
    have no face to keep recognisable. ValueError when fewer than ``n`` qualify."""
    images = np.asarray(images)
    chosen = images[images.reshape(len(images), -1).std(axis=1) >= min_std][:n]
    if len(chosen) < n:
        raise ValueError(f"only {len(chosen)} of {len(images)} images have a pixel spread of at least {min_std}")
    return chosen
