"""Compare training recipes of the baseline CNN on the full data (Training -> PublicTest).

The script trains the unchanged architecture under several recipes (learning rate, batch size, L2 term,
input scaling) and records validation accuracy and loss per epoch, so that the recipe of the long runs is
chosen on evidence (``benchmarks/results/recipe_sweep_cpu_genuine.json``: learning rates on the genuine data).

It uses Keras 3 APIs only, so it runs on any backend (``KERAS_BACKEND=jax`` on a
GPU box, ``tensorflow`` on the CPU). Results are written after every epoch.

    python benchmarks/recipe_sweep.py --data PATH --epochs 10 --out sweep.json [--only A,B] [--precision auto]

``--data`` is anything :func:`fer_utils.data.load_fer2013` reads, or an ``.npz``
with ``images``, ``labels`` and ``splits`` arrays (for machines without the images).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402

from fer_utils.data import SPLITS, load_fer2013  # noqa: E402
from fer_utils.evaluate import hardware_info, library_versions  # noqa: E402
from fer_utils.device import set_precision  # noqa: E402
from fer_utils.model import build_baseline, compile_model  # noqa: E402

#: name -> (learning rate, batch size, L2 on the 512-filter convs, input scaled to [0, 1],
#: extra build_baseline options; the report's [0, 1] rescaling unless they say otherwise).
#: First round: A..H; second: I..N; third: A, O..Q; fourth: R..T (per-image standardization).
RECIPES: dict[str, tuple] = {
    "A_adam1e-3_b128_l2": (1e-3, 128, 0.01, True),
    "B_adam1e-4_b64_l2": (1e-4, 64, 0.01, True),
    "C_adam1e-3_b64_l2": (1e-3, 64, 0.01, True),
    "D_adam3e-4_b64_l2": (3e-4, 64, 0.01, True),
    "E_adam1e-4_b64_nol2": (1e-4, 64, 0.0, True),
    "F_adam1e-3_b128_nol2": (1e-3, 128, 0.0, True),
    "G_adam1e-4_b64_l2_raw255": (1e-4, 64, 0.01, False),
    "H_adam1e-3_b64_l2_raw255": (1e-3, 64, 0.01, False),
    "I_bnfirst_adam1e-4_b64_l2": (1e-4, 64, 0.01, True, {"bn_before_relu": True}),
    "J_bnfirst_adam5e-4_b64_l2": (5e-4, 64, 0.01, True, {"bn_before_relu": True}),
    "K_bnfirst_adam1e-3_b128_l2": (1e-3, 128, 0.01, True, {"bn_before_relu": True}),
    "L_bnfirst_adam1e-3_b64_l2": (1e-3, 64, 0.01, True, {"bn_before_relu": True}),
    "M_bnmom0.9_adam1e-3_b128_l2": (1e-3, 128, 0.01, True, {"bn_momentum": 0.9}),
    "N_bnfirst_bnmom0.9_adam1e-3_b128_l2": (1e-3, 128, 0.01, True,
                                            {"bn_before_relu": True, "bn_momentum": 0.9}),
    "R_std_adam1e-3_b128_l2": (1e-3, 128, 0.01, True, {"input_norm": "standardize"}),
    "S_std_adam1e-4_b64_l2": (1e-4, 64, 0.01, True, {"input_norm": "standardize"}),
    "T_std_adam3e-4_b64_l2": (3e-4, 64, 0.01, True, {"input_norm": "standardize"}),
    # Fifth round, on the genuine data: the report's batch size with smaller learning rates.
    "U_adam1e-4_b128_l2": (1e-4, 128, 0.01, True),
    "V_adam3e-4_b128_l2": (3e-4, 128, 0.01, True),
    "O_nodropout_adam1e-3_b128_l2": (1e-3, 128, 0.01, True, {"dropout": 0.0}),
    "P_nodropout_adam1e-4_b64_l2": (1e-4, 64, 0.01, True, {"dropout": 0.0}),
    "Q_nodropout_nol2_adam1e-3_b128": (1e-3, 128, 0.0, True, {"dropout": 0.0}),
}


def load_arrays(path: str) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str]:
    """Training and PublicTest arrays from an npz or any form the loader reads, and the data's
    verification verdict (or what is known of an npz)."""
    if path.endswith(".npz"):
        with np.load(path) as npz:
            images, labels, splits = npz["images"], npz["labels"], npz["splits"]
        verdict = "npz arrays: not verified"
    else:
        data = load_fer2013(path)
        images, labels, splits = data.images, data.labels, data.splits
        verdict = data.verification.summary() if data.verification is not None else "not verified"
    arrays = {
        name: (images[splits == SPLITS.index(name)], labels[splits == SPLITS.index(name)])
        for name in ("Training", "PublicTest")
    }
    return arrays, verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", default="", help="comma-separated recipe name prefixes")
    parser.add_argument("--out", default="sweep.json")
    parser.add_argument("--precision", default="float32",
                        help="Keras dtype policy, or auto (the notebooks' rule); default float32")
    args = parser.parse_args()

    policy = set_precision(args.precision)
    arrays, verdict = load_arrays(args.data)
    x_tr, y_tr = arrays["Training"]
    x_va, y_va = arrays["PublicTest"]
    wanted = [p for p in args.only.split(",") if p]
    results = {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "machine": platform.platform(),
        "train_images": int(len(y_tr)),
        "val_images": int(len(y_va)),
        "epochs": args.epochs,
        "seed": args.seed,
        "precision": policy,
        "data": verdict,
        "hardware": hardware_info(),
        "versions": library_versions(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "recipes": {},
    }
    out = Path(args.out)
    probe_idx = np.random.default_rng(0).choice(len(y_tr), size=min(3589, len(y_tr)), replace=False)
    for name, (lr, batch, l2, scaled, *extra) in RECIPES.items():
        if wanted and not any(name.startswith(p) for p in wanted):
            continue
        keras.utils.set_random_seed(args.seed)
        options = {"input_norm": "rescale", **(extra[0] if extra else {})}
        model = compile_model(build_baseline(l2=l2, **options), learning_rate=lr)
        # The model divides by 255 itself; multiplying by 255 first feeds it raw 0..255 values.
        factor = 1.0 if scaled else 255.0
        xt = x_tr.astype("float32") * factor
        xv = x_va.astype("float32") * factor
        rows: list[dict] = []
        results["recipes"][name] = {"lr": lr, "batch": batch, "l2": l2, "scaled": scaled,
                                    "options": options, "epochs": rows}
        started = time.perf_counter()

        class Record(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                logs = dict(logs or {})
                # Inference-mode accuracy on a slice of the training data: tells a gap between
                # training and inference behaviour (BatchNorm statistics) from overfitting.
                probe = self.model.predict(xt[probe_idx], batch_size=512, verbose=0)
                logs["train_infer_accuracy"] = float(np.mean(probe.argmax(1) == y_tr[probe_idx]))
                rows.append({"epoch": epoch + 1, "seconds": round(time.perf_counter() - started, 1),
                             **{k: round(float(v), 4) for k, v in logs.items()}})
                out.write_text(json.dumps(results, indent=1))
                print(name, rows[-1], flush=True)

        model.fit(xt, y_tr, batch_size=batch, epochs=args.epochs, validation_data=(xv, y_va),
                  shuffle=True, verbose=0, callbacks=[Record()])
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
