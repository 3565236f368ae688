"""Shared fixtures: tiny synthetic FER-2013 trees, and the real data set when it is there."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_utils.data import DATA_ENV, EMOTIONS

PIXEL_OF = {label: 20 + 30 * label for label in range(len(EMOTIONS))}  # one grey level per class


def write_image(path: Path, value: int | np.ndarray, size: int = 48, mode: str = "L") -> None:
    """Write a constant (or given) image; the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(value, np.ndarray):
        img = Image.fromarray(value)
    else:
        img = Image.new(mode, (size, size), value if mode == "L" else (value,) * len(mode))
    img.save(path)


def make_tree(root: Path, per_split: dict[str, int] | None = None, suffix: str = ".png") -> Path:
    """A FER-2013 image-folder tree with ``per_split`` images per class; pixel value encodes the class."""
    per_split = per_split or {"Training": 3, "PublicTest": 2, "PrivateTest": 2}
    for label, emotion in enumerate(EMOTIONS):
        for split, n in per_split.items():
            top = "train" if split == "Training" else "test"
            for i in range(n):
                write_image(root / top / emotion / f"{split}_{label}{i:03d}{suffix}", PIXEL_OF[label])
    return root


def zip_tree(root: Path, target: Path, prefix: str = "") -> Path:
    """Zip a tree the way Kaggle's archive.zip holds it (optionally under one folder)."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + path.relative_to(root).as_posix())
    return target


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "fer")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def real_data_path() -> Path:
    """The real data set from $FER2013_DIR; skipped locally when absent, an error under CI."""
    value = os.environ.get(DATA_ENV, "")
    path = Path(value) if value else None
    if path is None or not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI must set {DATA_ENV} to the real FER-2013 data set")
        pytest.skip(f"{DATA_ENV} not set: real-data tests skipped")
    return path


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory) -> Path:
    """$FER2013_CACHE when set (scripts/test.sh sets it: the notebooks' kernels and every test worker decode the
    data once between them; a cache file is written whole or not at all), else a fresh folder."""
    from fer_utils.data import CACHE_ENV

    return Path(os.environ[CACHE_ENV]) if os.environ.get(CACHE_ENV) else tmp_path_factory.mktemp("fer-cache")


@pytest.fixture(scope="session")
def real_data(real_data_path: Path, real_cache: Path):
    from fer_utils.data import load_fer2013

    return load_fer2013(real_data_path, cache_dir=real_cache)


#: The xdist group of the tests that read :func:`shipped_baseline_probabilities`, so that one worker computes it.
SHIPPED_BASELINE = "shipped-baseline"


@pytest.fixture(scope="session")
def shipped_baseline_probabilities(real_data):
    """The shipped baseline's (models/baseline.keras) PrivateTest probabilities on this backend, computed
    once for the tests that read them (marked ``xdist_group(SHIPPED_BASELINE)``)."""
    import keras

    import fer_utils.model  # noqa: F401  (registers the model's first layer)
    from fer_utils.data import repo_root

    model = keras.saving.load_model(repo_root() / "models" / "baseline.keras")
    return model.predict(real_data.split("PrivateTest").images, batch_size=256, verbose=0)


#: Wall seconds of the smoke study per Keras backend, per notebook and in all (tests/test_runner.py fills it),
#: printed at the end of every test run, -q included.
SMOKE_TIMES = pytest.StashKey[dict]()


def pytest_configure(config):
    config.stash[SMOKE_TIMES] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """A test that reads the real data set is marked ``realdata`` (CI runs those after the unit tests): one
    that takes a real-data fixture, and every cell nbval re-executes in a committed notebook's checkable copy
    (``fer_study.nbcheck``), which loads the data set as the notebook did. A notebook's cells run in order in
    one kernel, so with ``--dist loadgroup`` they stay in one pytest-xdist worker (``xdist_group``). Under
    pytest-xdist the slow tests go first, so that two workers that share the rest finish at about the same time."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.realdata)
            item.add_marker(pytest.mark.xdist_group(item.path.name))
        elif {"real_data_path", "real_data"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.realdata)
    if hasattr(config, "workerinput"):  # in a pytest-xdist worker only: alone, the quick ones go first
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: each file's order is kept


def pytest_sessionfinish(session):
    """In a pytest-xdist worker: hand the smoke study's times to the controller, which prints them."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["smoke_times"] = session.config.stash.get(SMOKE_TIMES, {})


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """In the pytest-xdist controller: collect the times a worker measured."""
    node.config.stash.setdefault(SMOKE_TIMES, {}).update(getattr(node, "workeroutput", {}).get("smoke_times", {}))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    times = config.stash.get(SMOKE_TIMES, {})
    if not times:
        return
    terminalreporter.write_sep("-", "smoke study times (this run, this machine)")
    for backend, t in times.items():
        per = ", ".join(f"{nb} {s:.0f}" for nb, s in t["notebooks"].items())
        terminalreporter.write_line(f"{backend}: {t['total']:.0f} s ({per})")
