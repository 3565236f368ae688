"""Class balancing for the Training split only: random under- and oversampling, class weights.

*The lesson.* Rebalancing changes what the model is rewarded for. Undersampling throws away images of
the big classes, oversampling shows the small classes' images many times, class weights make mistakes
on small classes cost more. Each trades some accuracy on the common emotions for recall on the rare
ones; only Training is ever rebalanced, so the test splits keep the real shares.

The samplers are imbalanced-learn's ``RandomUnderSampler`` and ``RandomOverSampler``,
run on row indices rather than on pixels, so that only the chosen rows are copied.
PublicTest and PrivateTest rows pass through unchanged: they are never resampled or
reweighted (they choose the epoch and give the final report).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from imblearn.over_sampling import RandomOverSampler
from imblearn.under_sampling import RandomUnderSampler
from sklearn.utils.class_weight import compute_class_weight

from .data import EMOTIONS, SPLITS, FerData
from .evaluate import NEAR_FLOOR_MARGIN, majority_floor, near_floor

if TYPE_CHECKING:
    import pandas as pd

METHODS = ("undersample", "oversample")


def resample_indices(labels: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """Row indices that balance ``labels``: every class cut to the minority's count
    (``undersample``) or repeated up to the majority's (``oversample``)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        raise ValueError("balancing needs at least two classes")
    sampler_cls = RandomUnderSampler if method == "undersample" else RandomOverSampler
    sampler = sampler_cls(random_state=seed)  # "auto": every class to the minority / majority count
    rows = np.arange(len(labels)).reshape(-1, 1)
    chosen, _ = sampler.fit_resample(rows, labels)
    return chosen.ravel()


def balance_training(data: FerData, method: str, seed: int = 0) -> FerData:
    """A copy of ``data`` whose Training rows are balanced by ``method``; test rows unchanged.

    The balanced Training rows come first (in sampler order), then the PublicTest and
    PrivateTest rows exactly as they were.
    """
    train_mask = data.splits == SPLITS.index("Training")
    train_rows = np.flatnonzero(train_mask)
    if len(train_rows) == 0:
        raise ValueError("no Training rows to balance")
    chosen = train_rows[resample_indices(data.labels[train_rows], method, seed)]
    return data.subset(np.concatenate([chosen, np.flatnonzero(~train_mask)]))


def class_weights(labels: np.ndarray, num_classes: int = len(EMOTIONS)) -> dict[int, float]:
    """Weights inversely proportional to class frequency (scikit-learn's ``"balanced"``).

    ``w_c = N / (K * n_c)``, so that ``sum_c n_c * w_c = N``: the weighted number of
    training images equals the real one and the mean weight per image is 1.
    Classes absent from ``labels`` raise, since their weight would be infinite.
    """
    labels = np.asarray(labels)
    present = np.unique(labels)
    if len(present) != num_classes:
        missing = sorted(set(range(num_classes)) - set(present.tolist()))
        raise ValueError(f"classes {missing} have no training images; cannot weight them")
    weights = compute_class_weight("balanced", classes=np.arange(num_classes), y=labels)
    return {int(c): float(w) for c, w in enumerate(weights)}


# --------------------------------------------------------------------------- reading the comparison

#: A change of macro-F1 smaller than this is read as "about the same" (macro-F1 has no test here).
MACRO_F1_STEP = 0.01
#: The methods of notebook 03, read against the baseline.
BALANCING_METHODS = ("oversample", "class_weights")


def describe_balancing(table: pd.DataFrame, recall: pd.DataFrame, y_true: np.ndarray,
                       reference: str = "baseline", methods: tuple[str, ...] = BALANCING_METHODS,
                       rare: str = "disgust") -> str:
    """What each balancing method did against ``reference``, in sentences decided by the numbers.

    ``table``: :func:`fer_utils.compare.compare` of the run (accuracy, its 95 % interval, macro-F1 and
    McNemar's p against ``reference``); ``recall``: :func:`fer_utils.compare.per_class_recall`;
    ``y_true``: the PrivateTest labels the models answered (they give the majority-class floor and the
    number of ``rare`` faces, so that a change of recall is read in faces).

    For each method: its accuracy with its interval, McNemar's verdict, the change of macro-F1 and the
    ``rare`` emotion's recall, then one verdict: a gain, a cost, a trade of accuracy for the rare
    emotion, or no measurable difference. A model within :data:`fer_utils.evaluate.NEAR_FLOOR_MARGIN` of always answering the
    commonest emotion is named near the floor and gets no verdict (its comparison says nothing about the
    method); so does every method when the reference itself is near the floor.
    """
    y_true = np.asarray(y_true)
    if reference not in table.index:
        return f"No {reference} results in this run: run its notebook first, then this comparison."
    counts = np.bincount(y_true, minlength=len(EMOTIONS))
    floor, commonest_label = majority_floor(y_true)
    n_rare = int(counts[EMOTIONS.index(rare)])
    commonest = EMOTIONS[commonest_label]

    def near_chance(accuracy: float) -> bool:
        return near_floor(accuracy, floor)

    def rare_text(name: str) -> str:
        right = int(round(recall.loc[rare, name] * n_rare))
        return f"{rare} recall {recall.loc[rare, name]:.2f} ({right} of {n_rare} face{'s' if n_rare != 1 else ''})"

    ref = table.loc[reference]
    lines = [f"{reference}: accuracy {ref.accuracy:.3f} (95% CI {ref.ci95_low:.3f}-{ref.ci95_high:.3f}), "
             f"macro-F1 {ref.macro_f1:.3f}, {rare_text(reference)}."]
    chance = (f"no more than {NEAR_FLOOR_MARGIN * 100:.0f} points above the {floor:.3f} that always answering the "
              f"commonest emotion ({commonest}) scores")
    if near_chance(ref.accuracy):
        lines.append(f"The {reference} is {chance}: near the floor, so no method can be judged against it in this "
                     "run; read the published run's numbers instead.")
    p_col = f"mcnemar_p_vs_{reference}"
    for name in methods:
        if name not in table.index:
            lines.append(f"{name}: no results in this run.")
            continue
        row = table.loc[name]
        p = row[p_col]
        significant = bool(p < 0.05)
        d_f1 = row.macro_f1 - ref.macro_f1
        d_rare = int(round(recall.loc[rare, name] * n_rare)) - int(round(recall.loc[rare, reference] * n_rare))
        lines.append(
            f"{name}: accuracy {row.accuracy:.3f} (95% CI {row.ci95_low:.3f}-{row.ci95_high:.3f}); McNemar "
            f"p = {p:.2g} against the {reference}, {'a' if significant else 'no'} significant difference; "
            f"macro-F1 {row.macro_f1:.3f} ({d_f1:+.3f}); {rare_text(name)}, {d_rare:+d} against the {reference}.")
        if near_chance(row.accuracy):
            lines.append(f"  Verdict: {row.accuracy:.3f} is {chance}: near the floor, no finding about {name}.")
            continue
        if near_chance(ref.accuracy):
            continue
        lower = significant and row.accuracy < ref.accuracy
        higher = significant and row.accuracy > ref.accuracy
        more = (f"{abs(d_rare)} {'more' if d_rare > 0 else 'fewer'} {rare} face{'s' if abs(d_rare) != 1 else ''} "
                f"right" if d_rare else f"the same number of {rare} faces right")
        f1_text = (f"macro-F1 {'up' if d_f1 > 0 else 'down'} {abs(d_f1):.3f}" if abs(d_f1) >= MACRO_F1_STEP
                   else f"macro-F1 within {MACRO_F1_STEP:.2f} of the {reference}'s")
        if higher:
            verdict = f"a gain: significantly more faces right than the {reference}, {f1_text}, {more}."
        elif lower and d_rare > 0:
            verdict = (f"a trade: significantly fewer faces right than the {reference} (the common emotions pay), "
                       f"{f1_text}, for {more}; worth it only where missing a {rare} face costs more than "
                       "missing a common one.")
        elif lower:
            verdict = f"a loss: significantly fewer faces right than the {reference}, {f1_text}, and {more}."
        elif d_f1 >= MACRO_F1_STEP:
            verdict = f"a gain at no measurable cost: accuracy level with the {reference}'s, {f1_text}, {more}."
        elif d_f1 <= -MACRO_F1_STEP:
            verdict = f"a cost to the rarer emotions: accuracy level with the {reference}'s, but {f1_text}; {more}."
        else:
            verdict = (f"no measurable difference: accuracy level with the {reference}'s, {f1_text}, {more} "
                       f"(each of the {n_rare} {rare} faces is {1 / max(n_rare, 1):.3f} of its recall).")
        lines.append(f"  Verdict: {verdict}")
    return "\n".join(lines)


def read_balancing(folder: str | os.PathLike, methods: tuple[str, ...] = BALANCING_METHODS,
                   reference: str = "baseline") -> str:
    """:func:`describe_balancing` of a run directory or a published results folder, from its files
    (``metrics/``, ``predictions/``)."""
    from .compare import compare, per_class_recall
    from .experiments import read_predictions

    folder = Path(folder)
    names = [reference, *methods]
    predictions = folder / "predictions" / f"{reference}.npz"
    if not predictions.exists():
        return f"No {reference} results in {folder.name}: run its notebook first, then this comparison."
    return describe_balancing(compare(folder, names, reference), per_class_recall(folder, names),
                              read_predictions(predictions)[1], reference, methods)


def balancing_readings(run: str | os.PathLike, methods: tuple[str, ...] = BALANCING_METHODS) -> str:
    """:func:`read_balancing` of this run, then of the published run (``results/<profile>/``) unless
    this run's PrivateTest answers are the published ones (then it is the published run, read once)."""
    from .notebook import published_records

    run = Path(run)
    lines = ["This run:", read_balancing(run, methods)]
    published = published_records()
    if published is None:
        return "\n".join(lines)
    profile, records = published
    if _same_answers(run, records, ("baseline", *methods)):
        return "\n".join(["This run is the published run:", read_balancing(run, methods)])
    lines += ["", f"The published run ({profile} profile, the full data):", read_balancing(records, methods)]
    return "\n".join(lines)


def _same_answers(run: Path, records: Path, names: tuple[str, ...]) -> bool:
    """Whether ``run`` holds exactly the PrivateTest answers of ``records`` for every one of ``names``."""
    from .experiments import read_predictions

    for name in names:
        a, b = run / "predictions" / f"{name}.npz", records / "predictions" / f"{name}.npz"
        if not (a.exists() and b.exists()):
            return False
        ids_a, _, pred_a = read_predictions(a)
        ids_b, _, pred_b = read_predictions(b)
        if not (np.array_equal(ids_a, ids_b) and np.array_equal(pred_a, pred_b)):
            return False
    return True
