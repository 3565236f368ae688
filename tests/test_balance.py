"""fer_utils.balance on tiny synthetic data: counts after sampling, no test-split leakage, weights."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_tree
from fer_utils.balance import balance_training, class_weights, resample_indices
from fer_utils.data import EMOTIONS, load_fer2013


@pytest.fixture
def imbalanced(tmp_path):
    """Training: class k has k + 2 images (2..8); each test split: 2 per class."""
    root = make_tree(tmp_path / "t", {"PublicTest": 2, "PrivateTest": 2})
    from conftest import write_image

    rng = np.random.default_rng(0)
    for label, emotion in enumerate(EMOTIONS):
        for i in range(label + 2):
            write_image(root / "train" / emotion / f"Training_{label}{i:02d}.png",
                        rng.integers(0, 255, (48, 48), dtype=np.uint8))
    return load_fer2013(root, cache=False)


def test_undersample_cuts_every_class_to_the_minority(imbalanced):
    out = balance_training(imbalanced, "undersample", seed=3)
    assert out.split("Training").class_counts() == {e: 2 for e in EMOTIONS}
    train_ids = set(out.split("Training").ids.tolist())
    assert len(train_ids) == 14 and train_ids <= set(imbalanced.split("Training").ids.tolist())


def test_oversample_repeats_up_to_the_majority(imbalanced):
    out = balance_training(imbalanced, "oversample", seed=3)
    train = out.split("Training")
    assert train.class_counts() == {e: 8 for e in EMOTIONS}
    # the originals are all kept; the rest are repeats of them
    assert set(train.ids.tolist()) == set(imbalanced.split("Training").ids.tolist())


@pytest.mark.parametrize("method", ["undersample", "oversample"])
def test_test_splits_are_never_touched(imbalanced, method):
    out = balance_training(imbalanced, method, seed=1)
    for split in ("PublicTest", "PrivateTest"):
        before, after = imbalanced.split(split), out.split(split)
        np.testing.assert_array_equal(after.ids, before.ids)
        np.testing.assert_array_equal(after.images, before.images)
        np.testing.assert_array_equal(after.labels, before.labels)
    test_ids = set(imbalanced.subset(imbalanced.splits > 0).ids.tolist())
    assert not test_ids & set(out.split("Training").ids.tolist())  # no test image leaks into training


def test_sampling_is_seeded(imbalanced):
    a = balance_training(imbalanced, "undersample", seed=5).ids
    b = balance_training(imbalanced, "undersample", seed=5).ids
    c = balance_training(imbalanced, "undersample", seed=6).ids
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_class_weights_sum_as_documented():
    labels = np.repeat(np.arange(7), [10, 1, 4, 20, 5, 3, 7])
    weights = class_weights(labels)
    counts = np.bincount(labels)
    assert sum(counts[c] * w for c, w in weights.items()) == pytest.approx(len(labels))
    assert weights[1] == pytest.approx(len(labels) / (7 * 1))
    assert max(weights, key=weights.get) == 1 and min(weights, key=weights.get) == 3


def test_bad_input():
    with pytest.raises(ValueError, match="unknown method"):
        resample_indices(np.array([0, 1]), "smote")
    with pytest.raises(ValueError, match="two classes"):
        resample_indices(np.zeros(5, int), "undersample")
    with pytest.raises(ValueError, match=r"classes \[6\] have no training images"):
        class_weights(np.arange(6))


def test_real_training_split_balances_to_the_documented_sizes(real_data):
    under = balance_training(real_data, "undersample", seed=42)
    over = balance_training(real_data, "oversample", seed=42)
    assert under.split_counts() == {"Training": 3052, "PublicTest": 3589, "PrivateTest": 3589}
    assert over.split_counts() == {"Training": 50505, "PublicTest": 3589, "PrivateTest": 3589}
    np.testing.assert_array_equal(over.split("PrivateTest").ids, real_data.split("PrivateTest").ids)
    weights = class_weights(real_data.split("Training").labels)
    assert weights[1] == pytest.approx(28709 / (7 * 436))
