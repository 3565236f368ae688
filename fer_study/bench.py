"""Measure this machine and the study's code paths, each against a target or a ceiling.

    python -m fer_study.bench [--quick] [--smoke] [--layers] [--predict MODEL] [--json out.json]

Figures (all measured where the command runs):

* ``matmul_gflops``: a large float32 matrix product through Keras' ops, the practical
  compute ceiling; with the baseline's cost per image (:func:`model_flops`) it gives the
  ceilings for training (forward + backward, about 3x the forward cost) and inference.
* ``train_images_per_s``: the notebooks' training path (:func:`fer_utils.train.train_model`
  on uint8 arrays, checkpoints included), second epoch, with its ratio to the ceiling, in the
  notebooks' precision (:mod:`fer_utils.device`: bfloat16 mixed precision on CPUs that compute
  bfloat16 natively, with ``matmul_gflops_bf16`` as its ceiling); ``*_float32`` figures are
  the same paths in float32, the "before" of the fast path.
* ``infer_images_per_s``: ``model.predict`` at batch 256, with its ratio to the ceiling.
* ``gradcam_faces_per_s``: Grad-CAM class averages at all five conv layers of the baseline
  (:func:`fer_utils.gradcam.class_average_by_layer`, float32, as notebook 05 computes them), faces a
  second, with the training ceiling as its ceiling (a map needs a forward and a backward pass; it takes no
  weight gradients, so it costs less than a training step and can pass that ceiling).
* ``cold_load_s`` / ``cached_load_s``: the whole data set, into an empty cache and again
  (targets 15 s and 1 s; the cold figure reads files through the OS page cache as found).
* ``peak_memory_mib``: this process's peak resident memory.
* with ``--smoke``: wall time of notebooks 00-01 in the smoke profile (target 3 minutes);
* with ``--layers``: one training step timed layer by layer (:func:`layer_profile`), each layer's
  share of the time beside its share of the FLOPs;
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

from fer_utils.data import load_fer2013
from fer_utils.evaluate import hardware_info, library_versions, peak_memory_mib

TARGETS = {"cold_load_s": 15.0, "cached_load_s": 1.0, "smoke_00_01_s": 180.0,
           "predict_640x480_s": 0.100, "predict_6000x4000_peak_mib": 1024.0}
UNITS = {"predict_6000x4000_peak_mib": "MiB", "peak_memory_mib": "MiB", "matmul_gflops": "GFLOP/s",
         "matmul_gflops_bf16": "GFLOP/s", "train_images_per_s_float32": "img/s", "infer_images_per_s_float32": "img/s",
         "train_images_per_s": "img/s", "infer_images_per_s": "img/s", "gradcam_faces_per_s": "img/s"}


def write_json(path: str | os.PathLike, payload: dict, indent: int = 1, allow_nan: bool = True) -> Path:
    """Write a benchmark's results as JSON, whole or not at all (a temporary file renamed into place)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=indent, allow_nan=allow_nan))
    os.replace(tmp, out)
    return out


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


def measure_matmul(n: int = 4096, repeats: int = 5, dtype: str = "float32") -> float:
    """GFLOP/s of an n x n matrix product in ``dtype`` through the Keras backend (best of ``repeats``)."""
    import keras

    rng = np.random.default_rng(0)
    a = keras.ops.cast(keras.ops.convert_to_tensor(rng.standard_normal((n, n), dtype=np.float32)), dtype)
    b = keras.ops.cast(keras.ops.convert_to_tensor(rng.standard_normal((n, n), dtype=np.float32)), dtype)
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

    from fer_utils.model import build_baseline, compile_model
    from fer_utils.train import train_model

    train, val = data.split("Training"), data.split("PublicTest")
    idx = np.random.default_rng(0).choice(len(train), size=min(images, len(train)), replace=False)
    keras.utils.set_random_seed(0)
    model = compile_model(build_baseline())
    with tempfile.TemporaryDirectory() as folder:
        result = train_model(model, (train.images[idx], train.labels[idx]), (val.images[:64], val.labels[:64]),
                             folder, epochs=2, batch_size=batch_size, seed=0, verbose=0)
    seconds = result.history["epoch_seconds"][-1]
    return {"train_images_per_s": len(idx) / seconds, "train_batch_size": batch_size, "train_images": len(idx)}


def layer_profile(batch_size: int = 128, repeats: int = 5, seed: int = 0) -> list[dict]:
    """Time one training step of the baseline layer by layer (TensorFlow backend).

    Each layer is run alone on a random batch of its real input shape, in training mode, inside a
    compiled ``tf.function``: the forward pass, then forward plus the gradients with respect to its
    input and its weights (what backpropagation asks of it). The median of ``repeats`` runs is kept.
    A last row times the Adam update of all weights. Rows carry each layer's share of the model's
    forward FLOPs beside its share of the summed step time, and its GFLOP/s (forward + backward
    counted as 3x the forward FLOPs).
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        raise NotImplementedError(
            f"the layer-by-layer profile needs the TensorFlow backend (this is {keras.backend.backend()}); "
            "the other figures of the benchmark work on every backend")
    import tensorflow as tf

    from fer_utils.model import build_baseline

    keras.utils.set_random_seed(seed)
    model = build_baseline()
    flops = model_flops(model)
    total_flops = sum(flops.values())
    rng = np.random.default_rng(seed)

    def median_ms(fn, *args) -> float:
        fn(*args)  # trace and warm up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(*args)
            times.append(time.perf_counter() - t0)
        return 1000 * float(np.median(times))

    rows = []
    for layer in model.layers:
        shape = (batch_size, *layer.input.shape[1:])
        x = tf.constant(rng.standard_normal(shape).astype(np.float32) * 50 + 100)
        weights = layer.trainable_weights

        @tf.function(jit_compile=False, reduce_retracing=True)
        def forward(x, layer=layer):
            return layer(x, training=True)

        @tf.function(jit_compile=False, reduce_retracing=True)
        def forward_backward(x, layer=layer, weights=weights):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
                loss = tf.reduce_sum(y)
            return tape.gradient(loss, [x, *weights])

        fwd, both = median_ms(forward, x), median_ms(forward_backward, x)
        rows.append({"layer": layer.name, "type": type(layer).__name__, "forward_ms": fwd,
                     "forward_backward_ms": both, "flop_share": flops.get(layer.name, 0.0) / total_flops,
                     "gflops": 3 * flops.get(layer.name, 0.0) * batch_size / both / 1e6 if both else 0.0})
    optimizer = keras.optimizers.Adam(1e-3)
    variables = model.trainable_variables
    grads = [tf.constant(rng.standard_normal(v.shape).astype(np.float32) * 1e-3) for v in variables]
    optimizer.build(variables)

    @tf.function(jit_compile=False)
    def update():
        optimizer.apply_gradients(zip(grads, variables))

    rows.append({"layer": "adam_update", "type": "Adam", "forward_ms": 0.0, "forward_backward_ms": median_ms(update),
                 "flop_share": 0.0, "gflops": 0.0})
    step_ms = sum(r["forward_backward_ms"] for r in rows)
    for r in rows:
        r["time_share"] = r["forward_backward_ms"] / step_ms if step_ms else 0.0
    return rows


def profile_by_type(rows: list[dict]) -> dict[str, dict[str, float]]:
    """:func:`layer_profile`'s rows summed by layer type: milliseconds, share of time, share of FLOPs."""
    groups: dict[str, dict[str, float]] = {}
    for r in rows:
        g = groups.setdefault(r["type"], {"ms": 0.0, "time_share": 0.0, "flop_share": 0.0, "layers": 0})
        g["ms"] += r["forward_backward_ms"]
        g["time_share"] += r["time_share"]
        g["flop_share"] += r["flop_share"]
        g["layers"] += 1
    return dict(sorted(groups.items(), key=lambda kv: -kv[1]["ms"]))


def format_layer_profile(rows: list[dict], batch_size: int) -> str:
    """A fixed-width table of :func:`layer_profile`'s rows, with the summed step time."""
    lines = [f"{'layer':<14}{'type':<20}{'fwd ms':>8}{'fwd+bwd ms':>11}{'time %':>8}{'FLOP %':>8}{'GFLOP/s':>9}"]
    for r in rows:
        lines.append(f"{r['layer']:<14}{r['type']:<20}{r['forward_ms']:8.1f}{r['forward_backward_ms']:11.1f}"
                     f"{100 * r['time_share']:8.1f}{100 * r['flop_share']:8.1f}{r['gflops']:9.0f}")
    step = sum(r["forward_backward_ms"] for r in rows)
    lines.append(f"sum of layers: {step:.0f} ms per step of {batch_size} images "
                 f"({1000 * batch_size / step:.0f} images/s if nothing else cost time)")
    lines.append("by type: " + "; ".join(f"{name} {g['ms']:.0f} ms ({100 * g['time_share']:.0f} % of the time, "
                                          f"{100 * g['flop_share']:.0f} % of the FLOPs)"
                                          for name, g in profile_by_type(rows).items() if g["time_share"] >= 0.01))
    return "\n".join(lines)


def measure_inference(data, images: int, batch_size: int = 256) -> float:
    """Inference images/s of ``model.predict`` (second call timed)."""
    from fer_utils.model import build_baseline

    model = build_baseline()
    x = data.split("PrivateTest").images[:images]
    model.predict(x, batch_size=batch_size, verbose=0)
    t0 = time.perf_counter()
    model.predict(x, batch_size=batch_size, verbose=0)
    return len(x) / (time.perf_counter() - t0)


def measure_gradcam(data, images: int, batch_size: int = 256) -> float:
    """Faces a second of Grad-CAM class averages at every conv layer of the baseline (float32; each
    face counted as correctly classified, so every face is mapped; second call timed)."""
    from fer_utils.gradcam import class_average_by_layer
    from fer_utils.model import CONV_LAYERS, build_baseline

    model = build_baseline()
    private = data.split("PrivateTest")
    x, y = private.images[:images], private.labels[:images]
    layers = list(CONV_LAYERS)
    class_average_by_layer(model, x[:batch_size], y[:batch_size], layers, predicted=y[:batch_size])
    t0 = time.perf_counter()
    class_average_by_layer(model, x, y, layers, batch_size=batch_size, predicted=y)
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
    from .runner import run

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
    parser.add_argument("--layers", action="store_true",
                        help="also profile one training step layer by layer (about a minute)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    import keras

    if args.layers and keras.backend.backend() != "tensorflow":
        parser.error(f"--layers needs the TensorFlow backend (KERAS_BACKEND is {keras.backend.backend()})")

    from fer_utils.device import choose_precision

    figures = measure_load(args.data)
    data = load_fer2013(args.data)
    n = 512 if args.quick else 4096
    figures["matmul_gflops"] = measure_matmul(n)
    from fer_utils.model import build_baseline

    per_image = sum(model_flops(build_baseline()).values()) / 1e9  # shapes only: the same in any precision
    figures["forward_gflop_per_image"] = per_image
    ceilings = {}
    fast = choose_precision("auto")
    # float32 first ("before"), then the notebooks' fast path ("after"), each with its own ceiling
    for policy, suffix in [("float32", "_float32")] + ([(fast, "")] if fast != "float32" else []):
        keras.mixed_precision.set_global_policy(policy)
        gflops = figures["matmul_gflops"] if policy == "float32" else measure_matmul(n, dtype="bfloat16")
        if policy != "float32":
            figures["matmul_gflops_bf16"] = gflops
        # quick: one batch an epoch
        train = measure_training(data, 128 if args.quick else 2048, batch_size=128)
        figures[f"train_images_per_s{suffix}"] = train["train_images_per_s"]
        figures[f"infer_images_per_s{suffix}"] = measure_inference(data, 128 if args.quick else 3589)
        ceilings[f"train_images_per_s{suffix}"] = gflops / (3 * per_image)
        ceilings[f"infer_images_per_s{suffix}"] = gflops / per_image
    if fast == "float32":  # the fast path is float32 here: "after" is "before"
        for key in ("train_images_per_s", "infer_images_per_s"):
            figures[key], ceilings[key] = figures[f"{key}_float32"], ceilings[f"{key}_float32"]
    keras.mixed_precision.set_global_policy("float32")
    figures["gradcam_faces_per_s"] = (measure_gradcam(data, 64, batch_size=32) if args.quick
                                      else measure_gradcam(data, 2048))
    ceilings["gradcam_faces_per_s"] = figures["matmul_gflops"] / (3 * per_image)
    if args.smoke:
        figures.update(measure_smoke())
    if args.predict:
        figures.update(measure_predict(args.predict))
    layer_batch = 16 if args.quick else 128
    profiles = {}
    if args.layers:  # each precision the benchmark measured, float32 first
        for policy in dict.fromkeys(["float32", fast]):
            keras.mixed_precision.set_global_policy(policy)
            profiles[policy] = layer_profile(batch_size=layer_batch, repeats=2 if args.quick else 5)
        keras.mixed_precision.set_global_policy("float32")
    figures["peak_memory_mib"] = peak_memory_mib()
    figures["bench_seconds"] = time.perf_counter() - started

    print(f"machine: {hardware_info()['cpu']}, {os.cpu_count()} cores{' (quick mode)' if args.quick else ''}; "
          f"fast path (the notebooks' precision): {fast}")
    ok = True
    for key, value in figures.items():
        unit = UNITS.get(key, "s" if key.endswith("_s") else "")
        line = f"{key:>27}: {value:10.3f} {unit:<7}"
        if key in ceilings:
            line += f" ceiling {ceilings[key]:8.1f} {unit}  ratio {value / ceilings[key]:.2f}"
            if not key.endswith("_float32") and f"{key}_float32" in ceilings and fast != "float32":
                line += f"  ({value / ceilings[key + '_float32']:.2f} of the float32 ceiling)"
        if key in TARGETS and not args.quick:
            passed = value <= TARGETS[key]
            ok &= passed
            line += f" target <= {TARGETS[key]:g} {unit}  {'ok' if passed else 'MISSED'}"
        print(line)
    for policy, rows in profiles.items():
        print(f"\none training step, layer by layer (batch {layer_batch}, {policy}):")
        print(format_layer_profile(rows, layer_batch))
    if args.json:
        payload = {"figures": {k: round(float(v), 4) for k, v in figures.items()},
                   "ceilings": {k: round(v, 2) for k, v in ceilings.items()},
                   "targets": TARGETS, "quick": args.quick, "fast_path_precision": fast, "hardware": hardware_info(),
                   "versions": library_versions(),
                   "layer_profile": {policy: [{k: (round(v, 4) if isinstance(v, float) else v)
                                               for k, v in r.items()} for r in rows]
                                     for policy, rows in profiles.items()}}
        write_json(args.json, payload, indent=2, allow_nan=False)
    return 0 if ok else 1


def measure_predict(model_path: str | os.PathLike, repeats: int = 20) -> dict:
    """Median seconds to process a 640x480 photo with one face (model loaded), and the peak
    memory of a whole ``fer-predict`` process on a 6000x4000 photo."""
    import subprocess

    import matplotlib
    from PIL import Image

    from fer_utils.predict import Predictor, load_model

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
