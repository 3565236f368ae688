"""Where does JAX's extra time on this CPU go? Compiling, or each training step?

    python benchmarks/backend_speed.py --json benchmarks/results/backend_speed_cpu.json

The smoke study takes about twice as long on JAX as on TensorFlow here (README, "JAX against
TensorFlow on a CPU"). This script splits that into its two parts, for the report's baseline CNN on
real Training faces, in each backend and precision, each configuration in a fresh process (a Keras
backend is fixed per process) with JAX's on-disk compilation cache off, so every compile is cold:

* ``first_fit_s``: building the model and its first ``fit`` of one epoch in the smoke profile's shapes
  (574 images in batches of 64, so a full and a partial batch, and a validation pass): what each of the
  smoke study's trainings pays before its steps run at full speed;
* ``images_per_s``: the best of the timed training passes after that
  (:func:`fer_utils.device.training_throughputs`), and their median: this machine's passes
  come in steps (the same model alternates between about 99 and 138 images/s), so look at both;
* ``ceiling_gflops``: the same process's matrix product in the precision the layers compute in, and
  ``share_of_ceiling``, the training step's GFLOP/s (three forward passes' worth) against it.

Configurations also try XLA's ``--xla_cpu_use_onednn`` (oneDNN for XLA's convolutions and matrix
products on a CPU), a lever for JAX's steps. Run it with the machine otherwise idle: the figures are
only comparable with each other within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: (name, backend, dtype policy, XLA_FLAGS)
CONFIGS: list[tuple[str, str, str, str]] = [
    ("tensorflow_bfloat16", "tensorflow", "mixed_bfloat16", ""),
    ("tensorflow_float32", "tensorflow", "float32", ""),
    ("jax_float32", "jax", "float32", ""),
    ("jax_bfloat16", "jax", "mixed_bfloat16", ""),
    ("jax_float32_onednn", "jax", "float32", "--xla_cpu_use_onednn=true"),
]
SMOKE_IMAGES, SMOKE_BATCH, SMOKE_VALIDATION = 574, 64, 72


def measure_one(policy: str, data_dir: str | None, rounds: int, images_per_pass: int) -> dict:
    """In this process's backend: ceiling, cold first fit and steady training speed (see the module)."""
    import keras
    import numpy as np

    from fer_utils.data import load_fer2013
    from fer_study.bench import measure_matmul, model_flops
    from fer_utils.device import training_throughputs
    from fer_utils.model import build_baseline, compile_model

    keras.mixed_precision.set_global_policy(policy)
    compute = keras.config.dtype_policy().compute_dtype
    ceiling = measure_matmul(n=2048, dtype=compute)
    data = load_fer2013(data_dir)
    train, public = data.split("Training"), data.split("PublicTest")
    idx = np.random.default_rng(0).choice(len(train), SMOKE_IMAGES, replace=False)
    t0 = time.perf_counter()
    keras.utils.set_random_seed(0)
    model = compile_model(build_baseline())
    model.fit(train.images[idx], train.labels[idx], batch_size=SMOKE_BATCH, epochs=1, verbose=0,
              validation_data=(public.images[:SMOKE_VALIDATION], public.labels[:SMOKE_VALIDATION]))
    first_fit = time.perf_counter() - t0
    flops = sum(model_flops(model).values())
    passes = training_throughputs({"baseline": model}, train.images, train.labels, batch_size=128,
                                  rounds=rounds, images_per_pass=images_per_pass)["baseline"]
    best = max(passes)
    achieved = 3 * flops * best / 1e9
    return {"compute_dtype": compute, "ceiling_gflops": round(ceiling, 1), "first_fit_s": round(first_fit, 1),
            "images_per_s": round(best, 1), "images_per_s_median": round(float(np.median(passes)), 1),
            "images_per_s_passes": [round(p, 1) for p in passes],
            "share_of_ceiling": round(achieved / ceiling, 3)}


def main(argv: list[str] | None = None) -> int:
    """Run every configuration in its own process; print the comparison and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="default: FER2013_DIR")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images-per-pass", type=int, default=512)
    parser.add_argument("--only", nargs="*", default=None, help="configuration names (default: all)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--note", default="", help="what else ran on the machine, recorded with the figures")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child process: one policy
    args = parser.parse_args(argv)

    if args.one:
        print("RESULT " + json.dumps(measure_one(args.one, args.data, args.rounds, args.images_per_pass)), flush=True)
        return 0

    from fer_utils.evaluate import hardware_info, library_versions

    unknown = set(args.only or []) - {name for name, *_ in CONFIGS}
    if unknown:
        parser.error(f"unknown configuration(s) {sorted(unknown)}; choose from {[name for name, *_ in CONFIGS]}")
    started = time.perf_counter()
    rows = {}
    for name, backend, policy, flags in CONFIGS:
        if args.only and name not in args.only:
            continue
        env = {**os.environ, "KERAS_BACKEND": backend, "XLA_FLAGS": flags, "JAX_ENABLE_COMPILATION_CACHE": "false",
               "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
        command = [sys.executable, __file__, "--one", policy, "--rounds", str(args.rounds),
                   "--images-per-pass", str(args.images_per_pass)] + (["--data", args.data] if args.data else [])
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        result = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode or not result:
            print(f"{name}: failed (exit {done.returncode})\n{done.stderr[-2000:]}", file=sys.stderr)
            return 1
        rows[name] = {"backend": backend, "policy": policy, "xla_flags": flags, **json.loads(result[0][7:])}
        r = rows[name]
        print(f"{name:22s} ceiling {r['ceiling_gflops']:6.0f} GFLOP/s ({r['compute_dtype']}), first fit "
              f"{r['first_fit_s']:5.1f} s, training {r['images_per_s']:6.1f} images/s (median of the passes "
              f"{r['images_per_s_median']:.1f}) = "
              f"{r['share_of_ceiling']:.0%} of the ceiling", flush=True)
    base = rows.get("tensorflow_bfloat16")
    if base:
        for row in rows.values():
            row["step_time_vs_tensorflow_bfloat16"] = round(base["images_per_s"] / row["images_per_s"], 2)
            row["first_fit_vs_tensorflow_bfloat16"] = round(row["first_fit_s"] / base["first_fit_s"], 2)
        print("against TensorFlow's bfloat16 path: "
              + "; ".join(f"{n} steps {r['step_time_vs_tensorflow_bfloat16']:.2f}x as long, first fit "
                          f"{r['first_fit_vs_tensorflow_bfloat16']:.2f}x" for n, r in rows.items() if r is not base))
    if args.json:
        payload = {"configurations": rows, "note": args.note, "hardware": hardware_info(), "versions": library_versions(),
                   "smoke_shapes": {"images": SMOKE_IMAGES, "batch_size": SMOKE_BATCH, "validation": SMOKE_VALIDATION},
                   "rounds": args.rounds, "images_per_pass": args.images_per_pass,
                   "seconds": round(time.perf_counter() - started, 1)}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
