"""Would a lower learning rate after the plateau close the gap between the baseline and the report?

    python benchmarks/lr_drop_check.py --checkpoint runs/reference/baseline/best.keras \
        --learning-rate 1e-4 --epochs 4 --json benchmarks/results/lr_drop_check_cpu.json

The reference run's baseline (Adam 1e-3, constant) stops improving near 0.57 PublicTest accuracy
while its training accuracy is still climbing and its validation accuracy jumps by several points
from one epoch to the next; the report's curve sits at 0.64-0.65. Noisy validation at a plateau is
what a learning rate too large for the last stretch of training looks like. This check takes the
run's best checkpoint (weights and Adam's state), lowers the learning rate, trains on for a few
epochs exactly as notebook 01 does (same data, batch size and seed), and records PublicTest and
PrivateTest accuracy after every epoch. A clear, lasting rise says the schedule, not the data or the
architecture, holds the baseline back.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    """Train on from the checkpoint at the lower rate; print and write each epoch's scores."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a training checkpoint (.keras with its optimizer)")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data", default=None, help="default: FER2013_DIR")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import keras

    import fer_utils.model  # noqa: F401  (registers the model's own layers for loading)
    from fer_utils.data import SPLITS, load_fer2013
    from fer_utils.evaluate import hardware_info, library_versions
    from fer_utils.device import set_precision
    from fer_utils.notebook import shown

    checkpoint = Path(args.checkpoint)
    if not checkpoint.is_file():
        print(f"lr_drop_check: no checkpoint at {checkpoint}", file=sys.stderr)
        return 2
    policy = set_precision("auto")
    data = load_fer2013(args.data)
    train, public, private = (data.split(s) for s in SPLITS)
    model = keras.saving.load_model(checkpoint)
    if model.optimizer is None:
        print(f"lr_drop_check: {checkpoint} holds no optimizer state; it needs a training checkpoint",
              file=sys.stderr)
        return 2
    before = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    model.optimizer.learning_rate.assign(args.learning_rate)
    keras.utils.set_random_seed(args.seed)

    def accuracy(split) -> float:
        probs = model.predict(split.images, batch_size=512, verbose=0)
        return float(np.mean(probs.argmax(1) == split.labels))

    rows = [{"epoch": 0, "public_accuracy": accuracy(public), "private_accuracy": accuracy(private)}]
    print(f"checkpoint: PublicTest {rows[0]['public_accuracy']:.4f}, PrivateTest "
          f"{rows[0]['private_accuracy']:.4f}; learning rate {before:g} -> {args.learning_rate:g}", flush=True)
    result = {
        "what": "benchmarks/lr_drop_check.py: train on from a checkpoint at a lower learning rate",
        "checkpoint": shown(checkpoint), "learning_rate_before": before,
        "learning_rate": args.learning_rate, "batch_size": args.batch_size, "seed": args.seed,
        "precision": policy, "data": data.verification.summary() if data.verification else "not verified",
        "train_images": len(train), "hardware": hardware_info(), "versions": library_versions(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "epochs": rows,
    }
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        history = model.fit(train.images, train.labels, batch_size=args.batch_size, epochs=1,
                            shuffle=True, verbose=0)
        seconds = time.perf_counter() - t0
        rows.append({"epoch": epoch, "seconds": round(seconds, 1),
                     "train_accuracy": float(history.history["accuracy"][-1]),
                     "train_loss": float(history.history["loss"][-1]),
                     "public_accuracy": accuracy(public), "private_accuracy": accuracy(private)})
        print(json.dumps(rows[-1]), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
