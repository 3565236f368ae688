"""How fast does each candidate network of notebook 08 train here, against the baseline and the machine's ceiling?

    python benchmarks/beyond_speed.py --json benchmarks/results/beyond_speed_cpu.json

Notebook 08's network must train within about 6 hours on the 2-core CPU, so its shape is chosen on
measured speed. The models take turns in each round (``fer_utils.device.training_throughputs``),
so a change in the machine's load touches all of them alike; each figure is the best pass. The ceiling
is the matrix product's GFLOP/s in the precision the notebooks train in; a model's achieved GFLOP/s
counts a training step as three forward passes (forward, and the two products of the backward pass).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: name -> build_vgg options (None: the report's baseline); the notebook's choice is ``vgg64``.
CANDIDATES: dict[str, dict | None] = {
    "baseline": None,
    "vgg64": {},
    "vgg64_strong": {"augmentation": "strong"},
    "vgg48": {"width": 48},
    "vgg32": {"width": 32},
    "vgg64_3convs": {"convs_per_stage": 3},
}


def main(argv: list[str] | None = None) -> int:
    """Measure the ceiling and every candidate's training speed; print them and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--images-per-pass", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", default=None, help="default: FER2013_DIR")
    parser.add_argument("--json", default=None)
    parser.add_argument("--note", default="", help="what else ran on the machine, recorded with the figures")
    args = parser.parse_args(argv)

    import keras

    from fer_utils.data import load_fer2013
    from fer_utils.evaluate import hardware_info, library_versions
    from fer_study.bench import measure_matmul, model_flops
    from fer_utils.device import training_throughputs
    from fer_utils.device import set_precision
    from fer_utils.model import build_baseline, build_vgg, compile_model

    started = time.perf_counter()
    policy = set_precision("auto")
    compute = keras.config.dtype_policy().compute_dtype
    ceiling = measure_matmul(dtype=compute)
    print(f"ceiling: {ceiling:.0f} GFLOP/s ({compute} matrix product)", flush=True)
    train = load_fer2013(args.data).split("Training")
    models, flops = {}, {}
    for name, options in CANDIDATES.items():
        keras.utils.set_random_seed(0)
        model = build_baseline() if options is None else build_vgg(**options)
        models[name] = compile_model(model, optimizer="adam" if options is None else "sgd")
        flops[name] = sum(model_flops(model).values())
    passes = training_throughputs(models, train.images, train.labels, batch_size=args.batch_size,
                                  rounds=args.rounds, images_per_pass=args.images_per_pass)
    rows = {}
    for name, speeds in passes.items():
        best = max(speeds)
        achieved = 3 * flops[name] * best / 1e9
        rows[name] = {"params": int(models[name].count_params()), "forward_mflops_per_image": round(flops[name] / 1e6, 1),
                      "images_per_second_best": round(best, 1), "images_per_second_passes": [round(s, 1) for s in speeds],
                      "speed_vs_baseline": round(best / max(passes["baseline"]), 2),
                      "achieved_gflops": round(achieved, 1), "share_of_ceiling": round(achieved / ceiling, 3),
                      "seconds_per_full_epoch": round(len(train) / best)}
        print(f"{name:14s} {rows[name]['params']:>9,} params {rows[name]['forward_mflops_per_image']:7.1f} MFLOP/image "
              f"{best:6.1f} images/s ({rows[name]['speed_vs_baseline']:.2f}x the baseline), "
              f"{achieved:5.1f} GFLOP/s = {achieved / ceiling:.0%} of the ceiling; "
              f"{rows[name]['seconds_per_full_epoch']} s per full-data epoch (training only)", flush=True)
    if args.json:
        payload = {"benchmark": "beyond_speed", "precision": policy, "ceiling_gflops": round(ceiling, 1),
                   "batch_size": args.batch_size, "images_per_pass": args.images_per_pass, "rounds": args.rounds,
                   "train_images": len(train), "models": rows, "hardware": hardware_info(),
                   "versions": library_versions(), "wall_seconds": round(time.perf_counter() - started, 1),
                   "measured_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                   "note": args.note or "nothing else noted on the machine"}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
        print(f"written: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
