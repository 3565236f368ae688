"""Measure this machine and the study's code paths, each against a target or a ceiling.

    python -m fer_utils.bench [--quick] [--smoke] [--predict MODEL] [--json out.json]

Figures (all measured where the command runs):

* ``matmul_gflops``: a large float32 matrix product through Keras' ops, the practical
  compute ceiling; with the baseline's cost per image (:func:`model_flops`) it gives the
  ceilings for training (forward + backward, about 3x the forward cost) and inference.
* ``train_images_per_s``: the notebooks' training path (:func:`fer_utils.train.train_model`
  on uint8 arrays, checkpoints included), second epoch, with its ratio to the ceiling.
* ``infer_images_per_s``: ``model.predict`` at batch 256, with its ratio to the ceiling.
* ``cold_load_s`` / ``cached_load_s``: the whole data set, into an empty cache and again
  (targets 15 s and 1 s; the cold figure reads files through the OS page cache as found).
* ``peak_memory_mib``: this process's peak resident memory.
* with ``--smoke``: wall time of notebooks 00-01 in the smoke profile (target 3 minutes);
* with ``--predict MODEL``: a 640x480 photo with one face (target 100 ms, model loaded)
  and the peak memory of a ``fer-predict`` process on a 6000x4000 photo (target 1 GiB).

``--quick`` shrinks every measurement (seconds, for CI: it checks that the benchmark
runs and writes well-formed JSON, not the speed).
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
from .evaluate import hardware_info, library_versions, peak_memory_mib

TARGETS = {"cold_load_s": 15.0, "cached_load_s": 1.0, "smoke_00_01_s": 180.0,
           "predict_640x480_s": 0.100, "predict_6000x4000_peak_mib": 1024.0}
UNITS = {"predict_6000x4000_peak_mib": "MiB", "peak_memory_mib": "MiB", "matmul_gflops": "GFLOP/s",
         "train_images_per_s": "img/s", "infer_images_per_s": "img/s"}


def model_flops(model) -> dict[str, float]:
    """Forward FLOPs per image of each Conv2D and Dense layer (2 x multiply-adds)."""
    import keras

    flops = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            c_in = layer.input.shape[-1]
            flops[layer.name] = 2.0 * h * w * kh * kw * c_in * c_out
        elif isinstance(layer, keras.layers.Dense):
            flops[layer.name] = 2.0 * layer.input.shape[-1] * layer.units
    return flops


def measure_matmul(n: int = 4096, repeats: int = 5) -> float:
    """GFLOP/s of an n x n float32 matrix product through the Keras backend (best of ``repeats``)."""
    import keras

    rng = np.random.default_rng(0)
    a = keras.ops.convert_to_tensor(rng.standard_normal((n, n), dtype=np.float32))
    b = keras.ops.convert_to_tensor(rng.standard_normal((n, n), dtype=np.float32))
    keras.ops.convert_to_numpy(keras.ops.matmul(a, b))  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.matmul(a, b))
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def measure_training(data, images: int, batch_size: int = 128) -> dict:
    """Training images/s of the notebooks' path: train_model, 2 epochs, the second one timed."""
    import keras

    from .model import build_baseline, compile_model
    from .train import train_model

    train, val = data.split("Training"), data.split("PublicTest")
    idx = np.random.default_rng(0).choice(len(train), size=min(images, len(train)), replace=False)
    keras.utils.set_random_seed(0)
    model = compile_model(build_baseline())
    with tempfile.TemporaryDirectory() as folder:
        result = train_model(model, (train.images[idx], train.labels[idx]), (val.images[:64], val.labels[:64]),
                             folder, epochs=2, batch_size=batch_size, seed=0, verbose=0)
    seconds = result.history["epoch_seconds"][-1]
    return {"train_images_per_s": len(idx) / seconds, "train_batch_size": batch_size, "train_images": len(idx),
            "forward_gflop_per_image": sum(model_flops(model).values()) / 1e9}


def measure_inference(data, images: int, batch_size: int = 256) -> float:
    """Inference images/s of ``model.predict`` (second call timed)."""
    from .model import build_baseline

    model = build_baseline()
    x = data.split("PrivateTest").images[:images]
    model.predict(x, batch_size=batch_size, verbose=0)
    t0 = time.perf_counter()
    model.predict(x, batch_size=batch_size, verbose=0)
    return len(x) / (time.perf_counter() - t0)


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
    """Wall time of notebooks 00-01 in the smoke profile, run into a temporary run directory."""
    from .study import run

    with tempfile.TemporaryDirectory() as run_dir:
        t0 = time.perf_counter()
        run("smoke", Path(run_dir) / "smoke", only=["00", "01"])
        return {"smoke_00_01_s": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data set path (default: FER2013_DIR)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs (CI)")
    parser.add_argument("--smoke", action="store_true", help="also time notebooks 00-01 in the smoke profile")
    parser.add_argument("--predict", metavar="MODEL", default=None,
                        help="also time fer-predict with this .keras model")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    figures = measure_load(args.data)
    data = load_fer2013(args.data)
    figures["matmul_gflops"] = measure_matmul(512 if args.quick else 4096)
    figures.update(measure_training(data, 256 if args.quick else 2048, batch_size=128))
    figures["infer_images_per_s"] = measure_inference(data, 256 if args.quick else 3589)
    per_image = figures["forward_gflop_per_image"]
    ceilings = {"train_images_per_s": figures["matmul_gflops"] / (3 * per_image),
                "infer_images_per_s": figures["matmul_gflops"] / per_image}
    if args.smoke:
        figures.update(measure_smoke())
    if args.predict:
        figures.update(measure_predict(args.predict))
    figures["peak_memory_mib"] = peak_memory_mib()
    figures["bench_seconds"] = time.perf_counter() - started

    print(f"machine: {hardware_info()['cpu']}, {os.cpu_count()} cores{' (quick mode)' if args.quick else ''}")
    ok = True
    for key, value in figures.items():
        unit = UNITS.get(key, "s" if key.endswith("_s") else "")
        line = f"{key:>27}: {value:10.3f} {unit:<7}"
        if key in ceilings:
            line += f" ceiling {ceilings[key]:8.1f} {unit}  ratio {value / ceilings[key]:.2f}"
        if key in TARGETS and not args.quick:
            passed = value <= TARGETS[key]
            ok &= passed
            line += f" target <= {TARGETS[key]:g} {unit}  {'ok' if passed else 'MISSED'}"
        print(line)
    if args.json:
        payload = {"figures": {k: round(float(v), 4) for k, v in figures.items()},
                   "ceilings": {k: round(v, 2) for k, v in ceilings.items()},
                   "targets": TARGETS, "quick": args.quick, "hardware": hardware_info(),
                   "versions": library_versions()}
        tmp = Path(args.json).with_name(f".{Path(args.json).name}.tmp")
        tmp.write_text(json.dumps(payload, indent=2, allow_nan=False))
        os.replace(tmp, args.json)
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
        # The child reports its own peak from /proc (VmHWM starts afresh at exec; getrusage's
        # ru_maxrss would carry over this process's size through fork and exec).
        probe = ("import sys\nfrom fer_utils.predict import main\nmain(sys.argv[1:])\n"
                 "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
                 "print('PEAK_KIB', hwm[0])")
        done = subprocess.run([sys.executable, "-c", probe, str(big), "--model", str(model_path), "--json"],
                              check=False, capture_output=True, text=True)
        peaks = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("PEAK_KIB")]
        peak_mib = float(peaks[-1]) / 1024 if peaks else float("nan")
    return {"predict_640x480_s": round(float(np.median(times)), 4), "faces_in_640x480": faces,
            "predict_6000x4000_peak_mib": round(peak_mib, 1)}


if __name__ == "__main__":
    sys.exit(main())
