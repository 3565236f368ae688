"""fer_utils.data on tiny synthetic trees: forms, label mapping, caps, cache, and every bad-input error."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import PIXEL_OF, make_tree, write_image, zip_tree
from fer_utils import data as fd
from fer_utils.data import EMOTIONS, FerDataError, cap_per_class, load_fer2013


def test_folder_form_maps_labels_by_name_and_splits_by_prefix(tree, cache_dir):
    d = load_fer2013(tree, cache_dir=cache_dir)
    assert d.images.shape == (49, 48, 48, 1) and d.images.dtype == np.uint8
    assert d.split_counts() == {"Training": 21, "PublicTest": 14, "PrivateTest": 14}
    # every image's pixel value encodes its class: labels follow folder names, not sort order
    for label in range(len(EMOTIONS)):
        assert np.all(d.images[d.labels == label] == PIXEL_OF[label])
    # the folders sort as angry, disgust, fear, happy, neutral, sad, surprise: neutral must be 6
    assert set(d.labels[d.images[:, 0, 0, 0] == PIXEL_OF[6]]) == {6}
    assert d.ids[0].startswith("Training_")
    assert list(np.unique(d.splits)) == [0, 1, 2]


def test_jpeg_tree_reads_like_png_tree(tmp_path, cache_dir):
    png = load_fer2013(make_tree(tmp_path / "png"), cache_dir=cache_dir)
    jpg = load_fer2013(make_tree(tmp_path / "jpg", suffix=".jpg"), cache_dir=cache_dir)
    np.testing.assert_array_equal(png.labels, jpg.labels)
    assert np.abs(png.images.astype(int) - jpg.images).max() <= 1  # constant JPEG blocks decode (near) exactly


@pytest.mark.parametrize("prefix", ["", "archive/"])
def test_zip_form_equals_folder_form(tree, tmp_path, cache_dir, prefix):
    folder = load_fer2013(tree, cache=False)
    zipped = load_fer2013(zip_tree(tree, tmp_path / "archive.zip", prefix), cache_dir=cache_dir)
    np.testing.assert_array_equal(folder.images, zipped.images)
    np.testing.assert_array_equal(folder.labels, zipped.labels)
    np.testing.assert_array_equal(folder.splits, zipped.splits)
    np.testing.assert_array_equal(folder.ids, zipped.ids)


def write_csv(path: Path, rows: list[tuple], header=("emotion", "pixels", "Usage")) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_csv_form(tmp_path, cache_dir):
    px = lambda v: " ".join([str(v)] * 2304)  # noqa: E731
    path = write_csv(tmp_path / "fer2013.csv", [
        (6, px(7), "PrivateTest"), (0, px(1), "Training"), (3, px(200), "PublicTest"), (1, px(9), "Training"),
    ])
    d = load_fer2013(path, cache_dir=cache_dir)
    assert d.split_counts() == {"Training": 2, "PublicTest": 1, "PrivateTest": 1}
    assert list(d.labels) == [0, 1, 3, 6]  # ordered by split, stable within a split
    assert [int(d.images[i, 0, 0, 0]) for i in range(4)] == [1, 9, 200, 7]
    # rows counted from 0, as in the data set's MANIFEST.csv: the first data row is csv-row-0
    assert list(d.ids) == ["csv-row-1", "csv-row-3", "csv-row-2", "csv-row-0"]


def test_cache_makes_second_load_skip_decoding(tree, cache_dir, monkeypatch):
    first = load_fer2013(tree, cache_dir=cache_dir)
    assert len(list(cache_dir.glob("*.npz"))) == 1
    monkeypatch.setattr(fd, "_load_folder", lambda root: pytest.fail("decoded again despite the cache"))
    second = load_fer2013(tree, cache_dir=cache_dir)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.ids, second.ids)


def test_cache_is_refreshed_when_files_change(tree, cache_dir):
    load_fer2013(tree, cache_dir=cache_dir)
    write_image(tree / "train" / "happy" / "Training_new.png", 99)
    d = load_fer2013(tree, cache_dir=cache_dir)
    assert d.split_counts()["Training"] == 22


def test_env_variable_sets_default_path(tree, cache_dir, monkeypatch):
    monkeypatch.setenv(fd.DATA_ENV, str(tree))
    assert fd.default_data_path() == tree
    assert len(load_fer2013(cache_dir=cache_dir)) == 49


def test_sample_fraction_keeps_the_imbalance(tmp_path):
    d = load_fer2013(make_tree(tmp_path / "t", {"Training": 10, "PublicTest": 4, "PrivateTest": 1}), cache=False)
    s = fd.sample_fraction(d, 0.3, seed=1)
    assert s.split_counts() == {"Training": 21, "PublicTest": 7, "PrivateTest": 7}  # 3, 1 (min 1), 1 per class
    np.testing.assert_array_equal(s.ids, fd.sample_fraction(d, 0.3, seed=1).ids)
    with pytest.raises(ValueError, match="fraction"):
        fd.sample_fraction(d, 0.0)


def test_cap_per_class_is_stratified_and_deterministic(tmp_path):
    d = load_fer2013(make_tree(tmp_path / "t", {"Training": 5, "PublicTest": 3, "PrivateTest": 3}), cache=False)
    a, b = cap_per_class(d, 2, seed=1), cap_per_class(d, 2, seed=1)
    np.testing.assert_array_equal(a.ids, b.ids)
    for s in range(3):
        assert np.bincount(a.labels[a.splits == s], minlength=7).tolist() == [2] * 7
    c = cap_per_class(d, {"Training": 4}, seed=1)
    assert c.split_counts() == {"Training": 28, "PublicTest": 21, "PrivateTest": 21}
    assert set(cap_per_class(d, 2, seed=2).ids) != set(a.ids)  # another seed, another choice
    with pytest.raises(ValueError, match="unknown split"):
        cap_per_class(d, {"Validation": 2})
    with pytest.raises(ValueError, match="at least 1"):
        cap_per_class(d, 0)


# ----------------------------------------------------------------------------- bad data


def assert_one_line_error(excinfo, *needles: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def no_cache_written(cache_dir: Path) -> bool:
    return not cache_dir.exists() or not any(cache_dir.iterdir())


def test_missing_path(tmp_path, cache_dir):
    with pytest.raises(FerDataError) as exc:
        load_fer2013(tmp_path / "nowhere", cache_dir=cache_dir)
    assert_one_line_error(exc, "nowhere", "no such file or folder")


def test_unknown_emotion_folder(tree, cache_dir):
    write_image(tree / "train" / "contempt" / "Training_1.png", 5)
    with pytest.raises(FerDataError) as exc:
        load_fer2013(tree, cache_dir=cache_dir)
    assert_one_line_error(exc, "'contempt'", "unknown emotion folder",
                          "expected one of angry, disgust, fear, happy, sad, surprise, neutral or a label 0-6")
    assert no_cache_written(cache_dir)


@pytest.mark.parametrize("case,needle", [
    ("16bit", "expected an 8-bit image, got a 16-bit one"),
    ("float", "expected an 8-bit image, got a floating-point one"),
    ("corrupt", "corrupted or unreadable image (not an image format Pillow reads)"),
    ("truncated", "corrupted or unreadable image"),
])
def test_bad_image_names_the_file_and_writes_no_cache(tree, cache_dir, case, needle):
    bad = tree / "test" / "fear" / "PublicTest_bad.jpg"
    if case == "float":
        bad = bad.with_suffix(".tif")
        Image.fromarray(np.full((48, 48), 0.5, dtype=np.float32)).save(bad)
    elif case == "16bit":
        bad = bad.with_suffix(".png")
        Image.fromarray(np.full((48, 48), 40000, dtype=np.uint16)).save(bad)
    elif case == "corrupt":
        bad.write_bytes(b"this is not a jpeg at all")
    else:
        good = tree / "test" / "fear" / "PublicTest_good.jpg"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)).save(good)
        bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(FerDataError) as exc:
        load_fer2013(tree, cache_dir=cache_dir)
    assert_one_line_error(exc, bad.name, needle)
    assert no_cache_written(cache_dir)


def test_empty_folder(tmp_path, cache_dir):
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(FerDataError) as exc:
        load_fer2013(tmp_path / "empty", cache_dir=cache_dir)
    assert_one_line_error(exc, "no images found; expected train/ and test/ folders", "or train/, val/ and test/")


def test_missing_test_folder(tree, cache_dir):
    shutil.rmtree(tree / "test")
    with pytest.raises(FerDataError) as exc:
        load_fer2013(tree, cache_dir=cache_dir)
    assert_one_line_error(exc, "test/ folder is missing")


def test_test_file_without_split_prefix(tree, cache_dir):
    write_image(tree / "test" / "sad" / "img_1.png", 5)
    with pytest.raises(FerDataError) as exc:
        load_fer2013(tree, cache_dir=cache_dir)
    assert_one_line_error(exc, "img_1.png", "must be named PublicTest_<n> or PrivateTest_<n>",
                          "or the copy laid out as train/, val/ (PublicTest) and test/ (PrivateTest)")


def test_a_bad_csv_row_further_down_is_named_by_its_row(tmp_path, cache_dir):
    good = (0, " ".join(["1"] * 2304), "Training")
    path = write_csv(tmp_path / "fer2013.csv", [good] * 5 + [(0, "1 2", "Training")])
    with pytest.raises(FerDataError) as exc:
        load_fer2013(path, cache_dir=cache_dir)
    assert_one_line_error(exc, "fer2013.csv row 5 (line 7; rows counted from 0): expected 2304 pixel values, got 2")


def test_not_a_zip(tmp_path, cache_dir):
    fake = tmp_path / "archive.zip"
    fake.write_bytes(b"garbage")
    with pytest.raises(FerDataError) as exc:
        load_fer2013(fake, cache_dir=cache_dir)
    assert_one_line_error(exc, "archive.zip", "not a readable zip")


def test_unsupported_file_type(tmp_path, cache_dir):
    other = tmp_path / "data.parquet"
    other.write_bytes(b"x")
    with pytest.raises(FerDataError, match="expected a folder, a .zip or a .csv"):
        load_fer2013(other, cache_dir=cache_dir)


ROW_0 = "row 0 (line 2; rows counted from 0)"


@pytest.mark.parametrize("rows,header,needle", [
    ([(0, "1 2 3", "Training")], ("emotion", "pixels", "Usage"), f"{ROW_0}: expected 2304 pixel values, got 3"),
    ([(0, " ".join(["1"] * 2304), "Training")], ("label", "pixels", "Usage"), "wrong columns"),
    ([(9, " ".join(["1"] * 2304), "Training")], ("emotion", "pixels", "Usage"), f"{ROW_0}: emotion '9'"),
    ([(0, " ".join(["300"] * 2304), "Training")], ("emotion", "pixels", "Usage"), "0..255"),
    ([(0, " ".join(["1"] * 2304), "Validation")], ("emotion", "pixels", "Usage"), "Usage 'Validation'"),
    ([(0, " ".join(["x"] * 2304), "Training")], ("emotion", "pixels", "Usage"), "integers"),
])
def test_bad_csv(tmp_path, cache_dir, rows, header, needle):
    path = write_csv(tmp_path / "fer2013.csv", rows, header)
    with pytest.raises(FerDataError) as exc:
        load_fer2013(path, cache_dir=cache_dir)
    assert_one_line_error(exc, "fer2013.csv", needle)
    assert no_cache_written(cache_dir)


def test_empty_csv(tmp_path, cache_dir):
    path = tmp_path / "fer2013.csv"
    path.write_text("")
    with pytest.raises(FerDataError, match="the file is empty"):
        load_fer2013(path, cache_dir=cache_dir)


def test_split_rejects_unknown_name(tree):
    d = load_fer2013(tree, cache=False)
    with pytest.raises(ValueError, match="unknown split 'Validation'"):
        d.split("Validation")
    assert d.split("PublicTest").split_counts() == {"Training": 0, "PublicTest": 14, "PrivateTest": 0}


def test_audit_on_synthetic_duplicates(tree):
    d = load_fer2013(tree, cache=False)
    found = fd.audit(d)
    # every class has 7 identical constant images spread over all three splits
    assert found["duplicate_groups"] == 7
    assert found["duplicate_files"] == 49
    assert found["cross_split_groups"] == 7
    assert found["conflicting_groups"] == 0
    assert found["near_blank"] == 49  # constant images have zero pixel spread
    assert found["distinct_images"] == 7


def test_audit_finds_conflicting_labels(tmp_path):
    root = make_tree(tmp_path / "t", {"Training": 1, "PublicTest": 1, "PrivateTest": 1})
    rng = np.random.default_rng(3)
    face = rng.integers(0, 255, (48, 48), dtype=np.uint8)
    write_image(root / "train" / "happy" / "Training_dupA.png", face)
    write_image(root / "train" / "sad" / "Training_dupB.png", face)
    d = load_fer2013(root, cache=False)
    found = fd.audit(d)
    assert found["duplicate_groups"] == 8  # 7 constant groups (one per class) + the face
    assert found["conflicting_groups"] == 1
    (group,) = found["conflicting"]
    assert sorted(EMOTIONS[label] for label in d.labels[group]) == ["happy", "sad"]
    assert found["near_blank"] == 21  # the constant images, not the face


def test_image_of_another_size_loads_resized_and_is_reported(tree, cache_dir):
    """A copy someone resized still loads (at 48x48), and the verdict says which images were resized."""
    Image.new("L", (64, 48), 3).save(tree / "test" / "fear" / "PublicTest_big.png")
    data = load_fer2013(tree, cache_dir=cache_dir)
    row = int(np.flatnonzero(data.ids == "PublicTest_big")[0])
    assert data.images[row].shape == (48, 48, 1) and int(data.images[row].max()) == 3
    assert not data.verification.canonical
    with pytest.raises(FerDataError, match="expected a 48x48 image, got 64x48"):
        from fer_utils.data import decode_image

        decode_image((tree / "test" / "fear" / "PublicTest_big.png").read_bytes(), "x.png")


def test_split_sanity_and_its_sentence(tree, cache_dir):
    import pandas as pd

    from fer_utils.data import describe_split_sanity, split_sanity

    table = split_sanity(load_fer2013(tree, cache_dir=cache_dir))
    assert list(table.index) == ["Training", "PublicTest", "PrivateTest"]
    assert table["images"].tolist() == [21, 14, 14]
    agree = pd.DataFrame({"median pixel std": [53.6, 53.7, 53.9], "median sharpness": [0.499, 0.498, 0.499]})
    assert describe_split_sanity(agree).startswith("Sanity check passed")
    blurred = pd.DataFrame({"median pixel std": [38.0, 54.0, 54.0], "median sharpness": [0.18, 0.50, 0.50]})
    text = describe_split_sanity(blurred)
    assert text.startswith("Sanity check FAILED") and "178% in sharpness" in text


# ----------------------------------------------------------------------------- colour, layouts, messages


def test_colour_images_are_converted_with_the_luma_weights(tree, cache_dir):
    """Colour is read as grayscale (ITU-R 601 luma), losslessly where the channels are equal, and the
    verdict says how many were converted."""
    Image.new("RGB", (48, 48), (77, 77, 77)).save(tree / "train" / "happy" / "Training_grey.png")
    Image.new("RGB", (48, 48), (200, 100, 50)).save(tree / "train" / "happy" / "Training_orange.jpg", quality=100)
    Image.new("RGBA", (48, 48), (10, 20, 30, 255)).save(tree / "train" / "happy" / "Training_rgba.png")
    Image.new("L", (48, 48), 120).convert("P").save(tree / "train" / "happy" / "Training_palette.png")
    d = load_fer2013(tree, cache_dir=cache_dir)
    pixel = {i: int(d.images[k, 0, 0, 0]) for k, i in enumerate(d.ids)}
    assert pixel["Training_grey"] == 77  # equal channels: exact
    assert pixel["Training_orange"] == pytest.approx(0.299 * 200 + 0.587 * 100 + 0.114 * 50, abs=1.5)
    assert pixel["Training_rgba"] == round(0.299 * 10 + 0.587 * 20 + 0.114 * 30)
    assert pixel["Training_palette"] == 120
    assert d.verification.converted == {"equal channels": 2, "colour": 2}
    # and from the cache
    again = load_fer2013(tree, cache_dir=cache_dir)
    assert again.verification.converted == {"equal channels": 2, "colour": 2}


def rows_tree(root: Path, val: str = "val") -> Path:
    """The per-row layout: train/, val/ and test/, folders named by label, files by csv row."""
    row = 0
    for top in ("train", val, "test"):
        for label in range(len(EMOTIONS)):
            for _ in range(2):
                write_image(root / top / str(label) / f"{row}.png", PIXEL_OF[label])
                row += 1
    return root


@pytest.mark.parametrize("val", ["val", "validation", "Val"])
def test_per_row_layout_maps_folders_to_splits_and_labels(tmp_path, cache_dir, val):
    d = load_fer2013(rows_tree(tmp_path / "rows", val), cache_dir=cache_dir)
    assert d.split_counts() == {"Training": 14, "PublicTest": 14, "PrivateTest": 14}
    for label in range(len(EMOTIONS)):
        assert np.all(d.images[d.labels == label] == PIXEL_OF[label])
    assert d.ids[0] == "train/0/0" and f"{val}/3/20" in d.ids.tolist()
    assert set(d.ids[d.splits == 1].tolist()) == {f"{val}/{k // 2}/{14 + k}" for k in range(14)}


def test_per_row_layout_in_a_zip(tmp_path, cache_dir):
    root = rows_tree(tmp_path / "rows")
    folder = load_fer2013(root, cache=False)
    zipped = load_fer2013(zip_tree(root, tmp_path / "rows.zip", "fer2013/"), cache_dir=cache_dir)
    np.testing.assert_array_equal(zipped.ids, folder.ids)
    np.testing.assert_array_equal(zipped.splits, folder.splits)


def test_emotion_folders_by_name_in_any_case(tmp_path, cache_dir):
    root = make_tree(tmp_path / "t")
    (root / "train" / "happy").rename(root / "train" / "Happy")
    d = load_fer2013(root, cache_dir=cache_dir)
    assert set(d.labels[d.images[:, 0, 0, 0] == PIXEL_OF[3]]) == {3}


def test_label_folders_without_a_validation_folder_are_refused_in_one_line(tmp_path, cache_dir):
    root = tmp_path / "rows"
    write_image(root / "train" / "0" / "0.png", 5)
    write_image(root / "test" / "0" / "1.png", 5)
    with pytest.raises(FerDataError) as exc:
        load_fer2013(root, cache_dir=cache_dir)
    assert_one_line_error(exc, "1.png", "or the copy laid out as train/, val/ (PublicTest) and test/ (PrivateTest)")


def test_label_folder_out_of_range(tmp_path, cache_dir):
    root = rows_tree(tmp_path / "rows")
    write_image(root / "train" / "7" / "99.png", 5)
    with pytest.raises(FerDataError) as exc:
        load_fer2013(root, cache_dir=cache_dir)
    assert_one_line_error(exc, "unknown emotion folder '7'")


def test_a_bad_file_gives_a_short_traceback(tree, cache_dir):
    """A bad file ends the load with one line, raised from the load, not from inside a thread pool."""
    import traceback

    (tree / "train" / "sad" / "Training_bad.png").write_bytes(b"not an image")
    with pytest.raises(FerDataError) as exc:
        load_fer2013(tree, cache_dir=cache_dir)
    frames = traceback.extract_tb(exc.value.__traceback__)
    assert [f.name for f in frames[1:]] == ["load_fer2013", "_load_folder", "_decode_all"]
    text = "".join(traceback.format_exception(exc.value))
    assert "concurrent" not in text and len(text.splitlines()) <= 12, text


def test_strict_first_line_is_short_and_the_detail_follows(tree, cache_dir):
    with pytest.raises(FerDataError) as exc:
        load_fer2013(tree, cache_dir=cache_dir, verify="strict")
    lines = str(exc.value).splitlines()
    assert len(lines[0]) <= 200 and "not canonical FER-2013 (verify='strict')" in lines[0]
    assert len(lines) > 3 and all(line.startswith("  ") for line in lines[1:])
    assert lines[1].startswith("  Training: ")


def test_verify_does_not_import_the_loader():
    """fer_utils.data calls fer_utils.verify, never the other way round."""
    import subprocess
    import sys

    code = "import sys, fer_utils.verify; print('fer_utils.data' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    from fer_utils import verify

    assert FerDataError is verify.FerDataError and fd.decode_image is not None


def test_check_command(tree, tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "fer_utils.data", "check", str(tree)], capture_output=True,
                         text=True, cwd=tmp_path, env={**os.environ, "FER2013_CACHE": str(tmp_path / "c")})
    assert out.returncode == 1, out.stderr  # a synthetic tree is not canonical FER-2013
    assert out.stdout.startswith("data NOT verified: none of the 49 images is from FER-2013")
    assert "  Training: 0 match, 0 altered, 0 relabelled, 0 in another split, 21 not from FER-2013; 28,709 missing" in out.stdout


def test_the_verdict_is_kept_with_the_cache(tree, cache_dir, monkeypatch):
    """Judging an altered copy takes a while: a cached load reuses the verdict made against the same
    reference and rules, and judges again when they changed."""
    first = load_fer2013(tree, cache_dir=cache_dir).verification
    monkeypatch.setattr(fd, "verify_images", lambda *a, **k: pytest.fail("judged again despite the cache"))
    again = load_fer2013(tree, cache_dir=cache_dir).verification
    assert again.to_dict() == first.to_dict()
    assert again.status.tolist() == first.status.tolist() and again.names.tolist() == first.names.tolist()
    monkeypatch.setattr(fd, "reference_key", lambda: "another reference")
    with pytest.raises(pytest.fail.Exception, match="judged again"):
        load_fer2013(tree, cache_dir=cache_dir)
