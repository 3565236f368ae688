"""Load FER-2013 from any of the three forms people have it in.

*The lesson.* A data set is files plus facts you can check. FER-2013 is 35,887 grayscale faces of
48x48 pixels, each labelled with one of seven emotions and assigned to one of three official splits:
Training to learn from, PublicTest to choose with, PrivateTest to report on once. Labels are mapped
from emotion names, never from the order folders happen to sort in. And a copy is checked against the
canonical data before it is trusted: this study once read a blurred copy as a property of FER-2013.
The faces a lesson shows are picked from reviewed lists of csv rows (:data:`EXAMPLE_ROWS`), since many
FER-2013 images are stock photographs that carry a watermark or text.

Forms understood by :func:`load_fer2013`:

* the image-folder edition: ``train/<emotion>/Training_<id>.jpg`` and
  ``test/<emotion>/{PublicTest,PrivateTest}_<id>.jpg``;
* the per-row layout many tutorials write from the csv: ``train/``, ``val/`` (or ``validation/``) and
  ``test/`` for Training, PublicTest and PrivateTest, one folder per emotion, named (``happy``) or by
  its label (``3``), holding one file per csv row (``<row>.png``);
* the Kaggle zip of either layout (``archive.zip``), read without extracting,
  with or without one enclosing folder;
* the original ``fer2013.csv`` with columns ``emotion,pixels,Usage``; its rows are counted from 0
  (the first data row is row 0, as in the data set's ``MANIFEST.csv``).

Every form gives the same :class:`FerData`: uint8 images ``(N, 48, 48, 1)``,
canonical labels 0..6 (mapped from emotion *names*, never from folder sort
order), the official split of each image and its source id.  Images stored in colour are
converted to grayscale with the ITU-R 601 luma weights (losslessly when the three channels are
equal) and reported as converted by the verification. Bad data raises :class:`FerDataError` with a
one-line message naming the file or row.

Decoded arrays are cached (``.npz``, written to a temporary file and renamed,
so a cache is whole or absent) keyed by a fingerprint of the source, which
makes a repeated load take well under a second.

Every load also checks the copy against canonical FER-2013 (:mod:`fer_utils.verify`)
and attaches the verdict as ``FerData.verification``; ``verify="strict"`` refuses a
copy that differs. ``python -m fer_utils.data check [PATH]`` prints the verdict on a copy.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import tempfile
import zipfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .verify import (MODES, VERIFY_ENV, FerDataError, Verification, hash64, pixel_hashes, reference_key,
                     sharpness, verify_images)

__all__ = ["DATA_ENV", "CACHE_ENV", "EMOTIONS", "SPLITS", "IMAGE_SIZE", "FerData", "FerDataError", "audit",
           "cap_per_class", "conflicting_faces", "CONFLICTING_EXAMPLE_ROWS", "csv_rows", "decode_image",
           "default_cache_dir", "default_data_path", "describe_conflicting", "describe_examples",
           "describe_split_sanity", "EXAMPLE_ROWS", "load_fer2013", "repo_root", "reviewed_examples", "sample_fraction",
           "split_sanity"]

#: Canonical FER-2013 label order (index = label).
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: Official splits, in the order of the original ``Usage`` column.
SPLITS: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
IMAGE_SIZE = 48
#: Environment variable that points at the data set (folder, zip or csv).
DATA_ENV = "FER2013_DIR"
#: Environment variable that moves the decode cache.
CACHE_ENV = "FER2013_CACHE"
#: Where the data is looked for when ``FER2013_DIR`` is not set (relative to the repository).
DEFAULT_DATA_DIR = Path("data") / "fer2013"

_CACHE_VERSION = 3
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_SPLIT_RE = re.compile(r"^(Training|PublicTest|PrivateTest)_")
#: Top folders and the split they hold (None: ``test/``, whose split depends on the layout).
_TOPS: dict[str, int | None] = {"train": 0, "training": 0, "val": 1, "valid": 1, "validation": 1,
                                "publictest": 1, "test": None, "privatetest": 2}
_LAYOUTS = ("train/ and test/ folders (the Kaggle edition, test files named PublicTest_<n> or PrivateTest_<n>) "
            "or train/, val/ and test/")

@dataclass(frozen=True)
class FerData:
    """FER-2013 images with their labels, official split and source id.

    Attributes:
        images: uint8 array ``(N, 48, 48, 1)``.
        labels: int64 array ``(N,)`` of canonical labels 0..6 (see :data:`EMOTIONS`).
        splits: int8 array ``(N,)`` of indices into :data:`SPLITS`.
        ids: array ``(N,)`` of source ids: the file stem of a Kaggle-named file (``Training_<n>``), the
            path without suffix for other names (``val/3/1234`` in the per-row layout), or
            ``csv-row-<n>`` for the csv form (rows counted from 0).
        source: a short, machine-independent description of where the data came from.
        verification: the verdict on the whole copy against canonical FER-2013
            (:class:`fer_utils.verify.Verification`; None when the load skipped it). A subset keeps
            the verdict of the copy it came from.
    """

    images: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    ids: np.ndarray
    source: str = ""
    verification: Verification | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, mask_or_index: np.ndarray) -> FerData:
        """Rows selected by a boolean mask or an index array, as a new :class:`FerData`."""
        return FerData(
            self.images[mask_or_index],
            self.labels[mask_or_index],
            self.splits[mask_or_index],
            self.ids[mask_or_index],
            self.source,
            self.verification,
        )

    def split(self, name: str) -> FerData:
        """The rows of one official split (``Training``, ``PublicTest`` or ``PrivateTest``)."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return self.subset(self.splits == SPLITS.index(name))

    def class_counts(self) -> dict[str, int]:
        """Number of images per emotion, in canonical order."""
        counts = np.bincount(self.labels, minlength=len(EMOTIONS))
        return {name: int(c) for name, c in zip(EMOTIONS, counts)}

    def split_counts(self) -> dict[str, int]:
        """Number of images per official split."""
        counts = np.bincount(self.splits, minlength=len(SPLITS))
        return {name: int(c) for name, c in zip(SPLITS, counts)}


# --------------------------------------------------------------------------- locating


def repo_root() -> Path:
    """The repository that holds this package (where ``pyproject.toml`` lives)."""
    return Path(__file__).resolve().parent.parent


def default_data_path() -> Path:
    """The data location: ``$FER2013_DIR`` if set, else ``data/fer2013`` in the repository."""
    env = os.environ.get(DATA_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return repo_root() / DEFAULT_DATA_DIR


def default_cache_dir() -> Path:
    """Cache folder: ``$FER2013_CACHE`` if set, else ``~/.cache/fer2013-study``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fer2013-study"


def _describe(path: Path) -> str:
    """A path for messages: relative to the working directory when possible, else its name."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return path.name


# --------------------------------------------------------------------------- decoding


#: Colour of a decoded image as stored: grayscale, colour with three equal channels, colour.
GREY, EQUAL_CHANNELS, COLOUR = 0, 1, 2


def decode_image(raw: bytes, where: str, *, resize: bool = False) -> np.ndarray:
    """Decode one encoded image into a ``(48, 48)`` uint8 array, or raise :class:`FerDataError`.

    8-bit images are accepted: grayscale as it is, colour (RGB, RGBA, palette, CMYK) converted with the
    ITU-R 601 luma weights (``L = 0.299 R + 0.587 G + 0.114 B``, exact when the channels are equal, as in
    a grayscale image saved as RGB). 16-bit and floating-point images are refused: scaling them to 8 bits
    would be a guess. An image of another size is an error, or with ``resize`` is brought to 48x48 (area
    averaging when shrinking, bilinear when enlarging); the loader does that and the verification reports
    the image as resized.
    """
    return _decode_sized(raw, where, resize)[0]


def _decode_sized(raw: bytes, where: str, resize: bool) -> tuple[np.ndarray, tuple[int, int], int]:
    """:func:`decode_image`, the image's size as stored and its colour (:data:`GREY`,
    :data:`EQUAL_CHANNELS` or :data:`COLOUR`)."""
    try:
        with Image.open(io.BytesIO(raw)) as img:
            mode, size = img.mode, img.size
            if mode.startswith("I") or mode == "F":
                kind = "16-bit" if "16" in mode else ("floating-point" if mode == "F" else "32-bit")
                raise FerDataError(f"{where}: expected an 8-bit image, got a {kind} one")
            img.load()
            colour = GREY
            if mode in ("1", "LA", "La"):
                img = img.convert("L")
            elif mode != "L":
                rgb = img.convert("RGB")
                channels = np.asarray(rgb)
                same = bool((channels[..., 0] == channels[..., 1]).all() and (channels[..., 1] == channels[..., 2]).all())
                colour = EQUAL_CHANNELS if same else COLOUR
                img = rgb.convert("L")
            if size != (IMAGE_SIZE, IMAGE_SIZE):
                if not resize:
                    raise FerDataError(
                        f"{where}: expected a {IMAGE_SIZE}x{IMAGE_SIZE} image, got {size[0]}x{size[1]}")
                method = Image.BOX if min(size) >= IMAGE_SIZE else Image.BILINEAR
                img = img.resize((IMAGE_SIZE, IMAGE_SIZE), method)
            return np.asarray(img, dtype=np.uint8), size, colour
    except FerDataError:
        raise
    except UnidentifiedImageError:
        raise FerDataError(f"{where}: corrupted or unreadable image (not an image format Pillow reads)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FerDataError(f"{where}: corrupted or unreadable image ({reason})") from None


@dataclass(frozen=True)
class _Entry:
    """One image file of the folder/zip layouts before decoding."""

    key: str  # path inside the data set, with forward slashes
    label: int
    split: int
    ident: str


def _emotion_label(folder: str, where: str) -> int:
    """The canonical label of an emotion folder: its name (any case) or the label itself (``0``-``6``)."""
    name = folder.lower()
    if name in EMOTIONS:
        return EMOTIONS.index(name)
    if name.isdigit() and int(name) < len(EMOTIONS):
        return int(name)
    raise FerDataError(f"{where}: unknown emotion folder {folder!r}; expected one of {', '.join(EMOTIONS)} "
                       f"or a label 0-{len(EMOTIONS) - 1}")


def _parse_member(rel: str, where_prefix: str, has_val: bool) -> _Entry | None:
    """Classify ``<split folder>/<emotion>/<file>``; None for what is not an image of the layout.

    The split is the file name's (``Training_``, ``PublicTest_``, ``PrivateTest_``), else its folder's:
    ``train/`` Training, ``val/`` PublicTest, and ``test/`` PrivateTest when there is a ``val/`` (the
    per-row layout); the Kaggle edition's ``test/`` holds both test splits, told apart by file name.
    """
    parts = rel.split("/")
    if len(parts) != 3 or not parts[2].lower().endswith(_IMAGE_SUFFIXES) or parts[2].startswith("."):
        return None
    top, emotion, name = parts
    if top.lower() not in _TOPS:
        return None
    where = f"{where_prefix}{rel}"
    label = _emotion_label(emotion, f"{where_prefix}{top}/{emotion}")
    stem = name.rsplit(".", 1)[0]
    folder_split = _TOPS[top.lower()]
    if folder_split is None and has_val:
        folder_split = 2
    match = _SPLIT_RE.match(stem)
    if match:
        split = SPLITS.index(match.group(1))
        if folder_split is not None and (folder_split == 0) != (split == 0):
            raise FerDataError(f"{where}: a {SPLITS[split]} image does not belong under {top}/")
        ident = stem
    elif folder_split is None:
        raise FerDataError(f"{where}: a file under {top}/ must be named PublicTest_<n> or PrivateTest_<n> to tell "
                           "its split, or the copy laid out as train/, val/ (PublicTest) and test/ (PrivateTest)")
    else:
        split, ident = folder_split, f"{top}/{emotion}/{stem}"
    return _Entry(rel, label, split, ident)


def _top_order(key: str) -> int:
    split = _TOPS.get(key.split("/", 1)[0].lower())
    return 2 if split is None else split


def _canonical_order(entries: list[_Entry]) -> list[_Entry]:
    """Training's folder first, then PublicTest's, then the test folder, each by path: the same order from
    a folder and from its zip."""
    return sorted(entries, key=lambda e: (_top_order(e.key), e.key))


def _check_nonempty(entries: list[_Entry], where: str) -> None:
    if not entries:
        raise FerDataError(f"{where}: no images found; expected {_LAYOUTS}, with one folder per emotion")
    tops = {_top_order(e.key) for e in entries}
    if 0 not in tops:
        raise FerDataError(f"{where}: the train/ folder is missing or holds no images; expected {_LAYOUTS}")
    if not tops - {0}:
        raise FerDataError(f"{where}: the test/ folder is missing or holds no images; expected {_LAYOUTS}")


@dataclass(frozen=True)
class _Extras:
    """What verification needs beyond the pixels: each file's hash, size and colour before decoding."""

    file_hashes: np.ndarray | None  # uint64 (None for the csv form, which has no files)
    sizes: np.ndarray               # int16 (N, 2): width, height as stored
    pixel_hashes: np.ndarray        # uint64, of the decoded pixels
    colour: np.ndarray | None = None  # int8: GREY, EQUAL_CHANNELS or COLOUR as stored


def _decode_all(entries: list[_Entry], read, where_prefix: str) -> tuple[np.ndarray, _Extras]:
    """Decode entries in parallel threads (PIL releases the GIL while decoding); hash each file.

    A bad file ends the load with its one-line :class:`FerDataError`, raised here rather than from
    inside the thread pool, so that the traceback stays short."""

    def one(entry: _Entry):
        where = f"{where_prefix}{entry.key}"
        try:
            raw = read(entry.key)
        except OSError as exc:
            return FerDataError(f"{where}: cannot be read ({exc.strerror or exc})")
        try:
            image, size, colour = _decode_sized(raw, where, resize=True)
        except FerDataError as exc:
            return exc
        return image, hash64(raw), size, colour

    out = np.empty((len(entries), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    hashes = np.empty(len(entries), dtype=np.uint64)
    sizes = np.empty((len(entries), 2), dtype=np.int16)
    colour = np.zeros(len(entries), dtype=np.int8)
    workers = min(8, (os.cpu_count() or 1) + 1)
    failure = None
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, result in enumerate(pool.map(one, entries)):
            if isinstance(result, FerDataError):
                failure = str(result)
                pool.shutdown(wait=True, cancel_futures=True)
                break
            out[i], hashes[i], sizes[i], colour[i] = result
    if failure is not None:
        raise FerDataError(failure)
    return out, _Extras(hashes, sizes, pixel_hashes(out), colour)


def _layout_tops(names: Iterable[str]) -> tuple[list[str], bool]:
    """The split folders among ``names`` (as spelt) and whether one of them is a validation folder."""
    tops = [n for n in names if n.lower() in _TOPS]
    return tops, any(_TOPS[n.lower()] == 1 for n in tops)


def _folder_entries(root: Path) -> list[_Entry]:
    entries: list[_Entry] = []
    tops, has_val = _layout_tops(sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
    for top in tops:
        for emotion_dir in sorted((root / top).iterdir()):
            if not emotion_dir.is_dir() or emotion_dir.name.startswith("."):
                continue
            for name in sorted(os.listdir(emotion_dir)):
                entry = _parse_member(f"{top}/{emotion_dir.name}/{name}", f"{_describe(root)}/", has_val)
                if entry is not None:
                    entries.append(entry)
    _check_nonempty(entries, _describe(root))
    return _canonical_order(entries)


def _zip_prefix(names: Iterable[str]) -> str:
    """The folder inside the zip that holds the split folders ('' when at the top)."""
    for name in names:
        parts = name.split("/")
        for i in range(len(parts) - 1):
            if parts[i].lower() in _TOPS and not parts[0].startswith("__MACOSX"):
                return "/".join(parts[:i]) + ("/" if i else "")
    return ""


def _entries_to_arrays(entries: list[_Entry], images: np.ndarray, source: str) -> FerData:
    return FerData(
        images=images[..., None],
        labels=np.array([e.label for e in entries], dtype=np.int64),
        splits=np.array([e.split for e in entries], dtype=np.int8),
        ids=np.array([e.ident for e in entries]),
        source=source,
    )


def _load_folder(root: Path) -> tuple[FerData, _Extras]:
    entries = _folder_entries(root)
    images, extras = _decode_all(entries, lambda key: (root / key).read_bytes(), f"{_describe(root)}/")
    return _entries_to_arrays(entries, images, f"image folders ({root.name})"), extras


def _load_zip(path: Path) -> tuple[FerData, _Extras]:
    where = _describe(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise FerDataError(f"{where}: not a readable zip file ({exc})") from None
    with archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        prefix = _zip_prefix(names)
        inside = [n[len(prefix):] for n in sorted(names) if n.startswith(prefix)]
        _, has_val = _layout_tops({n.split("/", 1)[0] for n in inside if "/" in n})
        entries = []
        for name in inside:
            entry = _parse_member(name, f"{where}:{prefix}", has_val)
            if entry is not None:
                entries.append(entry)
        _check_nonempty(entries, where)
        entries = _canonical_order(entries)
        # ZipFile objects are not safe to share across threads: read serially, decode in parallel.
        raw = {e.key: archive.read(prefix + e.key) for e in entries}
    images, extras = _decode_all(entries, raw.__getitem__, f"{where}:{prefix}")
    return _entries_to_arrays(entries, images, f"zip ({path.name})"), extras


def _load_csv(path: Path) -> tuple[FerData, _Extras]:
    where = _describe(path)
    n_pixels = IMAGE_SIZE * IMAGE_SIZE
    labels, splits, ids, rows = [], [], [], []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise FerDataError(f"{where}: the file is empty")
        header = [h.strip() for h in header]
        missing = [c for c in ("emotion", "pixels", "Usage") if c not in header]
        if missing:
            raise FerDataError(
                f"{where}: wrong columns {header}; expected emotion,pixels,Usage "
                f"(missing {', '.join(missing)})"
            )
        i_emotion, i_pixels, i_usage = (header.index(c) for c in ("emotion", "pixels", "Usage"))
        data_row = 0  # rows counted from 0, as in the data set's MANIFEST.csv
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            at = f"{where} row {data_row} (line {line_no}; rows counted from 0)"
            if len(row) != len(header):
                raise FerDataError(f"{at}: expected {len(header)} fields, got {len(row)}")
            emotion, pixels, usage = row[i_emotion].strip(), row[i_pixels], row[i_usage].strip()
            if emotion not in {str(i) for i in range(len(EMOTIONS))}:
                raise FerDataError(f"{at}: emotion {emotion!r} is not a label 0..6")
            if usage not in SPLITS:
                raise FerDataError(f"{at}: Usage {usage!r} is not one of {', '.join(SPLITS)}")
            values = pixels.split()
            if len(values) != n_pixels:
                raise FerDataError(f"{at}: expected {n_pixels} pixel values, got {len(values)}")
            try:
                arr = np.array(values, dtype=np.int64)
            except ValueError:
                raise FerDataError(f"{at}: pixel values must be integers") from None
            if arr.min() < 0 or arr.max() > 255:
                raise FerDataError(f"{at}: pixel values must lie in 0..255")
            labels.append(int(emotion))
            splits.append(SPLITS.index(usage))
            ids.append(f"csv-row-{data_row}")
            rows.append(arr.astype(np.uint8))
            data_row += 1
    if not rows:
        raise FerDataError(f"{where}: no data rows")
    images = np.stack(rows).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)
    order = np.argsort(np.array(splits), kind="stable")
    data = FerData(
        images[order],
        np.array(labels, dtype=np.int64)[order],
        np.array(splits, dtype=np.int8)[order],
        np.array(ids)[order],
        f"csv ({path.name})",
    )
    sizes = np.full((len(data), 2), IMAGE_SIZE, dtype=np.int16)
    return data, _Extras(None, sizes, pixel_hashes(data.images), np.zeros(len(data), dtype=np.int8))


# --------------------------------------------------------------------------- caching


def _fingerprint(path: Path) -> str:
    """A hash of the source's names, sizes and modification times (cheap; no decoding)."""
    digest = hashlib.sha256(f"v{_CACHE_VERSION}|{path.resolve()}".encode())
    if path.is_dir():

        def walk(folder: str, rel: str) -> None:
            with os.scandir(folder) as found:
                entries = sorted(found, key=lambda e: e.name)
            for entry in entries:
                if entry.is_dir():
                    walk(entry.path, f"{rel}{entry.name}/")
                else:
                    st = entry.stat()
                    digest.update(f"{rel}{entry.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())

        for top in _layout_tops(sorted(p.name for p in path.iterdir() if p.is_dir()))[0]:
            walk(str(path / top), f"{top}/")
    else:
        st = path.stat()
        digest.update(f"{st.st_size}|{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


def _write_cache(cache_file: Path, data: FerData, extras: _Extras, verdict: Verification | None = None,
                 key: str = "") -> None:
    """Write atomically: a temporary file in the same folder, then a rename. With the verification's
    verdict, when there is one, and the key of the reference it was made against."""
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_file.parent, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(
                handle,
                images=data.images,
                labels=data.labels,
                splits=data.splits,
                ids=data.ids.astype(str),
                source=np.array(data.source),
                file_hashes=extras.file_hashes if extras.file_hashes is not None else np.zeros(0, np.uint64),
                has_files=np.array(extras.file_hashes is not None),
                sizes=extras.sizes,
                pixel_hashes=extras.pixel_hashes,
                colour=extras.colour if extras.colour is not None else np.zeros(len(data), np.int8),
                verdict_key=np.array(key if verdict is not None else ""),
                **(verdict.to_arrays() if verdict is not None else {}),
            )
        os.replace(tmp, cache_file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_cache(cache_file: Path, key: str | None) -> tuple[FerData, _Extras, Verification | None] | None:
    """The cached arrays, and the verdict kept with them when it was made under ``key``."""
    try:
        with np.load(cache_file, allow_pickle=False) as npz:
            data = FerData(
                npz["images"], npz["labels"], npz["splits"], npz["ids"], str(npz["source"])
            )
            extras = _Extras(npz["file_hashes"] if bool(npz["has_files"]) else None, npz["sizes"],
                             npz["pixel_hashes"], npz["colour"])
            verdict = None
            if key and str(npz["verdict_key"]) == key:
                verdict = Verification.from_arrays(npz)
            return data, extras, verdict
    except (OSError, KeyError, ValueError, EOFError, TypeError, zipfile.BadZipFile):
        return None  # unreadable cache: decode again and overwrite it


# --------------------------------------------------------------------------- public API


def load_fer2013(
    path: str | os.PathLike | None = None,
    *,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    max_per_class: int | dict[str, int] | None = None,
    fraction: float | None = None,
    seed: int = 0,
    verify: str | bool | None = None,
) -> FerData:
    """Load FER-2013 from an image folder, its zip, or ``fer2013.csv``, and check it is the real one.

    Args:
        path: the data set; defaults to ``$FER2013_DIR`` or ``data/fer2013`` (see
            :func:`default_data_path`). A folder must hold ``train/`` and ``test/``.
        cache: keep decoded arrays in ``cache_dir`` so that a repeated load is fast.
        cache_dir: where the cache lives (default :func:`default_cache_dir`).
        max_per_class: cap on images per (split, class), an int for every split or a
            dict keyed by split name; see :func:`cap_per_class`.
        fraction: keep this share of every (split, class), at least one image each, so that a
            small sample keeps the class imbalance; see :func:`sample_fraction`.
        seed: seed for the capped or sampled selection.
        verify: ``"warn"`` (default, or ``$FER2013_VERIFY``; True means the same): compare the whole
            copy with canonical FER-2013 (:mod:`fer_utils.verify`) and attach the verdict as
            ``.verification``; ``"strict"``: also refuse a copy that is not canonical; ``"off"``
            (or False): skip the check. Images of another size than 48x48 are brought to it and
            reported as resized.

    Returns:
        A :class:`FerData` ordered by split, then as listed in the source.

    Raises:
        FerDataError: the path is missing or the data is malformed (one line that names the file or
            csv row), or ``verify="strict"`` and the copy is not canonical (the verdict on the first
            line, at most 200 characters, and its detail on the following lines).
    """
    mode = _verify_mode(verify)
    src = Path(path).expanduser() if path is not None else default_data_path()
    if not src.exists():
        hint = "" if path is not None else f" (set {DATA_ENV} to the data set's folder, zip or csv)"
        raise FerDataError(f"{_describe(src)}: no such file or folder{hint}")

    suffix = src.suffix.lower()
    if src.is_dir():
        loader = _load_folder
    elif suffix == ".zip":
        loader = _load_zip
    elif suffix == ".csv":
        loader = _load_csv
    else:
        raise FerDataError(f"{_describe(src)}: expected a folder, a .zip or a .csv file")

    loaded = None
    cache_file = None
    key = reference_key() if mode != "off" else None
    if cache:
        cache_file = Path(cache_dir or default_cache_dir()) / f"fer2013-{_fingerprint(src)}.npz"
        if cache_file.exists():
            loaded = _read_cache(cache_file, key)
    fresh = loaded is None
    if loaded is None:
        loaded = (*loader(src), None)
    data, extras, verdict = loaded
    if mode != "off" and verdict is None:
        # the verdict is kept with the cache: an altered copy takes a while to judge
        verdict = verify_images(data.images, data.labels, data.splits, data.ids,
                                file_hashes=extras.file_hashes, sizes=extras.sizes,
                                pixel_hash=extras.pixel_hashes, colour=extras.colour)
        if cache_file is not None:
            _write_cache(cache_file, data, extras, verdict, key)
    elif fresh and cache_file is not None:
        _write_cache(cache_file, data, extras)
    if mode != "off":
        if mode == "strict" and not verdict.canonical:
            raise FerDataError(_strict_message(src, verdict))
        data = FerData(data.images, data.labels, data.splits, data.ids, data.source, verdict)
    if fraction is not None:
        data = sample_fraction(data, fraction, seed=seed)
    if max_per_class is not None:
        data = cap_per_class(data, max_per_class, seed=seed)
    return data


def _strict_message(src: Path, verdict: Verification) -> str:
    """What ``verify="strict"`` says: the verdict in a first line of at most 200 characters, then the
    detail, a line each."""
    first = f"{_describe(src)}: not canonical FER-2013 (verify='strict'): {verdict.summary()}"
    if len(first) > 200:
        first = f"{src.name}: not canonical FER-2013 (verify='strict'): {verdict.summary()}"
    if len(first) > 200:
        first = first[:197] + "..."
    return "\n".join([first] + ["  " + line for line in verdict.details()])


def _verify_mode(verify: str | bool | None) -> str:
    """The verification mode: the argument, else ``$FER2013_VERIFY``, else ``"warn"``."""
    if verify is None:
        verify = os.environ.get(VERIFY_ENV, "").strip() or "warn"
    if verify is True:
        return "warn"
    if verify is False:
        return "off"
    if verify not in MODES:
        raise ValueError(f"verify must be one of {', '.join(MODES)} (or True/False), got {verify!r}")
    return verify


def _select_per_group(data: FerData, size_of, seed: int) -> FerData:
    """Keep ``size_of(split name, group size)`` random rows of every (split, class) group, in order."""
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(data), dtype=bool)
    for s, name in enumerate(SPLITS):
        for label in range(len(EMOTIONS)):
            idx = np.flatnonzero((data.splits == s) & (data.labels == label))
            size = size_of(name, len(idx))
            if size >= len(idx):
                keep[idx] = True
            else:
                keep[np.sort(rng.choice(idx, size=size, replace=False))] = True
    return data.subset(keep)


def sample_fraction(data: FerData, fraction: float, seed: int = 0) -> FerData:
    """Keep ``fraction`` of every (split, class) group (rounded, at least one image).

    Unlike :func:`cap_per_class`, the class proportions stay as they are, so a small
    sample is as imbalanced as the full data set. Deterministic for a given seed.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return _select_per_group(data, lambda _name, n: max(1, round(n * fraction)) if n else 0, seed)


def cap_per_class(data: FerData, max_per_class: int | dict[str, int], seed: int = 0) -> FerData:
    """Keep at most ``max_per_class`` images of each class in each split.

    The choice is stratified (every class keeps ``min(count, cap)`` images) and
    deterministic for a given seed; the kept rows stay in their original order.
    A dict gives a cap per split name; splits it does not name are kept whole.
    """
    caps = (
        {s: max_per_class for s in SPLITS}
        if isinstance(max_per_class, int)
        else dict(max_per_class)
    )
    unknown = set(caps) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split(s) {sorted(unknown)}; expected {', '.join(SPLITS)}")
    for name, cap in caps.items():
        if cap is not None and cap < 1:
            raise ValueError(f"max_per_class for {name} must be at least 1, got {cap}")
    return _select_per_group(
        data, lambda name, n: n if caps.get(name) is None else min(n, caps[name]), seed)


def split_sanity(data: FerData, findings: dict | None = None):
    """Median contrast (pixel std and range) and sharpness per split: a sanity check of the copy.

    In canonical FER-2013 the three splits agree within a few per cent; a copy whose splits differ
    (the study once used one whose Training images were blurred) has been altered. Returns a pandas
    DataFrame, one row per split. ``findings``: an :func:`audit` result to reuse.
    """
    import pandas as pd

    findings = audit(data) if findings is None else findings
    rows = {}
    for i, split in enumerate(SPLITS):
        mask = data.splits == i
        if mask.any():
            rows[split] = {"images": int(mask.sum()),
                           "median pixel std": float(np.median(findings["pixel_std"][mask])),
                           "median pixel range": float(np.median(findings["pixel_range"][mask])),
                           "median sharpness": float(np.median(findings["sharpness"][mask]))}
    table = pd.DataFrame(rows).T
    table["images"] = table["images"].astype(int)
    return table


def describe_split_sanity(table, tolerance: float = 0.10) -> str:
    """One sentence on :func:`split_sanity`'s table: do the splits agree in contrast and sharpness?

    ``tolerance``: the largest relative spread (max / min - 1) of a median still called agreement;
    canonical FER-2013's splits differ by a few per cent, the blurred copy's by more than half.
    """
    spreads = {col: float(table[col].max() / max(table[col].min(), 1e-9) - 1)
               for col in ("median pixel std", "median sharpness")}
    said = (f"the splits' medians differ by {spreads['median pixel std']:.0%} in contrast (pixel std) and "
            f"{spreads['median sharpness']:.0%} in sharpness")
    if max(spreads.values()) <= tolerance:
        return f"Sanity check passed: {said}, as in canonical FER-2013, where the splits agree."
    return (f"Sanity check FAILED: {said}. In canonical FER-2013 the splits agree: this copy has probably "
            "been altered (see the verification verdict), and results on it do not describe FER-2013.")


def audit(data: FerData, blank_std: float = 1.0) -> dict:
    """Data-quality findings computed from the pixels.

    Returns a dict with:
        ``distinct_images``: number of pixel-distinct images;
        ``duplicate_groups`` / ``duplicate_files``: groups of pixel-identical images (size > 1)
        and the files they hold; ``cross_split_groups``: groups spanning more than one split;
        ``conflicting_groups``: groups whose members carry different labels;
        ``near_blank``: images whose pixel standard deviation is below ``blank_std``;
        ``groups``: the duplicate groups as lists of row indices (largest first);
        ``near_blank_index``: their row indices;
        ``pixel_std`` / ``pixel_range``: per-image standard deviation and max - min (float arrays);
        ``sharpness``: per-image mean absolute difference between neighbouring pixels (horizontal
        plus vertical) divided by the pixel standard deviation: low for blurred images, and
        independent of contrast.
    """
    flat = data.images.reshape(len(data), -1)
    digests = [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat]
    by_digest: dict[bytes, list[int]] = {}
    for i, digest in enumerate(digests):
        by_digest.setdefault(digest, []).append(i)
    groups = sorted((g for g in by_digest.values() if len(g) > 1), key=len, reverse=True)
    cross = [g for g in groups if len(set(data.splits[g].tolist())) > 1]
    conflicting = [g for g in groups if len(set(data.labels[g].tolist())) > 1]
    pixel_std = flat.std(axis=1)
    pixel_range = flat.max(axis=1).astype(np.float64) - flat.min(axis=1)
    near_blank = np.flatnonzero(pixel_std < blank_std)
    sharp = sharpness(data.images, min_std=blank_std)
    return {
        "images": len(data),
        "distinct_images": len(by_digest),
        "duplicate_groups": len(groups),
        "duplicate_files": sum(len(g) for g in groups),
        "cross_split_groups": len(cross),
        "conflicting_groups": len(conflicting),
        "near_blank": int(len(near_blank)),
        "groups": groups,
        "cross_split": cross,
        "conflicting": conflicting,
        "near_blank_index": near_blank,
        "pixel_std": pixel_std,
        "pixel_range": pixel_range,
        "sharpness": sharp,
    }


# --------------------------------------------------------------------------- faces to show

#: The faces the example grids show (:func:`reviewed_examples`): 0-based rows of the original
#: ``fer2013.csv`` (as in the data set's ``MANIFEST.csv``), per split and emotion, in the order they are
#: drawn. Each was looked at enlarged four times and kept only when it is a photograph of a face with no
#: visible text, watermark or logo, not a drawing, and in no duplicate group. They were picked first
#: among the faces that both the lab (8 %) and the smoke (2 %) samples keep at seed 42, then among the
#: lab sample's, then the smoke sample's, so that a grid at those sizes still shows reviewed faces only.
#: docs/data.md says how the list was made.
EXAMPLE_ROWS: dict[str, dict[str, tuple[int, ...]]] = {
    "Training": {
        "angry": (27967, 22605, 18832, 21636, 13125, 14976, 4306, 24654),
        "disgust": (11656, 18499, 2389, 11639, 9043, 25267, 7143, 17349, 16219, 16580, 17811, 9023, 16931),
        "fear": (26916, 12413, 19296, 20978, 21800, 16291, 28395, 5241, 12210, 6973, 13549, 28347),
        "happy": (8359, 22363, 19722, 4027, 18424, 14972, 16688, 7817, 8493, 21487),
        "sad": (12931, 14704, 8146, 15355, 3857, 24118, 9188, 11950, 1067, 16777, 289, 7714),
        "surprise": (22019, 16045, 12639, 5281, 5609, 12060, 23661, 25539, 24754, 9421, 24415, 25679, 3799),
        "neutral": (11098, 18645, 27425, 6635, 8154, 2469, 4883, 7397, 17886, 5784, 27614),
    },
    "PublicTest": {
        "angry": (29325, 30305, 29933, 29471, 29347, 30619, 28779, 31530, 30093, 31925, 29344, 28789, 29661),
        "disgust": (28987, 30113, 30601, 29630, 30907, 31323, 31400, 28939, 30781, 28908),
        "fear": (29541, 28914, 31093, 32250, 32125, 28911, 31904, 31082, 30360, 29113, 29906, 31492, 31090),
        "happy": (29946, 31346, 32188, 30835, 28809, 29905, 30249, 30201, 29467, 28798, 29028, 30178, 31822),
        "sad": (29936, 30032, 30088, 30557, 30922, 31887, 31319, 32110, 31901, 31652, 32209, 29270, 31471),
        "surprise": (30423, 29542, 30574, 29170, 28999, 30204, 31206, 29619, 29646, 29593, 30866),
        "neutral": (30485, 31996, 29794, 28873, 29872, 30422, 30997, 30210, 31129, 30869, 29388, 31415, 31650),
    },
}

#: The groups of identical images with conflicting labels that a figure may show (:func:`conflicting_faces`),
#: each named by the csv row of one of its copies, the preferred first. Every group of FER-2013 whose image
#: is not near-uniform was looked at; these are the photographs of a face with no visible text or
#: watermark (the near-blank squares and "photo removed" placeholders, which carry many labels, are not
#: among them).
CONFLICTING_EXAMPLE_ROWS: tuple[int, ...] = (1441, 8155, 5667, 5223, 4436, 12130, 6521, 13484, 824, 5235,
                                              23625, 1665, 4033, 14769)

_KAGGLE_NAME = re.compile(r"^(Training|PublicTest|PrivateTest)_(\d{1,9})$")
_CSV_NAME = re.compile(r"^csv-row-(\d{1,9})$")


def csv_rows(data: FerData, fingerprint=None) -> np.ndarray:
    """Each image's 0-based row in the original ``fer2013.csv`` (``-1`` where it cannot be told).

    Read from the image's name where the copy keeps the data set's own (``Training_<n>`` of the
    image-folder edition, ``csv-row-<n>`` of the csv), else from its pixels when they are those of
    exactly one canonical image (FER-2013's duplicates cannot be told apart by their pixels).
    ``fingerprint``: the canonical images (default: the one shipped with ``fer_utils``).
    """
    from .verify import default_fingerprint

    fp = default_fingerprint() if fingerprint is None else fingerprint
    known = set(fp.csv_row.tolist())
    by_name: dict[tuple[int, int], int] = {}
    for usage, number, row in zip(fp.usage.tolist(), fp.name.tolist(), fp.csv_row.tolist()):
        by_name[(usage, number)] = -1 if (usage, number) in by_name else row
    rows = np.full(len(data), -1, dtype=np.int64)
    for i, ident in enumerate(str(x) for x in data.ids.tolist()):
        kaggle = _KAGGLE_NAME.match(ident)
        if kaggle:
            rows[i] = by_name.get((SPLITS.index(kaggle.group(1)), int(kaggle.group(2))), -1)
            continue
        csv_name = _CSV_NAME.match(ident)
        if csv_name and int(csv_name.group(1)) in known:
            rows[i] = int(csv_name.group(1))
    todo = np.flatnonzero(rows < 0)
    if len(todo):
        by_pixels: dict[int, int] = {}
        for kind in ("decoded_hash", "raw_hash"):
            for value, row in zip(getattr(fp, kind).tolist(), fp.csv_row.tolist()):
                if value:
                    by_pixels[value] = row if by_pixels.get(value, row) == row else -1
        for i, value in zip(todo, pixel_hashes(data.images[todo]).tolist()):
            rows[i] = by_pixels.get(value, -1)
    return rows


def reviewed_examples(data: FerData, split: str, per_class: int = 8,
                      rows: dict[str, tuple[int, ...]] | None = None) -> dict[int, np.ndarray]:
    """For each label, the indices into ``data`` of up to ``per_class`` faces of ``split`` from the
    reviewed list (:data:`EXAMPLE_ROWS`, or ``rows``: ``{emotion: csv rows}``), in the list's order.

    A listed face that ``data`` lacks (a sample, another seed, a copy whose images cannot be traced to
    their csv row) is skipped, and so is one ``data`` labels otherwise: at a small size a row of the
    grid holds fewer faces, never an unreviewed one (:func:`describe_examples` says so).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    listed = EXAMPLE_ROWS.get(split, {}) if rows is None else rows
    located = csv_rows(data)
    in_split = data.splits == SPLITS.index(split)
    where = {int(r): i for i, r in enumerate(located.tolist()) if r >= 0 and in_split[i]}
    chosen: dict[int, np.ndarray] = {}
    for label, name in enumerate(EMOTIONS):
        found = [where[r] for r in listed.get(name, ()) if r in where and data.labels[where[r]] == label]
        chosen[label] = np.asarray(found[:per_class], dtype=np.int64)
    return chosen


def describe_examples(chosen: dict[int, np.ndarray], per_class: int, split: str) -> str:
    """One line on :func:`reviewed_examples`' choice: where the faces come from, and which rows of the
    grid are short because this run's data lacks some of the reviewed faces."""
    shown = sum(len(v) for v in chosen.values())
    wanted = per_class * len(EMOTIONS)
    source = "the reviewed list of faces without visible text or watermarks (fer_utils.data.EXAMPLE_ROWS)"
    if shown >= wanted:
        return f"The {shown} {split} faces come from {source}."
    short = [f"{EMOTIONS[label]} {len(chosen.get(label, ()))}" for label in range(len(EMOTIONS))
             if len(chosen.get(label, ())) < per_class]
    return (f"{shown} of the grid's {wanted} {split} faces: the grid draws only from {source}, and this run's "
            f"data (a sample) holds only some of them, so these rows show fewer faces: {', '.join(short)}.")


def conflicting_faces(data: FerData, findings: dict | None = None,
                      listed: tuple[int, ...] = CONFLICTING_EXAMPLE_ROWS, fingerprint=None) -> list[int]:
    """The first group of pixel-identical images with conflicting labels in ``data`` that the reviewed
    list names (:data:`CONFLICTING_EXAMPLE_ROWS`, or ``listed``: a csv row of one copy of each group),
    as row indices ordered by label, then split; ``[]`` when ``data`` holds none of them (a small
    sample rarely keeps two copies of one face). The copies of a group share their pixels, so a
    group is found whichever of its copies a sample kept. ``findings``: an :func:`audit` result to
    reuse; ``fingerprint``: the canonical images (default: the shipped one)."""
    from .verify import default_fingerprint

    findings = audit(data) if findings is None else findings
    groups = findings["conflicting"]
    if not groups:
        return []
    fp = default_fingerprint() if fingerprint is None else fingerprint
    position = {int(r): j for j, r in enumerate(fp.csv_row.tolist())}
    group_hash = pixel_hashes(data.images[[g[0] for g in groups]]).tolist()
    for row in listed:
        j = position.get(int(row))
        if j is None:
            continue
        wanted = {int(fp.decoded_hash[j]), int(fp.raw_hash[j])} - {0}
        for group, value in zip(groups, group_hash):
            if value in wanted:
                return sorted(group, key=lambda i: (int(data.labels[i]), int(data.splits[i]), i))
    return []


def describe_conflicting(data: FerData, group: list[int]) -> str:
    """What one group of identical images with conflicting labels means for a model: how often each
    label is given, in which splits, and how many of its labels any single answer must contradict."""
    if not group:
        return ("This data holds none of the reviewed groups of identical faces with conflicting labels (a sample "
                "rarely keeps two copies of one face): the full data set shows one.")
    labels = np.bincount(data.labels[group], minlength=len(EMOTIONS))
    splits = np.bincount(data.splits[group], minlength=len(SPLITS))
    said = " and ".join(f"{EMOTIONS[k]} {n} time{'s' if n > 1 else ''}"
                        for k, n in sorted(enumerate(labels.tolist()), key=lambda kv: -kv[1]) if n)
    where = ", ".join(f"{n} in {SPLITS[s]}" for s, n in enumerate(splits.tolist()) if n)
    wrong = len(group) - int(labels.max())
    return (f"The {len(group)} copies of this one face ({where}) are labelled {said}. Whatever a model answers "
            f"for it, at least {wrong} of the {len(group)} labels call the answer wrong: label noise that no "
            "model can fit.")


def main(argv: list[str] | None = None) -> int:
    """``python -m fer_utils.data check [PATH]``: the verdict on a copy of FER-2013 (exit status 0 when
    canonical, 1 when not, 2 when it cannot be read); ``build DATA_DIR`` rebuilds the fingerprint."""
    from .verify import main as verify_main

    return verify_main(argv, load=load_fer2013, prog="python -m fer_utils.data")


if __name__ == "__main__":
    raise SystemExit(main())
