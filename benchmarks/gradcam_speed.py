"""Grad-CAM at every conv layer of the baseline: one pass per layer, one pass for all layers, and that pass compiled.

    python benchmarks/gradcam_speed.py [--data PATH] [--faces N]

Notebook 05 maps the shipped baseline's five conv layers for every correctly classified PrivateTest
face. Three ways, on the same faces and the same model (float32, as Grad-CAM computes):

* ``per_layer``: :func:`fer_utils.gradcam.gradcam_layers` called once per layer, each call its own
  forward and backward pass;
* ``one_pass``: one call for all five layers, a forward and a backward pass in all, taken op by op;
* ``one_pass_compiled``: the same passes traced once into one graph and kept with the model
  (``compiled=True``, :func:`fer_utils.gradcam.class_average_by_layer`'s way).

Each is timed twice, best kept, in faces a second, with its ratio to the ceiling measured in the same
run: the float32 matrix-product rate divided by a face's forward and backward cost (three times the
forward's FLOPs; Grad-CAM takes no weight gradients, so it can pass that figure). All three ways must give the
same maps. Results go to
``benchmarks/results/gradcam_speed_cpu.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from fer_study.bench import measure_matmul, model_flops, write_json  # noqa: E402
from fer_utils.data import load_fer2013, repo_root  # noqa: E402
from fer_utils.evaluate import hardware_info, library_versions  # noqa: E402
from fer_utils.model import CONV_LAYERS  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "gradcam_speed_cpu.json"
BATCH = 256


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--faces", type=int, default=1024, help="PrivateTest faces to map (default 1024)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    import keras

    import fer_utils.model  # noqa: F401 - registers the study's layers for loading
    from fer_utils.gradcam import gradcam_layers

    model = keras.saving.load_model(repo_root() / "models" / "baseline.keras")
    private = load_fer2013(args.data).split("PrivateTest")
    images, labels = private.images[:args.faces], private.labels[:args.faces]
    layers = list(CONV_LAYERS)

    def per_layer(x, y):
        return np.stack([gradcam_layers(model, x, [layer], class_index=y)[:, 0] for layer in layers], axis=1)

    def one_pass(x, y):
        return gradcam_layers(model, x, layers, class_index=y)

    def one_pass_compiled(x, y):
        return gradcam_layers(model, x, layers, class_index=y, compiled=True)

    ways = {"per_layer": per_layer, "one_pass": one_pass, "one_pass_compiled": one_pass_compiled}
    maps, rates = {}, {}
    for name, way in ways.items():
        way(images[:BATCH], labels[:BATCH])  # warm-up: tracing, allocating
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            maps[name] = np.concatenate([way(images[i:i + BATCH], labels[i:i + BATCH])
                                         for i in range(0, len(images), BATCH)])
            best = min(best, time.perf_counter() - start)
        rates[name] = len(images) / best
    difference = max(float(np.abs(maps["per_layer"] - maps[name]).max()) for name in ("one_pass", "one_pass_compiled"))
    gflops = measure_matmul(4096)
    per_face = 3 * sum(model_flops(model).values()) / 1e9
    ceiling = gflops / per_face
    result = {
        "faces": len(images), "layers": layers, "batch_size": BATCH, "model": "models/baseline.keras",
        "matmul_gflops_float32": round(gflops, 1), "ceiling_faces_per_s": round(ceiling, 1),
        "faces_per_s": {name: round(rate, 1) for name, rate in rates.items()},
        "ratio_to_ceiling": {name: round(rate / ceiling, 3) for name, rate in rates.items()},
        "speedup": round(rates["one_pass"] / rates["per_layer"], 2),
        "speedup_compiled": round(rates["one_pass_compiled"] / rates["one_pass"], 2),
        "largest_map_difference": difference,
        "hardware": hardware_info(), "versions": library_versions(),
        "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for name, rate in rates.items():
        print(f"{name:>17}: {rate:6.1f} faces/s, ceiling {ceiling:.1f} faces/s, ratio {rate / ceiling:.2f}")
    print(f"one pass is {result['speedup']:.2f}x one pass per layer, and compiled {result['speedup_compiled']:.2f}x "
          f"op by op; largest difference between the maps: {difference:.1e}")
    write_json(args.out, result)
    return 0 if difference <= 1e-5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
