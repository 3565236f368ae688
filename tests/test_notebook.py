"""fer_utils.notebook: a notebook's first cell (its banner, its run directory, the model it reads)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from fer_utils import notebook


def test_run_banner_puts_the_data_verdict_first():
    import keras

    verdict = SimpleNamespace(summary=lambda: "data differs from canonical FER-2013: 0 of 3 images match")
    data = SimpleNamespace(source="image folders (x)", verification=verdict)
    lines = notebook.run_banner("smoke", data).splitlines()
    assert lines[0] == "data differs from canonical FER-2013: 0 of 3 images match"
    assert lines[1].startswith("Run: profile 'smoke' · data: image folders (x)")
    skipped = SimpleNamespace(source="csv (x)", verification=None)
    assert notebook.run_banner("smoke", skipped).startswith("data not verified")
    assert notebook.run_banner("smoke", "photos").startswith("Run: profile 'smoke' · data: photos")
    # the backend, the kind of device and the precision in force, and the day it was executed; not the machine
    from datetime import datetime, timezone

    assert f"Keras backend {keras.backend.backend()} on CPU · precision " in lines[1]
    assert lines[1].endswith(f" · executed {datetime.now(timezone.utc):%Y-%m-%d}") and "cores" not in lines[1]
    # the run's parameters after the profile: what produced the outputs, in their first lines
    assert notebook.run_banner("reference", "photos", parameters={"epochs": 30, "schedule": "cosine"}).startswith(
        "Run: profile 'reference' (epochs=30, schedule='cosine') · data: photos · ")


def test_a_run_without_the_model_reads_the_shipped_one_and_the_published_records(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    monkeypatch.setattr(notebook, "repo_root", lambda: root)
    run = root / "runs" / "lab"
    with pytest.raises(FileNotFoundError, match=r"^baseline.keras is neither in runs/lab/models nor shipped "
                                                 r"in models/: run the notebook that trains 'baseline'"):
        notebook.model_source(run, "baseline")
    (root / "models").mkdir(parents=True)
    (root / "models" / "baseline.keras").write_bytes(b"weights")
    (root / "results").mkdir()
    (root / "results" / "published.json").write_text(json.dumps({"profile": "reference"}))
    shipped = notebook.model_source(run, "baseline")
    assert shipped.folder == root and shipped.records == root / "results" / "reference"
    assert shipped.note == ("model: baseline as shipped with the study (models/baseline.keras, trained by the "
                            "reference run), since this run has not trained one")
    (run / "models").mkdir(parents=True)
    (run / "models" / "baseline.keras").write_bytes(b"its own")
    own = notebook.model_source("runs/lab", "baseline")  # relative: to the repository
    assert own.folder == own.records == run
    assert own.note == "model: baseline as trained in this run (runs/lab/models/baseline.keras)"


def test_shown_paths_are_relative_to_the_repository(tmp_path, monkeypatch):
    monkeypatch.setattr(notebook, "repo_root", lambda: tmp_path)
    assert notebook.shown(tmp_path / "runs" / "x") == "runs/x"
    assert notebook.resolve("runs/x") == tmp_path / "runs" / "x"
