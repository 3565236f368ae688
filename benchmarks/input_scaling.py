"""The model's input scaling, decided on the genuine data: the report's division by 255 against
per-image standardisation, same seed, epochs, optimiser and precision, on the full data.

Both runs train the baseline CNN on Training and choose their epoch on PublicTest; the decision is
made on PublicTest only (PrivateTest is never looked at here). Each training checkpoints every epoch,
so an interrupted run resumes: run the same command again.

    python benchmarks/input_scaling.py --epochs 12                  # both scalings, in turn
    python benchmarks/input_scaling.py --epochs 12 --only rescale   # one of them

Results go to ``benchmarks/results/input_scaling_cpu.json`` (per-epoch curves, kept epoch, PublicTest
accuracy with its interval, McNemar between the two kept models, provenance), rewritten after each
scaling finishes. :func:`fer_utils.experiment.describe_input_scaling` turns it into the decision that
notebook 01 prints.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from fer_study.bench import write_json  # noqa: E402
from fer_utils.data import load_fer2013  # noqa: E402
from fer_utils.evaluate import library_versions, hardware_info, predict_labels  # noqa: E402
from fer_utils.compare import scaling_comparison  # noqa: E402
from fer_utils.model import INPUT_NORMS, build_baseline, compile_model  # noqa: E402
from fer_utils.device import set_precision  # noqa: E402
from fer_utils.notebook import resolve, shown  # noqa: E402
from fer_utils.train import train_model  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "input_scaling_cpu.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="data set (default: $FER2013_DIR)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--run-dir", default="runs/input_scaling")
    parser.add_argument("--only", choices=INPUT_NORMS, action="append")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)

    started = time.perf_counter()
    data = load_fer2013(args.data)
    verdict = getattr(data, "verification", None)
    print(f"data: {data.source}; verification: {verdict.summary() if verdict else 'not run'}", flush=True)
    train, public = data.split("Training"), data.split("PublicTest")
    policy = set_precision("auto")
    out = Path(args.out)
    payload = json.loads(out.read_text()) if out.exists() else {"runs": {}}
    for norm in args.only or INPUT_NORMS:
        print(f"== input_norm={norm}: {args.epochs} epochs, seed {args.seed}, {policy}", flush=True)
        keras.utils.set_random_seed(args.seed)
        model = compile_model(build_baseline(input_norm=norm), learning_rate=1e-3)
        result = train_model(model, (train.images, train.labels), (public.images, public.labels),
                             resolve(args.run_dir) / norm, epochs=args.epochs,
                             batch_size=args.batch_size, seed=args.seed)
        print(result.describe(), flush=True)
        _, predicted = predict_labels(result.model, public.images)
        payload["runs"][norm] = {
            "history": {k: [float(v) for v in vals] for k, vals in result.history.items()},
            "best_epoch": result.best_epoch,
            "train_seconds": round(result.train_seconds, 1),
            "images_per_second": round(result.images_per_second, 1),
            "public_predictions": predicted.astype(int).tolist(),
        }
        payload["public_labels"] = public.labels.astype(int).tolist()
        payload["provenance"] = {
            "script": "benchmarks/input_scaling.py", "epochs": args.epochs, "batch_size": args.batch_size,
            "seed": args.seed, "optimizer": "Adam 1e-3", "precision": policy,
            "data_counts": {"splits": data.split_counts(), "source": data.source,
                            "verification": verdict.summary() if verdict else None},
            "run_dir": shown(resolve(args.run_dir)), "versions": library_versions(),
            "hardware": hardware_info(),
            "wall_seconds_last_session": round(time.perf_counter() - started, 1),
        }
        if set(INPUT_NORMS) <= set(payload["runs"]):
            payload["comparison"] = scaling_comparison(payload)
        write_json(out, payload)
        print(f"wrote {shown(out)}", flush=True)
    if "comparison" in payload:
        print(json.dumps(payload["comparison"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
