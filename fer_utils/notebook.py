"""A notebook's first cell: where its run keeps its files, what produced its outputs, and which model
to read when the run has not trained one.

*The lesson.* A result is only as good as the record of what produced it. Every notebook opens by
naming its run (profile, data and whether the data is the genuine FER-2013, backend, device,
precision, date), so that a reader of its outputs knows what they come from. Its files go into one run
directory; paths inside the repository are shown relative to it, never as this machine's paths.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .data import repo_root

#: Where the repository keeps the models it ships (``models/baseline.keras``, ...).
SHIPPED_DIR = "models"
#: What fer-publish writes about the published run (its profile names the folder of its records).
PUBLISHED_MANIFEST = Path("results") / "published.json"


def resolve(path: str | os.PathLike) -> Path:
    """A path as the study means it: relative paths are relative to the repository root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else repo_root() / path


def shown(path: str | os.PathLike) -> str:
    """A path for printing: relative to the repository when inside it (no machine paths)."""
    path = Path(path)
    try:
        return path.resolve().relative_to(repo_root()).as_posix()
    except ValueError:
        return os.path.relpath(path)


def run_banner(profile: str, data=None, parameters: dict | None = None) -> str:
    """Which run produced a notebook's outputs: the data verdict first, then profile, data, backend,
    precision and the date the notebook was executed (the machine is in each metrics file, not here).

    ``data``: the loaded :class:`fer_utils.data.FerData` (its source and verification verdict are
    shown; the verdict line comes first, so a copy that is not canonical FER-2013 is the first thing a
    reader sees), a plain description of the data, or None. The precision is Keras' global dtype
    policy when this is called (so a notebook sets its precision first). ``parameters``: the notebook's
    parameters as this run set them, shown after the profile as ``name=value``, so that the first lines of
    its output say what produced them.
    """
    from datetime import datetime, timezone

    import keras

    from .device import has_accelerator

    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    source = getattr(data, "source", data) or ""
    verdict = getattr(data, "verification", None)
    first = ""
    if verdict is not None:
        first = verdict.summary() + "\n"
    elif hasattr(data, "verification"):
        first = "data not verified (loaded with verify='off')\n"
    shown_data = f" · data: {source}" if source else ""
    precision = keras.mixed_precision.global_policy().name
    settings = f" ({', '.join(f'{k}={v!r}' for k, v in parameters.items())})" if parameters else ""
    device = f"Keras backend {keras.backend.backend()} on {'an accelerator' if has_accelerator() else 'CPU'}"
    return f"{first}Run: profile '{profile}'{settings}{shown_data} · {device} · precision {precision} · executed {when}"


@dataclass(frozen=True)
class ModelSource:
    """Where a notebook finds an experiment's model and its records.

    Attributes:
        folder: the folder whose ``models/<name>.keras`` to load
            (:func:`fer_utils.experiments.load_experiment_model`).
        records: the folder with its metrics and predictions (``metrics/<name>.json``, ``predictions/<name>.npz``).
        note: one line for the notebook's output saying which model it is.
    """

    folder: Path
    records: Path
    note: str


def published_records() -> tuple[str, Path] | None:
    """The published run's profile and the folder of its records (``results/<profile>/``, holding
    ``metrics/`` and ``predictions/``), or None when the repository has no published run."""
    root = repo_root()
    try:
        profile = json.loads((root / PUBLISHED_MANIFEST).read_text())["profile"]
    except (OSError, ValueError, KeyError):
        return None
    return profile, root / "results" / profile


def model_source(run: str | os.PathLike, name: str) -> ModelSource:
    """Experiment ``name``'s model: the run directory's own (``run/models/<name>.keras``) when its notebook
    trained one there; else the copy the repository ships (``models/<name>.keras``), with the published
    run's records (``results/<profile>/``), so that a notebook whose lesson needs a trained model runs in
    minutes from a fresh clone. Raises FileNotFoundError, in one line, when neither exists."""
    run = resolve(run)
    if (run / "models" / f"{name}.keras").exists():
        return ModelSource(run, run, f"model: {name} as trained in this run ({shown(run / 'models')}/{name}.keras)")
    root = repo_root()
    if (root / SHIPPED_DIR / f"{name}.keras").exists():
        profile, records = published_records() or ("published", run)
        return ModelSource(root, records, f"model: {name} as shipped with the study ({SHIPPED_DIR}/{name}.keras, "
                                          f"trained by the {profile} run), since this run has not trained one")
    raise FileNotFoundError(f"{name}.keras is neither in {shown(run / 'models')} nor shipped in {SHIPPED_DIR}/: "
                            f"run the notebook that trains '{name}' with this run directory first")
