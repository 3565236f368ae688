"""Is this copy of FER-2013 the real one? Every load checks it against a fingerprint of the canonical data.

Copies of FER-2013 circulate re-encoded, resized, equalised, relabelled or incomplete, and one such
copy (its Training images blurred) once misled this study for weeks. So :func:`fer_utils.data.load_fer2013`
compares what it loads with ``fer2013_fingerprint.npz``, shipped in this package and built from the
canonical data set's ``MANIFEST.csv`` and files (:func:`build_fingerprint`). For each of the 35,887
canonical images the fingerprint holds its csv row, split (``Usage``), emotion, the first 8 bytes of
the sha256 of its Kaggle JPEG file, of its raw csv pixels and of its decoded JPEG pixels, and a tolerant
signature: its 8x8 block means, pixel standard deviation and sharpness.

How an image of a copy is identified:

* **exactly**, when its file bytes (image folders, zip), its raw pixels (``fer2013.csv``, a lossless
  export of the csv) or its decoded pixels (a PNG export of the image folders) hash to a canonical image;
* **tolerantly** otherwise: the nearest canonical image by the shape of the 8x8 block means (contrast
  and brightness removed), also trying the image mirrored and un-cropped by 2-6 pixels a side, accepted
  only when it is clearly nearer than the next candidate. An identified image that differs beyond JPEG
  noise is *altered*, with the reason: blurred, sharpened, contrast or brightness changed (equalised),
  resized, cropped, mirrored.

The :class:`Verification` verdict counts, per split of the copy, the images that match, are altered,
relabelled (a canonical image under another emotion), in another split, or not from FER-2013, and per
canonical split the images missing; with a few file names of each.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter
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
_EXAMPLES = 3

# Tolerant matching, calibrated on the canonical images and altered copies of them
# (tests/test_verify.py checks each alteration): cosine similarity of the contrast-normalised
# 8x8 block means; a match within JPEG noise; the nearest must beat the next distinct candidate.
_SIM_NOISE = 0.995       # re-encoded JPEG (quality 50 and up) stays above this
_SIM_ACCEPT = 0.85       # below this nothing is identified (other pictures: 95 % below 0.83)
_RATIO = 0.7             # accept when (1 - best) < _RATIO * (1 - next best distinct); other pictures
                         # and noise stay above 0.78, a sigma-3.5 blur of a canonical face below 0.76
_BLOCK_DIFF_NOISE = 3.0  # mean |block mean difference| of a re-encoding, in grey levels (q50: < 1)
_BLUR_RATIO = 0.8        # sharpness below this share of the canonical one: blurred
_SHARP_RATIO = 1.4       # above: sharpened or noisier
_TOP = 6                 # candidates looked at per image
_TIE = 0.002             # candidates this close to the best are near-identical faces: chosen by name
_SIM_VIEW = 0.92         # a mirrored or un-cropped view must reach this
_CROPS = (2, 4, 6)       # un-crop hypotheses, pixels removed from each side


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
    v = v - v.mean(axis=1, keepdims=True)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-3)


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


def build_fingerprint(data_root: str | os.PathLike, manifest: str | os.PathLike | None = None) -> Fingerprint:
    """The fingerprint of a canonical image-folder copy with its ``MANIFEST.csv``.

    The manifest gives each file's csv row, usage, emotion and the sha256 of the file and of the raw
    pixels; the files give the decoded pixels' hash and the tolerant signature. Every file's sha256 is
    checked against the manifest, so a fingerprint cannot be built from a damaged copy.
    """
    from .data import FerDataError, decode_image

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
        images[i] = decode_image(raw, row["path"])
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
        exact: images identified by their bytes or pixels (the rest tolerantly, or not at all).
        images: images in the copy; ``canonical_images``: in canonical FER-2013.
        status: per image of the copy (in load order), its categories joined by ``+``.
        canonical_index: per image, the row of the canonical image it is (-1: none).
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

    def summary(self) -> str:
        """One line: the verdict, for a notebook's first output line and for logs."""
        if self.canonical:
            return (f"data verified: canonical FER-2013, {self.images:,} of {self.canonical_images:,} images "
                    f"match ({self.exact:,} byte for byte or pixel for pixel)")
        if self.images and self.total("not_fer2013") == self.images:
            return (f"data NOT verified: none of the {self.images:,} images is from FER-2013 "
                    f"(e.g. {', '.join(self.examples.get('not_fer2013', []))})")
        parts = []
        for cat in CATEGORIES[1:] + ("missing",):
            n = self.total(cat)
            if n:
                label = cat.replace("_", " ").replace("not fer2013", "not from FER-2013")
                why = ""
                if cat == "altered":
                    why = " (" + ", ".join(f"{r} {c:,}" for r, c in sorted(
                        self.reasons.items(), key=lambda kv: -kv[1])) + ")"
                parts.append(f"{n:,} {label}{why}, e.g. {', '.join(self.examples.get(cat, []))}")
        return (f"data differs from canonical FER-2013: {self.total('match'):,} of {self.images:,} images match; "
                + "; ".join(parts))

    def table(self):
        """Per split: the categories' counts and the missing images (a pandas DataFrame)."""
        import pandas as pd

        rows = {s: {**{c: self.counts.get(s, {}).get(c, 0) for c in CATEGORIES},
                    "missing": self.missing.get(s, 0)} for s in _SPLITS}
        return pd.DataFrame(rows).T

    def to_dict(self) -> dict:
        """JSON-ready verdict for metrics files (without the per-image arrays)."""
        return {"canonical": self.canonical, "summary": self.summary(), "images": self.images,
                "canonical_images": self.canonical_images, "exact": self.exact, "counts": self.counts,
                "missing": self.missing, "reasons": self.reasons, "examples": self.examples}


class _Lookup:
    """Canonical rows by each kind of hash (a hash may belong to several rows: FER-2013 has duplicates)."""

    def __init__(self, fp: Fingerprint):
        self.by: dict[str, dict[int, list[int]]] = {}
        # per kind, the hashes as a sorted array and, for each, its one row or -1 when it has several
        self.sorted: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for kind in ("file_hash", "raw_hash", "decoded_hash"):
            table: dict[int, list[int]] = {}
            for i, h in enumerate(getattr(fp, kind).tolist()):
                if h:
                    table.setdefault(h, []).append(i)
            self.by[kind] = table
            keys = np.array(sorted(table), dtype=np.uint64)
            self.sorted[kind] = keys, np.array([table[int(h)][0] if len(table[int(h)]) == 1 else -1
                                                for h in keys.tolist()], dtype=np.int64)

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


_LOOKUPS: dict[int, tuple[Fingerprint, _Lookup]] = {}


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


def _name_number(ident: str) -> int:
    tail = ident.rsplit("_", 1)[-1].rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() and len(tail) < 10 else -1


def _prefer(candidates: list[int], fp: Fingerprint, ident: str, label: int, split: int,
            taken: np.ndarray) -> int:
    """Among canonical rows that an image could be, the one it most likely is: not yet taken, then
    the same file name (or csv row), then the same split and emotion."""
    number = _name_number(ident)
    row = number - 1 if ident.startswith("csv-row-") else -2

    def score(j: int) -> tuple:
        same_name = (int(fp.name[j]) == number and int(fp.usage[j]) == split) or int(fp.csv_row[j]) == row
        return (not taken[j], same_name, int(fp.usage[j]) == split and int(fp.emotion[j]) == label,
                int(fp.usage[j]) == split)

    return max(candidates, key=score)


def _tolerant(images: np.ndarray, fp: Fingerprint, chunk: int = 512) -> tuple[np.ndarray, np.ndarray, list, list]:
    """Nearest canonical row of each image by block-mean shape, trying mirrored and un-cropped views.

    Returns ``(index or -1, similarity, view per image, near-tie candidates per image)``: FER-2013 holds
    near-identical faces (the same photo saved twice) that JPEG noise cannot tell apart, so every
    candidate within :data:`_TIE` of the best is kept for the caller to choose by name, split and label.
    """
    from PIL import Image

    canon = _unit(fp.blocks.astype(np.float32))
    canon_inner = _unit(fp.blocks.reshape(-1, 8, 8)[:, 1:7, 1:7].reshape(len(fp), -1).astype(np.float32))
    n = len(images)
    best = np.full(n, -1)
    best_sim = np.full(n, -1.0)
    view = [""] * n
    ties: list[list[int]] = [[] for _ in range(n)]
    x = np.asarray(images, dtype=np.uint8).reshape(n, 48, 48)
    k = min(_TOP, len(fp))

    def search(queries: np.ndarray, table: np.ndarray, rows: np.ndarray, what: str) -> None:
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            sims = queries[start:start + chunk] @ table.T
            firsts = sims.argmax(axis=1)
            for r, i in enumerate(part):
                a = int(firsts[r])
                s1 = float(sims[r, a])
                ok = s1 >= 0.999  # within JPEG noise: no runner-up can compete
                if not ok and s1 >= _SIM_ACCEPT:
                    # the next *distinct* candidate: skip canonical duplicates of the best one
                    top = np.argpartition(-sims[r], k - 1)[:k]
                    others = sorted((float(sims[r, c]) for c in top if fp.decoded_hash[c] != fp.decoded_hash[a]),
                                    reverse=True)
                    s2 = others[0] if others else _second(sims[r], a, fp)
                    ok = (1 - s1) < _RATIO * (1 - s2)
                # another view (mirrored, un-cropped) must fit clearly better than the plain one:
                # with more tries, chance fits grow
                if what:
                    ok = ok and s1 >= _SIM_VIEW and s1 > best_sim[i] + 0.01
                if ok and s1 > best_sim[i]:
                    best[i], best_sim[i], view[i] = a, s1, what
                    ties[i] = np.flatnonzero(sims[r] >= s1 - _TIE).tolist()

    everyone = np.arange(n)
    search(_unit(block_means(x)), canon, everyone, "")
    rest = np.flatnonzero(best_sim < _SIM_NOISE)
    if len(rest):
        search(_unit(block_means(x[rest, :, ::-1])), canon, rest, "mirrored")
        for m in _CROPS:
            side = 48 - 2 * m
            canvas = np.zeros((len(rest), 48, 48), dtype=np.float32)
            for r, i in enumerate(rest):
                canvas[r, m:48 - m, m:48 - m] = np.asarray(
                    Image.fromarray(x[i]).resize((side, side), Image.BOX), dtype=np.float32)
            inner = block_means(canvas).reshape(-1, 8, 8)[:, 1:7, 1:7].reshape(len(rest), -1)
            search(_unit(inner), canon_inner, rest, f"cropped (about {m} px a side)")
    return best, best_sim, view, ties


def _second(sims: np.ndarray, a: int, fp: Fingerprint) -> float:
    other = sims.copy()
    other[fp.decoded_hash == fp.decoded_hash[a]] = -2.0
    return float(other.max())


def verify_images(images: np.ndarray, labels: np.ndarray, splits: np.ndarray, ids: np.ndarray, *,
                  file_hashes: np.ndarray | None = None, sizes: np.ndarray | None = None,
                  names: np.ndarray | None = None, fingerprint: Fingerprint | None = None,
                  pixel_hash: np.ndarray | None = None) -> Verification:
    """Check a loaded copy against canonical FER-2013 (see the module's docstring).

    Args:
        images: uint8 ``(N, 48, 48[, 1])`` as loaded.
        labels, splits: the copy's emotion and split of each image.
        ids: the copy's identifier of each image (file stem, or ``csv-row-<n>``).
        file_hashes: :func:`hash64` of each source file's bytes, where the copy has files.
        sizes: ``(N, 2)`` width and height of each source image before it was brought to 48x48.
        names: file names for the examples (default: ``ids``).
        fingerprint: the canonical reference (default: the shipped one).
        pixel_hash: :func:`pixel_hashes` of ``images``, when already known (the load cache keeps them).
    """
    fp = fingerprint if fingerprint is not None else default_fingerprint()
    lookup = _lookup(fp)
    n = len(images)
    labels, splits = np.asarray(labels), np.asarray(splits)
    names = np.asarray(ids if names is None else names)
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
        h = int(file_hashes[i]) if kind_of[i] == 0 else int(pix[i])
        j = _prefer(lookup.by[kinds[kind_of[i]]][h], fp, str(ids[i]), int(labels[i]), int(splits[i]), taken)
        index[i], exact[i] = j, True
        taken[j] = True
    reasons: dict[int, list[str]] = {}
    rest = np.flatnonzero(~exact)
    if len(rest):
        near, sim, view, ties = _tolerant(np.asarray(images)[rest], fp)
        x = np.asarray(images, dtype=np.float32).reshape(n, 48, 48)
        for r, i in enumerate(rest):
            j = int(near[r])
            if j < 0:
                continue
            # FER-2013's own exact duplicates, and near-identical faces, are told apart by name and split
            candidates = {t for c in ties[r] for t in lookup.by["decoded_hash"].get(int(fp.decoded_hash[c]), [c])}
            if len(candidates) > 1:
                j = _prefer(sorted(candidates), fp, str(ids[i]), int(labels[i]), int(splits[i]), taken)
            index[i] = j
            taken[j] = True
            why = [view[r]] if view[r] else []
            if not why:
                ratio = float(sharpness(x[i:i + 1])[0]) / max(float(fp.sharp[j]), 1e-3)
                diff = float(np.abs(block_means(x[i:i + 1])[0] - fp.blocks[j]).mean())
                if ratio < _BLUR_RATIO:
                    why.append("blurred")
                elif ratio > _SHARP_RATIO:
                    why.append("sharpened or noisier")
                if diff > _BLOCK_DIFF_NOISE:
                    why.append("contrast or brightness changed")
                if not why and sim[r] < _SIM_NOISE:
                    why.append("pixels changed")
            reasons[int(i)] = why
    if sizes is not None:
        for i in np.flatnonzero((np.asarray(sizes) != 48).any(axis=1)):
            reasons[int(i)] = [f"resized from {int(sizes[i][0])}x{int(sizes[i][1])}"] + [
                w for w in reasons.get(int(i), []) if w != "blurred"]

    counts = {s: Counter() for s in _SPLITS}
    examples: dict[str, list[str]] = {}
    why_counts: Counter = Counter()
    status = np.full(n, "match", dtype=object)
    found = index >= 0
    plain = found & (fp.emotion[np.maximum(index, 0)] == labels) & (fp.usage[np.maximum(index, 0)] == splits)
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
        split = _SPLITS[int(splits[i])]
        counts[split].update(cats)
        for cat in cats:
            if cat != "match" and len(examples.setdefault(cat, [])) < _EXAMPLES:
                examples[cat].append(str(names[i]))
        status[i] = "+".join(cats)
    missing_rows = np.flatnonzero(~taken)
    missing = {s: int((fp.usage[missing_rows] == k).sum()) for k, s in enumerate(_SPLITS)}
    if len(missing_rows):
        examples["missing"] = [f"{_SPLITS[int(fp.usage[j])]}_{int(fp.name[j])} (csv row {int(fp.csv_row[j])})"
                               for j in missing_rows[:_EXAMPLES]]
    return Verification(
        counts={s: {c: int(counts[s][c]) for c in CATEGORIES} for s in _SPLITS},
        missing=missing, examples=examples, reasons=dict(why_counts), exact=int(exact.sum()),
        images=n, canonical_images=len(fp), status=status.astype(str), canonical_index=index)


def main(argv: list[str] | None = None) -> int:
    """``python -m fer_utils.verify build DATA_DIR`` rebuilds the shipped fingerprint;
    ``python -m fer_utils.verify check [PATH]`` prints the verdict on a copy."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m fer_utils.verify", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="rebuild fer2013_fingerprint.npz from a canonical copy")
    build.add_argument("data_dir")
    build.add_argument("--out", default=str(FINGERPRINT_FILE))
    check = sub.add_parser("check", help="verify a copy (folder, zip or csv)")
    check.add_argument("path", nargs="?")
    args = parser.parse_args(argv)
    from .data import FerDataError, load_fer2013

    try:
        if args.command == "build":
            fp = build_fingerprint(args.data_dir)
            path = fp.save(args.out)
            print(f"{path.name}: {len(fp):,} images, {path.stat().st_size / 1e6:.2f} MB")
        else:
            data = load_fer2013(args.path, verify="warn")
            print(data.verification.summary())
            print(data.verification.table().to_string())
            return 0 if data.verification.canonical else 1
    except (FerDataError, OSError) as exc:
        print(f"fer_utils.verify: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
