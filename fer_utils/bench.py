"""Measure the data loader and the smoke profile on this machine, against the study's targets.

    python -m fer_utils.bench [--data PATH] [--smoke] [--json out.json]

Prints each figure with its target: cold load of the whole data set (decoding every
image, into an empty cache) <= 15 s, cached load <= 1 s; with ``--smoke`` the wall
time of the smoke profile of the notebooks; with ``--predict MODEL`` the time to
process a 640x480 photo with one face (<= 100 ms, model loaded) and the peak memory
of a ``fer-predict`` process on a 6000x4000 photo (<= 1 GiB). The cold figure reads
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

import numpy as np

from .data import load_fer2013
from .evaluate import hardware_info, library_versions

TARGETS = {"cold_load_s": 15.0, "cached_load_s": 1.0, "smoke_study_s": 180.0,
           "predict_640x480_s": 0.100, "predict_6000x4000_peak_mib": 1024.0}
UNITS = {"predict_6000x4000_peak_mib": "MiB"}


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
    parser.add_argument("--predict", metavar="MODEL", default=None,
                        help="also time fer-predict with this .keras model")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    figures = measure_load(args.data)
    if args.smoke:
        figures.update(measure_smoke())
    if args.predict:
        figures.update(measure_predict(args.predict))
    print(f"machine: {hardware_info()['cpu']}, {os.cpu_count()} cores")
    ok = True
    for key, target in TARGETS.items():
        if key in figures:
            passed = figures[key] <= target
            ok &= passed
            unit = UNITS.get(key, "s")
            print(f"{key:>27}: {figures[key]:9.3f} {unit:<3}  target <= {target:g} {unit:<3}  "
                  f"{'ok' if passed else 'MISSED'}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"figures": figures, "targets": TARGETS, "hardware": hardware_info(),
             "versions": library_versions()}, indent=2))
    return 0 if ok else 1


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


def measure_predict(model_path: str | os.PathLike, repeats: int = 20) -> dict:
    """Median seconds to process a 640x480 photo with one face (model loaded), and the peak
    memory of a whole ``fer-predict`` process on a 6000x4000 photo."""
    import resource
    import subprocess

    import matplotlib
    from PIL import Image

    from .predict import Predictor, load_model

    portrait = Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB")
    with tempfile.TemporaryDirectory() as folder:
        small = Path(folder) / "640x480.jpg"
        canvas = Image.new("RGB", (640, 480), (90, 90, 90))
        canvas.paste(portrait.resize((400, 469)), (120, 5))
        canvas.save(small, quality=90)
        big = Path(folder) / "6000x4000.jpg"
        portrait.resize((6000, 4000)).save(big, quality=90)
        predictor = Predictor(load_model(model_path))
        faces = len(predictor.predict_file(small).faces)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            predictor.predict_file(small)
            times.append(time.perf_counter() - t0)
        subprocess.run([sys.executable, "-m", "fer_utils.predict", str(big), "--model", str(model_path),
                        "--json"], check=False, capture_output=True)
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"predict_640x480_s": round(float(np.median(times)), 4), "faces_in_640x480": faces,
            "predict_6000x4000_peak_mib": round(peak_mib, 1)}


if __name__ == "__main__":
    sys.exit(main())
