"""How long, and on what learning-rate schedule, should the augmented models of notebook 04 train?

    python benchmarks/augment_schedule.py --epochs 24 --epoch-seconds-from runs/reference/augment_report/history.csv \
        --json benchmarks/results/augment_schedule_cpu.json
    python benchmarks/augment_schedule.py --epochs 24 --probe      # time the epochs here (TensorFlow)

Reads the augmented trainings made under the plateau rule (``results/augment-plateau``: 40-epoch
cap, rate lowered tenfold after 3 epochs without a lower PublicTest loss) beside the published baseline's, and says
from their curves what held them back: when the rate dropped, how far each was from fitting its training
data at the end, and whether its PublicTest curve was still rising. Then it takes the time an augmented
epoch costs on this machine (from a finished training's history, or timed here with ``--probe``) and says
how long a cosine schedule of ``--epochs`` takes, whether that fits the budget (the reference profile
gives a training about two hours), and the longest that would, up to the report's 60 epochs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fer_utils.history import read_history  # noqa: E402

REPORT_EPOCHS = 60  # the report trained its augmentation 60 epochs (a constant rate)


def curve_facts(history: dict[str, list[float]]) -> dict:
    """What one training's history says: the epochs at each learning rate, the fit at the end, the
    PublicTest curve's best and its gain over the last five epochs, the epoch of lowest PublicTest loss."""
    rates = history.get("learning_rate", [])
    drops = [i + 1 for i in range(1, len(rates)) if rates[i] < 0.5 * rates[i - 1]]
    acc, val = history["accuracy"], history["val_accuracy"]
    best = max(range(len(val)), key=val.__getitem__)
    return {"epochs": len(val), "rate_dropped_at_epochs": drops,
            "train_accuracy_last": round(acc[-1], 3), "publictest_best": round(val[best], 3),
            "publictest_best_epoch": best + 1,
            "publictest_gain_last_5": round(val[-1] - val[-6], 3) if len(val) > 5 else None,
            "publictest_loss_lowest_epoch": 1 + min(range(len(val)), key=history["val_loss"].__getitem__),
            "median_epoch_seconds": round(statistics.median(history["epoch_seconds"]), 1)}


def probe_epoch_seconds(images_per_pass: int = 1024) -> dict[str, float]:
    """Seconds a full-data epoch takes here for the baseline and each recipe (Training at the speed of
    :func:`fer_utils.device.training_throughputs`'s best pass, in the precision notebook 04 uses)."""
    import keras

    from fer_utils.data import load_fer2013
    from fer_utils.device import set_precision, training_throughputs
    from fer_utils.model import build_baseline, compile_model

    set_precision("auto")
    train = load_fer2013(None).split("Training")
    models = {}
    for recipe in (None, "report", "face"):
        keras.utils.set_random_seed(42)
        models[recipe or "none"] = compile_model(build_baseline(augmentation=recipe, seed=42))
    passes = training_throughputs(models, train.images, train.labels, images_per_pass=images_per_pass, rounds=2)
    return {name: round(len(train) / max(p), 1) for name, p in passes.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results/reference", help="the published run's results folder (the baseline)")
    parser.add_argument("--plateau", default="results/augment-plateau",
                        help="the augmented trainings on the plateau rule")
    parser.add_argument("--epoch-seconds-from", metavar="HISTORY", help="a full-data augmented training's history.csv")
    parser.add_argument("--probe", action="store_true", help="time the epochs on this machine instead (TensorFlow)")
    parser.add_argument("--epochs", type=int, required=True, help="the cosine schedule's length to check")
    parser.add_argument("--budget-minutes", type=float, default=120.0, help="the most one training may take")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    facts = {"baseline": curve_facts(read_history(root / args.results / "baseline_history.csv"))}
    facts.update({name: curve_facts(read_history(root / args.plateau / f"{name}_history.csv"))
                  for name in ("augment_report", "augment_face")})
    for name, f in facts.items():
        print(f"{name}: {f['epochs']} epochs, rate lowered at epochs {f['rate_dropped_at_epochs'] or 'never'}; "
              f"training accuracy {f['train_accuracy_last']:.3f} at the end; PublicTest best {f['publictest_best']:.3f} "
              f"at epoch {f['publictest_best_epoch']}, {f['publictest_gain_last_5']:+.3f} over its last 5 epochs; "
              f"PublicTest loss lowest at epoch {f['publictest_loss_lowest_epoch']}")
    if args.probe:
        seconds = probe_epoch_seconds()
        where = "timed here"
    elif args.epoch_seconds_from:
        history = read_history(args.epoch_seconds_from)
        # the fastest epoch is the machine's own speed: an epoch that shared the cores with other work only ran slower
        seconds = {"augmented": round(min(history["epoch_seconds"]), 1)}
        where = f"the fastest of {len(history['epoch_seconds'])} epochs of {args.epoch_seconds_from}"
    else:
        parser.error("give --epoch-seconds-from HISTORY or --probe")
    epoch = max(v for k, v in seconds.items() if k != "none")
    fit = min(REPORT_EPOCHS, int(args.budget_minutes * 60 // epoch))
    minutes = args.epochs * epoch / 60
    fits = minutes <= args.budget_minutes
    print(f"an augmented epoch: {epoch:.0f} s ({where}); a cosine over {args.epochs} epochs takes {minutes:.0f} min, "
          f"{'within' if fits else 'over'} the budget of {args.budget_minutes:.0f} min, which allows up to {fit} "
          f"(the report trained {REPORT_EPOCHS}, at a constant rate)")
    if args.json:
        from fer_utils.evaluate import hardware_info, library_versions

        payload = {"what": "benchmarks/augment_schedule.py", "curves": facts, "epoch_seconds": seconds,
                   "epoch_seconds_source": where, "budget_minutes": args.budget_minutes,
                   "epochs_that_fit": fit, "epochs": args.epochs, "minutes": round(minutes, 1), "fits": fits,
                   "schedule": "cosine",
                   "hardware": hardware_info(), "versions": library_versions()}
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
