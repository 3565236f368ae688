"""Does the fast path (bfloat16 mixed precision) change what the baseline learns?

    python benchmarks/precision_check.py --precision mixed_bfloat16 --epochs 2 \
        --reference runs/cpu/baseline/history.csv --json benchmarks/results/precision_check_cpu.json

Trains the baseline on the full Training split exactly as notebook 01 does (seed 42, batch 128,
Adam 1e-3, ``train_model``), for a few epochs, in the given precision, and prints PublicTest
loss and accuracy per epoch beside those of a reference run's history (a float32 run of the same
seed and settings), then the PrivateTest accuracy of the last epoch's model.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Train, compare per epoch with the reference history, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--reference", default=None, help="history.csv of a float32 run with the same settings")
    parser.add_argument("--data", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import keras

    from fer_utils.data import SPLITS, load_fer2013
    from fer_utils.evaluate import classification_metrics, hardware_info, library_versions, predict_labels
    from fer_utils.model import build_baseline, compile_model
    from fer_utils.device import set_precision
    from fer_utils.train import read_history, train_model

    policy = set_precision(args.precision)
    data = load_fer2013(args.data)
    train, public, private = (data.split(s) for s in SPLITS)
    keras.utils.set_random_seed(args.seed)
    model = compile_model(build_baseline())
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        result = train_model(model, (train.images, train.labels), (public.images, public.labels), folder,
                             epochs=args.epochs, batch_size=128, seed=args.seed, verbose=2)
        seconds = time.perf_counter() - t0
    _, predicted = predict_labels(model, private.images)  # the last epoch's weights
    private_acc = classification_metrics(private.labels, predicted)["accuracy"]
    ours = result.history
    ref = read_history(Path(args.reference)) if args.reference else {}
    print(f"{'epoch':>5} {'val_loss':>9} {'val_acc':>8} {'ref val_loss':>13} {'ref val_acc':>12}")
    for i, epoch in enumerate(ours["epoch"]):
        ref_loss = ref["val_loss"][i] if i < len(ref.get("val_loss", [])) else float("nan")
        ref_acc = ref["val_accuracy"][i] if i < len(ref.get("val_accuracy", [])) else float("nan")
        print(f"{epoch:5d} {ours['val_loss'][i]:9.4f} {ours['val_accuracy'][i]:8.4f} {ref_loss:13.4f} {ref_acc:12.4f}")
    print(f"PrivateTest accuracy after epoch {ours['epoch'][-1]} ({policy}): {private_acc:.4f}; "
          f"{result.images_per_second:.1f} training images/s; {seconds:.0f} s")
    if args.json:
        payload = {"precision": policy, "epochs": args.epochs, "seed": args.seed, "batch_size": 128,
                   "train_images": len(train), "history": ours,
                   "reference": {k: ref.get(k, [])[:args.epochs] for k in ("val_loss", "val_accuracy", "accuracy", "loss")},
                   "reference_file": args.reference, "private_accuracy_last_epoch": private_acc,
                   "images_per_second": result.images_per_second, "seconds": seconds,
                   "hardware": hardware_info(), "versions": library_versions()}
        Path(args.json).write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
