"""The study's experiments: which notebook trains what, and one experiment's files in a run directory.

*The lesson.* An experiment is one trained model and what it left behind. Keeping every result in files
with fixed names means any notebook can read another's results without training again, and a finished
experiment stays readable when its model is gone::

    run/<folder>/history.csv        one row per epoch (accuracy and loss on Training and PublicTest)
    run/models/<name>.keras         the kept model
    run/metrics/<name>.json         PrivateTest metrics, with what produced them (provenance)
    run/predictions/<name>.npz      PrivateTest ids, true and predicted labels, probabilities
    run/metrics/peers/fer_package.json   the ``fer`` package's model scored on the same faces (notebook 06)

:data:`TRAININGS` is the one registry of the study: every training folder, the notebook that trains
it, the notebook parameter that caps its epochs and its label where it is a reported experiment.
:data:`READS` says which notebooks' results each notebook reads. Everything else (the runner's order,
its progress lines, publishing, the summary tables) is derived from these two.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from .data import FerData
from .evaluate import (
    accuracy_without_seen,
    classification_metrics,
    fit_on_training,
    predict_labels,
    provenance,
    read_metrics,
    seen_in_training,
    write_metrics,
)
from .history import history_file, read_history  # noqa: F401  (history_file: read from here too)

if TYPE_CHECKING:  # keras (and TensorFlow) load only where a model is touched
    from .train import TrainResult


@dataclass(frozen=True)
class Training:
    """One training of the study.

    Attributes:
        folder: its folder in a run directory (``run/<folder>/history.csv``), also the experiment's name.
        notebook: the number of the notebook that trains it ("01").
        epochs: the notebook parameter that caps its epochs, or a fixed number of epochs.
        label: how tables and charts name a reported experiment (one with metrics and predictions);
            None for a training that is a step of a notebook or an exercise, not a reported result.
    """

    folder: str
    notebook: str
    epochs: str | int
    label: str | None = None


#: Every training of the study, in reading order.
TRAININGS: tuple[Training, ...] = (
    Training("baseline", "01", "epochs", "baseline CNN"),
    Training("undersample", "02", "epochs", "random undersampling"),
    Training("exercise_undersample_twice", "02", 3),
    Training("oversample", "03", "epochs_oversample", "random oversampling"),
    Training("class_weights", "03", "epochs_class_weights", "class-weighted loss"),
    Training("augment_report", "04", "epochs_report", "augmentation, report's recipe"),
    Training("augment_face", "04", "epochs_face", "augmentation, face recipe"),
    Training("beyond_vgg", "08", "epochs_step"),
    Training("beyond_sgd", "08", "epochs_step"),
    Training("beyond_strong", "08", "epochs_step"),
    Training("beyond_smooth", "08", "epochs_step"),
    Training("beyond", "08", "epochs_final", "beyond the report: VGG-style, ten-crop"),
)

#: Which notebooks' results each notebook reads (by number). A notebook runs after those it reads,
#: even a later-numbered one: the summary, 06, reads 08.
READS: dict[str, tuple[str, ...]] = {
    "00": (),
    "01": (),
    "02": (),
    "03": ("01", "02"),              # compares oversampling and class weights with both
    "04": ("01",),                   # compares the augmentations with the baseline
    "05": ("01", "02", "03", "04"),  # Grad-CAM of any kept model (model_name)
    "06": ("01", "02", "03", "04", "08"),  # the summary of every experiment
    "07": ("01", "02", "03", "04"),  # predicts with any kept model (model_name)
    "08": ("01",),                   # starts from the baseline, compares with it
}

#: The reported experiments in reading order, each with its label and notebook ("baseline CNN (01)").
EXPERIMENTS: dict[str, str] = {t.folder: f"{t.label} ({t.notebook})" for t in TRAININGS if t.label}
#: The notebook that trains each reported experiment.
TRAINED_IN: dict[str, str] = {t.folder: t.notebook for t in TRAININGS if t.label}
#: Each training folder's epoch parameter (or fixed count).
EPOCHS_PARAMETER: dict[str, str | int] = {t.folder: t.epochs for t in TRAININGS}


def training_notebook(folder: str) -> str:
    """The notebook (its number) that trains into a run's training folder ``folder``; "?" for a folder
    no notebook of the study trains."""
    return next((t.notebook for t in TRAININGS if t.folder == folder), "?")


def training_order(folder: str) -> tuple:
    """Sort key for a run's training folders: by notebook, then in the study's order within it."""
    known = [t.folder for t in TRAININGS]
    return (training_notebook(folder), known.index(folder) if folder in known else len(known), folder)


def experiments_of(notebooks: set[str] | None = None) -> list[str]:
    """The reported experiments trained by ``notebooks`` (numbers; None: all), in reading order."""
    return [name for name, nb in TRAINED_IN.items() if notebooks is None or nb in notebooks]


def save_experiment(
    result: TrainResult,
    report_on: FerData,
    run: str | os.PathLike,
    *,
    name: str,
    profile: str,
    seed: int,
    started: float,
    train_data: FerData,
    all_data: FerData,
    predict: Callable | None = None,
    fit_on: FerData | None = None,
    **extra,
) -> dict:
    """Evaluate the kept model once on ``report_on`` (PrivateTest) and write model, predictions, metrics.

    A training reported already (its metrics file records the same training, the same kept epoch and
    answers for the same faces: :func:`recorded_report`) is not evaluated again: its recorded metrics are
    returned, and its model is not needed.

    Args:
        result: what :func:`fer_utils.train.train_model` returned.
        report_on: the split to report on, used for nothing else.
        run: the run directory.
        name: experiment name (file stem), e.g. ``baseline``.
        profile, seed: recorded in the provenance.
        started: ``time.perf_counter()`` at the notebook's start, for the wall time.
        train_data: the (possibly resampled) training set the model saw, for its counts.
        all_data: the data set as loaded, for the split counts.
        predict: ``predict(model, images) -> class probabilities`` (e.g. test-time augmentation,
            :func:`fer_utils.beyond.tta_predictor`; say so in ``extra``); None: the model's own prediction.
        fit_on: the training images, to record how well the kept model fits them as it predicts (dropout
            and augmentation off: ``metrics["training_fit"]``), which the accuracy Keras logs while training
            (on augmented faces, with dropout) does not say.
        extra: further provenance fields (batch size, learning rate, method, ...).

    Returns:
        The metrics dict (also written to ``run/metrics/<name>.json``).
    """
    run = Path(run)
    recorded = recorded_report(run, name, result, report_on)
    if recorded is not None:
        return recorded["metrics"]
    if predict is None:
        probs, predicted = predict_labels(result.model, report_on.images)
    else:
        probs = np.asarray(predict(result.model, report_on.images))
        predicted = probs.argmax(axis=1)
    metrics = classification_metrics(report_on.labels, predicted)
    if fit_on is not None:
        metrics["training_fit"] = {"accuracy": fit_on_training(result.model, fit_on.images, fit_on.labels),
                                   "n": int(len(fit_on))}
    seen = seen_in_training(report_on.images, all_data.split("Training").images)
    if not seen.all():
        metrics["without_seen_in_training"] = accuracy_without_seen(report_on.labels, predicted, seen)
    for folder in ("models", "predictions"):
        (run / folder).mkdir(parents=True, exist_ok=True)
    result.model.save(run / "models" / f"{name}.keras")
    write_predictions(run / "predictions" / f"{name}.npz", report_on.ids, report_on.labels, predicted, probs=probs)
    info = provenance(
        profile=profile, experiment=name, epochs=result.epochs_run,
        data_counts={"splits": all_data.split_counts(), "train_images": len(train_data),
                     "train_classes": train_data.class_counts(), "report_images": len(report_on),
                     "source": all_data.source,
                     "verification": all_data.verification.to_dict() if all_data.verification else None},
        seed=seed, wall_seconds=time.perf_counter() - started,
        best_epoch=result.best_epoch, train_seconds=round(result.train_seconds, 1),
        images_per_second=round(result.images_per_second, 1), resumed_from=result.resumed_from,
        params=int(result.model.count_params()), precision=result.settings.get("precision", "float32"),
        training=result.settings, **extra,
    )
    write_metrics(run / "metrics" / f"{name}.json", metrics, info)
    return metrics


def recorded_report(run: str | os.PathLike, name: str, result: TrainResult, report_on: FerData) -> dict | None:
    """The metrics payload :func:`save_experiment` wrote for this very training, or None: the run holds
    ``metrics/<name>.json`` and ``predictions/<name>.npz``, the metrics record the training's settings
    (``training``; in files older than that record, its summed epoch times), its kept epoch and its epochs, and the
    predictions answer the faces of ``report_on``."""
    run = Path(run)
    metrics_path, predictions_path = run / "metrics" / f"{name}.json", run / "predictions" / f"{name}.npz"
    if not (metrics_path.exists() and predictions_path.exists()):
        return None
    payload = read_metrics(metrics_path)
    info = payload.get("provenance", {})
    # older metrics files do not record the settings: there the training's summed epoch times identify it
    same = (info.get("training") == result.settings if "training" in info
            else info.get("train_seconds") == round(result.train_seconds, 1))
    if not same or info.get("best_epoch") != result.best_epoch or info.get("epochs") != result.epochs_run:
        return None
    ids, _, _ = read_predictions(predictions_path)
    return payload if np.array_equal(np.asarray(ids), np.asarray(report_on.ids)) else None


def read_model_run(folder: str | os.PathLike, name: str) -> tuple[dict, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A reported model of a run or published results folder, as :func:`save_experiment` wrote it:
    its metrics payload and its PrivateTest predictions ``(ids, y_true, y_pred)``
    (``metrics/<name>.json``, ``predictions/<name>.npz``)."""
    folder = Path(folder)
    return read_metrics(folder / "metrics" / f"{name}.json"), read_predictions(folder / "predictions" / f"{name}.npz")


Predictions = tuple[np.ndarray, np.ndarray, np.ndarray]


def read_probabilities(folder: str | os.PathLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A reported model's PrivateTest labels and class probabilities ``(y_true, probs)``, from the
    ``predictions/<name>.npz`` :func:`save_experiment` wrote: the probabilities its reported answers
    came from (with test-time augmentation where its metrics say so)."""
    path = Path(folder) / "predictions" / f"{name}.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no predictions of {name!r}; run the notebook that trains it first")
    with np.load(path) as npz:
        if "probs" not in npz:
            raise ValueError(f"{path} holds answers but no class probabilities")
        return npz["y_true"], npz["probs"]


def write_predictions(path: str | os.PathLike, ids: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray,
                      **extra: np.ndarray) -> Path:
    """A model's PrivateTest answers as an ``.npz`` (``ids``, ``y_true``, ``y_pred`` and any ``extra``
    arrays, e.g. ``probs``), written whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, ids=np.asarray(ids), y_true=np.asarray(y_true), y_pred=np.asarray(y_pred), **extra)
    os.replace(tmp, path)
    return path


def read_predictions(path: str | os.PathLike) -> Predictions:
    """``(ids, y_true, y_pred)`` from a file :func:`write_predictions` wrote."""
    with np.load(path) as npz:
        return npz["ids"], npz["y_true"], npz["y_pred"]


def recorded_verification(run: str | os.PathLike, names: list[str] | None = None) -> str:
    """The data verdict that the experiments of ``run`` recorded in their metrics files, as one line
    (for notebooks that load no data themselves): the verdict when they all agree, each one otherwise."""
    names = list(EXPERIMENTS) if names is None else names
    verdicts: dict[str, list[str]] = {}
    for name in names:
        path = Path(run) / "metrics" / f"{name}.json"
        if path.exists():
            v = read_metrics(path)["provenance"].get("data_counts", {}).get("verification")
            summary = v["summary"] if v else "data not verified (metrics written before verification existed)"
            verdicts.setdefault(summary, []).append(name)
    if not verdicts:
        return "data: no experiment of this run has written its metrics yet"
    if len(verdicts) == 1:
        return next(iter(verdicts))
    return "experiments of this run saw different data: " + "; ".join(
        f"{', '.join(n)}: {v}" for v, n in verdicts.items())


def load_experiment_model(run: str | os.PathLike, name: str):
    """The model an earlier notebook saved as ``run/models/<name>.keras``, in float32 whatever
    precision it trained in (see :func:`fer_utils.device.float32_copy`), or a one-line error."""
    from .device import float32_copy

    return float32_copy(_load_saved_model(run, name))


def describe_against_recorded(run: str | os.PathLike, name: str, ids: np.ndarray, y_pred: np.ndarray) -> str:
    """One line setting the answers of experiment ``name``'s saved model, computed here on PrivateTest
    (``ids``, ``y_pred``), beside those its training notebook recorded (``predictions/<name>.npz``), so that
    a reader who sees two accuracies for one model knows why: its notebook may have computed in bfloat16
    while a model loaded with :func:`load_experiment_model` computes in float32 (the same weights, other
    rounding), or may have reported test-time-augmented answers. Without recorded answers, or with
    answers of other faces (another cap or fraction than its notebook's), the line says so."""
    try:
        metrics, (rec_ids, y_true, rec_pred) = read_model_run(run, name)
    except FileNotFoundError:
        return f"no recorded answers of {name} in {Path(run).name} to set these beside"
    if not np.array_equal(np.asarray(rec_ids), np.asarray(ids)):
        return (f"{name}'s recorded answers are of other faces ({len(rec_ids):,}) than these ({len(ids):,}): "
                "its notebook ran with another data set, cap or fraction, so the two are not compared")
    y_pred = np.asarray(y_pred)
    differ, right = int(np.sum(y_pred != rec_pred)), int(np.sum(rec_pred == y_true))
    here, there = float(np.mean(y_pred == y_true)), right / len(y_true)
    info = metrics["provenance"]
    notebook = TRAINED_IN.get(name)
    whose = f"notebook {notebook}" if notebook else "its notebook"
    recorded = f"{whose} reported {there:.3f} ({right:,} of {len(y_true):,} right)"
    if info.get("test_time_augmentation"):
        return (f"{recorded} with test-time augmentation ({info['test_time_augmentation']}); this model, "
                f"one view a face, gets {here:.3f}, answering {differ:,} faces differently")
    if differ == 0:
        return f"the same answers as {whose} reported: {there:.3f} ({right:,} right)"
    precision = info.get("precision", "float32")
    why = (f"its training computed in {precision}, and the same weights computed in float32 round otherwise"
           if precision != "float32" else "the same weights and precision, so the difference is the "
           "arithmetic of another processor or library version")
    return (f"{recorded}; the saved model, loaded here in float32, gets {here:.3f}, answering {differ:,} of the "
            f"faces differently: {why}. The study quotes the figure its notebook reported.")


def _load_saved_model(run: str | os.PathLike, name: str):
    """``run/models/<name>.keras`` as saved (its training precision, compiled), or a one-line error."""
    import keras

    from . import model as _registers_custom_layers  # noqa: F401  (PerImageStandardization)

    path = Path(run) / "models" / f"{name}.keras"
    if not path.exists():
        raise FileNotFoundError(
            f"{path.name} not found in {Path(run).name}/models: run the notebook that trains "
            f"'{name}' (01 for the baseline) with this run directory first")
    from .augment import load_model

    return load_model(path)


def training_time(run: str | os.PathLike) -> pd.DataFrame:
    """Every training of a run, read from its histories: ``<name>/history.csv`` in a run directory,
    ``<name>_history.csv`` in published results (``results/<profile>/``).

    One row per training, in notebook order: ``notebook`` (which trains it; "?" for a folder this
    module does not know), ``epochs``, ``fastest_epoch_seconds``, ``hours`` (the epochs' times summed,
    an interrupted and resumed training included) and ``hours_at_fastest`` (``epochs`` times the fastest
    epoch: what the training would have taken had every epoch run as fast as its fastest; an epoch that
    shared the processor with other work or includes a compilation only makes the estimate longer) and
    ``hours_to_best`` (the epochs'
    times up to and including the best PublicTest accuracy, the epoch a training keeps; NaN without a
    PublicTest curve) and ``finished`` (its ``done.json`` exists; a published history is always
    finished)."""
    run = Path(run)
    found = {p.parent.name: p for p in run.glob("*/history.csv")}
    found.update({p.name[: -len("_history.csv")]: p for p in run.glob("*_history.csv")})
    rows = []
    for name, path in found.items():
        history = read_history(path)
        every = np.asarray(history.get("epoch_seconds", []), dtype=float)
        seconds = every[np.isfinite(every)]
        if not len(seconds):
            continue
        accuracy = np.asarray(history.get("val_accuracy", []), dtype=float)
        to_best = (float(np.nansum(every[:int(np.nanargmax(accuracy)) + 1])) / 3600
                   if len(accuracy) == len(every) and np.isfinite(accuracy).any() else np.nan)
        rows.append({"training": name, "notebook": training_notebook(name),
                     "epochs": len(seconds), "fastest_epoch_seconds": float(seconds.min()),
                     "hours": float(seconds.sum()) / 3600, "hours_at_fastest": float(len(seconds) * seconds.min()) / 3600,
                     "hours_to_best": to_best,
                     "finished": path.name != "history.csv" or (path.parent / "done.json").exists()})
    columns = ["notebook", "epochs", "fastest_epoch_seconds", "hours", "hours_at_fastest", "hours_to_best", "finished"]
    if not rows:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="training"))
    table = pd.DataFrame(rows).set_index("training")
    return table.loc[sorted(table.index, key=training_order), columns]


def export_model(run: str | os.PathLike, name: str, dest: str | os.PathLike) -> Path:
    """Write experiment ``name``'s model to ``dest`` for inference only: architecture and weights
    (batch-norm statistics included) without the optimizer's state, a third of the training file.

    The file is written whole or not at all. Returns ``dest``.
    """
    from .device import float32_copy

    # one copy, float32 (the file runs the same on any machine) and uncompiled (no optimizer state)
    bare = float32_copy(_load_saved_model(run, name), always_copy=True)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.stem}.tmp.keras")
    bare.save(tmp)
    os.replace(tmp, dest)
    return dest


#: Where notebook 06 keeps the ``fer`` package's PrivateTest metrics in a run (and fer-publish in results/).
PEER_METRICS = Path("metrics") / "peers" / "fer_package.json"


#: ... and its PrivateTest answers, for McNemar's test against the study's models.
PEER_PREDICTIONS = Path("predictions") / "peers" / "fer_package.npz"


def save_peer(run: str | os.PathLike, peer: dict) -> Path:
    """Write a peer model's PrivateTest metrics (:func:`fer_utils.peers.score_fer_package`) into the
    run directory as a metrics file (:func:`fer_utils.evaluate.write_metrics`: whole or not at all),
    its ``peer`` facts as the provenance, and its ``predictions``, where given, beside the experiments'
    (:data:`PEER_PREDICTIONS`, also whole or not at all), so that the published results can cite them."""
    metrics = {key: value for key, value in peer.items() if key not in ("peer", "predictions")}
    path = write_metrics(Path(run) / PEER_METRICS, metrics, {"peer": peer.get("peer", {})})
    answers = peer.get("predictions")
    if answers is not None:
        write_predictions(Path(run) / PEER_PREDICTIONS, answers["ids"], answers["y_true"], answers["y_pred"],
                          **{key: answers[key] for key in ("probs",) if key in answers})
    return path


def read_peer(run: str | os.PathLike) -> dict | None:
    """The peer metrics :func:`save_peer` wrote into ``run`` (with ``predictions`` where they were
    kept), or None where none were (the ``fer`` package was not installed when the run scored it, or the
    run has not scored it yet: :func:`peer_for`)."""
    path = Path(run) / PEER_METRICS
    if not path.exists():
        return None
    payload = read_metrics(path)
    peer = {**payload["metrics"], "peer": payload["provenance"]["peer"]}
    answers = Path(run) / PEER_PREDICTIONS
    if answers.exists():
        with np.load(answers) as npz:
            peer["predictions"] = {key: npz[key] for key in ("ids", "y_true", "y_pred", "probs") if key in npz}
    return peer


def peer_for(run: str | os.PathLike, private: FerData) -> tuple[dict | None, str]:
    """The ``fer`` package's PrivateTest record in ``run`` (:func:`read_peer`), else the package scored now
    on ``private`` (:func:`fer_utils.peers.score_fer_package`) and saved into ``run`` (:func:`save_peer`),
    so that whichever notebook needs it first (06 or 08) scores it; with one line saying which, or why
    there is none (the package is not installed: None)."""
    from .peers import PeerUnavailable, score_fer_package

    peer = read_peer(run)
    if peer is not None:
        return peer, f"the fer package: this run's record, on {peer['n']:,} PrivateTest faces"
    try:
        peer = score_fer_package(private)
    except PeerUnavailable as missing:
        return None, f"no peer comparison: {missing}"
    save_peer(run, peer)
    return peer, f"the fer package scored now on this run's {len(private):,} PrivateTest faces"


def reference_for_comparison(run: str | os.PathLike, report_on: FerData, all_data: FerData,
                             name: str = "baseline") -> str:
    """Make sure ``run`` holds experiment ``name``'s PrivateTest records, so that a notebook can compare
    its own models with it on the same faces; return one line saying whose records they are.

    When ``name``'s notebook reported it in this run (``metrics/<name>.json`` answering the faces of
    ``report_on``), nothing changes. Otherwise the model the study ships (:func:`fer_utils.notebook.model_source`)
    answers this run's ``report_on`` faces, and its records are written into the run with provenance that
    says so (``source``: the shipped model, trained by the published run on its own data and epochs). Running
    ``name``'s notebook in this run later replaces them with its own."""
    from .notebook import model_source, shown

    run = Path(run)
    metrics_path, predictions_path = run / "metrics" / f"{name}.json", run / "predictions" / f"{name}.npz"
    if metrics_path.exists() and predictions_path.exists():
        payload = read_metrics(metrics_path)
        ids, _, _ = read_predictions(predictions_path)
        if np.array_equal(np.asarray(ids), np.asarray(report_on.ids)):
            source = payload["provenance"].get("source")
            return f"{name}: " + (source if source else "as its notebook trained it in this run")
    where = model_source(run, name)
    if where.folder == run:
        raise FileNotFoundError(f"{name}.keras is in {shown(run / 'models')} but its records are not: run the "
                                f"notebook that trains '{name}' with this run directory again")
    model = load_experiment_model(where.folder, name)
    probs, predicted = predict_labels(model, report_on.images)
    metrics = classification_metrics(report_on.labels, predicted)
    seen = seen_in_training(report_on.images, all_data.split("Training").images)
    if not seen.all():
        metrics["without_seen_in_training"] = accuracy_without_seen(report_on.labels, predicted, seen)
    published = read_metrics(where.records / "metrics" / f"{name}.json")["provenance"]
    source = (f"the model the study ships (models/{name}.keras), trained by the published run on "
              f"{published['data_counts'].get('train_images', 0):,} Training faces for {published['epochs']} "
              "epochs, answering this run's PrivateTest faces")
    (run / "predictions").mkdir(parents=True, exist_ok=True)
    write_predictions(predictions_path, report_on.ids, report_on.labels, predicted, probs=probs)
    info = provenance(profile=published.get("profile", "published"), experiment=name, epochs=published["epochs"],
                      data_counts={**published["data_counts"], "report_images": int(len(report_on))},
                      seed=published.get("seed", 0), wall_seconds=0.0, source=source,
                      best_epoch=published.get("best_epoch"), train_seconds=published.get("train_seconds"))
    write_metrics(metrics_path, metrics, info)
    return f"{name}: {source}"
