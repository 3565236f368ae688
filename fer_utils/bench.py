"""Measure the data loader and the smoke profile on this machine, against the study's targets.

    python -m fer_utils.bench [--data PATH] [--smoke] [--json out.json]

Prints each figure with its target: cold load of the whole data set (decoding every
image, into an empty cache) <= 15 s, cached load <= 1 s, and with ``--smoke`` the
wall time of the smoke profile of the notebooks <= 3 minutes. The cold figure reads
the files through the operating system's page cache as it finds it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from .data import load_fer2013
from .evaluate import hardware_info, library_versions

TARGETS = {"cold_load_s": 15.0, "cached_load_s": 1.0, "smoke_study_s": 180.0}


def measure_load(path: str | None) -> dict:
    """Cold (empty cache) and cached load times of the full data set, in seconds."""
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        data = load_fer2013(path, cache_dir=cache)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        load_fer2013(path, cache_dir=cache)
        cached = time.perf_counter() - t0
    return {"images": len(data), "cold_load_s": round(cold, 2), "cached_load_s": round(cached, 3)}


def measure_smoke() -> dict:
    """Wall time of the whole smoke profile, run into a temporary run directory."""
    from .study import run

    with tempfile.TemporaryDirectory() as run_dir:
        t0 = time.perf_counter()
        run("smoke", Path(run_dir) / "smoke")
        return {"smoke_study_s": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data set path (default: FER2013_DIR)")
    parser.add_argument("--smoke", action="store_true", help="also time the smoke profile")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    figures = measure_load(args.data)
    if args.smoke:
        figures.update(measure_smoke())
    print(f"machine: {hardware_info()['cpu']}, {os.cpu_count()} cores")
    ok = True
    for key, target in TARGETS.items():
        if key in figures:
            passed = figures[key] <= target
            ok &= passed
            print(f"{key:>15}: {figures[key]:8.2f} s   target <= {target:g} s   {'ok' if passed else 'MISSED'}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"figures": figures, "targets": TARGETS, "hardware": hardware_info(),
             "versions": library_versions()}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())


def training_throughput(model, images, labels, batch_size: int = 128, batches: int = 8) -> float:
    """Training images per second of ``model.fit`` on ``batches`` batches, after one warm-up pass.

    The model's weights change: pass a throw-away copy.
    """
    n = min(len(images), batch_size * batches)
    x, y = images[:n], labels[:n]
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)  # warm-up: tracing, allocation
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    return n / (time.perf_counter() - t0)
