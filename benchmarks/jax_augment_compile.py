"""Under JAX, what does compiling the augmented models' steps buy? Before and after, in one process.

    KERAS_BACKEND=jax python benchmarks/jax_augment_compile.py --json benchmarks/results/jax_augment_compile_cpu.json

Keras marks its rotation, zoom and translation layers as not compilable (TensorFlow's XLA lacks their
image transform), and one such layer keeps Keras from compiling a whole model's steps; under JAX every
operation then runs one at a time. ``fer_utils.augment`` marks the study's augmentation layers
compilable under JAX. This script times a training step of the study's two augmented models both ways:

* ``before``: the layers marked as Keras marks them (the model's steps run uncompiled);
* ``after``: the layers as ``fer_utils.augment`` makes them (compiled steps).

Models: notebook 04's baseline CNN with the ``face`` recipe, and notebook 08's VGG-style network at
width 48 with the ``strong`` recipe, on random uint8 faces in batches of 128, in the precision
``auto`` picks here. For each: the first ``fit`` (compiling, for ``after``), then the best and the
median of timed passes of ``--steps`` steps, the step's GFLOP/s (three forward passes' worth,
:func:`fer_study.bench.model_flops`) and its share of the ceiling measured in the same
process (:func:`fer_study.bench.measure_matmul` in the layers' compute precision).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def time_steps(build, x, y, *, batch_size: int, steps: int, passes: int) -> dict:
    """First fit (one pass of ``steps`` batches), then ``passes`` timed passes: seconds per step."""
    model = build()
    began = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    first = time.perf_counter() - began
    times = []
    for _ in range(passes):
        began = time.perf_counter()
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
        times.append((time.perf_counter() - began) / steps)
    return {"compiled": bool(model.jit_compile), "first_fit_s": round(first, 2),
            "best_step_s": min(times), "median_step_s": statistics.median(times)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="steps per timed pass (default 4)")
    parser.add_argument("--passes", type=int, default=3, help="timed passes (default 3)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    if keras.backend.backend() != "jax":
        print("run it with KERAS_BACKEND=jax: the compile question is JAX's", file=sys.stderr)
        return 2
    from fer_utils.device import describe_device
    from fer_study.bench import measure_matmul, model_flops
    from fer_utils.device import set_precision
    from fer_utils.model import build_baseline, build_vgg, compile_model

    policy = set_precision("auto")
    compute = "bfloat16" if "bfloat16" in policy else "float32"
    ceiling = measure_matmul(dtype=compute)
    print(f"{describe_device()} · precision {policy} · ceiling {ceiling:.0f} GFLOP/s ({compute} matrix product)")
    batch = 128
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch * args.steps, 48, 48, 1)).astype("uint8")
    y = rng.integers(0, 7, batch * args.steps)
    models = {"04 baseline + face": lambda: build_baseline(augmentation="face", seed=0),
              "08 VGG width 48 + strong": lambda: build_vgg(width=48, augmentation="strong", seed=0)}
    results = {"device": describe_device(), "precision": policy, "ceiling_gflops": round(ceiling, 1),
               "batch_size": batch, "steps": args.steps, "passes": args.passes, "models": {}}
    for name, make in models.items():
        flops = 3 * sum(model_flops(make()).values())
        for variant in ("before", "after"):
            def build(make=make, variant=variant):
                model = make()
                if variant == "before":  # as Keras marks its own layers
                    for layer in model._flatten_layers():
                        if layer.name.startswith("aug_") and type(layer).__name__ in (
                                "RandomRotation", "RandomZoom", "RandomTranslation"):
                            layer.supports_jit = False
                return compile_model(model)

            row = time_steps(build, x, y, batch_size=batch, steps=args.steps, passes=args.passes)
            gflops = flops * batch / row["best_step_s"] / 1e9
            row.update(images_per_s=round(batch / row["best_step_s"], 1), gflops=round(gflops, 1),
                       share_of_ceiling=round(gflops / ceiling, 4))
            row["best_step_s"], row["median_step_s"] = round(row["best_step_s"], 4), round(row["median_step_s"], 4)
            results["models"].setdefault(name, {})[variant] = row
            print(f"{name:<26} {variant:<7} compiled={row['compiled']!s:<5} first fit {row['first_fit_s']:6.1f} s, "
                  f"step {row['best_step_s'] * 1000:7.1f} ms (median {row['median_step_s'] * 1000:.1f}), "
                  f"{row['images_per_s']:6.1f} images/s, {row['gflops']:6.1f} GFLOP/s = "
                  f"{100 * row['share_of_ceiling']:.1f} % of the ceiling", flush=True)
        before, after = results["models"][name]["before"], results["models"][name]["after"]
        print(f"{name}: compiled steps {before['best_step_s'] / after['best_step_s']:.2f} times as fast")
    if args.json:
        results["measured_utc"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        results["cpu_load_note"] = "cores shared with other work unless stated in the README"
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "jax")
    raise SystemExit(main())
