"""Emotion of every face in a photograph: OpenCV's Haar face detector, then the study's model.

*The lesson.* A model only knows the kind of images it was trained on: FER-2013's faces are small,
frontal, tightly cropped and grayscale. To use it on a photograph, find each face and crop and scale
it the same way, and read its answers with those limits in mind.

    fer-predict PHOTO [PHOTO or FOLDER ...] [--model models/baseline.keras]
                [--json] [--annotate OUT_DIR] [--gradcam conv3] [--tta]

Faces are found with the frontal-face Haar cascade that ships inside the
``opencv-python-headless`` wheel (nothing is downloaded), cropped square with a
margin, converted to 48x48 grayscale like the FER-2013 faces, and classified.
Any input the reader can open is accepted: grayscale, colour, RGBA, palette,
16-bit. Large photos are decoded at reduced size first (JPEG draft mode) and
downscaled to at most :data:`MAX_SIDE` pixels, which bounds memory.

Bad input never ends in a traceback: a missing, unreadable or corrupted file
gets one line on stderr and the other files are still processed; a photo
without a face is a normal answer ("no face found"). The exit status is 0
when every file was read, 1 when some could not be, 2 for a bad model or
usage. Annotated images are written whole or not at all.

With ``--tta`` every face is classified as the study scores a model with test-time augmentation
(:func:`fer_utils.beyond.tta_probabilities`): the average over the face and its mirror image, and for
a model that looks at a central crop (notebook 08's VGG-style network, 40x40) over the centre and
four corner crops and their mirror images, the ten-crop its PrivateTest accuracy was measured with.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .data import EMOTIONS, IMAGE_SIZE

#: Longest side of the image the detector sees; larger photos are downscaled first.
MAX_SIDE = 1600
#: Longest side of the copy the face detector scans (faces smaller than ~5 % of it are missed;
#: ``--small-faces`` scans at full size instead, several times slower).
DETECT_SIDE = 400
#: Extra border around the detector's box, as a share of the box side, on each side.
MARGIN = 0.15
#: Environment variable naming the default model file.
MODEL_ENV = "FER_MODEL"
#: Where the default model is looked for (relative to the repository) when FER_MODEL is unset.
DEFAULT_MODELS = ("models/baseline.keras", "runs/reference/models/baseline.keras", "runs/cpu/models/baseline.keras")


class PredictError(Exception):
    """A problem with one input, in one line (the file is named by the caller)."""


@dataclass
class Face:
    """One detected face: box ``[x, y, w, h]`` in the original image's pixels, and the model's answer."""

    box: list[int]
    emotion: str
    probabilities: dict[str, float]
    #: Where the Grad-CAM map of ``emotion`` is densest (:func:`fer_utils.gradcam.peak_region`), when the
    #: predictor draws one on an annotated copy; None otherwise.
    attention: str | None = None

    def top(self, k: int = 2) -> list[tuple[str, float]]:
        """The ``k`` most probable emotions, most probable first."""
        return sorted(self.probabilities.items(), key=lambda item: item[1], reverse=True)[:k]


@dataclass
class ImageResult:
    """The answer for one input file."""

    path: str
    width: int | None = None
    height: int | None = None
    faces: list[Face] = field(default_factory=list)
    error: str | None = None
    annotated: str | None = None

    @property
    def message(self) -> str:
        if self.error:
            return self.error
        return "no face found" if not self.faces else f"{len(self.faces)} face(s)"


# --------------------------------------------------------------------------- reading


def read_gray(path: str | os.PathLike, max_side: int = MAX_SIDE) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Read any image as 8-bit grayscale, at most ``max_side`` pixels on its longest side.

    Returns ``(gray, scale, (width, height))`` where ``scale`` maps the returned
    image's pixels back to the original's (original = returned * scale).
    Raises PredictError with a one-line reason.
    """
    path = Path(path)
    if not path.exists():
        raise PredictError("no such file")
    if path.is_dir():
        raise PredictError("is a folder, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                img.draft("L", (max_side, max_side))  # JPEG: decode at 1/2, 1/4 or 1/8 size
                img = ImageOps.exif_transpose(img)
                img.load()
                gray = _to_gray(img)
    except PredictError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PredictError("image too large to decode safely") from None
    except UnidentifiedImageError:
        raise PredictError("not an image (or a format the reader does not know)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PredictError(f"corrupted or truncated image ({reason})") from None
    longest = max(gray.shape)
    if longest > max_side:
        factor = max_side / longest
        size = (max(1, round(gray.shape[1] * factor)), max(1, round(gray.shape[0] * factor)))
        gray = np.asarray(Image.fromarray(gray).resize(size, Image.Resampling.BOX))
    scale = width / gray.shape[1]
    return np.ascontiguousarray(gray), scale, (width, height)


def _to_gray(img: Image.Image) -> np.ndarray:
    """8-bit grayscale from any PIL mode (16-bit and float scaled by their range)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("L"), dtype=np.uint8)


# --------------------------------------------------------------------------- detecting


def face_detector():
    """OpenCV's frontal-face Haar cascade, from the files inside the installed wheel."""
    import cv2

    if not hasattr(cv2, "CascadeClassifier"):
        raise RuntimeError("this OpenCV build has no CascadeClassifier (use opencv-python-headless 4.x)")
    path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
    detector = cv2.CascadeClassifier(path)
    if detector.empty():
        raise RuntimeError(f"could not load the Haar cascade {os.path.basename(path)}")
    return detector


def detect_faces(gray: np.ndarray, detector=None, min_size: int = 20,
                 detect_side: int | None = DETECT_SIDE) -> list[tuple[int, int, int, int]]:
    """Face boxes ``(x, y, w, h)`` in ``gray``'s pixels, largest first.

    The cascade scans a copy whose longest side is at most ``detect_side`` (None: full
    size); boxes are scaled back to ``gray``.
    """
    import cv2

    detector = detector or face_detector()
    factor = 1.0
    scan = gray
    if detect_side and max(gray.shape) > detect_side:
        factor = max(gray.shape) / detect_side
        size = (max(1, round(gray.shape[1] / factor)), max(1, round(gray.shape[0] / factor)))
        scan = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    boxes = detector.detectMultiScale(cv2.equalizeHist(scan), scaleFactor=1.1, minNeighbors=8,
                                      minSize=(min_size, min_size))
    boxes = [tuple(int(round(v * factor)) for v in b) for b in (boxes if len(boxes) else [])]
    return sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)


def crop_square(box: tuple[int, int, int, int], margin: float = MARGIN) -> tuple[int, int, int]:
    """``(x0, y0, side)`` of the square centred on ``box``, enlarged by ``margin`` on each side."""
    x, y, w, h = box
    side = int(round(max(w, h) * (1 + 2 * margin)))
    cx, cy = x + w / 2, y + h / 2
    return int(round(cx - side / 2)), int(round(cy - side / 2)), side


def crop_face(gray: np.ndarray, box: tuple[int, int, int, int], margin: float = MARGIN) -> np.ndarray:
    """The square of :func:`crop_square` as a 48x48 uint8 image.

    Parts of the square outside the image are filled by repeating the border.
    """
    import cv2

    x0, y0, side = crop_square(box, margin)
    pad = max(0, -x0, -y0, x0 + side - gray.shape[1], y0 + side - gray.shape[0])
    padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else gray
    crop = padded[y0 + pad:y0 + pad + side, x0 + pad:x0 + pad + side]
    return cv2.resize(crop, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------- predicting


def default_model_path(root: str | os.PathLike | None = None) -> Path | None:
    """``$FER_MODEL``, else the first of :data:`DEFAULT_MODELS` that exists, else None."""
    from .data import repo_root

    if os.environ.get(MODEL_ENV):
        return Path(os.environ[MODEL_ENV])
    root = Path(root) if root is not None else repo_root()
    found = [root / candidate for candidate in DEFAULT_MODELS if (root / candidate).exists()]
    return (found or [None])[0]


def load_model(path: str | os.PathLike | None):
    """Load a ``.keras`` model (in float32), or raise PredictError saying what is wrong with the file."""
    from . import model as _registers_custom_layers  # noqa: F401
    from .augment import compilable, load_model as load_keras_model

    if path is None:
        raise PredictError(f"no model: pass --model PATH or set {MODEL_ENV} (run notebook 01 to train one)")
    path = Path(path)
    if not path.exists():
        raise PredictError(f"model {path.name}: no such file")
    if path.suffix != ".keras":
        raise PredictError(f"model {path.name}: expected a .keras file")
    try:
        model = load_keras_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - any failure here means "not a model"
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise PredictError(f"model {path.name}: not a Keras model ({reason})") from None
    shape = tuple(model.input_shape[1:]) if hasattr(model, "input_shape") else None
    if shape != (IMAGE_SIZE, IMAGE_SIZE, 1) or model.output_shape[-1] != len(EMOTIONS):
        raise PredictError(f"model {path.name}: takes {shape} and gives {model.output_shape[-1]} classes; "
                           f"expected (48, 48, 1) and {len(EMOTIONS)}")
    from .device import float32_copy

    return compilable(float32_copy(model))  # a model trained in mixed precision predicts in float32 here


class Predictor:
    """Detector and model loaded once; :meth:`predict_file` per photo."""

    def __init__(self, model, gradcam_layer: str | None = None, max_side: int = MAX_SIDE,
                 detect_side: int | None = DETECT_SIDE, tta: bool = False):
        self.model = model
        self.tta = tta
        self.detector = face_detector()
        self.gradcam_layer = gradcam_layer
        self.max_side = max_side
        self.detect_side = detect_side
        if gradcam_layer:
            model.get_layer(gradcam_layer)  # fail early on a wrong name

    def predict_gray(self, gray: np.ndarray) -> tuple[list[tuple[int, int, int, int]], np.ndarray, np.ndarray]:
        """Boxes, 48x48 crops and probabilities ``(n_faces, 7)`` for a grayscale image."""
        boxes = detect_faces(gray, self.detector, detect_side=self.detect_side)
        if not boxes:
            return [], np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 1), np.uint8), np.zeros((0, len(EMOTIONS)))
        crops = np.stack([crop_face(gray, b) for b in boxes])[..., None]
        if self.tta:
            from .beyond import tta_probabilities

            probs = tta_probabilities(self.model, crops.astype("float32"))
        else:
            probs = np.asarray(self.model.predict_on_batch(crops.astype("float32")))  # compiled once
        return boxes, crops, probs

    def predict_file(self, path: str | os.PathLike, annotate_dir: str | os.PathLike | None = None) -> ImageResult:
        """Everything about one file; errors are reported in the result, never raised."""
        result = ImageResult(path=str(path))
        try:
            gray, scale, (result.width, result.height) = read_gray(path, self.max_side)
            boxes, crops, probs = self.predict_gray(gray)
            for box, p in zip(boxes, probs):
                original = [int(round(v * scale)) for v in box]
                result.faces.append(Face(original, EMOTIONS[int(np.argmax(p))],
                                         {e: round(float(v), 4) for e, v in zip(EMOTIONS, p)}))
            if annotate_dir is not None:
                maps = None
                if self.gradcam_layer and len(crops):
                    from .gradcam import gradcam, peak_region

                    # the map of the emotion reported (with --tta, the averaged views' top class)
                    maps = gradcam(self.model, crops, self.gradcam_layer, class_index=np.argmax(probs, axis=1))
                    for face, cam in zip(result.faces, maps):
                        face.attention = peak_region(cam)
                out = Path(annotate_dir) / f"{Path(path).stem}_annotated.png"
                write_annotated(gray, boxes, result.faces, out, maps)
                result.annotated = str(out)
        except PredictError as exc:
            result.error = str(exc)
        return result


def write_annotated(gray: np.ndarray, boxes, faces: list[Face], out: Path,
                    maps: np.ndarray | None = None) -> Path:
    """Write the (downscaled) photo with boxes, top emotion and optional Grad-CAM, atomically."""
    import cv2
    from matplotlib import colormaps

    canvas = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    height, width = gray.shape
    for i, (box, face) in enumerate(zip(boxes, faces)):
        x, y, w, h = box
        if maps is not None:  # the map covers the crop the model saw: the square with its margin
            x0, y0, side = crop_square(box)
            heat = cv2.resize(maps[i], (side, side), interpolation=cv2.INTER_LINEAR)
            colour = (colormaps["viridis"](heat)[..., :3][..., ::-1] * 255).astype(np.float32)
            cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
            region = canvas[cy0:cy1, cx0:cx1].astype(np.float32)
            part = colour[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
            canvas[cy0:cy1, cx0:cx1] = (0.55 * region + 0.45 * part).astype(np.uint8)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (0, 200, 255), max(1, w // 60))
        label = f"{face.emotion} {face.probabilities[face.emotion]:.0%}"
        scale = max(0.4, w / 220)
        cv2.putText(canvas, label, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 200, 255),
                    max(1, int(scale * 2)), cv2.LINE_AA)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    if not cv2.imwrite(str(tmp), canvas):
        tmp.unlink(missing_ok=True)
        raise PredictError(f"could not write {out.name}")
    os.replace(tmp, out)
    return out


# --------------------------------------------------------------------------- command line


def expand_inputs(paths: list[str]) -> list[Path]:
    """Files as given; a folder becomes its files (sorted, hidden ones skipped)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")))
        else:
            out.append(p)
    return out


def format_table(results: list[ImageResult]) -> str:
    """A readable table: one line per face (or per file without faces)."""
    header = f"{'file':<28} {'face box (x,y,w,h)':<22} {'emotion':<9} " + " ".join(f"{e[:5]:>5}" for e in EMOTIONS)
    lines = [header, "-" * len(header)]
    for r in results:
        name = Path(r.path).name[:28]
        if not r.faces:
            lines.append(f"{name:<28} {r.message}")
        for f in r.faces:
            probs = " ".join(f"{f.probabilities[e]:5.2f}" for e in EMOTIONS)
            lines.append(f"{name:<28} {str(tuple(f.box)):<22} {f.emotion:<9} {probs}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``fer-predict``: see the module docstring."""
    parser = argparse.ArgumentParser(prog="fer-predict", description="Emotion of every face in photos.")
    parser.add_argument("inputs", nargs="+", help="image files or folders of images")
    parser.add_argument("--model", default=None, help=f"a .keras model (default: ${MODEL_ENV} or "
                        + " or ".join(DEFAULT_MODELS) + ")")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--annotate", metavar="DIR", help="write <name>_annotated.png copies into DIR")
    parser.add_argument("--gradcam", metavar="LAYER", help="overlay Grad-CAM of LAYER (e.g. conv3) when annotating")
    parser.add_argument("--small-faces", action="store_true",
                        help=f"scan for faces at full size, not at {DETECT_SIDE} px (slower)")
    parser.add_argument("--tta", action="store_true",
                        help="average over mirrored (and, for a model of a central crop, shifted) views of "
                             "each face, as the study scores such a model (notebook 08's ten-crop)")
    args = parser.parse_args(argv)
    try:
        model_path = Path(args.model) if args.model else default_model_path()
        model = load_model(model_path)
        predictor = Predictor(model, args.gradcam, detect_side=None if args.small_faces else DETECT_SIDE,
                              tta=args.tta)
    except PredictError as exc:
        print(f"fer-predict: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # a Grad-CAM layer that does not exist
        print(f"fer-predict: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    results = []
    started = time.perf_counter()
    for path in expand_inputs(args.inputs):
        result = predictor.predict_file(path, args.annotate)
        if result.error:
            print(f"fer-predict: {path}: {result.error}", file=sys.stderr)
        results.append(result)
    if args.json:
        payload = {"model": model_path.name, "seconds": round(time.perf_counter() - started, 3),
                   "images": [asdict(r) for r in results]}
        print(json.dumps(payload, indent=2))
    else:
        print(format_table(results))
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
