"""Training and inference speed of the baseline CNN under one lever at a time.

    python benchmarks/speed_levers.py [--images 2048] [--json benchmarks/results/speed_levers_cpu.json]

Each variant runs in a fresh Python process (thread counts, XLA and precision policies are
process-wide), on the same real FER-2013 training images, the unchanged architecture and
``model.fit`` on uint8 arrays as the notebooks call it: one ``fit`` of two epochs, the second
timed (as ``fer_study.bench`` times it), then ``predict`` on PrivateTest. The figures are
images/s and the ratio to the float32 ceiling the process measures itself (matmul GFLOP/s
divided by the model's FLOPs per image).

Needs ``FER2013_DIR`` (or ``--data``). Takes about 10 minutes on 2 cores (XLA compiles slowly).
The committed results came from ``--images 2048``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

VARIANTS: dict[str, dict] = {
    "default (batch 128)": {},
    "batch 64": {"batch_size": 64},
    "batch 256": {"batch_size": 256},
    "XLA (jit_compile=True)": {"jit_compile": True},
    "threads intra=2 inter=1": {"env": {"TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "1"}},
    "oneDNN off": {"env": {"TF_ENABLE_ONEDNN_OPTS": "0"}},
    "tf.data uint8, prefetch": {"tf_data": True},
    "mixed_bfloat16": {"policy": "mixed_bfloat16"},
}

CHILD = r"""
import json, os, sys, time
import numpy as np
spec = json.loads(sys.argv[1])
import keras
if spec.get("policy"):
    keras.mixed_precision.set_global_policy(spec["policy"])
from fer_study.bench import measure_matmul, model_flops
from fer_utils.data import load_fer2013
from fer_utils.model import build_baseline, compile_model

data = load_fer2013(spec["data"])
train = data.split("Training")
idx = np.random.default_rng(0).choice(len(train), size=spec["images"], replace=False)
x, y = train.images[idx], train.labels[idx]
batch = spec.get("batch_size", 128)
keras.utils.set_random_seed(0)
model = build_baseline()
compile_model(model)
if spec.get("jit_compile"):
    model.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"], jit_compile=True)
times = []
class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):
        times.append(time.perf_counter() - self.t0)
cb = [EpochTimer()]
if spec.get("tf_data"):
    import tensorflow as tf
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0, reshuffle_each_iteration=True)
    ds = ds.batch(batch).prefetch(tf.data.AUTOTUNE)
    model.fit(ds, epochs=2, verbose=0, callbacks=cb)
else:
    model.fit(x, y, batch_size=batch, epochs=2, shuffle=True, verbose=0, callbacks=cb)
train_s = times[-1]
test = data.split("PrivateTest").images
model.predict(test[:1024], batch_size=256, verbose=0)
t0 = time.perf_counter(); model.predict(test, batch_size=256, verbose=0); infer_s = time.perf_counter() - t0
gflops = measure_matmul(4096)
per_image = sum(model_flops(model).values()) / 1e9
print("RESULT " + json.dumps({
    "train_images_per_s": len(x) / train_s, "infer_images_per_s": len(test) / infer_s,
    "matmul_gflops": gflops, "train_ceiling": gflops / (3 * per_image), "infer_ceiling": gflops / per_image,
}))
"""


def run_variant(name: str, spec: dict, data: str | None, images: int) -> dict:
    """Run one variant in a child process and return its figures (or its error)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **spec.get("env", {}))
    child_spec = {k: v for k, v in spec.items() if k != "env"} | {"data": data, "images": images}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(child_spec)], env=env,
                          capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        return {"variant": name, "error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    figures = json.loads(lines[-1][len("RESULT "):])
    figures.update(variant=name, seconds=round(time.perf_counter() - t0, 1), spec=spec)
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run every variant (or those named) and print a table; optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data set path (default: FER2013_DIR)")
    parser.add_argument("--images", type=int, default=2048, help="training images per timed epoch")
    parser.add_argument("--only", nargs="*", default=None, help="variant names to run")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    results = []
    print(f"{'variant':<28} {'train img/s':>11} {'ratio':>6} {'infer img/s':>11} {'ratio':>6}", flush=True)
    for name, spec in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        r = run_variant(name, spec, args.data, args.images)
        results.append(r)
        if "error" in r:
            print(f"{name:<28} failed: {r['error']}", flush=True)
            continue
        print(f"{name:<28} {r['train_images_per_s']:11.1f} {r['train_images_per_s'] / r['train_ceiling']:6.2f} "
              f"{r['infer_images_per_s']:11.1f} {r['infer_images_per_s'] / r['infer_ceiling']:6.2f}", flush=True)
    if args.json:
        from fer_utils.evaluate import hardware_info, library_versions

        payload = {"images": args.images, "results": results, "hardware": hardware_info(),
                   "versions": library_versions()}
        Path(args.json).write_text(json.dumps(payload, indent=2))
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
