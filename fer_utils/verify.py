"""Is this copy of FER-2013 the real one? Every load checks it against a fingerprint of the canonical data.

*The lesson.* Copies of FER-2013 circulate re-encoded, resized, converted to colour, equalised,
blurred, relabelled or incomplete, and a damaged copy looks like an odd data set rather than a damaged
one (a copy whose Training faces are all blurred trains a model that never passes 35 %). So :func:`fer_utils.data.load_fer2013` compares what it loads with
``fer2013_fingerprint.npz``, shipped in this package and built from the canonical data set's
``MANIFEST.csv`` and files (:func:`build_fingerprint`). For each of the 35,887 canonical images the
fingerprint holds its csv row, split (``Usage``), emotion, the first 8 bytes of the sha256 of its Kaggle
JPEG file, of its raw csv pixels and of its decoded JPEG pixels, and a tolerant signature: its 8x8 block
means (6x6-pixel blocks), pixel standard deviation and sharpness.

How an image of a copy is identified, in this order:

1. **exactly**, when its file bytes (image folders, zip), its raw pixels (``fer2013.csv``, a lossless
   export of the csv) or its decoded pixels (a PNG export of the image folders) hash to a canonical image;
2. **within JPEG noise**, when its block means lie within :data:`_BD_NOISE` grey levels (mean absolute
   difference) of a canonical image's. This is measured in grey levels, not by shape, so that very dark
   and near-blank faces, whose shape is all noise, are found too;
3. **by its name**, when the canonical image its file name (``Training_<n>``) or csv row names is much
   nearer in shape than chance: the shape is the pattern of the block means with brightness and contrast
   removed (cosine similarity ``s``; distance ``d = 1 - s``), and *chance* is the distance ``d50`` to the
   50th nearest canonical image, which says how crowded FER-2013 is around an image of this kind (smooth
   images, gradients, have many near neighbours; detailed ones few). The name is accepted when
   ``d < 0.5 * d50``;
4. **by search**, the nearest canonical image by shape, accepted only when ``d < 0.08 * d50``, much
   stricter because it is the best of 35,887 tries;

also trying the image mirrored and un-cropped by 2-6 pixels a side (a view must halve the distance ratio
to be preferred, and pass as a search), and for a named image the rank order of its block means (kept by
a monotone change of the grey levels, such as histogram equalisation). A split treated alike is compared
alike: where most identified images of a split are blurred, the split is compared again with the
canonical signatures blurred the same way (a Gaussian whose width is fitted on those images); where most
have their grey levels changed, by the rank order of the block means. Comparing like with like tells a
blurred face from a smooth foreign image. A blank canonical image (a single grey level) has nothing to
recognise and is identified by its hash only.

An identified image that differs beyond noise is *altered*, with the reason: blurred, sharpened, contrast
or brightness changed (equalised), resized, cropped, mirrored, or pixels changed (none of those).
Sharpness is compared in grey levels too (edge strength lost or gained), so that a re-encode of a
low-contrast face is not called blurred; the block means are explained by a blur or sharpening first, so
that blur is not called a contrast change; and where a split was treated alike, the treatment settles what
one image leaves open (an equalised face looks sharper, a sharpened one clips and looks brighter).

**What decided the rules** (measured on the 35,887 canonical images, copies of them altered with Pillow
and OpenCV, and 8,500 foreign images: 3,000 gradients (linear, radial, quadratic, soft edges, blobs, slow
waves), 1,500 noise images (white and smoothed), 2,000 texture and photo crops from scikit-image's sample
images, and 2,000 face crops that are not FER-2013 (the astronaut and Grace Hopper photos and the 100
faces of scikit-image's LFW sample, jittered, mirrored, some equalised)):

* re-encoded as JPEG at quality 75 (Pillow and OpenCV give the same pixels), the mean absolute block
  difference is at most 1.75 grey levels over all 35,887 faces (quality 90: 0.75; quality 50: 2.47), so
  :data:`_BD_NOISE` is 2.5. Sharpness (edge strength over pixel spread) falls to no less than 0.78 of the
  canonical value, losing at most 2.9 grey levels of edge strength (a textured face), and rises to at
  most 1.17, gaining at most 6.4 (quality 50: 0.74 to 1.24, gaining up to 9.9); a Gaussian blur of sigma
  1 leaves a ratio under 0.83 and loses over 3.3 grey levels in 99 % of faces, Pillow's SHARPEN gives a
  ratio over 1.26 and gains over 5.2 in 99 %. So blurred is a ratio under 0.8 losing over 3.5 grey levels
  (or under 0.7 losing over 1, a low-contrast face), sharpened a ratio over 1.25 gaining over 4 (or over
  1.1 gaining over 8 where the grey levels are otherwise unchanged);
* the distance ratio ``d / d50`` of the best canonical match: foreign images never came under 0.17
  (gradients; noise 0.35, textures 0.30, foreign faces 0.30), nor under 0.107 when compared with blurred
  canonical signatures, nor under 0.129 by rank order; re-encoded faces stay under 0.002 (99.5 %), faces
  blurred with sigma 1.5 under 0.048, sharpened ones under 0.11, faces blurred with sigma 3.5 and compared
  with canonical signatures blurred alike under 0.13, equalised ones by rank order under 0.22 (99.5 %):
  hence 0.08 for a search, which the best of 35,887 candidates must pass;
* for a named canonical image, a wrong name passes ``d < 0.5 * d50`` for 5 in 100,000 images, while
  faces blurred with sigma 3.5 (compared blurred alike) and equalised faces (by rank order) fail it for
  fewer than 3 in 10,000: hence 0.5 for a name.

With these rules, every Training image of the genuine copy blurred (Pillow, radius 3.5) is reported as
blurred, 3 as not from FER-2013 and 5 canonical images as missing, none relabelled or in another split;
equalised, 10 and 10; sharpened (unsharp mask), none. Where the file names are lost as well, identification
rests on the search alone, and a blurred split leaves about 1 % of its faces unidentified, a sharpened one
about 2 %, an equalised one about 8 %: such a copy is still reported as altered, with that detail.

The :class:`Verification` verdict counts, per split of the copy, the images that match, are altered,
relabelled (a canonical image under another emotion), in another split, or not from FER-2013, and per
canonical split the images missing; with the file names of each. csv rows are counted from 0 (the first
data row of ``fer2013.csv`` is row 0), as in ``MANIFEST.csv``.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: The fingerprint shipped with the package.
FINGERPRINT_FILE = Path(__file__).with_name("fer2013_fingerprint.npz")
#: Environment variable for the default verification mode of ``load_fer2013``.
VERIFY_ENV = "FER2013_VERIFY"
#: Verification modes: check and report, check and refuse a non-canonical copy, or skip.
MODES: tuple[str, ...] = ("warn", "strict", "off")
_SPLITS = ("Training", "PublicTest", "PrivateTest")
_EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: Verdict categories, in the order the summary names them.
CATEGORIES: tuple[str, ...] = ("match", "altered", "relabelled", "other_split", "not_fer2013")
_LABELS = {"match": "match", "altered": "altered", "relabelled": "relabelled", "other_split": "in another split",
           "not_fer2013": "not from FER-2013", "missing": "missing"}
_EXAMPLES = 3   # names in a detail line
_LIST_ALL = 20  # a category this small is listed whole

# The rules (see the module docstring for the measurements behind each number).
_K = 50                  # chance distance: to the 50th nearest canonical image
_R_NAME = 0.5            # a named canonical image: d < 0.5 * d50
_R_SEARCH = 0.08         # the best of all canonical images: d < 0.08 * d50
_VIEW_GAIN = 0.5         # a mirrored or un-cropped view must halve the ratio
_VIEW_TRY = 0.05         # ... and is tried where the ratio is above this (or nothing was identified)
_CROPS = (2, 4, 6)       # un-crop hypotheses, pixels removed from each side
_BD_NOISE = 2.5          # mean |block mean difference| within JPEG noise, grey levels
_FLAT = 4.0              # block means varying less than this (std, grey levels) have no usable shape
_BD_FLAT = 1.0           # ... and must then agree within this
_STD_FLAT = 0.3          # ... with a pixel standard deviation within this (+5 %)
_BLANK = 0.5             # a canonical image whose pixels vary less than this is blank
_BLUR_RATIO, _BLUR_LOSS = 0.8, 3.5    # blurred: sharpness ratio under 0.8 and 3.5 grey levels of edge lost,
_BLUR_RATIO_LOW, _BLUR_LOSS_LOW = 0.7, 1.0  # or under 0.7 and 1 grey level (a low-contrast face)
_SHARP_RATIO, _SHARP_GAIN = 1.25, 4.0  # sharpened: ratio over 1.25 and 4 grey levels gained,
_SHARP_RATIO_LOW, _SHARP_GAIN_HIGH = 1.1, 8.0  # or over 1.1 and 8 (sharpening that raises the contrast too)
_CONTRAST = 0.15         # block contrast changed by more than 15 % (after blur or sharpening is modelled)
_BRIGHTNESS = 6.0        # mean changed by more than 6 grey levels
_CONTRAST_SHARPENED, _BRIGHTNESS_SHARPENED = 0.2, 10.0  # ... for a sharpened face, which clips
_MODEL_GAIN = 0.003      # a blur or sharpening model must raise the shape similarity this much
_SIGMAS = tuple(np.arange(0.5, 8.01, 0.25).round(2).tolist())  # blur widths tried for a split, pixels
_TIE = 0.2               # candidates within 20 % of the best distance are alike: chosen by name and split


class FerDataError(ValueError):
    """A problem with the data set, described in one line that names the file or row.

    A copy refused by ``verify="strict"`` says what is wrong on the first line and lists the detail
    on the following ones."""


# --------------------------------------------------------------------------- signatures


def hash64(data: bytes) -> np.uint64:
    """The first 8 bytes of ``sha256(data)`` as an unsigned integer (what the fingerprint stores)."""
    return np.uint64(int.from_bytes(hashlib.sha256(data).digest()[:8], "big"))


def hex64(hexdigest: str) -> np.uint64:
    """The first 8 bytes of a hex sha256 digest (as in ``MANIFEST.csv``) as an unsigned integer."""
    return np.uint64(int(hexdigest[:16], 16))


def pixel_hashes(images: np.ndarray) -> np.ndarray:
    """:func:`hash64` of each image's uint8 pixels, row-major (``(N, 48, 48[, 1])`` -> ``(N,)``)."""
    flat = np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), -1)
    return np.array([hash64(row.tobytes()) for row in flat], dtype=np.uint64)


def block_means(images: np.ndarray, k: int = 8) -> np.ndarray:
    """Mean of each of ``k x k`` blocks of each image: ``(N, 48, 48[, 1])`` -> ``(N, k*k)`` float32."""
    x = np.asarray(images, dtype=np.float32).reshape(len(images), 48, 48)
    return x.reshape(len(x), k, 48 // k, k, 48 // k).mean(axis=(2, 4)).reshape(len(x), -1)


def sharpness(images: np.ndarray, min_std: float = 1.0) -> np.ndarray:
    """Mean absolute difference of neighbouring pixels over the pixel standard deviation (per image):
    low when blurred, and unchanged by contrast (:func:`fer_utils.data.audit` reports it too).
    ``min_std`` floors the standard deviation so that near-blank images stay finite."""
    x = np.asarray(images, dtype=np.float32).reshape(len(images), 48, 48)
    edges = np.abs(np.diff(x, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(x, axis=2)).mean(axis=(1, 2))
    return edges / np.maximum(x.reshape(len(x), -1).std(axis=1), min_std)


def _unit(v: np.ndarray) -> np.ndarray:
    """Rows with their mean removed and scaled to length 1 (a row without variation becomes 0)."""
    v = v - v.mean(axis=1, keepdims=True)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-3)


def _ranks(v: np.ndarray) -> np.ndarray:
    """Rank of each value within its row, ties sharing their mean rank (float32)."""
    v = np.asarray(v)
    order = np.argsort(v, axis=1, kind="stable")
    ordered = np.take_along_axis(v, order, axis=1)
    width = v.shape[1]
    pos = np.arange(width)
    starts = np.ones(ordered.shape, dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones(ordered.shape, dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, pos, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, pos, width - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty(v.shape, dtype=np.float32)
    np.put_along_axis(ranks, order, ((first + last) / 2).astype(np.float32), axis=1)
    return ranks


def _blur_1d(sigma: float) -> np.ndarray:
    """``8 x 8``: the 6-pixel block means of a 48-pixel line that is constant per block, after a Gaussian
    blur of width ``sigma`` (edges reflected); the identity for ``sigma`` 0."""
    up = np.repeat(np.eye(8), 6, axis=0)
    if sigma > 0:
        radius = int(np.ceil(3 * sigma))
        offsets = np.arange(-radius, radius + 1)
        weights = np.exp(-0.5 * (offsets / sigma) ** 2)
        weights /= weights.sum()
        g = np.zeros((48, 48))
        for i in range(48):
            for k, w in zip(offsets, weights):
                j = i + k
                while j < 0 or j > 47:
                    j = -j - 1 if j < 0 else 95 - j
                g[i, j] += w
        up = g @ up
    return (np.repeat(np.eye(8), 6, axis=1) / 6) @ up


def blur_matrix(sigma: float) -> np.ndarray:
    """``64 x 64`` float32 matrix that turns 8x8 block means into those of the image blurred with a
    Gaussian of width ``sigma`` pixels (approximately: the detail inside a block is unknown)."""
    m = _blur_1d(sigma)
    return np.kron(m, m).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _models() -> dict[str, np.ndarray]:
    """What blur and sharpening do to block means: the models a changed image is explained with before
    its contrast is judged (``"0"`` leaves it as it is)."""
    models = {"0": np.eye(64, dtype=np.float32)}
    for sigma in _SIGMAS:
        models[f"blur {sigma:g}"] = blur_matrix(sigma)
    for width in (0.75, 1.5):
        for amount in (0.5, 1.0, 2.0, 3.0):
            models[f"sharpen {amount:g} {width:g}"] = ((1 + amount) * np.eye(64)
                                                      - amount * blur_matrix(width)).astype(np.float32)
    return models


def _grey_change(q: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per pair of block-mean rows: contrast slope and mean shift of ``q`` against ``c``, their shape
    similarity, and the similarity of their rank orders (equal under any monotone grey-level change)."""
    qc = q - q.mean(axis=1, keepdims=True)
    cc = c - c.mean(axis=1, keepdims=True)
    dot = np.sum(qc * cc, axis=1)
    slope = dot / np.maximum(np.sum(cc * cc, axis=1), 1e-6)
    cos = dot / np.maximum(np.linalg.norm(qc, axis=1) * np.linalg.norm(cc, axis=1), 1e-6)
    rank_cos = np.sum(_unit(_ranks(q)) * _unit(_ranks(c)), axis=1)
    return slope, q.mean(axis=1) - c.mean(axis=1), cos, rank_cos


# --------------------------------------------------------------------------- the fingerprint


@dataclass(frozen=True)
class Fingerprint:
    """The canonical images' identities and signatures (one row per image, in csv order)."""

    csv_row: np.ndarray       # int32, 0-based row of the original fer2013.csv
    usage: np.ndarray         # int8, index into the splits
    emotion: np.ndarray       # int8, canonical label
    name: np.ndarray          # uint32, the number in the Kaggle file name (<Usage>_<number>.jpg)
    file_hash: np.ndarray     # uint64, JPEG file bytes of the image-folder edition
    raw_hash: np.ndarray      # uint64, raw csv pixels
    decoded_hash: np.ndarray  # uint64, pixels of the decoded JPEG
    blocks: np.ndarray        # uint8 (N, 64), 8x8 block means (rounded)
    std: np.ndarray           # float16, pixel standard deviation
    sharp: np.ndarray         # float16, see :func:`sharpness`

    def __len__(self) -> int:
        return int(self.csv_row.shape[0])

    def save(self, path: str | os.PathLike) -> Path:
        """Write as a compressed ``.npz``, whole or not at all."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez_compressed(tmp, **{k: getattr(self, k) for k in self.__dataclass_fields__})
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike = FINGERPRINT_FILE) -> Fingerprint:
        with np.load(path, allow_pickle=False) as npz:
            return cls(**{k: npz[k] for k in cls.__dataclass_fields__})

    @classmethod
    def from_images(cls, images: np.ndarray, labels: np.ndarray, splits: np.ndarray, *,
                    csv_row: np.ndarray | None = None, name: np.ndarray | None = None,
                    file_hash: np.ndarray | None = None, raw_hash: np.ndarray | None = None) -> Fingerprint:
        """A fingerprint of the given images as the canonical ones (for other reference copies, and tests).

        ``raw_hash`` defaults to the hash of ``images`` (the pixels are then the raw ones); hashes that
        are not given can never match exactly.
        """
        n = len(images)
        decoded = pixel_hashes(images)
        none = np.zeros(n, dtype=np.uint64)
        return cls(
            csv_row=np.asarray(np.arange(n) if csv_row is None else csv_row, dtype=np.int32),
            usage=np.asarray(splits, dtype=np.int8), emotion=np.asarray(labels, dtype=np.int8),
            name=np.asarray(np.zeros(n) if name is None else name, dtype=np.uint32),
            file_hash=none if file_hash is None else np.asarray(file_hash, dtype=np.uint64),
            raw_hash=decoded if raw_hash is None else np.asarray(raw_hash, dtype=np.uint64),
            decoded_hash=decoded,
            blocks=np.rint(block_means(images)).astype(np.uint8),
            std=np.asarray(images, dtype=np.float32).reshape(n, -1).std(axis=1).astype(np.float16),
            sharp=sharpness(images).astype(np.float16),
        )


def _read_canonical_jpeg(raw: bytes, where: str) -> np.ndarray:
    """The pixels of one canonical file: a 48x48 8-bit grayscale JPEG, or :class:`FerDataError`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as img:
            if img.mode != "L" or img.size != (48, 48):
                raise FerDataError(f"{where}: a canonical file is a 48x48 grayscale image, got {img.mode} "
                                   f"{img.size[0]}x{img.size[1]}")
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise FerDataError(f"{where}: unreadable image ({str(exc).splitlines()[0] if str(exc) else exc!r})") from None


def build_fingerprint(data_root: str | os.PathLike, manifest: str | os.PathLike | None = None) -> Fingerprint:
    """The fingerprint of a canonical image-folder copy with its ``MANIFEST.csv``.

    The manifest gives each file's csv row, usage, emotion and the sha256 of the file and of the raw
    pixels; the files give the decoded pixels' hash and the tolerant signature. Every file's sha256 is
    checked against the manifest, so a fingerprint cannot be built from a damaged copy.
    """
    root = Path(data_root)
    manifest = Path(manifest) if manifest else root / "MANIFEST.csv"
    with open(manifest, newline="") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda r: int(r["csv_row"]))
    images = np.empty((len(rows), 48, 48), dtype=np.uint8)
    file_hash = np.empty(len(rows), dtype=np.uint64)
    for i, row in enumerate(rows):
        raw = (root / row["path"]).read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        if digest != row["jpeg_sha256"]:
            raise FerDataError(f"{row['path']}: sha256 differs from {manifest.name}; not a canonical copy")
        file_hash[i] = hex64(digest)
        images[i] = _read_canonical_jpeg(raw, row["path"])
    stems = [Path(r["path"]).stem for r in rows]
    return Fingerprint.from_images(
        images, np.array([int(r["emotion"]) for r in rows]),
        np.array([_SPLITS.index(r["usage"]) for r in rows]),
        csv_row=np.array([int(r["csv_row"]) for r in rows]),
        name=np.array([int(s.rsplit("_", 1)[1]) for s in stems]),
        file_hash=file_hash, raw_hash=np.array([hex64(r["pixels_sha256"]) for r in rows], dtype=np.uint64))


# --------------------------------------------------------------------------- the verdict


@dataclass
class Verification:
    """What a copy holds against canonical FER-2013.

    Attributes:
        counts: per split of the copy, ``{category: number of images}`` (see :data:`CATEGORIES`;
            an image is ``match`` only when no other category applies, the others may overlap).
        missing: per canonical split, canonical images that no image of the copy is.
        examples: ``{category: [file names]}``, a few of each (``missing`` names canonical files).
        reasons: how the altered images differ, ``{reason: count}``.
        exact: images identified by their bytes or pixels; ``within_noise``: matches found within
            JPEG noise (a re-encoded copy); the rest are altered or were not identified.
        images: images in the copy; ``canonical_images``: in canonical FER-2013.
        status: per image of the copy (in load order), its categories joined by ``+``.
        canonical_index: per image, the row of the canonical image it is (-1: none).
        names: per image, its name in the copy (file stem or csv row).
        missing_names: the canonical images missing, as ``<Usage>_<number> (fer2013.csv row <n>)``.
        converted: images stored in colour and read as grayscale, ``{"equal channels": n, "colour": n}``.
        notes: how the copy was compared, where it was not image by image (a split blurred alike).
    """

    counts: dict[str, dict[str, int]]
    missing: dict[str, int]
    examples: dict[str, list[str]]
    reasons: dict[str, int]
    exact: int
    images: int
    canonical_images: int
    status: np.ndarray = field(repr=False)
    canonical_index: np.ndarray = field(repr=False)
    within_noise: int = 0
    names: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=str))
    missing_names: list[str] = field(repr=False, default_factory=list)
    converted: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def canonical(self) -> bool:
        """The copy is canonical FER-2013: every image matches and none is missing."""
        matched = sum(c["match"] for c in self.counts.values())
        return matched == self.images == self.canonical_images and not any(self.missing.values())

    def total(self, category: str) -> int:
        """Images of one category over all splits (``missing`` included)."""
        if category == "missing":
            return sum(self.missing.values())
        return sum(c.get(category, 0) for c in self.counts.values())

    def listing(self, category: str) -> list[str]:
        """Every image of one category: names in the copy, or for ``missing`` the canonical files."""
        if category == "missing":
            return list(self.missing_names)
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}; expected one of {', '.join(CATEGORIES)}, missing")
        hit = np.array([category in s.split("+") for s in self.status.tolist()], dtype=bool)
        return [str(n) for n in self.names[hit]] if len(self.names) == len(hit) else []

    def _converted_note(self) -> str:
        n = sum(self.converted.values())
        if not n:
            return ""
        if not self.converted.get("colour"):
            return f"; {n:,} stored as RGB with equal channels, read as grayscale losslessly"
        return f"; {n:,} stored in colour, converted to grayscale (ITU-R 601 luma)"

    def _reasons_text(self, most: int | None = None) -> str:
        ordered = sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        shown = ordered if most is None else ordered[:most]
        text = ", ".join(f"{r} {c:,}" for r, c in shown)
        return text + (", ..." if len(shown) < len(ordered) else "")

    def summary(self) -> str:
        """One line: the verdict, for a notebook's first output line and for logs (details: :meth:`details`)."""
        if self.canonical:
            how = f"{self.exact:,} byte for byte or pixel for pixel"
            if self.within_noise:
                how += f", {self.within_noise:,} within JPEG noise"
            return (f"data verified: canonical FER-2013, {self.images:,} of {self.canonical_images:,} images "
                    f"match ({how}){self._converted_note()}")
        if self.images and self.total("not_fer2013") == self.images:
            return (f"data NOT verified: none of the {self.images:,} images is from FER-2013 "
                    f"(e.g. {', '.join(self.examples.get('not_fer2013', []))})")
        parts = []
        for cat in CATEGORIES[1:] + ("missing",):
            n = self.total(cat)
            if n:
                why = f" ({self._reasons_text(2)})" if cat == "altered" and self.reasons else ""
                parts.append(f"{n:,} {_LABELS[cat]}{why}")
        return (f"data differs from canonical FER-2013: {self.total('match'):,} of {self.images:,} images match; "
                + "; ".join(parts) + self._converted_note())

    def details(self) -> list[str]:
        """The verdict's detail, a line each: per category its count per split and the images (all of
        them when there are at most 20), how the altered ones differ, conversions and notes."""
        lines = []
        for s in _SPLITS:
            c = self.counts.get(s, {})
            if sum(c.values()) or self.missing.get(s):
                lines.append(f"{s}: " + ", ".join(f"{c.get(cat, 0):,} {_LABELS[cat]}" for cat in CATEGORIES)
                             + f"; {self.missing.get(s, 0):,} missing")
        for cat in CATEGORIES[1:] + ("missing",):
            n = self.total(cat)
            if not n:
                continue
            names = self.listing(cat) if n <= _LIST_ALL else self.examples.get(cat, [])
            label = f"{_LABELS[cat]} {n:,}"
            if cat == "altered" and self.reasons:
                label += f" ({self._reasons_text()})"
            more = "" if n <= _LIST_ALL else f" and {n - len(names):,} more (verification.listing({cat!r}))"
            lines.append(f"{label}: {', '.join(names)}{more}")
        if self.converted:
            lines.append(self._converted_note()[2:])
        lines += self.notes
        if self.total("missing") or any(str(n).startswith("csv-row-") for n in self.names[:1]):
            lines.append("csv rows are counted from 0: the first data row of fer2013.csv is row 0, as in MANIFEST.csv")
        return lines

    def table(self):
        """Per split: the categories' counts and the missing images (a pandas DataFrame)."""
        import pandas as pd

        rows = {s: {**{c: self.counts.get(s, {}).get(c, 0) for c in CATEGORIES},
                    "missing": self.missing.get(s, 0)} for s in _SPLITS}
        return pd.DataFrame(rows).T

    _SCALARS = ("counts", "missing", "examples", "reasons", "exact", "images", "canonical_images", "within_noise",
                "converted", "notes")

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The whole verdict as arrays (``np.savez``-ready, no pickles): the load cache keeps it."""
        return {"verdict": np.array(json.dumps({k: getattr(self, k) for k in self._SCALARS})),
                "verdict_status": np.asarray(self.status).astype(str),
                "verdict_index": np.asarray(self.canonical_index, dtype=np.int64),
                "verdict_names": np.asarray(self.names).astype(str),
                "verdict_missing": np.array(self.missing_names, dtype=str)}

    @classmethod
    def from_arrays(cls, arrays) -> Verification:
        """The verdict :meth:`to_arrays` wrote."""
        scalars = json.loads(str(arrays["verdict"]))
        return cls(**scalars, status=arrays["verdict_status"], canonical_index=arrays["verdict_index"],
                   names=arrays["verdict_names"], missing_names=arrays["verdict_missing"].tolist())

    def to_dict(self) -> dict:
        """JSON-ready verdict for metrics files (without the per-image arrays)."""
        return {"canonical": self.canonical, "summary": self.summary(), "images": self.images,
                "canonical_images": self.canonical_images, "exact": self.exact, "within_noise": self.within_noise,
                "counts": self.counts, "missing": self.missing, "reasons": self.reasons, "examples": self.examples,
                "converted": self.converted, "notes": self.notes}


# --------------------------------------------------------------------------- lookups


_NAME_RE = re.compile(r"^(Training|PublicTest|PrivateTest)_(\d{1,9})$")
_CSV_RE = re.compile(r"^csv-row-(\d{1,9})$")


class _Lookup:
    """Canonical rows by each kind of hash (a hash may belong to several rows: FER-2013 has duplicates),
    by name, and (built on first use) the tables of the tolerant search."""

    def __init__(self, fp: Fingerprint):
        self.fp = fp
        self.by: dict[str, dict[int, list[int]]] = {}
        # per kind, the hashes as a sorted array and, for each, its one row or -1 when it has several
        self.sorted: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for kind in ("file_hash", "raw_hash", "decoded_hash"):
            values = getattr(fp, kind)
            order = np.argsort(values, kind="stable")
            keys, first, counts = np.unique(values[order], return_index=True, return_counts=True)
            rows = np.where(counts == 1, order[first], -1)
            keep = keys != 0
            self.sorted[kind] = keys[keep], rows[keep].astype(np.int64)
        self._tables: dict | None = None
        self._names: tuple[dict, dict] | None = None
        self.key: str | None = None

    @property
    def names(self) -> tuple[dict[tuple[int, int], list[int]], dict[int, int]]:
        """Canonical rows by (usage, number of the Kaggle file name), and by csv row (built once)."""
        if self._names is None:
            by_name: dict[tuple[int, int], list[int]] = {}
            for j, (u, n) in enumerate(zip(self.fp.usage.tolist(), self.fp.name.tolist())):
                by_name.setdefault((u, n), []).append(j)
            self._names = by_name, {r: j for j, r in enumerate(self.fp.csv_row.tolist())}
        return self._names

    def rows_with(self, kind: str, value: int) -> list[int]:
        """Canonical rows whose ``kind`` hash is ``value``."""
        table = self.by.get(kind)
        if table is None:
            table = {}
            for i, h in enumerate(getattr(self.fp, kind).tolist()):
                if h:
                    table.setdefault(h, []).append(i)
            self.by[kind] = table
        return table.get(int(value), [])

    def first_hits(self, hashes: list[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
        """For each image, the first kind (index into ``hashes``, one array per kind in the order
        file, raw, decoded) whose hash is canonical, or -1; and that hash's only row, or -1 when it
        has several rows (FER-2013's duplicates) or none."""
        n = len(next(h for h in hashes if h is not None))
        kind_of = np.full(n, -1)
        row_of = np.full(n, -1, dtype=np.int64)
        for k, (kind, values) in enumerate(zip(("file_hash", "raw_hash", "decoded_hash"), hashes)):
            if values is None:
                continue
            keys, rows = self.sorted[kind]
            values = np.asarray(values, dtype=np.uint64)
            if not len(keys):
                continue
            at = np.minimum(np.searchsorted(keys, values), len(keys) - 1)
            hit = (keys[at] == values) & (values != 0) & (kind_of < 0)
            kind_of[hit] = k
            row_of[hit] = rows[at[hit]]
        return kind_of, row_of

    @property
    def tables(self) -> dict:
        """The signatures as the tolerant search uses them (built once)."""
        if self._tables is None:
            fp = self.fp
            blocks = fp.blocks.astype(np.float32)
            inner = blocks.reshape(-1, 8, 8)[:, 1:7, 1:7].reshape(len(fp), -1)
            self._tables = {
                "blocks": blocks, "unit": _unit(blocks), "inner": _unit(inner),
                "block_std": blocks.std(axis=1), "block_mean": blocks.mean(axis=1),
                "std": fp.std.astype(np.float32), "sharp": fp.sharp.astype(np.float32),
                "blurred": {}, "ranks": None,
            }
        return self._tables

    def blurred(self, sigma: float) -> np.ndarray:
        """The canonical shapes blurred with a Gaussian of width ``sigma`` (cached per width)."""
        cache = self.tables["blurred"]
        if sigma not in cache:
            cache[sigma] = _unit(self.tables["blocks"] @ blur_matrix(sigma).T)
        return cache[sigma]

    def ranks(self) -> np.ndarray:
        """The canonical shapes as rank orders of the block means."""
        if self.tables["ranks"] is None:
            self.tables["ranks"] = _unit(_ranks(self.tables["blocks"]))
        return self.tables["ranks"]

    def hints(self, ident: str) -> list[int]:
        """Canonical rows an image's name points at: ``<Usage>_<n>`` (the Kaggle names), ``csv-row-<n>``
        (the csv form, counted from 0), or a plain number (the per-row layout's ``<row>.png``, counted
        from 0 or from 1). A hint is only a candidate: the image itself must agree."""
        stem = ident.rsplit("/", 1)[-1]
        by_name, by_csv = self.names
        match = _NAME_RE.match(stem)
        if match:
            return list(by_name.get((_SPLITS.index(match.group(1)), int(match.group(2))), []))
        match = _CSV_RE.match(stem)
        if match:
            j = by_csv.get(int(match.group(1)))
            return [] if j is None else [j]
        if stem.isdigit() and len(stem) < 10:
            return [by_csv[r] for r in (int(stem), int(stem) - 1) if r in by_csv]
        return []


_LOOKUPS: dict[int, tuple[Fingerprint, _Lookup]] = {}
#: Changes whenever the rules change, so that a verdict kept in a load cache is made again.
VERDICT_VERSION = 3


def reference_key(fingerprint: Fingerprint | None = None) -> str:
    """What a verdict depends on besides the copy: the rules' version and the reference's content (a
    verdict kept with a load is reused only under the same key)."""
    fp = fingerprint if fingerprint is not None else default_fingerprint()
    lookup = _lookup(fp)
    if lookup.key is None:
        digest = hashlib.sha256()
        for name in ("csv_row", "usage", "emotion", "decoded_hash", "file_hash", "raw_hash", "blocks"):
            digest.update(np.ascontiguousarray(getattr(fp, name)).tobytes())
        lookup.key = f"v{VERDICT_VERSION}-{digest.hexdigest()[:16]}"
    return lookup.key


def default_fingerprint() -> Fingerprint:
    """The shipped fingerprint (loaded once per process)."""
    key = 0
    if key not in _LOOKUPS:
        if not FINGERPRINT_FILE.exists():
            raise FileNotFoundError(f"{FINGERPRINT_FILE.name} is missing from the fer_utils package; "
                                    "rebuild it with python -m fer_utils.verify build DATA_DIR")
        fp = Fingerprint.load(FINGERPRINT_FILE)
        _LOOKUPS[key] = (fp, _Lookup(fp))
    return _LOOKUPS[key][0]


def _lookup(fp: Fingerprint) -> _Lookup:
    for known, lookup in _LOOKUPS.values():
        if known is fp:
            return lookup
    lookup = _Lookup(fp)
    _LOOKUPS[id(fp)] = (fp, lookup)
    return lookup


# --------------------------------------------------------------------------- tolerant identification


def _nearest(queries: np.ndarray, table: np.ndarray, k: int = _K, chunk: int = 512,
             group: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` canonical rows nearest in shape to each query (best first) and their similarities.

    Exact, and faster than partitioning all 35,887 similarities: the rows are taken in groups of
    ``group``; the ``k`` nearest rows lie in the ``k`` groups with the highest maxima, so only those are
    partitioned."""
    n, size = len(queries), len(table)
    kk = min(k, size)
    groups = -(-size // group)
    padded = np.zeros((groups * group, table.shape[1]), dtype=np.float32)
    padded[:size] = table
    kg = min(kk, groups)
    top = np.empty((n, kk), dtype=np.int64)
    sims = np.empty((n, kk), dtype=np.float32)
    for start in range(0, n, chunk):
        s = queries[start:start + chunk] @ padded.T
        s[:, size:] = -2.0
        best_groups = np.argpartition(s.reshape(len(s), groups, group).max(axis=2), groups - kg, axis=1)[:, -kg:]
        cols = (best_groups[:, :, None] * group + np.arange(group)).reshape(len(s), -1)
        vals = np.take_along_axis(s, cols, axis=1)
        pick = np.argpartition(vals, vals.shape[1] - kk, axis=1)[:, -kk:]
        idx, val = np.take_along_axis(cols, pick, axis=1), np.take_along_axis(vals, pick, axis=1)
        order = np.argsort(-val, axis=1, kind="stable")
        top[start:start + chunk] = np.take_along_axis(idx, order, axis=1)
        sims[start:start + chunk] = np.take_along_axis(val, order, axis=1)
    return top, sims


@dataclass
class _Found:
    """The tolerant identification of the images that no hash identified (one entry per image)."""

    rows: list[list[int]]   # the canonical rows it is (alike candidates, best first); [] when not identified
    route: list[str]        # "noise", "name" or "search"
    view: list[str]         # "" or how it was viewed ("mirrored", "cropped (about 4 px a side)")
    ratio: np.ndarray       # d / d50 of the choice (0 within noise), for the order rows are claimed in
    treated: np.ndarray     # how its split was treated as a whole: "", "blurred", "greys", "sharpened"
    notes: list[str]


def _shape_decision(q: np.ndarray, table: np.ndarray, hints: list[list[int]], todo: np.ndarray,
                    nearest: tuple[np.ndarray, np.ndarray] | None = None):
    """For the images ``todo``: (row candidates, route, ratio) by name, else by search, under one way of
    comparing (``q`` and ``table`` unit shape vectors); ratio inf when nothing is accepted. ``nearest``:
    :func:`_nearest` of ``q[todo]``, when already known."""
    out_rows: list[list[int]] = [[] for _ in todo]
    out_route = [""] * len(todo)
    out_ratio = np.full(len(todo), np.inf)
    if not len(todo):
        return out_rows, out_route, out_ratio
    top, sims = _nearest(q[todo], table) if nearest is None else nearest
    chance = np.maximum(1.0 - sims[:, -1], 1e-6)
    for r, i in enumerate(todo.tolist()):
        named = hints[i]
        if named:
            d = 1.0 - table[named] @ q[i]
            best = int(np.argmin(d))
            ratio = float(d[best]) / chance[r]
            if ratio < _R_NAME:
                alike = [named[k] for k in np.argsort(d) if d[k] <= d[best] * (1 + _TIE) + 1e-4]
                out_rows[r], out_route[r], out_ratio[r] = alike, "name", ratio
                continue
        ratio = (1.0 - float(sims[r, 0])) / chance[r]
        if ratio < _R_SEARCH:
            d = 1.0 - sims[r]
            out_rows[r] = top[r][d <= d[0] * (1 + _TIE) + 1e-4].tolist()
            out_route[r], out_ratio[r] = "search", ratio
    return out_rows, out_route, out_ratio


def nearest_canonical(images: np.ndarray, fingerprint: Fingerprint | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The canonical image nearest in shape to each image, and its distance over chance (``d / d50``,
    see the module docstring): under 0.08 an image would be identified by search, and foreign
    images (gradients, noise, textures, other faces) were measured at 0.17 and above.

    Returns ``(rows, ratios)``: canonical rows (index into the fingerprint) and float ratios.
    """
    fp = fingerprint if fingerprint is not None else default_fingerprint()
    t = _lookup(fp).tables
    top, sims = _nearest(_unit(block_means(images)), t["unit"])
    return top[:, 0], (1.0 - sims[:, 0]) / np.maximum(1.0 - sims[:, -1], 1e-6)


def _pixel_changes(x: np.ndarray, rows: np.ndarray, t: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image against its canonical row: sharpness ratio, edge strength lost (grey levels; negative:
    gained) and mean |block mean difference|."""
    sq = sharpness(x)
    stdq = x.reshape(len(x), -1).std(axis=1)
    sc = t["sharp"][rows]
    ratio = sq / np.maximum(sc, 1e-3)
    loss = (sc - sq) * np.maximum(stdq, 1.0)
    diff = np.abs(block_means(x) - t["blocks"][rows]).mean(axis=1)
    return ratio, loss, diff


def _within_noise(x: np.ndarray, q: np.ndarray, cands: list[list[int]], t: dict) -> list[list[int]]:
    """Per image, the candidate rows it equals within JPEG noise (block means within :data:`_BD_NOISE`
    grey levels; for a flat canonical image, within :data:`_BD_FLAT` and the same pixel spread), best first."""
    stdq = x.reshape(len(x), -1).std(axis=1)
    out = []
    for i, rows in enumerate(cands):
        if not rows:
            out.append([])
            continue
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        diff = np.abs(t["blocks"][rows] - q[i]).mean(axis=1)
        flat = t["block_std"][rows] < _FLAT
        # a blank canonical image (one grey level) has nothing to recognise: only its hash identifies it
        flat_ok = ((diff <= _BD_FLAT) & (t["std"][rows] >= _BLANK)
                   & (np.abs(t["std"][rows] - stdq[i]) <= _STD_FLAT + 0.05 * t["std"][rows]))
        ok = np.where(flat, flat_ok, diff <= _BD_NOISE)
        out.append(rows[ok][np.argsort(diff[ok], kind="stable")].tolist())
    return out


def _crop_views(x: np.ndarray) -> dict[str, np.ndarray]:
    """The inner 6x6 block means of each image placed back into a 48x48 frame as if ``m`` pixels had
    been cropped from each side, for each ``m`` in :data:`_CROPS`."""
    from PIL import Image

    views = {}
    for m in _CROPS:
        side = 48 - 2 * m
        canvas = np.zeros((len(x), 48, 48), dtype=np.float32)
        for r in range(len(x)):
            canvas[r, m:48 - m, m:48 - m] = np.asarray(Image.fromarray(x[r]).resize((side, side), Image.BOX),
                                                       dtype=np.float32)
        inner = block_means(canvas).reshape(-1, 8, 8)[:, 1:7, 1:7].reshape(len(x), -1)
        views[f"cropped (about {m} px a side)"] = _unit(inner)
    return views


def _tolerant(x: np.ndarray, ids: np.ndarray, splits: np.ndarray, lookup: _Lookup) -> _Found:
    """Identify images that no hash identified (see the module docstring for the rules)."""
    t = lookup.tables
    n = len(x)
    q = block_means(x)
    qu = _unit(q)
    structured = q.std(axis=1) >= _FLAT
    hints = [lookup.hints(str(ids[i])) for i in range(n)]
    found = _Found([[] for _ in range(n)], [""] * n, [""] * n, np.full(n, np.inf), np.full(n, "", dtype=object), [])

    # 1. within JPEG noise: near in shape (the 8 nearest) or named; flat images by their grey levels
    shaped = np.flatnonzero(structured)
    top, sims = _nearest(qu[shaped], t["unit"])
    cands: list[list[int]] = [list(h) for h in hints]
    for r, i in enumerate(shaped.tolist()):
        cands[i] += top[r, :8].tolist()
    for i in np.flatnonzero(~structured).tolist():
        near = np.abs(t["block_mean"] - q[i].mean()) <= _BD_NOISE
        cands[i] += np.flatnonzero(near & (t["block_std"] < _FLAT + 2 * _BD_NOISE)).tolist()
    for i, rows in enumerate(_within_noise(x, q, cands, t)):
        if rows:
            found.rows[i], found.route[i], found.ratio[i] = rows, "noise", 0.0

    # 2. by name, else by search, under the plain comparison
    pending = np.array([not found.rows[i] for i in shaped.tolist()], dtype=bool)
    todo = shaped[pending]
    rows, route, ratio = _shape_decision(qu, t["unit"], hints, todo, (top[pending], sims[pending]))
    for r, i in enumerate(todo.tolist()):
        found.rows[i], found.route[i], found.ratio[i] = rows[r], route[r], ratio[r]

    # 3. a split treated alike: mostly blurred, or with its grey levels changed (equalised): compare
    # it again, the canonical signatures blurred alike, or as rank orders
    plain = np.array([bool(found.rows[i]) and found.route[i] != "noise" for i in range(n)])
    for s, split in enumerate(_SPLITS):
        members = np.flatnonzero(plain & (splits == s))
        if len(members) < 5:
            continue
        first = np.array([found.rows[i][0] for i in members])
        ratio_s, loss, _ = _pixel_changes(x[members], first, t)
        again = np.flatnonzero(structured & (splits == s) & np.array([found.route[i] != "noise" for i in range(n)]))
        blurred = np.mean(((ratio_s < _BLUR_RATIO) & (loss > _BLUR_LOSS))
                          | ((ratio_s < _BLUR_RATIO_LOW) & (loss > _BLUR_LOSS_LOW)))
        slope, shift, cos, rank_cos = _grey_change(q[members], t["blocks"][first])
        sharpened = np.mean(((ratio_s > _SHARP_RATIO) & (-loss > _SHARP_GAIN))
                            | ((ratio_s > _SHARP_RATIO_LOW) & (-loss > _SHARP_GAIN_HIGH)))
        if sharpened >= 0.5:
            found.treated[splits == s] = "sharpened"
        greys = np.mean(((np.abs(slope - 1) > _CONTRAST) | (np.abs(shift) > _BRIGHTNESS) | (rank_cos - cos > 0.01))
                        & (rank_cos >= 0.95))
        if blurred >= 0.5:
            fits = [float(np.median(np.sum(qu[members] * _unit(t["blocks"][first] @ blur_matrix(sig).T), axis=1)))
                    for sig in _SIGMAS]
            sigma = _SIGMAS[int(np.argmax(fits))]
            rows, route, ratio = _shape_decision(qu, lookup.blurred(sigma), hints, again)
            how = (f"{split}: most identified images are blurred, so the split was compared with the canonical "
                   f"images blurred alike (Gaussian, sigma about {sigma:g} px)")
            found.treated[splits == s] = "blurred"
        elif greys >= 0.5:
            rq = np.zeros_like(qu)
            rq[again] = _unit(_ranks(q[again]))
            rows, route, ratio = _shape_decision(rq, lookup.ranks(), hints, again)
            how = (f"{split}: most identified images have their grey levels changed, so the split was compared "
                   "by the rank order of the block means")
            found.treated[splits == s] = "greys"
        else:
            continue
        for r, i in enumerate(again.tolist()):
            if rows[r] and ratio[r] < found.ratio[i]:
                found.rows[i], found.route[i], found.ratio[i] = rows[r], route[r], ratio[r]
        found.notes.append(how)

    # 4. a named image not clearly identified: the rank order of its block means (kept by a monotone
    # grey-level change, such as equalisation)
    todo = np.flatnonzero(structured & (found.ratio > _VIEW_TRY) & np.array([bool(h) for h in hints]))
    if len(todo):
        rq = np.zeros_like(qu)
        rq[todo] = _unit(_ranks(q[todo]))
        rows, route, ratio = _shape_decision(rq, lookup.ranks(), hints, todo)
        for r, i in enumerate(todo.tolist()):
            if route[r] == "name" and ratio[r] < found.ratio[i]:
                found.rows[i], found.route[i], found.ratio[i] = rows[r], route[r], ratio[r]

    # 5. views, for what is not yet clearly identified: mirrored, un-cropped; preferred only when they
    # halve the ratio
    todo = np.flatnonzero(structured & (found.ratio > _VIEW_TRY))
    if len(todo):
        views = {"mirrored": (_unit(q[todo].reshape(-1, 8, 8)[:, :, ::-1].reshape(len(todo), -1)), t["unit"])}
        views.update({name: (v, t["inner"]) for name, v in _crop_views(x[todo]).items()})
        for name, (vq, table) in views.items():
            # a view is a further try: it must pass as a search, whatever the name says
            vrows, vroute, vratio = _shape_decision(vq, table, [[] for _ in todo], np.arange(len(todo)))
            for r, i in enumerate(todo.tolist()):
                if vrows[r] and vratio[r] < _VIEW_GAIN * found.ratio[i]:
                    found.rows[i], found.route[i], found.ratio[i] = vrows[r], vroute[r], vratio[r]
                    found.view[i] = name
    return found


def _reasons(x: np.ndarray, rows: np.ndarray, lookup: _Lookup, treated: np.ndarray | None = None) -> list[list[str]]:
    """How each identified image differs from its canonical one (``[]``: within noise).

    ``treated``: per image, how its split was treated as a whole (``"blurred"``, ``"greys"`` or
    ``"sharpened"``, or ``""``), which settles what one image alone leaves open: a non-linear grey-level
    change (equalisation) moves sharpness too, so in such a split blur or sharpening must show in the
    pixels and in the block means alike; sharpening overshoots and clips, moving contrast and mean a
    little, so in a sharpened split that is not called a contrast change.

    Sharpness is compared in pixels (ratio and grey levels of edge strength, both beyond what a
    re-encode does); the block means are explained by the best of a few blur and sharpening models
    before their contrast (slope) and brightness (mean) are judged, so that a blurred face is not
    called a contrast change, and a face whose block means a blur explains is blurred even where its
    pixels were smooth already."""
    t = lookup.tables
    ratio, loss, diff = _pixel_changes(x, rows, t)
    q = block_means(x)
    c = t["blocks"][rows]
    qc = q - q.mean(axis=1, keepdims=True)
    qn = np.linalg.norm(qc, axis=1)
    best_cos = np.full(len(x), -2.0)
    plain_cos = np.zeros(len(x))
    slope = np.ones(len(x))
    best_model = np.array([""] * len(x), dtype=object)
    for name, m in _models().items():
        tc = c @ m.T
        tc -= tc.mean(axis=1, keepdims=True)
        dot = np.sum(tc * qc, axis=1)
        cos = dot / np.maximum(np.linalg.norm(tc, axis=1) * qn, 1e-6)
        if name == "0":
            plain_cos = cos
        better = cos > best_cos
        best_cos[better] = cos[better]
        slope[better] = dot[better] / np.maximum(np.sum(tc * tc, axis=1)[better], 1e-6)
        best_model[better] = name
    shift = q.mean(axis=1) - c.mean(axis=1)
    rank_cos = np.zeros(len(x))
    changed = diff > _BD_NOISE
    if changed.any():
        rank_cos[changed] = _grey_change(q[changed], c[changed])[3]
    flat = t["block_std"][rows] < _FLAT
    out = []
    for i in range(len(x)):
        if flat[i]:
            noisy = diff[i] <= _BD_FLAT
            intensity = abs(shift[i]) > _BRIGHTNESS
        else:
            noisy = diff[i] <= _BD_NOISE
            # a grey-level change: contrast or mean, or a non-linear one that keeps the rank order
            monotone = rank_cos[i] >= 0.97 and rank_cos[i] - max(plain_cos[i], best_cos[i]) >= 0.01
            contrast, brightness = ((_CONTRAST_SHARPENED, _BRIGHTNESS_SHARPENED)
                                    if treated is not None and treated[i] == "sharpened" else (_CONTRAST, _BRIGHTNESS))
            intensity = abs(slope[i] - 1.0) > contrast or abs(shift[i]) > brightness or monotone
        split_treated = "" if treated is None else treated[i]
        grey_split = split_treated == "greys"
        # a non-linear grey-level change moves sharpness too
        strong = intensity and not noisy and split_treated != "sharpened"
        scale = 0.6 if grey_split else 0.75 if strong else 1.0
        # a blur or sharpening model explains the block means clearly better than leaving them as they
        # are, and the pixels agree (sharpness lower, or higher)
        modelled = (not noisy and not flat[i] and best_cos[i] >= 0.98 and best_cos[i] - plain_cos[i] >= _MODEL_GAIN)
        blur_model = modelled and best_model[i].startswith("blur") and ratio[i] < 0.9
        sharpen_model = modelled and best_model[i].startswith("sharpen") and ratio[i] > 1.1
        blur_pixels = ((ratio[i] < _BLUR_RATIO * scale and loss[i] > _BLUR_LOSS)
                       or (ratio[i] < _BLUR_RATIO_LOW * scale and loss[i] > _BLUR_LOSS_LOW))
        sharp_pixels = ((ratio[i] > _SHARP_RATIO / scale and -loss[i] > _SHARP_GAIN)
                        or (not strong and ratio[i] > _SHARP_RATIO_LOW and -loss[i] > _SHARP_GAIN_HIGH))
        if grey_split:
            blurred, sharpened = blur_pixels and blur_model, sharp_pixels and sharpen_model
        else:
            blurred, sharpened = blur_pixels or blur_model, sharp_pixels or sharpen_model
        why = []
        if blurred:
            why.append("blurred")
        elif sharpened:
            why.append("sharpened or noisier")
            # sharpening overshoots and clips: it moves the mean and the contrast by itself
            intensity = not flat[i] and (abs(slope[i] - 1.0) > _CONTRAST_SHARPENED or abs(shift[i]) > _BRIGHTNESS_SHARPENED)
        if not noisy:
            if intensity:
                why.append("contrast or brightness changed")
            elif not why:
                # no blur or sharpening: the block means changed beyond noise; a kept shape (up to a
                # monotone grey-level change) says how
                kept = max(plain_cos[i], rank_cos[i]) >= 0.98
                why.append("contrast or brightness changed" if kept else "pixels changed")
        out.append(why)
    return out


def _prefer(candidates: list[int], fp: Fingerprint, hinted: set[int], label: int, split: int,
            taken: np.ndarray) -> int:
    """Among canonical rows that an image could be (alike within noise), the one it most likely is: not
    yet taken, then the one its name points at, then the same split and emotion, then the nearest."""
    def score(k: int) -> tuple:
        j = candidates[k]
        return (not taken[j], j in hinted, int(fp.usage[j]) == split and int(fp.emotion[j]) == label,
                int(fp.usage[j]) == split, -k)

    return candidates[max(range(len(candidates)), key=score)]


def verify_images(images: np.ndarray, labels: np.ndarray, splits: np.ndarray, ids: np.ndarray, *,
                  file_hashes: np.ndarray | None = None, sizes: np.ndarray | None = None,
                  names: np.ndarray | None = None, fingerprint: Fingerprint | None = None,
                  pixel_hash: np.ndarray | None = None, colour: np.ndarray | None = None) -> Verification:
    """Check a loaded copy against canonical FER-2013 (see the module's docstring).

    Args:
        images: uint8 ``(N, 48, 48[, 1])`` as loaded.
        labels, splits: the copy's emotion and split of each image.
        ids: the copy's identifier of each image (file stem, or ``csv-row-<n>`` counted from 0).
        file_hashes: :func:`hash64` of each source file's bytes, where the copy has files.
        sizes: ``(N, 2)`` width and height of each source image before it was brought to 48x48.
        names: file names for the examples (default: ``ids``).
        fingerprint: the canonical reference (default: the shipped one).
        pixel_hash: :func:`pixel_hashes` of ``images``, when already known (the load cache keeps them).
        colour: per image, 0 stored as grayscale, 1 as colour with equal channels, 2 in colour (the
            loader converted it to grayscale).
    """
    fp = fingerprint if fingerprint is not None else default_fingerprint()
    lookup = _lookup(fp)
    n = len(images)
    labels, splits = np.asarray(labels), np.asarray(splits)
    names = np.asarray(ids if names is None else names).astype(str)
    pix = pixel_hashes(images) if pixel_hash is None else np.asarray(pixel_hash)
    index = np.full(n, -1)
    taken = np.zeros(len(fp), dtype=bool)
    exact = np.zeros(n, dtype=bool)
    # Most images' hash belongs to one canonical row that no other image claims: matched at once.
    # The rest (FER-2013's duplicates, rows claimed twice) are told apart one by one, by name,
    # split and emotion, among the rows not yet taken.
    kinds = ("file_hash", "raw_hash", "decoded_hash")
    kind_of, row_of = lookup.first_hits([file_hashes, pix, pix])
    single = row_of >= 0
    claims = np.bincount(row_of[single], minlength=len(fp))
    direct = single & (claims[np.maximum(row_of, 0)] == 1)
    index[direct], exact[direct] = row_of[direct], True
    taken[row_of[direct]] = True
    for i in np.flatnonzero((kind_of >= 0) & ~direct):
        h = file_hashes[i] if kind_of[i] == 0 else pix[i]
        hinted = set(lookup.hints(str(ids[i])))
        j = _prefer(lookup.rows_with(kinds[kind_of[i]], h), fp, hinted, int(labels[i]), int(splits[i]), taken)
        index[i], exact[i] = j, True
        taken[j] = True

    reasons: dict[int, list[str]] = {}
    notes: list[str] = []
    rest = np.flatnonzero(~exact)
    if len(rest):
        x = np.asarray(images, dtype=np.uint8).reshape(n, 48, 48)[rest]
        found = _tolerant(x, np.asarray(ids)[rest], splits[rest], lookup)
        notes = found.notes
        # claim rows in order of confidence: within noise, then by name, then by search
        rank = {"noise": 0, "name": 1, "search": 2}
        order = sorted((r for r in range(len(rest)) if found.rows[r]),
                       key=lambda r: (rank[found.route[r]], found.ratio[r]))
        for r in order:
            i = int(rest[r])
            hinted = set(lookup.hints(str(ids[i])))
            alike = {a for c in found.rows[r] for a in lookup.rows_with("decoded_hash", int(fp.decoded_hash[c]))}
            cands = found.rows[r] + sorted(alike - set(found.rows[r]))
            j = _prefer(cands, fp, hinted, int(labels[i]), int(splits[i]), taken)
            index[i] = j
            taken[j] = True
        ident = [r for r in range(len(rest)) if index[rest[r]] >= 0]
        if ident:
            whys = _reasons(x[ident], index[rest[ident]], lookup, found.treated[ident])
            for r, why in zip(ident, whys):
                i = int(rest[r])
                reasons[i] = [found.view[r]] if found.view[r] else why
    if sizes is not None:
        for i in np.flatnonzero((np.asarray(sizes) != 48).any(axis=1)):
            reasons[int(i)] = [f"resized from {int(sizes[i][0])}x{int(sizes[i][1])}"] + [
                w for w in reasons.get(int(i), []) if w != "blurred"]

    counts = {s: Counter() for s in _SPLITS}
    examples: dict[str, list[str]] = {}
    why_counts: Counter = Counter()
    status = np.full(n, "match", dtype=object)
    found_any = index >= 0
    safe = np.maximum(index, 0)
    plain = found_any & (fp.emotion[safe] == labels) & (fp.usage[safe] == splits)
    plain[[i for i, why in reasons.items() if why]] = False
    for k, s in enumerate(_SPLITS):
        counts[s]["match"] += int((plain & (splits == k)).sum())
    for i in np.flatnonzero(~plain):
        j = int(index[i])
        cats = []
        if j < 0:
            cats.append("not_fer2013")
        else:
            if reasons.get(int(i)):
                cats.append("altered")
                why_counts.update(reasons[int(i)])
            if int(fp.emotion[j]) != int(labels[i]):
                cats.append("relabelled")
            if int(fp.usage[j]) != int(splits[i]):
                cats.append("other_split")
        cats = cats or ["match"]
        counts[_SPLITS[int(splits[i])]].update(cats)
        for cat in cats:
            if cat != "match" and len(examples.setdefault(cat, [])) < _EXAMPLES:
                examples[cat].append(str(names[i]))
        status[i] = "+".join(cats)
    within = int(sum(1 for i, why in reasons.items() if not why and status[i] == "match"))
    missing_rows = np.flatnonzero(~taken)
    missing = {s: int((fp.usage[missing_rows] == k).sum()) for k, s in enumerate(_SPLITS)}
    missing_names = [f"{_SPLITS[int(fp.usage[j])]}_{int(fp.name[j])} (fer2013.csv row {int(fp.csv_row[j])})"
                     for j in missing_rows]
    if missing_names:
        examples["missing"] = missing_names[:_EXAMPLES]
    converted = {}
    if colour is not None:
        kinds_c = np.bincount(np.asarray(colour, dtype=np.int64), minlength=3)
        converted = {k: int(v) for k, v in (("equal channels", kinds_c[1]), ("colour", kinds_c[2])) if v}
    return Verification(
        counts={s: {c: int(counts[s][c]) for c in CATEGORIES} for s in _SPLITS},
        missing=missing, examples=examples, reasons=dict(why_counts), exact=int(exact.sum()),
        images=n, canonical_images=len(fp), status=status.astype(str), canonical_index=index,
        within_noise=within, names=names, missing_names=missing_names, converted=converted, notes=notes)


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None, load: Callable | None = None, prog: str = "python -m fer_utils.verify") -> int:
    """``python -m fer_utils.verify build DATA_DIR`` rebuilds the shipped fingerprint;
    ``python -m fer_utils.verify check [PATH]`` (or ``python -m fer_utils.data check [PATH]``) prints the
    verdict on a copy: exit status 0 canonical, 1 not, 2 unreadable. ``load`` is
    :func:`fer_utils.data.load_fer2013`, which reads the copy (without it, the check runs the loader's
    command)."""
    import argparse

    parser = argparse.ArgumentParser(prog=prog, description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="rebuild fer2013_fingerprint.npz from a canonical copy")
    build.add_argument("data_dir")
    build.add_argument("--out", default=str(FINGERPRINT_FILE))
    check = sub.add_parser("check", help="verify a copy (folder, zip or csv)")
    check.add_argument("path", nargs="?")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            fp = build_fingerprint(args.data_dir)
            path = fp.save(args.out)
            print(f"{path.name}: {len(fp):,} images, {path.stat().st_size / 1e6:.2f} MB")
            return 0
        if load is None:
            # the loader reads the copy, and this module does not import the loader: its command checks
            import subprocess
            import sys

            return subprocess.call([sys.executable, "-m", "fer_utils.data", "check", *filter(None, [args.path])])
        verdict = load(args.path, verify="warn").verification
        print(verdict.summary())
        for line in verdict.details():
            print("  " + line)
        print(verdict.table().to_string())
        return 0 if verdict.canonical else 1
    except (FerDataError, OSError) as exc:
        print(f"fer_utils.verify: {exc}")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
