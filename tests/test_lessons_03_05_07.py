"""Notebooks 03, 05 and 07 read their own outputs: the generated readings of balancing (03) and of the
Grad-CAM maps (05), the colour scale of every Grad-CAM figure, and the shape of their exercises."""

from __future__ import annotations

import shutil

import nbformat
import numpy as np
import pandas as pd
import pytest

from fer_utils.balance import balancing_readings, describe_balancing, read_balancing
from fer_utils.data import EMOTIONS, repo_root
from fer_utils.gradcam import (
    FACE_REGIONS,
    attention_by_emotion,
    densest_band,
    describe_attention,
    describe_layers,
    maps_match,
    peak_band,
    peak_region,
)

ROOT = repo_root()
PUBLISHED = ROOT / "results" / "reference"
DISGUST = EMOTIONS.index("disgust")


# --------------------------------------------------------------------------- 03: balancing read in words

def _labels(n_per_class: dict[str, int]) -> np.ndarray:
    return np.concatenate([np.full(n, EMOTIONS.index(e)) for e, n in n_per_class.items()])


#: PrivateTest's class counts at full size (the published run's): happy is the commonest (879 of 3,589).
FULL = {"angry": 491, "disgust": 55, "fear": 528, "happy": 879, "sad": 594, "surprise": 416, "neutral": 626}


def _table(rows: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """rows: name -> (accuracy, macro-F1, McNemar p); the interval is accuracy -/+ 0.016."""
    out = pd.DataFrame([{"experiment": n, "accuracy": a, "ci95_low": a - 0.016, "ci95_high": a + 0.016,
                         "macro_f1": f, "mcnemar_p_vs_baseline": p} for n, (a, f, p) in rows.items()])
    return out.set_index("experiment")


def _recall(disgust: dict[str, float]) -> pd.DataFrame:
    recall = pd.DataFrame({n: [0.5] * len(EMOTIONS) for n in disgust}, index=list(EMOTIONS))
    for name, value in disgust.items():
        recall.loc["disgust", name] = value
    return recall


def test_published_numbers_read_as_no_difference_and_a_trade():
    table = _table({"baseline": (0.670, 0.659, np.nan), "oversample": (0.667, 0.664, 0.74),
                    "class_weights": (0.645, 0.629, 0.00045)})
    text = describe_balancing(table, _recall({"baseline": 35 / 55, "oversample": 37 / 55, "class_weights": 39 / 55}),
                              _labels(FULL))
    lines = text.splitlines()
    assert lines[0].startswith("baseline: accuracy 0.670 (95% CI 0.654-0.686)")
    assert "disgust recall 0.64 (35 of 55 faces)" in lines[0]
    over = text[text.index("oversample:"):text.index("class_weights:")]
    assert "no significant difference" in over and "Verdict: no measurable difference" in over
    assert "2 more disgust faces right" in over and "(+0.005)" in over
    weights = text[text.index("class_weights:"):]
    assert "a significant difference" in weights and "Verdict: a trade" in weights
    assert "4 more disgust faces right" in weights and "macro-F1 down 0.030" in weights
    assert "near the floor" not in text


def test_a_lab_size_run_near_chance_gets_no_verdict():
    # the lab run: baseline 0.378, class weights 0.168, oversampling 0.255; happy's share is the floor
    small = {e: max(1, round(n * 0.08)) for e, n in FULL.items()}
    floor = small["happy"] / sum(small.values())
    table = _table({"baseline": (0.378, 0.22, np.nan), "oversample": (0.255, 0.15, 1e-6),
                    "class_weights": (0.168, 0.10, 1e-9)})
    text = describe_balancing(table, _recall({"baseline": 0.0, "oversample": 0.25, "class_weights": 1.0}),
                              _labels(small))
    assert text.count("near the floor, no finding") == 2
    assert f"{floor:.3f}" in text and "(happy)" in text
    assert "a trade" not in text and "a loss" not in text and "a gain" not in text


def test_a_baseline_near_chance_stops_every_verdict():
    table = _table({"baseline": (0.26, 0.1, np.nan), "oversample": (0.40, 0.3, 1e-5)})
    text = describe_balancing(table, _recall({"baseline": 0.0, "oversample": 0.5}), _labels(FULL))
    assert "no method can be judged against it" in text and "published run" in text
    assert "Verdict" not in text
    assert "class_weights: no results in this run." in text


@pytest.mark.parametrize("row, disgust, verdict", [
    ((0.70, 0.68, 0.001), 37 / 55, "a gain: significantly more faces right"),
    ((0.64, 0.63, 0.001), 35 / 55, "a loss"),
    ((0.66, 0.675, 0.5), 35 / 55, "a gain at no measurable cost"),
    ((0.66, 0.64, 0.5), 33 / 55, "a cost to the rarer emotions"),
])
def test_each_outcome_has_its_own_verdict(row, disgust, verdict):
    table = _table({"baseline": (0.670, 0.659, np.nan), "oversample": row})
    text = describe_balancing(table, _recall({"baseline": 35 / 55, "oversample": disgust}), _labels(FULL),
                              methods=("oversample",))
    assert f"Verdict: {verdict}" in text


def test_no_baseline_says_what_to_run():
    table = _table({"oversample": (0.6, 0.6, np.nan)})
    assert "No baseline results" in describe_balancing(table, _recall({"oversample": 0.5}), _labels(FULL))


@pytest.mark.skipif(not (PUBLISHED / "metrics" / "baseline.json").exists(), reason="no published run")
def test_the_published_run_read_from_its_files(tmp_path):
    text = read_balancing(PUBLISHED)
    assert "oversample: accuracy 0.667" in text and "Verdict: no measurable difference" in text
    assert "class_weights: accuracy 0.645" in text and "Verdict: a trade" in text
    # a run whose answers differ from the published ones is read first, then the published run
    run = tmp_path / "run"
    for name in ("baseline", "oversample", "class_weights"):
        for kind, suffix in (("metrics", "json"), ("predictions", "npz")):
            (run / kind).mkdir(parents=True, exist_ok=True)
            shutil.copy(PUBLISHED / kind / f"{name}.{suffix}", run / kind / f"{name}.{suffix}")
    assert balancing_readings(run).startswith("This run is the published run:")
    with np.load(run / "predictions" / "oversample.npz") as npz:
        arrays = dict(npz)
    arrays["y_pred"] = arrays["y_pred"].copy()
    arrays["y_pred"][0] = (arrays["y_pred"][0] + 1) % len(EMOTIONS)
    np.savez(run / "predictions" / "oversample.npz", **arrays)
    both = balancing_readings(run)
    assert both.startswith("This run:") and "The published run (reference profile, the full data):" in both


# --------------------------------------------------------------------------- 05: where the maps are densest

def _band_map(band: str, level: float = 1.0, floor: float = 0.05) -> np.ndarray:
    cam = np.full((48, 48), floor, np.float32)
    lo, hi = next((lo, hi) for name, lo, hi in FACE_REGIONS if name == band)
    cam[int(lo * 48):int(hi * 48)] += level
    return cam


def test_densest_band_and_its_names():
    band, share, ratio = densest_band(_band_map("eyes"))
    assert band == "eyes" and 0 < share <= 1 and ratio > 2
    assert peak_band(_band_map("mouth and chin")) == "mouth and chin"
    assert peak_band(np.zeros((48, 48))) == "empty map" and densest_band(np.zeros((48, 48))) is None
    assert peak_region(_band_map("eyes")).startswith("eyes (") and peak_region(_band_map("eyes"), short=True).startswith("eyes ")
    even = densest_band(np.ones((48, 48)))
    assert even[2] == pytest.approx(1.0, abs=0.05)


def _class_maps(bands: dict[str, str], level: float = 1.0) -> np.ndarray:
    return np.stack([_band_map(bands[e], level) for e in EMOTIONS])


def test_the_text_names_the_band_the_maps_show():
    # 05's output put surprise at the eyes while its prose said the mouth: the words must come from the maps
    bands = {"angry": "eyes", "disgust": "eyes", "fear": "eyes", "happy": "mouth and chin", "sad": "eyes",
             "surprise": "eyes", "neutral": "nose and cheeks"}
    maps, counts = _class_maps(bands), np.full(7, 10)
    found = attention_by_emotion(maps, counts, EMOTIONS)
    assert {e: f[0] for e, f in found.items()} == bands
    text = describe_attention(maps, counts, EMOTIONS, "conv4")
    first = text.splitlines()[0]
    eyes = first[first.index("on the eyes for"):]
    assert "surprise" in eyes.split(";")[0] and "happy" not in eyes.split(";")[0]
    assert "on the mouth and chin for happy" in first and "on the nose and cheeks for neutral" in first
    assert "surprise" not in first[first.index("mouth and chin"):].split(";")[0]
    # FACS: the eyes are among angry's, fear's and surprise's cues, not disgust's or sad's
    facs = text.splitlines()[-1]
    assert "angry, fear, happy and surprise" in facs and "not for disgust" in facs and "sad (its map on the eyes" in facs
    assert facs.endswith("Left out: neutral (a map near an even spread names no place, and neutral's prototype moves "
                         "nothing).")  # every emotion is judged or said to be left out


def test_even_maps_and_missing_classes_are_said_so():
    maps = np.stack([np.ones((48, 48), np.float32)] * 7)
    counts = np.array([5, 0, 5, 5, 5, 5, 5])
    text = describe_attention(maps, counts, EMOTIONS, "conv1")
    assert "No map for disgust" in text and "No map is clearly placed" in text
    assert "Near an even spread" in text and "FACS" not in text  # an even map is no evidence of place
    assert attention_by_emotion(maps, counts, EMOTIONS)["disgust"] is None
    assert "nothing to read" in describe_attention(maps, np.zeros(7, int), EMOTIONS, "conv1")


def test_the_layer_table_read_in_sentences():
    layers = ["conv1", "conv2", "conv3"]
    per_layer = [np.stack([np.ones((48, 48), np.float32)] * 7),              # even at conv1
                 _class_maps({e: "eyes" for e in EMOTIONS}, level=0.5),
                 _class_maps({e: ("mouth and chin" if e == "happy" else "eyes") for e in EMOTIONS}, level=3.0)]
    maps = np.stack(per_layer, axis=1)
    counts = np.array([3, 0, 3, 3, 3, 3, 3])
    text = describe_layers(maps, counts, layers, EMOTIONS)
    lines = text.splitlines()
    assert lines[0].startswith("How concentrated") and "most at conv3, least at conv1" in lines[0]
    assert "disgust: no correctly classified face, no map." in lines
    happy = next(line for line in lines if line.startswith("happy:"))
    assert happy.startswith("happy: near an even spread at conv1, eyes at conv2, mouth and chin at conv3;")
    assert "most concentrated at conv2 (eyes" in happy  # the eyes band is narrower: the same level is denser there
    angry = next(line for line in lines if line.startswith("angry:"))
    assert angry.startswith("angry: near an even spread at conv1, eyes at conv2-conv3;")
    assert not lines[0].endswith("no layer places it clearly (no median reaches 1.5x).")  # conv3 does
    flat = np.stack([np.stack([np.ones((48, 48), np.float32)] * 7)] * 3, axis=1)
    flat_text = describe_layers(flat, np.full(7, 2), layers, EMOTIONS)
    assert "never far from an even spread" in flat_text
    assert flat_text.splitlines()[0].endswith("; the same at every layer; no layer places it clearly "
                                              "(no median reaches 1.5x).")


def test_maps_match_is_a_check_predicate():
    expected = np.stack([_band_map("eyes"), _band_map("mouth and chin")])
    matches = maps_match(expected)
    assert matches(expected + 0.01) and not matches(expected[::-1]) and not matches(expected[:1])
    assert not matches("two maps")


# --------------------------------------------------------------------------- figures: a colour scale

LABEL = "Grad-CAM weight (0 = none, 1 = the map's maximum)"


def _colorbar_labels(fig) -> list[str]:
    return [ax.get_xlabel() + ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]


@pytest.mark.parametrize("rows, cols", [(7, 5), (1, 5), (3, 2)])
def test_gradcam_figures_carry_a_labelled_colour_scale(tmp_path, rows, cols):
    from fer_utils import plots
    from fer_utils.gradcam import overlay

    faces = np.full((rows, 48, 48, 1), 100, np.uint8)
    maps = np.random.default_rng(0).random((rows, cols, 48, 48)).astype(np.float32)
    fig = plots.gradcam_rows(faces, maps, [f"r{i}" for i in range(rows)], [f"c{i}" for i in range(cols)], overlay)
    labels = _colorbar_labels(fig)
    assert len(labels) == 1 and LABEL in labels[0].replace("\n", " ") and "its own maximum" in labels[0]
    plots.save_and_show(fig, tmp_path / "rows.png")
    row = plots.map_row(faces[:, :, :, :], maps[:, 0], [f"r{i}" for i in range(rows)], overlay, "t")
    assert len(_colorbar_labels(row)) == 1 and "its own maximum" in _colorbar_labels(row)[0]
    plots.save_and_show(row, tmp_path / "row.png")


def test_the_photo_panel_shows_the_scale_only_with_a_map(tmp_path):
    from fer_utils import plots
    from fer_utils.predict import Face

    face = Face([1, 2, 3, 4], "happy", {e: (0.4 if e == "happy" else 0.1) for e in EMOTIONS})
    with_map = plots.probability_panel(np.zeros((20, 30, 3)), [face], "photo", gradcam_layer="conv3")
    labels = _colorbar_labels(with_map)
    assert len(labels) == 1 and labels[0].startswith("conv3 Grad-CAM weight")
    assert len(with_map.axes[1].patches) == 7
    plots.save_and_show(with_map, tmp_path / "panel.png")
    assert not _colorbar_labels(plots.probability_panel(np.zeros((20, 30, 3)), [face], "photo"))
    assert not _colorbar_labels(plots.probability_panel(np.zeros((20, 30, 3)), [], "none", gradcam_layer="conv3"))


# --------------------------------------------------------------------------- the notebooks' shape



def test_05_prose_leaves_the_places_to_the_maps():
    nb = nbformat.read(ROOT / "notebooks" / "05_gradcam.ipynb", as_version=4)
    prose = " ".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "mouth for happy and surprise" not in prose
    code = " ".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "describe_attention(" in code and "describe_layers(" in code


def test_a_model_near_chance_is_named_so():
    from fer_utils.gradcam import model_floor_note

    labels = _labels(FULL)
    assert "near the floor" in model_floor_note(0.26, labels) and "happy" in model_floor_note(0.26, labels)
    assert "has learned" in model_floor_note(0.67, labels)


def test_the_layer_reading_names_the_layers_that_light_the_frame():
    layers = ["conv1", "conv2"]
    maps = np.full((len(EMOTIONS), 2, 48, 48), 0.1, np.float32)
    maps[:, 0, :3, :] = maps[:, 0, -3:, :] = 2.0  # conv1 lights the top and bottom edges of every class's map
    maps[:, 1] = np.stack([_band_map("eyes") for _ in EMOTIONS])
    text = describe_layers(maps, np.full(7, 5), layers, EMOTIONS)
    frame = next(line for line in text.splitlines() if line.startswith("The image's outer frame"))
    assert "(3 pixels wide, 23% of its area)" in frame
    assert "(median over the emotions): conv1 " in frame
    assert "At conv1 the maps light the frame (1.5x or more): most likely that layer responds to the edge" in frame
    maps[:, 0] = maps[:, 1]
    assert "No layer puts more on the frame than an even spread would" in describe_layers(maps, np.full(7, 5), layers, EMOTIONS)
    maps[:, 0] = 0.1
    maps[:, 0, :3, :] = 0.34  # a little more on the top edge: the frame holds 31 % of the map, 1.3x its 23 %
    some = describe_layers(maps, np.full(7, 5), layers, EMOTIONS)
    assert "At conv1 the maps put somewhat more on it than an even spread would (1.2x to 1.5x)" in some, some


def test_the_reports_fear_reading_is_set_beside_the_average():
    from fer_utils.gradcam import describe_report_claim

    layers = ["conv1", "conv3"]
    maps = np.stack([np.stack([_band_map("eyes")] * 7), np.stack([_band_map("mouth and chin")] * 7)], axis=1)
    counts = np.full(7, 12)
    text = describe_report_claim(maps, counts, layers, EMOTIONS)
    assert text.startswith("The report saw the mouth and forehead light up at conv3 for one fear face; this model's "
                           "average over its 12 correctly classified fear faces is densest on the mouth and chin at")
    assert text.endswith("one of the places the report named: the average bears its reading out.")
    maps[:, 1] = np.stack([_band_map("eyes")] * 7)
    assert describe_report_claim(maps, counts, layers, EMOTIONS).endswith("the average does not bear its reading out.")
    maps[:, 1] = 1.0
    assert "near an even spread, so it points nowhere in particular" in describe_report_claim(maps, counts, layers, EMOTIONS)
    assert "has no conv3 map" in describe_report_claim(maps, np.zeros(7, int), layers, EMOTIONS)


def test_band_ratio_of_an_empty_map_is_zero():
    from fer_utils.gradcam import band_ratio

    assert band_ratio(np.zeros((48, 48))) == 0.0
    assert band_ratio(_band_map("eyes")) == pytest.approx(densest_band(_band_map("eyes"))[2])


def test_placement_reads_a_ratio_as_it_is_printed():
    from fer_utils.gradcam import placement

    # 1.16 prints as 1.2 and 1.46 as 1.5: each is read as it is printed
    assert [placement(r) for r in (0.0, 1.14, 1.16, 1.2, 1.44, 1.46, 2.0)] == [
        "even", "even", "some", "some", "some", "clear", "clear"]


def test_describe_placement_says_how_far_to_trust_the_band():
    from fer_utils.gradcam import describe_placement

    assert describe_placement(0.0, "the predicted class's map") == "the predicted class's map is empty: it points nowhere"
    assert describe_placement(1.46) == "the map holds 1.5x an even spread on its band: clearly placed"
    assert describe_placement(1.3).endswith("1.3x an even spread on its band: not clearly placed (under 1.5x), "
                                            "so read the band with care")
    assert describe_placement(1.14).endswith("1.1x an even spread on its band: near an even spread, so the band it "
                                             "names says little")


def test_describe_close_calls_compares_them_with_all_faces():
    from fer_utils.evaluate import describe_close_calls

    right = np.array([True] * 8 + [False] * 2)  # 80 % overall
    close = np.zeros(10, bool)
    assert describe_close_calls(right, close) == "no face is a close call"
    close[[0, 8, 9]] = True  # right on 1 of 3 close calls
    assert describe_close_calls(right, close) == ("on those faces the model is right 33% of the time, against 80% "
                                                  "overall: where it hesitates between two emotions, its answer is "
                                                  "worth much less")
    close[:] = False
    close[[0, 1, 2, 3, 8]] = True  # 80 %: no worse
    assert describe_close_calls(right, close) == "on those faces the model is right 80% of the time, against 80% overall"
    with pytest.raises(ValueError, match="same shape"):
        describe_close_calls(right, close[:5])
