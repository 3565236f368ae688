"""fer_utils.plots: every figure builds from real-shaped input and saves as a whole PNG."""

from __future__ import annotations

import numpy as np
import pytest

from fer_utils import plots
from fer_utils.data import load_fer2013

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def saved_png(fig, path):
    out = plots.save_and_show(fig, path)
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 2000
    assert not list(path.parent.glob(".*tmp*"))
    return out


def test_data_figures(tree, tmp_path):
    d = load_fer2013(tree, cache=False)
    fig = plots.class_distribution(d)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()][:2] == ["angry", "disgust"]
    saved_png(fig, tmp_path / "dist.png")
    grid = plots.example_grid(d, per_class=3)
    assert len(grid.axes) == 21
    saved_png(grid, tmp_path / "grid.png")
    saved_png(plots.image_row(d.images[:3], ["a", "b", "c"], "row"), tmp_path / "row.png")
    saved_png(plots.histogram_by_split(d.images.reshape(len(d), -1).std(1) + np.arange(len(d)), d.splits,
                                       "std", "t"), tmp_path / "hist.png")


def test_training_curves_and_confusion(tmp_path):
    history = {"epoch": [1, 2, 3], "accuracy": [0.2, 0.3, 0.4], "val_accuracy": [0.2, 0.25, 0.24],
               "loss": [2.0, 1.8, 1.6], "val_loss": [2.0, 1.9, 2.1]}
    fig = plots.training_curves(history, best_epoch=2)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 3  # train, validation, chosen epoch
    saved_png(fig, tmp_path / "curves.png")
    from fer_utils.train import REPORT_CURVE

    with_report = plots.training_curves(history, best_epoch=2, report=REPORT_CURVE)
    crosses = with_report.axes[0].lines[-1]
    assert list(crosses.get_xdata()) == [3, 10] and list(crosses.get_ydata()) == [0.45, 0.60]
    assert len(with_report.axes[1].patches) == 1  # the band of epochs 10-15 on the loss panel
    with pytest.raises(ValueError, match="val_loss"):
        plots.training_curves({k: v for k, v in history.items() if k != "val_loss"})
    cm = np.array([[5, 1], [2, 2]])
    heat = plots.confusion_heatmap(cm, class_names=("x", "y"))
    values = [t.get_text() for t in heat.axes[0].texts]
    assert values == ["0.83", "0.17", "0.50", "0.50"]  # row-normalised
    saved_png(heat, tmp_path / "cm.png")


def test_save_rejects_other_formats(tmp_path):
    fig = plots.image_row(np.zeros((1, 48, 48, 1), np.uint8), ["x"])
    with pytest.raises(ValueError, match="png"):
        plots.save_and_show(fig, tmp_path / "fig.jpg")


def test_map_row_and_grouped_bars(tmp_path):
    import pandas as pd

    from fer_utils.gradcam import overlay

    faces = np.random.default_rng(0).integers(0, 255, (3, 48, 48, 1)).astype(np.uint8)
    maps = np.zeros((3, 48, 48), np.float32)
    maps[0, 10:20, 10:20] = 0.2  # a faint averaged map is stretched for display
    fig = plots.map_row(faces, maps, ["a", "b", "c"], overlay)
    assert len(fig.axes) == 4 and [a.get_title() for a in fig.axes[:3]] == ["a", "b", "c"]  # and the colour scale
    saved_png(fig, tmp_path / "maps.png")
    table = pd.DataFrame({"x": [0.1, 0.5], "y": [0.3, 0.2]}, index=["angry", "happy"])
    bars = plots.grouped_bars(table, "recall", "t")
    assert len(bars.axes[0].patches) == 4
    saved_png(bars, tmp_path / "bars.png")


def test_gradcam_rows_show_each_map_stretched_to_its_peak(tmp_path):
    from fer_utils.gradcam import overlay

    faces = np.full((2, 48, 48, 1), 128, np.uint8)
    maps = np.zeros((2, 3, 48, 48), np.float32)
    maps[0, 0, 10:20, 10:20] = 0.2           # a faint class average
    maps[0, 1] = 0.3                          # an evenly spread one: stays even
    maps[1, 0, 5:9, 5:9] = 1.0                # a face's own map, already peaking at 1
    shown = []
    fig = plots.gradcam_rows(faces, maps, ["a", "b"], ["conv1", "conv2", "conv3"],
                             lambda image, cam: shown.append(cam) or overlay(image, cam))
    assert len(shown) == 6 and len(fig.axes) == 9  # 2 faces, 6 maps and the colour scale
    assert shown[0].max() == pytest.approx(1.0) and shown[0][15, 15] == pytest.approx(1.0) and shown[0][0, 0] == 0
    assert np.allclose(shown[1], 1.0)        # even: no structure invented
    assert not shown[2].any()                 # an empty map stays empty
    np.testing.assert_array_equal(shown[3], maps[1, 0])
    assert maps[0, 0].max() == pytest.approx(0.2)  # the caller's maps are not changed
    saved_png(fig, tmp_path / "rows.png")


def test_probability_panel(tmp_path):
    from fer_utils.data import EMOTIONS
    from fer_utils.predict import Face

    face = Face([1, 2, 3, 4], "happy", {e: (0.4 if e == "happy" else 0.1) for e in EMOTIONS})
    fig = plots.probability_panel(np.zeros((20, 30, 3)), [face], "photo")
    assert len(fig.axes[1].patches) == 7
    saved_png(fig, tmp_path / "panel.png")
    empty = plots.probability_panel(np.zeros((20, 30, 3)), [], "no face")
    assert empty.axes[1].texts[0].get_text() == "no face found"
    saved_png(empty, tmp_path / "empty.png")


def test_accuracy_vs_report(tmp_path):
    import pandas as pd

    table = pd.DataFrame({"accuracy": [0.32, 0.28], "ci95_low": [0.30, 0.26], "ci95_high": [0.34, 0.30],
                          "report_accuracy": [0.65, np.nan]}, index=["baseline", "class_weights"])
    fig = plots.accuracy_vs_report(table)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["baseline", "class_weights"]
    bars = [p.get_width() for p in ax.patches]
    assert bars == pytest.approx([0.32, 0.28])
    markers = ax.collections[-1].get_offsets()
    assert len(markers) == 1 and markers[0][0] == pytest.approx(0.65)  # no marker where the report has none
    saved_png(fig, tmp_path / "acc.png")


def test_training_time_bars_show_measured_hours_and_the_fastest_epoch_tick(tmp_path):
    import pandas as pd

    times = pd.DataFrame({"notebook": ["01", "03", "03"], "epochs": [30, 16, 16],
                          "hours": [3.25, 1.8, 0.9], "hours_at_fastest": [2.2, 1.6, 0.8]},
                         index=pd.Index(["baseline", "oversample", "class_weights"], name="training"))
    fig = plots.training_time_bars(times)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["baseline (01)", "oversample (03)", "class_weights (03)"]
    assert sorted(p.get_width() for p in ax.patches) == pytest.approx([0.9, 1.8, 3.25])
    colours = {p.get_width(): p.get_facecolor() for p in ax.patches}
    assert colours[1.8] == colours[0.9] != colours[3.25]  # one colour per notebook
    ticks = ax.collections[0].get_offsets()
    assert sorted(ticks[:, 0]) == pytest.approx([0.8, 1.6, 2.2])
    assert ax.get_title() == "Where the training time went: 5 h 57 min in all"  # 5.95 h, as a reader says it
    saved_png(fig, tmp_path / "time.png")


def test_reliability_diagram(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(7), size=300)
    fig = plots.reliability_diagram(probs, rng.integers(0, 7, 300), "toy")
    assert fig.axes[0].get_title() == "toy" and len(fig.axes) == 2
    saved_png(fig, tmp_path / "reliability.png")
