"""Grad-CAM (Selvaraju et al., 2017): where in the face a conv layer's evidence for a class lies.

For a conv layer with feature maps ``A^k`` and a class score ``y^c`` taken *before*
the softmax, the channel weights are the spatially averaged gradients
``alpha_k = mean_ij d y^c / d A^k_ij``; the map is ``ReLU(sum_k alpha_k A^k)``,
scaled to [0, 1] (an all-zero map stays zero, never NaN) and resized to the
input's size. Works for Sequential and functional Keras 3 models; the gradient
step uses the TensorFlow backend's GradientTape.
"""

from __future__ import annotations

import keras
import numpy as np

#: The layer whose output is the pre-softmax class score in this study's models.
SCORE_LAYER = "logits"


def _score_tensor_layer(model: keras.Model, score_layer: str | None) -> keras.layers.Layer:
    name = score_layer or SCORE_LAYER
    try:
        return model.get_layer(name)
    except ValueError:
        raise ValueError(
            f"model {model.name!r} has no layer {name!r} giving pre-softmax class scores; "
            "pass score_layer="
        ) from None


def gradcam(
    model: keras.Model,
    images: np.ndarray,
    layer_name: str,
    class_index: int | np.ndarray | None = None,
    score_layer: str | None = None,
) -> np.ndarray:
    """Grad-CAM maps of ``layer_name`` for a batch of images.

    Args:
        model: a built Keras model whose layer ``score_layer`` (default ``logits``)
            outputs the class scores before the softmax.
        images: array ``(N, H, W, C)`` (or one image ``(H, W, C)``), as the model takes it.
            It is not modified.
        layer_name: the conv layer, e.g. ``conv3``.
        class_index: the class to explain; an int for all images, one per image, or None
            for each image's predicted class.
        score_layer: name of the pre-softmax score layer.

    Returns:
        float32 array ``(N, H, W)`` in [0, 1] (``(H, W)`` for a single image).
    """
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise NotImplementedError("gradcam needs the TensorFlow backend (KERAS_BACKEND=tensorflow)")
    single = np.ndim(images) == 3
    batch = np.asarray(images)[None] if single else np.asarray(images)
    if batch.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C) or (H, W, C), got shape {np.shape(images)}")
    try:
        target = model.get_layer(layer_name)
    except ValueError:
        convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        raise ValueError(f"no layer {layer_name!r}; conv layers: {', '.join(convs)}") from None
    if len(target.output.shape) != 4:
        raise ValueError(f"layer {layer_name!r} does not output feature maps (shape {target.output.shape})")
    scores_layer = _score_tensor_layer(model, score_layer)
    if isinstance(model, keras.Sequential):
        # A Sequential model (a loaded one too) is a plain chain: run it layer by layer.
        def probe(x, training=False):
            fmap = None
            for layer in model.layers:
                x = layer(x, training=training)
                if layer is target:
                    fmap = x
                if layer is scores_layer:
                    return fmap, x
            raise ValueError(f"layer {scores_layer.name!r} does not follow {layer_name!r}")
    else:
        probe = keras.Model(model.inputs, [target.output, scores_layer.output])

    x = tf.convert_to_tensor(batch.astype("float32"))  # a copy: the caller's array is untouched
    with tf.GradientTape() as tape:
        fmaps, scores = probe(x, training=False)
        if class_index is None:
            chosen = tf.argmax(scores, axis=1)
        else:
            chosen = tf.broadcast_to(tf.constant(np.asarray(class_index), tf.int64), [tf.shape(scores)[0]])
        score = tf.gather(scores, chosen, axis=1, batch_dims=1)
    grads = tape.gradient(score, fmaps)  # d score_i / d A_i (images are independent)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * fmaps, axis=-1))
    peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
    cam = tf.math.divide_no_nan(cam, peak)
    cam = tf.image.resize(cam[..., None], batch.shape[1:3], method="bilinear")[..., 0]
    out = np.clip(cam.numpy(), 0.0, 1.0).astype(np.float32)
    return out[0] if single else out


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGB float image in [0, 1]: the grayscale face blended with the map in viridis."""
    from matplotlib import colormaps

    gray = np.asarray(image, dtype=np.float32).reshape(cam.shape)
    span = gray.max() - gray.min()
    gray = (gray - gray.min()) / span if span > 0 else np.zeros_like(gray)
    heat = colormaps["viridis"](np.clip(cam, 0, 1))[..., :3]
    return (1 - alpha) * np.repeat(gray[..., None], 3, axis=-1) + alpha * heat


def class_average(
    model: keras.Model, images: np.ndarray, labels: np.ndarray, layer_name: str,
    num_classes: int = 7, batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean Grad-CAM map per class over correctly classified images.

    Returns ``(maps, counts)``: maps ``(num_classes, H, W)`` and the number of correctly
    classified images behind each; a class with none gets an all-zero map.
    """
    probs = model.predict(images, batch_size=batch_size, verbose=0)
    correct = np.flatnonzero(probs.argmax(1) == labels)
    sums = np.zeros((num_classes,) + images.shape[1:3], np.float64)
    counts = np.zeros(num_classes, np.int64)
    for start in range(0, len(correct), batch_size):
        idx = correct[start:start + batch_size]
        maps = gradcam(model, images[idx], layer_name, class_index=labels[idx])
        np.add.at(sums, labels[idx], maps)
        counts += np.bincount(labels[idx], minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        maps = np.nan_to_num(sums / counts[:, None, None]).astype(np.float32)
    return maps, counts


#: Face regions by rows of a centred 48x48 FER-2013 crop (top to bottom).
FACE_REGIONS: tuple[tuple[str, float, float], ...] = (
    ("forehead and brows", 0.0, 0.30),
    ("eyes", 0.30, 0.50),
    ("nose and cheeks", 0.50, 0.68),
    ("mouth and chin", 0.68, 1.0),
)


def peak_region(cam: np.ndarray) -> str:
    """The face region where a map is densest (mean value per row of the FER-2013 crop).

    Regions are bands of rows (:data:`FACE_REGIONS`); density, not total mass, decides,
    so a tall band does not win by its height. Returns e.g. ``"mouth and chin (51% of
    the map)"`` with the band's share of the map's total, or ``"empty map"``.
    """
    rows = np.asarray(cam, dtype=np.float64).sum(axis=1)
    if rows.sum() <= 0:
        return "empty map"
    h = len(rows)
    bands = {name: rows[int(lo * h):int(hi * h)] for name, lo, hi in FACE_REGIONS}
    best = max(bands, key=lambda name: bands[name].mean())
    return f"{best} ({bands[best].sum() / rows.sum():.0%} of the map)"
