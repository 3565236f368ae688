"""Figures of the study. Each builder returns a matplotlib Figure; :func:`save_and_show` saves and shows it.

*The lesson.* Look before you believe a number: the class shares, the faces themselves, the training
curves and the confusion matrix each show something a single accuracy hides.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from .data import EMOTIONS, SPLITS, FerData

DPI = 110


def save_and_show(fig: plt.Figure, path: str | os.PathLike, show: bool = True) -> Path:
    """Save ``fig`` as PNG (to a temporary name, then renamed: whole or absent), then show it.

    In a notebook the figure is displayed once, inline; elsewhere it is closed after saving.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path.name}: figures are saved as .png")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    os.replace(tmp, path)
    if show and matplotlib.get_backend().lower() not in ("agg", "pdf", "svg"):
        plt.show()
    plt.close(fig)
    return path


def class_distribution(data: FerData) -> plt.Figure:
    """Share of each emotion in Training vs test (PublicTest + PrivateTest), with counts."""
    train = data.subset(data.splits == SPLITS.index("Training")).class_counts()
    test = data.subset(data.splits != SPLITS.index("Training")).class_counts()
    fig, ax = plt.subplots(figsize=(9, 4))
    x = np.arange(len(EMOTIONS))
    width = 0.4
    for offset, counts, label in ((-width / 2, train, "train"), (width / 2, test, "test")):
        values = np.array([counts[e] for e in EMOTIONS])
        share = values / max(values.sum(), 1)
        bars = ax.bar(x + offset, share * 100, width, label=f"{label} (n={values.sum():,})")
        for bar, count in zip(bars, values):
            ax.annotate(f"{count:,}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, EMOTIONS)
    ax.set_ylabel("share of split (%)")
    ax.set_title("FER-2013 class distribution, train vs test")
    ax.legend()
    fig.tight_layout()
    return fig


def example_grid(data: FerData, per_class: int = 8, seed: int = 0,
                 indices: dict[int, Sequence[int]] | None = None, title: str = "Examples per emotion") -> plt.Figure:
    """A grid with one row per emotion and ``per_class`` examples in each: random ones, or with
    ``indices`` (``{label: indices into data}``, e.g. :func:`fer_utils.data.reviewed_examples`) the
    first ``per_class`` given, in their order; a row with fewer faces leaves its other cells empty."""
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(EMOTIONS), per_class, figsize=(per_class * 1.1, len(EMOTIONS) * 1.2))
    for label, name in enumerate(EMOTIONS):
        if indices is None:
            pool = np.flatnonzero(data.labels == label)
            chosen = rng.choice(pool, size=min(per_class, len(pool)), replace=False) if len(pool) else []
        else:
            chosen = np.asarray(indices.get(label, []), dtype=np.int64)[:per_class]
        for col in range(per_class):
            ax = axes[label, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col < len(chosen):
                ax.imshow(data.images[chosen[col], :, :, 0], cmap="gray", vmin=0, vmax=255)
            else:
                ax.set_frame_on(False)  # an empty cell, its row's label still shown
        axes[label, 0].set_ylabel(name, rotation=0, ha="right", va="center")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _panel_row(panels: Sequence[np.ndarray], titles: Sequence[str], title: str = "",
               width: float = 1.4, fontsize: int = 7) -> plt.Figure:
    """One row of images without ticks; 2-D panels are drawn as 8-bit grayscale, 3-D as RGB."""
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(max(len(panels), 1) * width, width + 0.5),
                             squeeze=False)
    for ax, panel, caption in zip(axes[0], panels, titles):
        if panel.ndim == 2:
            ax.imshow(panel, cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(panel)
        ax.set_title(caption, fontsize=fontsize)
    for ax in axes[0]:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def image_row(images: np.ndarray, titles: Sequence[str], title: str = "") -> plt.Figure:
    """A single row of grayscale images with a caption under each (for audit findings)."""
    return _panel_row([np.asarray(img).reshape(img.shape[0], img.shape[1]) for img in images], titles, title)


def training_curves(history: dict[str, list[float]], best_epoch: int | None = None,
                    title: str = "Training curves", report: dict | None = None) -> plt.Figure:
    """Accuracy and loss per epoch, train vs validation; marks the chosen epoch.

    ``report``: the source report's anchors to draw beside ours (:data:`fer_utils.train.REPORT_CURVE`):
    its validation accuracies at given epochs as crosses, the epochs where its validation loss
    turned up as a shaded band.
    """
    required = {"accuracy", "val_accuracy", "loss", "val_loss"}
    missing = required - set(history)
    if missing:
        raise ValueError(f"history lacks {sorted(missing)}")
    epochs = history.get("epoch") or list(range(1, len(history["loss"]) + 1))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("accuracy", "loss")):
        ax.plot(epochs, history[metric], marker="o", ms=3, label="train")
        ax.plot(epochs, history[f"val_{metric}"], marker="o", ms=3, label="validation (PublicTest)")
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", ls="--", lw=1, label=f"chosen epoch {best_epoch}")
        if report and metric == "accuracy":
            points = sorted(report["val_accuracy"].items())
            ax.plot([e for e, _ in points], [a for _, a in points], "kx", ms=9, mew=2,
                    label="report: validation accuracy")
        if report and metric == "loss":
            ax.axvspan(*report["val_loss_turn"], color="0.85", alpha=0.6, label="report: val. loss turns up")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def curves_beside(histories: dict[str, dict[str, list[float]]], title: str = "") -> plt.Figure:
    """Several trainings' curves on shared axes: training accuracy (on the faces as each training saw them,
    augmented or not) and PublicTest accuracy per epoch, one colour per training (``{label: history}``),
    so that a reader sees at once how far each got and whether it was still climbing when it stopped."""
    if not histories:
        raise ValueError("no training to draw")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, metric, name in zip(axes, ("accuracy", "val_accuracy"), ("Training (as trained)", "PublicTest")):
        for label, history in histories.items():
            values = history.get(metric) or []
            ax.plot(range(1, len(values) + 1), values, marker="o", ms=2.5, label=label)
        ax.set_title(f"{name} accuracy per epoch", fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    axes[1].legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_heatmap(confusion: Sequence[Sequence[float]], normalized: bool = True,
                      class_names: Sequence[str] = EMOTIONS, title: str = "") -> plt.Figure:
    """Confusion matrix heatmap: rows true class, columns predicted; row-normalised by default."""
    cm = np.asarray(confusion, dtype=float)
    if normalized and cm.max() > 1.0:
        with np.errstate(invalid="ignore", divide="ignore"):
            cm = np.nan_to_num(cm / cm.sum(axis=1, keepdims=True))
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    sns.heatmap(cm, annot=True, fmt=".2f" if normalized else ".0f", cmap="Blues",
                xticklabels=class_names, yticklabels=class_names, ax=ax,
                vmin=0, vmax=1 if normalized else None, cbar=True)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or ("Confusion matrix (row-normalised: recall on the diagonal)"
                           if normalized else "Confusion matrix (counts)"))
    fig.tight_layout()
    return fig


def histogram_by_split(values: np.ndarray, splits: np.ndarray, xlabel: str, title: str) -> plt.Figure:
    """Overlaid, density-normalised histograms of a per-image statistic, one per official split."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    bins = np.linspace(float(np.min(values)), float(np.max(values)), 50)
    for s, name in enumerate(SPLITS):
        part = values[splits == s]
        if len(part):
            ax.hist(part, bins=bins, density=True, histtype="step", lw=1.5,
                    label=f"{name} (median {np.median(part):.3g})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def grouped_bars(table, ylabel: str, title: str, legend_below: bool = False) -> plt.Figure:
    """Grouped bar chart of a DataFrame: one group per row (e.g. emotion), one bar per column; with
    ``legend_below`` the legend sits under the axes, clear of every bar (for many columns)."""
    fig, ax = plt.subplots(figsize=(10, 4))
    n_rows, n_cols = table.shape
    width = 0.8 / max(n_cols, 1)
    x = np.arange(n_rows)
    for j, column in enumerate(table.columns):
        ax.bar(x + (j - (n_cols - 1) / 2) * width, table[column].to_numpy(), width, label=str(column))
    ax.set_xticks(x, list(table.index))
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    if legend_below:
        ax.legend(fontsize=8, ncol=min(n_cols, 4), loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    else:
        ax.legend(fontsize=8, ncol=min(n_cols, 4))
    ax.set_title(title)
    fig.tight_layout()
    return fig


def augmentation_grid(originals: np.ndarray, augmented: dict[str, np.ndarray]) -> plt.Figure:
    """One row per original image: the original, then each recipe's augmented copies.

    ``augmented`` maps recipe name to an array ``(N, copies, H, W, 1)`` as returned by
    :func:`fer_utils.augment.augment_examples`.
    """
    n = len(originals)
    copies = {name: arr.shape[1] for name, arr in augmented.items()}
    cols = 1 + sum(copies.values())
    fig, axes = plt.subplots(n, cols, figsize=(cols * 1.05, n * 1.15), squeeze=False)
    for i in range(n):
        panels = [("original", originals[i])]
        for name, arr in augmented.items():
            panels += [(f"{name} {j + 1}", arr[i, j]) for j in range(copies[name])]
        for ax, (title, img) in zip(axes[i], panels):
            ax.imshow(np.asarray(img)[..., 0], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=7)
    fig.suptitle("What the model sees in training: " + " vs ".join(augmented), fontsize=9)
    fig.tight_layout()
    return fig


#: The colour bar's label on every Grad-CAM figure, and the normalisation its panels share.
GRADCAM_SCALE_LABEL = "Grad-CAM weight (0 = none, 1 = the map's maximum)"
GRADCAM_SCALE_NOTE = "every map scaled to its own maximum"


def gradcam_colorbar(fig: plt.Figure, axes, label: str = GRADCAM_SCALE_LABEL, note: str = GRADCAM_SCALE_NOTE,
                     orientation: str = "vertical", short: bool = False):
    """Add the viridis scale of the Grad-CAM overlays (0 to 1) beside ``axes``, labelled with what 0 and 1
    mean and the normalisation every panel shares (``note``); ``short`` breaks the label over more lines
    (for a narrow figure). Returns the colour bar."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    text = f"{label}; {note}" if orientation == "horizontal" and not short else f"{label}\n{note}"
    if short and orientation == "vertical":
        text = text.replace(" (", "\n(")
    bar = fig.colorbar(ScalarMappable(norm=Normalize(0, 1), cmap="viridis"), ax=axes, orientation=orientation,
                       shrink=0.9 if orientation == "horizontal" else 0.8, aspect=30 if orientation == "horizontal" else 20,
                       fraction=0.05, pad=0.04 if orientation == "horizontal" else 0.02)
    bar.set_label(text, fontsize=7)
    bar.ax.tick_params(labelsize=7)
    bar.set_ticks([0, 0.5, 1])
    return bar


def _stretched(cam: np.ndarray) -> np.ndarray:
    """``cam`` divided by its peak, so that it peaks at 1 (an all-zero map stays zero). The floor is
    kept: an evenly spread map stays even instead of showing noise as structure."""
    peak = float(np.max(cam))
    return cam / peak if peak > 0 else cam


def gradcam_rows(images: np.ndarray, maps: np.ndarray, row_titles: list[str],
                 col_titles: list[str], overlay_fn) -> plt.Figure:
    """Grid: one row per face, first column the face, then one overlay per map column.

    ``maps`` is ``(rows, cols, H, W)``; ``overlay_fn(image, cam)`` gives the RGB overlay. Each map is
    stretched to a peak of 1 for display (:func:`_stretched`): a face's own map already peaks at 1,
    while a class average (maps peaking in different places) would otherwise show as a faint wash.
    """
    rows, cols = maps.shape[:2]
    fig, axes = plt.subplots(rows, cols + 1, figsize=((cols + 1) * 1.4 + (1.0 if rows > 2 else 0), rows * 1.5 + 0.6),
                             squeeze=False, layout="constrained")
    for r in range(rows):
        axes[r, 0].imshow(np.asarray(images[r])[..., 0], cmap="gray")
        axes[r, 0].set_ylabel(row_titles[r], rotation=0, ha="right", va="center", fontsize=8)
        for c in range(cols):
            axes[r, c + 1].imshow(overlay_fn(images[r], _stretched(maps[r, c])))
            if r == 0:
                axes[r, c + 1].set_title(col_titles[c], fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("face", fontsize=8)
    # one or two rows: the scale under them (a bar beside them would be shorter than its label)
    gradcam_colorbar(fig, axes.ravel().tolist(), orientation="horizontal" if rows <= 2 else "vertical",
                     short=rows <= 2 and cols < 4)
    return fig


def map_row(backgrounds: np.ndarray, maps: np.ndarray, titles: list[str], overlay_fn,
            title: str = "") -> plt.Figure:
    """One row of overlays: ``maps[i]`` drawn over ``backgrounds[i]`` (e.g. a class's mean face).

    Each map is stretched to [0, 1] for display (averaged maps rarely reach 1); the colour bar says so.
    """
    panels = [overlay_fn(bg, _stretched(cam)) for bg, cam in zip(backgrounds, maps)]
    fig = _panel_row(panels, titles, title, width=1.6, fontsize=8)
    gradcam_colorbar(fig, fig.axes, orientation="horizontal", short=len(panels) < 4)
    return fig


def probability_panel(annotated: np.ndarray, faces: list, title: str = "",
                      gradcam_layer: str | None = None) -> plt.Figure:
    """The annotated photo beside a bar chart of each face's seven probabilities.

    ``gradcam_layer``: the layer whose Grad-CAM map the annotated photo overlays on each face
    (:meth:`fer_utils.predict.Predictor.predict_file`); when given and a face was found, a colour bar
    under the photo gives the map's scale.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [1, 1.3]},
                                      layout="constrained")
    left.imshow(annotated)
    left.set_xticks([])
    left.set_yticks([])
    left.set_title(title, fontsize=9)
    if faces:
        x = np.arange(len(EMOTIONS))
        width = 0.8 / len(faces)
        for i, face in enumerate(faces):
            right.bar(x + (i - (len(faces) - 1) / 2) * width, [face.probabilities[e] for e in EMOTIONS],
                      width, label=f"face {i + 1}: {face.emotion}")
        right.set_xticks(x, EMOTIONS, rotation=30)
        right.set_ylim(0, 1)
        right.set_ylabel("probability")
        right.legend(fontsize=8)
    else:
        right.text(0.5, 0.5, "no face found", ha="center", va="center", fontsize=12)
        right.axis("off")
    if gradcam_layer and faces:
        gradcam_colorbar(fig, left, label=f"{gradcam_layer} Grad-CAM weight (0 = none, 1 = the map's maximum)",
                         note="each face's map scaled to its own maximum", orientation="horizontal", short=True)
    return fig


def reliability_diagram(probs: np.ndarray, y_true: np.ndarray, title: str = "", n_bins: int = 10) -> plt.Figure:
    """How often the model is right against how sure it was: faces binned by their top class probability
    (:func:`sklearn.calibration.calibration_curve` on "was the top class right"), with the diagonal a model
    whose probabilities mean what they say would follow, and below it how many faces each bin holds."""
    from sklearn.calibration import calibration_curve

    from .evaluate import top_and_right

    top, right = top_and_right(probs, y_true)
    accuracy, confidence = calibration_curve(right.astype(int), top, n_bins=n_bins, strategy="uniform")
    fig, (ax, counts) = plt.subplots(2, 1, figsize=(5.5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], ls="--", color="gray", label="right as often as it says")
    ax.plot(confidence, accuracy, marker="o", color="tab:blue", label="this model")
    ax.fill_between(confidence, accuracy, confidence, color="tab:red", alpha=0.15, label="gap")
    ax.set_ylim(0, 1)
    ax.set_ylabel("share right")
    ax.set_title(title or "Reliability: how often right, against how sure")
    ax.legend(fontsize=8, loc="upper left")
    counts.hist(top, bins=np.linspace(0, 1, n_bins + 1), color="tab:blue", alpha=0.7)
    counts.set_xlim(0, 1)
    counts.set_xlabel("top class probability")
    counts.set_ylabel("faces")
    fig.tight_layout()
    return fig


def accuracy_vs_report(table) -> plt.Figure:
    """Our PrivateTest accuracy per experiment (bar, 95 % interval) beside the report's (marker), each
    labelled with the split it was measured on: ours on PrivateTest, the report's on its own held-out
    split. Our value is written at the foot of its bar, the report's in red past its marker, and the legend sits
    under the axes, clear of the data.

    ``table`` is :func:`fer_utils.compare.summary_table`'s result.
    """
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(table) + 2.2))
    y = np.arange(len(table))[::-1]
    acc = table["accuracy"].to_numpy(dtype=float)
    low, high = table["ci95_low"].to_numpy(dtype=float), table["ci95_high"].to_numpy(dtype=float)
    err = np.vstack([acc - low, high - acc])
    ax.barh(y, acc, xerr=err, color="tab:blue", alpha=0.8, capsize=3,
            label="this study, on PrivateTest (95 % interval)")
    ax.axvline(1 / 7, color="gray", lw=0.8, ls=":", label="guessing at random (1/7)")
    report = table["report_accuracy"].to_numpy(dtype=float)
    has = ~np.isnan(report)
    ax.scatter(report[has], y[has], marker="D", color="tab:red", zorder=3,
               label="source report, on its own held-out split (rounded)")
    for yi, a, lo, hi, rep in zip(y, acc, low, high, report):
        if a > 0.12:  # our value at the foot of its own bar, far from the report's marker and our interval
            ax.text(0.01, yi, f"{a:.3f}", va="center", ha="left", fontsize=8, color="white")
        else:
            ax.text(hi + 0.02, yi, f"{a:.3f}", va="center", fontsize=8, color="tab:blue")
        if not np.isnan(rep):  # the report's value in the marker's colour, past the marker and our interval
            ax.text(max(rep, hi) + 0.02, yi, f"{rep:.2f}", va="center", fontsize=8, color="tab:red")
    ax.set_yticks(y, list(table.index))
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy")
    ax.set_title("Accuracy by experiment: this study and the source report")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.09 - 0.3 / (len(table) + 3)), ncol=2,
              frameon=False)
    fig.tight_layout()
    return fig


def training_time_bars(times) -> plt.Figure:
    """Hours of training per model of a run, coloured by the notebook that trains it: the measured time
    (the epochs' times summed) as a bar, written as a duration ("2 h 54 min") with its epochs, and the
    time at the training's fastest epoch (epochs times the fastest) as a black tick inside it.

    ``times`` is :func:`fer_utils.experiments.training_time`'s result.
    """
    from .compare import duration

    fig, ax = plt.subplots(figsize=(9, 0.45 * len(times) + 1.6))
    y = np.arange(len(times))[::-1]
    notebooks = list(dict.fromkeys(times["notebook"]))
    colours = [f"C{notebooks.index(nb) % 10}" for nb in times["notebook"]]
    measured = times["hours"].to_numpy(dtype=float)
    fastest = times["hours_at_fastest"].to_numpy(dtype=float)
    ax.barh(y, measured, color=colours, alpha=0.8)
    ax.scatter(fastest, y, marker="|", s=250, color="black", zorder=3, label="at the training's fastest epoch")
    for yi, h, epochs in zip(y, measured, times["epochs"]):
        ax.text(h + measured.max() * 0.01, yi, f"{duration(h * 3600)}, {int(epochs)} epochs", va="center",
                fontsize=8)
    ax.set_yticks(y, [f"{name} ({nb})" for name, nb in zip(times.index, times["notebook"])])
    ax.set_xlim(0, measured.max() * 1.35 if len(times) else 1)
    ax.set_xlabel("hours of training (epochs' times summed)")
    ax.set_title(f"Where the training time went: {duration(measured.sum() * 3600)} in all")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08 - 0.4 / (len(times) + 3)), frameon=False)
    fig.tight_layout()
    return fig


def accuracy_vs_cost(table, split: str = "PublicTest", landmarks: dict[str, tuple[float, str]] | None = None,
                     final: dict | None = None) -> plt.Figure:
    """Notebook 08's steps: what each buys (top: its ``split`` accuracy with its 95 % interval) and what it
    costs (bottom: its machine time, written as a duration), one column per step, so that no label
    lands on a marker; the legend sits outside the axes.

    ``table`` is :func:`fer_utils.beyond.steps_table`'s result. ``landmarks`` maps a name to
    ``(accuracy, split it was measured on)``, drawn as dashed lines that say their split. ``final``, a
    ``{"step", "accuracy", "ci95", "split"}`` dict, adds a result measured on another split (the headline
    model on PrivateTest) as its own marker at its step, labelled with that split.
    """
    import textwrap

    from .compare import duration

    steps = list(table.index)
    x = np.arange(len(steps))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7.2), sharex=True, height_ratios=[3, 1.3])
    acc = table["accuracy"].to_numpy(dtype=float)
    err = np.vstack([acc - table["ci95_low"].to_numpy(dtype=float), table["ci95_high"].to_numpy(dtype=float) - acc])
    top.errorbar(x, acc, yerr=err, fmt="o-", color="tab:blue", capsize=3,
                 label=f"each step, on {split} (95 % interval)")
    for k, (name, value) in enumerate((landmarks or {}).items()):
        level, where = value if isinstance(value, tuple) else (value, "a split not stated")
        top.axhline(level, color=f"C{k + 1}", lw=0.9, ls="--", label=f"{name}: {level:.3f}, on {where}")
    if final is not None and final.get("step") in steps:
        lo, hi = final["ci95"]
        xf = steps.index(final["step"]) + 0.18
        top.errorbar([xf], [final["accuracy"]], yerr=[[final["accuracy"] - lo], [hi - final["accuracy"]]], fmt="*",
                     ms=11, color="tab:red", capsize=3,
                     label=f"{final['step']}, on {final['split']}: {final['accuracy']:.3f} (95 % interval)")
    top.set_ylabel("accuracy")
    top.grid(axis="y", alpha=0.3)
    top.set_title("What each step buys (top) and what it costs (bottom)")
    minutes = table["minutes"].to_numpy(dtype=float)
    bottom.bar(x, minutes / 60, color="tab:gray", alpha=0.7)
    epochs = table["epochs"].to_numpy(dtype=float) if "epochs" in table else np.full(len(x), np.nan)
    trained = table["minutes"].to_numpy(dtype=float) > table.get("predict_minutes", 0 * minutes).to_numpy(dtype=float)
    for xi, m, e, t in zip(x, minutes, epochs, trained):
        label = duration(m * 60) + (f"\n{int(e)} epoch{'s' if e != 1 else ''}" if t and np.isfinite(e) else "")
        bottom.text(xi, m / 60, label, ha="center", va="bottom", fontsize=7)
    bottom.set_ylim(0, max(minutes.max() / 60 * 1.5, 1e-3))
    bottom.set_ylabel("machine time (h)")
    bottom.set_xticks(x, ["\n".join(textwrap.wrap(str(s), 12)) for s in steps], fontsize=8)
    handles, labels = top.get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=2, frameon=False)
    return fig
