"""fer_utils.predict and fer-predict: real photographs from installed packages, and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import skimage
from PIL import Image

from fer_utils import predict
from fer_utils.data import EMOTIONS
from fer_utils.predict import Predictor, PredictError, crop_face, load_model, main, read_gray

GRACE_HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
ASTRONAUT = Path(skimage.__file__).parent / "data" / "astronaut.png"
COFFEE = Path(skimage.__file__).parent / "data" / "coffee.png"  # a cup, no face


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    from fer_utils.model import build_baseline

    path = tmp_path_factory.mktemp("model") / "baseline.keras"
    build_baseline(seed=0).save(path)  # the same untrained weights on every run: no test depends on a draw
    return path


@pytest.fixture(scope="module")
def predictor(model_file) -> Predictor:
    return Predictor(load_model(model_file), gradcam_layer="conv3")


def run_cli(args, capsys) -> tuple[int, str, list[str]]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, [line for line in err.splitlines() if line.startswith("fer-predict")]


def test_faces_found_on_real_portraits(predictor):
    for photo, (width, height) in ((GRACE_HOPPER, (512, 600)), (ASTRONAUT, (512, 512))):
        result = predictor.predict_file(photo)
        assert result.error is None and (result.width, result.height) == (width, height)
        assert len(result.faces) == 1, photo.name
        face = result.faces[0]
        x, y, w, h = face.box
        assert 0 <= x and x + w <= width and 0 <= y and y + h <= height and w >= 60
        assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-3)
        # the emotion is the most probable one (the probabilities are rounded to 4 decimals, which may tie it)
        assert face.probabilities[face.emotion] == max(face.probabilities.values())
    # Grace Hopper's face is in the upper middle of her portrait
    box = predictor.predict_file(GRACE_HOPPER).faces[0].box
    assert 100 < box[0] + box[2] / 2 < 400 and 100 < box[1] + box[3] / 2 < 350


def test_an_annotated_face_says_where_its_map_is_densest(predictor, tmp_path):
    from fer_utils.gradcam import FACE_REGIONS

    face = predictor.predict_file(ASTRONAUT, annotate_dir=tmp_path).faces[0]
    assert face.attention == "empty map" or face.attention.split(" (")[0] in [r[0] for r in FACE_REGIONS]
    assert predictor.predict_file(ASTRONAUT).faces[0].attention is None  # no annotated copy, no map


def test_no_face_is_a_normal_answer(predictor):
    result = predictor.predict_file(COFFEE)
    assert result.error is None and result.faces == [] and result.message == "no face found"


def test_crop_is_48x48_and_handles_edges():
    gray = np.arange(100 * 80, dtype=np.uint32).reshape(100, 80).astype(np.uint8)
    assert crop_face(gray, (0, 0, 40, 40)).shape == (48, 48)  # square leaves the image: padded
    assert crop_face(gray, (60, 80, 20, 20)).dtype == np.uint8


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16", "CMYK", "LA"])
def test_every_image_mode_is_read(tmp_path, predictor, mode):
    src = Image.open(GRACE_HOPPER).convert("RGB")
    if mode == "I;16":
        img = Image.fromarray((np.asarray(src.convert("L"), dtype=np.uint16) * 257))
        path = tmp_path / "photo.png"
    else:
        img = src.convert(mode)
        path = tmp_path / ("photo.jpg" if mode in ("L", "RGB", "CMYK") else "photo.png")
    img.save(path)
    gray, scale, size = read_gray(path)
    assert gray.dtype == np.uint8 and gray.shape == (600, 512) and scale == 1.0 and size == (512, 600)
    if mode == "I;16":  # scaled by the 16-bit range, not clipped
        assert abs(float(gray.mean()) - float(np.asarray(src.convert("L")).mean())) < 1.0
    assert len(predictor.predict_file(path).faces) == 1


def test_very_large_photo_is_downscaled_first(tmp_path, predictor):
    big = tmp_path / "big.jpg"
    Image.open(GRACE_HOPPER).convert("RGB").resize((6000, 4000)).save(big, quality=85)
    gray, scale, size = read_gray(big)
    assert size == (6000, 4000) and max(gray.shape) <= predict.MAX_SIDE and scale > 3
    result = predictor.predict_file(big)
    assert result.error is None and (result.width, result.height) == (6000, 4000)
    for face in result.faces:  # boxes are reported in the original's pixels
        assert face.box[0] + face.box[2] <= 6000 and face.box[1] + face.box[3] <= 4000


@pytest.mark.parametrize("case,needle", [
    ("missing", "no such file"),
    ("text", "not an image"),
    ("corrupt", "not an image"),
    ("truncated", "corrupted or truncated image"),
    ("folder", "is a folder"),
])
def test_bad_files_get_one_line(tmp_path, case, needle):
    path = tmp_path / "bad.jpg"
    if case == "text":
        path = tmp_path / "notes.txt"
        path.write_text("hello")
    elif case == "corrupt":
        path.write_bytes(b"\xff\xd8\xff garbage")
    elif case == "truncated":
        path.write_bytes(GRACE_HOPPER.read_bytes()[:4000])
    elif case == "folder":
        path.mkdir()
    with pytest.raises(PredictError) as exc:
        read_gray(path)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_folder_with_good_and_bad_files(tmp_path, model_file, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for src in (GRACE_HOPPER, ASTRONAUT, COFFEE):
        (folder / src.name).write_bytes(src.read_bytes())
    (folder / "notes.txt").write_text("not a photo")
    (folder / "cut.jpg").write_bytes(GRACE_HOPPER.read_bytes()[:3000])
    code, out, errors = run_cli([folder, "--model", model_file, "--json", "--annotate", tmp_path / "ann",
                                 "--gradcam", "conv3"], capsys)
    assert code == 1  # some files could not be read ...
    payload = json.loads(out)  # ... but every file got an answer, and stdout is valid JSON
    by_name = {Path(r["path"]).name: r for r in payload["images"]}
    assert set(by_name) == {"astronaut.png", "coffee.png", "cut.jpg", "grace_hopper.jpg", "notes.txt"}
    assert len(by_name["grace_hopper.jpg"]["faces"]) == 1 and by_name["coffee.png"]["faces"] == []
    assert by_name["notes.txt"]["error"].startswith("not an image")
    assert len(errors) == 2 and all(e.count("\n") == 0 for e in errors)
    face = by_name["astronaut.png"]["faces"][0]
    assert set(face) == {"box", "emotion", "probabilities", "attention"} and len(face["box"]) == 4
    assert isinstance(face["attention"], str)  # with --gradcam: where the map of its emotion is densest
    assert list(face["probabilities"]) == list(EMOTIONS)
    annotated = sorted(p.name for p in (tmp_path / "ann").iterdir())
    assert annotated == ["astronaut_annotated.png", "coffee_annotated.png", "grace_hopper_annotated.png"]
    assert Image.open(tmp_path / "ann" / "astronaut_annotated.png").size == (512, 512)


def test_table_output_and_success_code(model_file, capsys):
    code, out, errors = run_cli([GRACE_HOPPER, COFFEE, "--model", model_file], capsys)
    assert code == 0 and not errors
    assert "grace_hopper.jpg" in out and "no face found" in out and "angry" in out


@pytest.mark.parametrize("case,needle", [
    ("missing", "no such file"),
    ("not_keras", "expected a .keras file"),
    ("garbage", "not a Keras model"),
])
def test_bad_model_is_a_clear_error(tmp_path, capsys, case, needle):
    model = tmp_path / ("m.keras" if case != "not_keras" else "m.h5")
    if case != "missing":
        model.write_bytes(b"not a model")
    code, out, errors = run_cli([GRACE_HOPPER, "--model", model], capsys)
    assert code == 2 and len(errors) == 1 and needle in errors[0] and out == ""


def test_wrong_gradcam_layer(model_file, capsys):
    code, _, errors = run_cli([GRACE_HOPPER, "--model", model_file, "--gradcam", "conv9"], capsys)
    assert code == 2 and "conv9" in errors[0]


def test_no_model_anywhere(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv(predict.MODEL_ENV, raising=False)
    monkeypatch.setattr(predict, "DEFAULT_MODELS", ("does/not/exist.keras",))
    code, _, errors = run_cli([GRACE_HOPPER], capsys)
    assert code == 2 and "no model" in errors[0]


def test_annotation_is_written_whole_or_not_at_all(tmp_path, predictor, monkeypatch):
    import cv2

    monkeypatch.setattr(cv2, "imwrite", lambda path, img: False)  # e.g. a full disk
    result = predictor.predict_file(GRACE_HOPPER, tmp_path / "ann")
    assert result.error == "could not write grace_hopper_annotated.png"
    assert list((tmp_path / "ann").iterdir()) == []  # no half-written or temporary file left


def test_small_faces_mode_scans_at_full_size(model_file):
    fast = Predictor(load_model(model_file)).predict_file(GRACE_HOPPER).faces
    full = Predictor(load_model(model_file), detect_side=None).predict_file(GRACE_HOPPER).faces
    assert len(fast) == len(full) == 1
    # the two scans agree on where the face is (centres within a tenth of the box)
    (fx, fy, fw, fh), (gx, gy, gw, gh) = fast[0].box, full[0].box
    assert abs((fx + fw / 2) - (gx + gw / 2)) < 0.1 * gw and abs((fy + fh / 2) - (gy + gh / 2)) < 0.1 * gh


def test_face_top_k():
    face = predict.Face([0, 0, 1, 1], "sad", {"angry": 0.1, "sad": 0.6, "happy": 0.3})
    assert face.top(2) == [("sad", 0.6), ("happy", 0.3)]


def test_tta_classifies_each_face_as_the_study_scores_a_cropping_model(tmp_path, capsys):
    """--tta: for notebook 08's VGG-style model (a central 40x40 crop) the ten-crop average of
    fer_utils.beyond, the views the headline accuracy was measured with; not the plain prediction."""
    import keras

    from fer_utils.beyond import crop_margin, tta_probabilities
    from fer_utils.model import build_vgg

    keras.utils.set_random_seed(3)
    path = tmp_path / "vgg.keras"
    build_vgg(width=8).save(path)
    model = load_model(path)
    assert crop_margin(model) == 4  # a 40x40 crop of 48x48: shifts of 4 pixels reach the corners
    gray, _, _ = read_gray(GRACE_HOPPER)
    boxes, crops, plain = Predictor(model).predict_gray(gray)
    _, _, averaged = Predictor(model, tta=True).predict_gray(gray)
    assert len(boxes) == 1 and averaged.shape == (1, len(EMOTIONS))
    np.testing.assert_allclose(averaged, tta_probabilities(model, crops.astype("float32")), atol=1e-6)
    np.testing.assert_allclose(averaged.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(averaged - plain).max() > 1e-4  # the views differ from the centre crop alone

    code, out, errors = run_cli([GRACE_HOPPER, "--model", path, "--tta", "--json"], capsys)
    assert code == 0 and not errors
    face = json.loads(out)["images"][0]["faces"][0]
    assert face["probabilities"]["happy"] == pytest.approx(float(averaged[0, EMOTIONS.index("happy")]), abs=1e-4)
