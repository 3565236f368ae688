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

import numpy as np
from imblearn.over_sampling import RandomOverSampler
from imblearn.under_sampling import RandomUnderSampler
from sklearn.utils.class_weight import compute_class_weight

from .data import EMOTIONS, SPLITS, FerData

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
