"""Grad-CAM (Selvaraju et al., 2017): where in the face a conv layer's evidence for a class lies.

*The lesson.* A class score can be traced back to the places in the image that raised it. A model
that looks at the mouth for a smile and at the brows for anger uses the cues a person would; one that
looks at the border or the background has found a shortcut.

For a conv layer with feature maps ``A^k`` and a class score ``y^c`` taken *before*
the softmax, the channel weights are the spatially averaged gradients
``alpha_k = mean_ij d y^c / d A^k_ij``; the map is ``ReLU(sum_k alpha_k A^k)``,
scaled to [0, 1] (an all-zero map stays zero, never NaN) and resized to the
input's size (for a model that looks at a central crop, to the crop, placed where it lies in the
input; the border it never sees stays 0). Works for Sequential and functional Keras 3 models, on every Keras backend
(TensorFlow, JAX, PyTorch); the gradient is taken by :func:`fer_utils.device.gradient_of_sum`, or its compiled
form for many batches. :func:`gradcam_layers` maps several layers from one forward and one backward pass.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np

#: The layer whose output is the pre-softmax class score in this study's models.
SCORE_LAYER = "logits"


#: The compiled passes of :func:`gradcam_layers` (``compiled=True``), per model and chain of layers; a model's
#: go when the model does.
_COMPILED: "weakref.WeakKeyDictionary[keras.Model, dict]" = weakref.WeakKeyDictionary()


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
    if np.ndim(images) not in (3, 4):
        raise ValueError(f"images must be (N, H, W, C) or (H, W, C), got shape {np.shape(images)}")
    single = np.ndim(images) == 3
    maps = gradcam_layers(model, np.asarray(images)[None] if single else images, [layer_name], class_index,
                          score_layer)[:, 0]
    return maps[0] if single else maps


def gradcam_layers(
    model: keras.Model,
    images: np.ndarray,
    layer_names: list[str],
    class_index: int | np.ndarray | None = None,
    score_layer: str | None = None,
    compiled: bool = False,
) -> np.ndarray:
    """Grad-CAM maps at several layers at once: float32 ``(N, len(layer_names), H, W)``, each map as
    :func:`gradcam` gives it.

    A model that is a chain of layers (``keras.Sequential``, as every model of this study) needs one
    forward and one backward pass for all the layers: a zero is added to each chosen layer's output, and
    the gradient of the class score with respect to those zeros is the gradient at each layer's feature
    maps. Other models are cut at one layer at a time.

    ``compiled=True`` takes a chain's passes through :func:`fer_utils.device.compiled_gradient_of_sum`,
    kept with the model for the next call with the same layers and weights: worth it when the same maps are
    drawn over many batches (:func:`class_average_by_layer`), not for a few faces, where the trace costs more
    than it saves. The maps are the same up to float rounding. Models that are not a chain of layers are cut
    at one layer at a time, op by op, whatever ``compiled`` says.
    """
    from .device import compiled_gradient_of_sum, gradient_of_sum

    batch = np.asarray(images)
    if batch.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C), got shape {np.shape(images)}")
    if not layer_names:
        raise ValueError("layer_names must name at least one layer")
    targets = [_conv_layer(model, name) for name in layer_names]
    scores_layer = _score_tensor_layer(model, score_layer)
    n_classes = int(scores_layer.output.shape[-1])
    inputs = batch.astype("float32")

    def one_hot_of(scores: np.ndarray | None) -> np.ndarray:
        if class_index is None:
            chosen = scores.argmax(axis=1)
        else:
            chosen = np.broadcast_to(np.asarray(class_index, dtype=np.int64), (len(batch),))
        if np.any((chosen < 0) | (chosen >= n_classes)):
            raise ValueError(f"class_index must lie in 0..{n_classes - 1}, got {np.unique(chosen).tolist()}")
        return np.eye(n_classes, dtype=np.float32)[chosen]

    if isinstance(model, keras.Sequential):
        layers = list(model.layers)  # a Sequential model (a loaded one too) is a plain chain of layers
        end = layers.index(scores_layer) if scores_layer in layers else -1
        for target in targets:
            if end <= layers.index(target):
                raise ValueError(f"layer {scores_layer.name!r} does not follow {target.name!r}")
        order = sorted({layers.index(t) for t in targets})
        slots = {index: slot for slot, index in enumerate(order)}
        chain = layers[:end + 1]
        given = class_index is not None
        one_hot = one_hot_of(None) if given else np.zeros((len(batch), n_classes), np.float32)

        def chosen_score(*args):  # (*zeros, images, one_hot): the zeros are what the gradient is taken for
            *zeros, images, one_hot = args
            x, maps = keras.ops.convert_to_tensor(images), []
            for index, layer in enumerate(chain):
                x = layer(x, training=False)
                if index in slots:
                    x = x + zeros[slots[index]]
                    maps.append(x)
            scores = keras.ops.cast(x, "float32")
            if given:  # on the device the scores are on
                one_hot = keras.ops.convert_to_tensor(one_hot)
            else:  # each image's predicted class (a choice, not a function to differentiate)
                one_hot = keras.ops.one_hot(keras.ops.argmax(keras.ops.stop_gradient(scores), axis=1), n_classes)
            return keras.ops.sum(scores * one_hot, axis=1), maps

        zeros = [np.zeros((len(batch),) + tuple(layers[index].output.shape[1:]), np.float32) for index in order]
        if compiled:
            kept = _COMPILED.setdefault(model, {})
            # the same layers holding the same variables (a layer rebuilt or quantized gets a new graph)
            key = (tuple(id(layer) for layer in chain), tuple(id(v) for v in model.weights), tuple(order), given)
            if key not in kept:
                kept[key] = compiled_gradient_of_sum(chosen_score, has_aux=True)
            _, found, maps = kept[key](zeros, inputs, one_hot)
        else:
            _, found, maps = gradient_of_sum(lambda *z: chosen_score(*z, inputs, one_hot), zeros, has_aux=True)
        pairs = [(maps[slots[layers.index(t)]].astype(np.float32, copy=False), found[slots[layers.index(t)]])
                 for t in targets]
    else:
        pairs, one_hot = [], None
        for target in targets:
            features, head = _split(model, target, scores_layer)
            fmaps = keras.ops.convert_to_numpy(features(keras.ops.convert_to_tensor(inputs))).astype(np.float32)
            if one_hot is None:
                one_hot = keras.ops.convert_to_tensor(
                    one_hot_of(keras.ops.convert_to_numpy(head(keras.ops.convert_to_tensor(fmaps)))))

            def chosen_score(maps, head=head):
                return keras.ops.sum(keras.ops.cast(head(maps), "float32") * one_hot, axis=1)

            _, grads = gradient_of_sum(chosen_score, fmaps)  # d score_i / d A_i (images are independent)
            pairs.append((fmaps, grads))
    # the maps cover what the convs saw: the whole input, or a model's central crop of it
    top, left, height, width = _seen_region(model, batch.shape[1:3])
    out = np.zeros((len(batch), len(targets)) + batch.shape[1:3], dtype=np.float32)
    for k, (fmaps, grads) in enumerate(pairs):
        weights = grads.mean(axis=(1, 2), keepdims=True)
        cam = np.maximum((weights * fmaps).sum(axis=-1), 0.0)
        peak = cam.max(axis=(1, 2), keepdims=True)
        cam = np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)
        cam = keras.ops.image.resize(keras.ops.convert_to_tensor(cam[..., None]), (height, width),
                                     interpolation="bilinear", antialias=False)
        out[:, k, top:top + height, left:left + width] = np.clip(keras.ops.convert_to_numpy(cam)[..., 0], 0.0, 1.0)
    return out


def _conv_layer(model: keras.Model, layer_name: str) -> keras.layers.Layer:
    """The layer ``layer_name`` of ``model``, which must output feature maps ``(N, H, W, C)``."""
    try:
        target = model.get_layer(layer_name)
    except ValueError:
        convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        raise ValueError(f"no layer {layer_name!r}; conv layers: {', '.join(convs)}") from None
    if len(target.output.shape) != 4:
        raise ValueError(f"layer {layer_name!r} does not output feature maps (shape {target.output.shape})")
    return target


def _seen_region(model: keras.Model, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of the input that the conv layers see: the whole image, or the
    central crop of a ``CenterCrop`` layer (:func:`fer_utils.model.build_vgg`), where a map belongs."""
    height, width = size
    for layer in model.layers:
        if isinstance(layer, keras.layers.CenterCrop):
            return (height - layer.height) // 2, (width - layer.width) // 2, layer.height, layer.width
    return 0, 0, height, width


def _split(model: keras.Model, target: keras.layers.Layer, scores_layer: keras.layers.Layer):
    """Cut a functional ``model`` at ``target``: (images -> its feature maps, feature maps -> class scores)."""
    try:
        head = keras.Model(target.output, scores_layer.output)
    except ValueError as error:
        raise ValueError(
            f"cannot cut model {model.name!r} at {target.name!r}: the class scores must depend on the "
            f"inputs only through that layer's feature maps ({error})") from None
    features = keras.Model(model.inputs, target.output)
    return (lambda x: features(x, training=False)), (lambda maps: head(maps, training=False))


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
    num_classes: int = 7, batch_size: int = 256, predicted: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean Grad-CAM map per class over correctly classified images.

    ``predicted``: the model's classes for ``images`` when already known (else predicted here).
    Returns ``(maps, counts)``: maps ``(num_classes, H, W)`` and the number of correctly
    classified images behind each; a class with none gets an all-zero map.
    """
    maps, counts = class_average_by_layer(model, images, labels, [layer_name], num_classes, batch_size, predicted)
    return maps[:, 0], counts


#: Face regions by rows of a centred 48x48 FER-2013 crop (top to bottom).
FACE_REGIONS: tuple[tuple[str, float, float], ...] = (
    ("forehead and brows", 0.0, 0.30),
    ("eyes", 0.30, 0.50),
    ("nose and cheeks", 0.50, 0.68),
    ("mouth and chin", 0.68, 1.0),
)


#: Width of the image's outer frame as a share of its side (3 pixels of 48). Early conv layers pad the image with
#: zeros, so they see a strong edge all round it; their maps often light that frame, which is the edge of the
#: image, not a part of the face. The bands leave it out, and :func:`frame_share` measures it.
FRAME_FRACTION = 1 / 16


def frame_width(size: int) -> int:
    """Pixels of the outer frame for an image side of ``size`` (:data:`FRAME_FRACTION`, at least one)."""
    return max(1, round(size * FRAME_FRACTION))


def frame_share(cam: np.ndarray) -> tuple[float, float] | None:
    """How much of a map lies on the image's outer frame: ``(share, ratio)``, or None for a map without mass.

    ``share`` is the frame's part of the map's total; ``ratio`` is that share against the frame's part of
    the image's area (23 % of a 48x48 image), what a map spread evenly would give it. A ratio well above 1 says
    the layer responds to the edge of the image, where the zero padding meets the face.
    """
    cam = np.asarray(cam, dtype=np.float64)
    total = cam.sum()
    if total <= 0:
        return None
    f = frame_width(min(cam.shape))
    inner = cam[f:cam.shape[0] - f, f:cam.shape[1] - f]
    share = float((total - inner.sum()) / total)
    return share, share / (1 - inner.size / cam.size)


def densest_band(cam: np.ndarray) -> tuple[str, float, float] | None:
    """Where a map is densest inside the image's outer frame: ``(band, share, ratio)``, or None for a map
    without mass there.

    ``band`` is the :data:`FACE_REGIONS` band with the highest mean value per row (density, not total
    mass, decides, so a tall band does not win by its height); ``share`` is the band's part of the map's
    total; ``ratio`` is that share against the band's share of the face's height, what a map spread
    evenly over the face would give it (1.0: the map points nowhere in particular). The outer frame
    (:data:`FRAME_FRACTION`) is left out of every figure: a map that lights the edge of the image says
    nothing about the face (:func:`frame_share` measures that).
    """
    cam = np.asarray(cam, dtype=np.float64)
    h, w = cam.shape
    f = frame_width(min(h, w))
    rows = cam[:, f:w - f].sum(axis=1)
    rows[:f] = 0
    rows[h - f:] = 0
    if rows.sum() <= 0:
        return None
    inside = h - 2 * f
    bands = {name: rows[max(int(lo * h), f):min(int(hi * h), h - f)] for name, lo, hi in FACE_REGIONS}
    best = max(bands, key=lambda name: bands[name].mean())
    share = float(bands[best].sum() / rows.sum())
    return best, share, share / (len(bands[best]) / inside)


def band_ratio(cam: np.ndarray) -> float:
    """The densest band's share of a map against an even spread's (:func:`densest_band`'s ratio); 0.0 for a map
    without mass, which points nowhere."""
    found = densest_band(cam)
    return found[2] if found else 0.0


def peak_band(cam: np.ndarray) -> str:
    """The name of the band where ``cam`` is densest (:func:`densest_band`), or ``"empty map"``."""
    found = densest_band(cam)
    return found[0] if found else "empty map"


def peak_region(cam: np.ndarray, short: bool = False) -> str:
    """The face region where a map is densest (mean value per row of the FER-2013 crop).

    Regions are bands of rows (:data:`FACE_REGIONS`); density, not total mass, decides,
    so a tall band does not win by its height. Returns e.g. ``"mouth and chin (51% of
    the map, 1.6x an even spread)"``: the band's share of the map's total, and that share
    against the band's share of the face's height, which is what a map spread evenly
    over the face would give it (1.0x). A figure near 1 says the map points nowhere in
    particular, however its densest band is named. ``"empty map"`` for a map without mass.
    ``short=True`` gives the same figures for a table cell: ``"mouth and chin 51% (1.6x)"``.
    """
    found = densest_band(cam)
    if found is None:
        return "empty map"
    best, share, ratio = found
    if short:
        return f"{best} {share:.0%} ({ratio:.1f}x)"
    return f"{best} ({share:.0%} of the map, {ratio:.1f}x an even spread)"


def class_average_by_layer(
    model: keras.Model, images: np.ndarray, labels: np.ndarray, layers: list[str],
    num_classes: int = 7, batch_size: int = 256, predicted: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`class_average` at each of ``layers`` (all from the same passes, :func:`gradcam_layers`):
    maps ``(num_classes, len(layers), H, W)`` and the number of correctly classified images behind each
    class."""
    if predicted is None:
        predicted = model.predict(images, batch_size=batch_size, verbose=0).argmax(1)
    correct = np.flatnonzero(np.asarray(predicted) == labels)
    sums = np.zeros((num_classes, len(layers)) + images.shape[1:3], np.float64)
    counts = np.zeros(num_classes, np.int64)
    for start in range(0, len(correct), batch_size):
        idx = correct[start:start + batch_size]
        maps = gradcam_layers(model, images[idx], layers, class_index=labels[idx], compiled=True)
        np.add.at(sums, labels[idx], maps)
        counts += np.bincount(labels[idx], minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        maps = np.nan_to_num(sums / counts[:, None, None, None]).astype(np.float32)
    return maps, counts


def describe_evidence(maps: np.ndarray, counts: np.ndarray, layers: list[str],
                      class_names: tuple[str, ...]) -> "pd.DataFrame":
    """Where each class's evidence sits at each layer, in words computed from the maps.

    ``maps``: ``(classes, layers, H, W)`` from :func:`class_average_by_layer`. Returns a table with a
    row per class, a column per layer holding :func:`peak_region`'s short answer (band, share of the
    map, and that share against an even spread; "no correct face" where the class has none), and a
    ``faces`` column with the counts.
    """
    import pandas as pd

    rows = {}
    for label, name in enumerate(class_names):
        if not counts[label]:
            rows[name] = ["no correct face"] * len(layers)
        else:
            rows[name] = [peak_region(maps[label, i], short=True) for i in range(len(layers))]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(layers))
    table.insert(0, "faces", [int(c) for c in counts])
    return table


# --------------------------------------------------------------------------- reading the maps in words

#: From this ratio to an even spread on, a map is read as clearly placed on its densest band.
CLEAR_RATIO = 1.5
#: Below this ratio a map is read as near an even spread: the band it names says little. Ratios are compared
#: as the text shows them, to one decimal, so that a map printed at 1.2x is never called below 1.2x.
EVEN_RATIO = 1.2


def placement(ratio: float) -> str:
    """How a ratio to an even spread reads, compared as the text prints it (to one decimal): ``"clear"`` at
    :data:`CLEAR_RATIO` or more, ``"even"`` below :data:`EVEN_RATIO`, ``"some"`` between. Every reading of
    the maps (bands and frame alike) uses these words."""
    shown = round(ratio, 1)
    return "clear" if shown >= CLEAR_RATIO else "even" if shown < EVEN_RATIO else "some"


def describe_placement(ratio: float, what: str = "the map") -> str:
    """How far to trust the band a map is densest on, from its :func:`band_ratio`: a clearly placed map
    names a part of the face; one near an even spread names a band that says little."""
    if ratio == 0:
        return f"{what} is empty: it points nowhere"
    reading = {"clear": "clearly placed",
               "some": f"not clearly placed (under {CLEAR_RATIO:g}x), so read the band with care",
               "even": "near an even spread, so the band it names says little"}[placement(ratio)]
    return f"{what} holds {ratio:.1f}x an even spread on its band: {reading}"


#: The bands where the prototype of each emotion in the Facial Action Coding System moves the face
#: (Ekman and Friesen, 1978; its prototypes as listed in EMFACS): brows lowered or raised, lids
#: tightened or raised, nose wrinkled, cheeks raised, lip corners pulled or lowered, jaw dropped.
#: Neutral is the absence of movement, so it has none.
FACS_BANDS: dict[str, tuple[str, ...]] = {
    "angry": ("forehead and brows", "eyes", "mouth and chin"),      # AU4, AU5, AU7, AU23
    "disgust": ("nose and cheeks", "mouth and chin"),                # AU9, AU15, AU16
    "fear": ("forehead and brows", "eyes", "mouth and chin"),       # AU1, AU2, AU4, AU5, AU7, AU20, AU26
    "happy": ("nose and cheeks", "mouth and chin"),                  # AU6, AU12
    "sad": ("forehead and brows", "mouth and chin"),                 # AU1, AU4, AU15
    "surprise": ("forehead and brows", "eyes", "mouth and chin"),   # AU1, AU2, AU5, AU26
    "neutral": (),
}


def _listed(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _bands_listed(bands: list[str]) -> str:
    """Band names (which hold "and" themselves) as one phrase: "the eyes, and the mouth and chin"."""
    named = [f"the {band}" for band in bands]
    return named[0] if len(named) == 1 else ", ".join(named[:-1]) + ", and " + named[-1]


def attention_by_emotion(maps: np.ndarray, counts: np.ndarray,
                         class_names: tuple[str, ...]) -> dict[str, tuple[str, float, float] | None]:
    """For each emotion, where its class-averaged map (``maps``: ``(classes, H, W)`` from
    :func:`class_average`) is densest: :func:`densest_band`'s ``(band, share, ratio)``, or None where the
    emotion has no correctly classified face or its map is empty."""
    return {name: densest_band(maps[label]) if counts[label] else None
            for label, name in enumerate(class_names)}


def describe_attention(maps: np.ndarray, counts: np.ndarray, class_names: tuple[str, ...], layer: str) -> str:
    """Where the model looks for each emotion, in sentences computed from the class-averaged maps.

    Names the band with the most attention per emotion (:func:`attention_by_emotion`) with its ratio to
    an even spread, says which maps are clearly placed (:data:`CLEAR_RATIO` or more) and which are near
    an even spread (below :data:`EVEN_RATIO`, where the named band says little), and, for the others,
    whether the band is one where the emotion's FACS prototype moves the face (:data:`FACS_BANDS`).
    """
    found = attention_by_emotion(maps, counts, class_names)
    placed = {name: f for name, f in found.items() if f is not None}
    lines = []
    if not placed:
        return f"No emotion has a correctly classified face with a non-empty {layer} map: nothing to read."
    by_band: dict[str, list[str]] = {}
    for name, (band, _, ratio) in placed.items():
        by_band.setdefault(band, []).append(f"{name} ({ratio:.1f}x)")
    parts = [f"on the {band} for {_listed(names)}" for band, names in
             sorted(by_band.items(), key=lambda item: -len(item[1]))]
    lines.append(f"At {layer} the class-averaged map is densest " + "; ".join(parts)
                 + " (each figure: the band's share of the map against an even spread's).")
    missing = [name for name, f in found.items() if f is None]
    if missing:
        lines.append(f"No map for {_listed(missing)}: no correctly classified face, or an empty map.")
    clear = [name for name, f in placed.items() if placement(f[2]) == "clear"]
    even = [name for name, f in placed.items() if placement(f[2]) == "even"]
    lines.append((f"Clearly placed ({CLEAR_RATIO:.1f}x or more): {_listed(clear)}." if clear else
                  f"No map is clearly placed ({CLEAR_RATIO:.1f}x or more).")
                 + (f" Near an even spread (under {EVEN_RATIO:.1f}x), so the band named says little: "
                    f"{_listed(even)}." if even else ""))
    judged = {name: f for name, f in placed.items() if placement(f[2]) != "even" and FACS_BANDS.get(name)}
    agree = [name for name, f in judged.items() if f[0] in FACS_BANDS[name]]
    differ = [f"{name} (its map on the {f[0]}; its prototype moves {_bands_listed(list(FACS_BANDS[name]))})"
              for name, f in judged.items() if f[0] not in FACS_BANDS[name]]
    if judged:
        text = "Against the face movements of each emotion's FACS prototype: "
        text += (f"the band is one the prototype moves for {_listed(agree)}" if agree else
                 "the band is never one the prototype moves")
        text += f"; not for {_listed(differ)}." if differ else "."
        left_out = [name for name in placed if name not in judged]
        if left_out:
            text += (f" Left out: {_listed(left_out)} (a map near an even spread names no place, and neutral's "
                     "prototype moves nothing)." if "neutral" in left_out else
                     f" Left out: {_listed(left_out)} (a map near an even spread names no place).")
        lines.append(text)
    return "\n".join(lines)


def describe_layers(maps: np.ndarray, counts: np.ndarray, layers: list[str], class_names: tuple[str, ...]) -> str:
    """The layer-by-layer table (:func:`describe_evidence`) read in sentences computed from the maps.

    ``maps``: ``(classes, layers, H, W)`` from :func:`class_average_by_layer`. First how concentrated the
    evidence is at each layer (the median over the emotions of the densest band's ratio to an even spread),
    then for each emotion the band at each layer (runs of layers with the same band joined; "near an even
    spread" where the map is below :data:`EVEN_RATIO`, whichever band the table names) and the layer where
    its map is most concentrated, or that it never leaves an even spread.
    """
    found = [[densest_band(maps[c, i]) if counts[c] else None for i in range(len(layers))]
             for c in range(len(class_names))]
    medians = []
    for i in range(len(layers)):
        ratios = [row[i][2] for row in found if row[i] is not None]
        medians.append(float(np.median(ratios)) if ratios else float("nan"))
    if all(np.isnan(medians)):
        return "No emotion has a correctly classified face: nothing to read."
    shown = [round(m, 1) for m in medians]  # compared as printed: layers that print alike are tied
    top, bottom = np.nanmax(shown), np.nanmin(shown)
    most = _listed([layer for layer, m in zip(layers, shown) if m == top])
    least = _listed([layer for layer, m in zip(layers, shown) if m == bottom])
    lines = ["How concentrated the evidence is at each layer (median over the emotions of the densest band's "
             "share against an even spread): "
             + ", ".join(f"{layer} {m:.1f}x" for layer, m in zip(layers, medians) if not np.isnan(m))
             + (f"; the same at every layer" if top == bottom else f"; most at {most}, least at {least}")
             + (f"; no layer places it clearly (no median reaches {CLEAR_RATIO:.1f}x)." if top < CLEAR_RATIO else ".")]
    lines.append(describe_frame(maps, counts, layers))
    for c, name in enumerate(class_names):
        row = found[c]
        if all(f is None for f in row):
            lines.append(f"{name}: no correctly classified face, no map.")
            continue
        runs: list[tuple[str, list[str]]] = []
        for layer, f in zip(layers, row):
            band = ("an empty map" if f is None else f[0] if placement(f[2]) != "even" else "near an even spread")
            if runs and runs[-1][0] == band:
                runs[-1][1].append(layer)
            else:
                runs.append((band, [layer]))
        where = ", ".join(f"{band} at {at[0] if len(at) == 1 else at[0] + '-' + at[-1]}" for band, at in runs)
        best = max((i for i, f in enumerate(row) if f), key=lambda i: row[i][2])
        band, _, ratio = row[best]
        tied = [i for i, f in enumerate(row) if f and round(f[2], 1) == round(ratio, 1)]  # as printed
        if placement(ratio) == "even":
            tail = f"never far from an even spread (at most {ratio:.1f}x)"
        elif len(tied) == 1:
            tail = f"most concentrated at {layers[best]} ({band}, {ratio:.1f}x)"
        else:
            tail = ("most concentrated, tied at " + f"{ratio:.1f}x, at "
                    + _listed([f"{layers[i]} ({row[i][0]})" for i in tied]))
        lines.append(f"{name}: {where}; {tail}.")
    return "\n".join(lines)


def describe_frame(maps: np.ndarray, counts: np.ndarray, layers: list[str]) -> str:
    """One sentence on how much of each layer's class-averaged maps lies on the image's outer frame.

    ``maps``: ``(classes, layers, H, W)``. For each layer, the median over the classes with a correctly
    classified face of :func:`frame_share`'s ratio, read with the thresholds the bands are read with: at
    :data:`EVEN_RATIO` or more (as printed, to one decimal) the layer puts more on the frame than an even spread
    would, at :data:`CLEAR_RATIO` or more it lights the frame.
    """
    size = maps.shape[-1]
    width = frame_width(size)
    area = frame_share(np.ones((size, size)))[0]  # the frame's part of the image
    ratios = []
    for i in range(len(layers)):
        found = [frame_share(maps[c, i]) for c in range(maps.shape[0]) if counts[c]]
        found = [f[1] for f in found if f is not None]
        ratios.append(float(np.median(found)) if found else float("nan"))
    text = (f"The image's outer frame ({width} pixels wide, {area:.0%} of its area) holds, against an even spread's "
            "share (median over the emotions): "
            + ", ".join(f"{layer} {r:.1f}x" for layer, r in zip(layers, ratios) if not np.isnan(r)) + ". ")
    lit = [layer for layer, r in zip(layers, ratios) if not np.isnan(r) and placement(r) == "clear"]
    more = [layer for layer, r in zip(layers, ratios) if not np.isnan(r) and placement(r) == "some"]
    if not lit and not more:
        return text + "No layer puts more on the frame than an even spread would; the table leaves the frame out."
    parts = []
    if lit:
        parts.append(f"at {_listed(lit)} the maps light the frame ({CLEAR_RATIO:.1f}x or more)")
    if more:
        parts.append(f"at {_listed(more)} {'they' if lit else 'the maps'} put somewhat more on it than an even spread would "
                     f"({EVEN_RATIO:.1f}x to {CLEAR_RATIO:.1f}x)")
    named = lit + more
    which = "that layer responds" if len(named) == 1 else "those layers respond"
    joined = "; ".join(parts)
    return (text + joined[0].upper() + joined[1:] + f": most likely {which} to the edge of "
            "the image, where the zero padding meets the face, rather than to a part of the face. The table leaves "
            "the frame out. (At the coarse layers, whose maps are stretched from 12x12 or 6x6, the frame is part "
            "of one cell of the map, so their figures say less.)")


def describe_report_claim(maps: np.ndarray, counts: np.ndarray, layers: list[str], class_names: tuple[str, ...],
                          emotion: str = "fear", layer: str = "conv3",
                          bands: tuple[str, ...] = ("mouth and chin", "forehead and brows")) -> str:
    """The source report's reading of one fear face at ``conv3`` (the mouth and forehead lit) set beside this
    model's class average there (``maps``: ``(classes, layers, H, W)``): whether the average is densest on one
    of ``bands`` and placed (:data:`EVEN_RATIO` or more), near an even spread, or elsewhere."""
    c, i = class_names.index(emotion), layers.index(layer)
    found = densest_band(maps[c, i]) if counts[c] else None
    claim = f"The report saw the {' and '.join(b.split(' and ')[0] for b in bands)} light up at {layer} for one {emotion} face"
    if found is None:
        return f"{claim}; this model has no {layer} map of a correctly classified {emotion} face to set beside it."
    band, share, ratio = found
    average = (f"this model's average over its {int(counts[c]):,} correctly classified {emotion} faces is densest "
               f"on the {band} at {ratio:.1f}x")
    if placement(ratio) == "even":
        verdict = "near an even spread, so it points nowhere in particular: the report's reading of one face is not borne out by the average"
    elif band in bands:
        verdict = "one of the places the report named: the average bears its reading out"
    else:
        verdict = "elsewhere than the report named: the average does not bear its reading out"
    return f"{claim}; {average}, {verdict}."


def maps_match(expected: np.ndarray, tolerance: float = 0.02):
    """A predicate for :func:`fer_utils.exercises.check`: whether an answer holds the Grad-CAM maps
    ``expected`` (same shape, every value within ``tolerance``)."""
    expected = np.asarray(expected, dtype=np.float32)

    def matches(answer) -> bool:
        try:
            got = np.asarray(answer, dtype=np.float32)
        except (TypeError, ValueError):
            return False
        return got.shape == expected.shape and bool(np.all(np.abs(got - expected) <= tolerance))

    return matches


def model_floor_note(accuracy: float, labels: np.ndarray,
                     shows: str = "its maps show how Grad-CAM is computed, not where a trained model looks") -> str:
    """One line on whether the model explained is worth explaining: its accuracy against the share of
    the commonest emotion in ``labels`` (what always answering it scores). Near that floor
    (:func:`fer_utils.evaluate.near_floor`), what the notebook shows of it (``shows``) is no finding."""
    from .data import EMOTIONS
    from .evaluate import NEAR_FLOOR_MARGIN, majority_floor, near_floor

    floor, label = majority_floor(labels)
    commonest = EMOTIONS[label]
    if near_floor(accuracy, floor):
        return (f"{accuracy:.3f} is no more than {NEAR_FLOOR_MARGIN * 100:.0f} points above the {floor:.3f} that always "
                f"answering {commonest} scores: this model is near the floor, so {shows}; the published run's model "
                "shows it (a run directory without a model of its own reads that one).")
    return (f"{accuracy:.3f} against the {floor:.3f} of always answering {commonest}: a model that has learned "
            "something.")
