"""The source report's baseline CNN (its Fig. 3), built with Keras 3 layers only.

*The lesson.* A convolutional network learns small filters that slide over the image: the first
layers respond to edges, later ones to parts of faces. Pooling halves the picture at each block, batch
normalisation keeps the numbers in a workable range, dropout switches random units off in training so
the network cannot lean on any one of them, and a softmax turns the seven class scores into
probabilities. Most of the 4.5 million parameters sit in the last conv layer and the first dense one.

The conv layers are named ``conv1`` .. ``conv5`` so that later notebooks
(Grad-CAM) can address them, and the class scores before the softmax are the
output of the layer named ``logits``. Pixel scaling to [0, 1] is the model's
first layer, so the model takes the uint8 images as they are stored and a
saved ``.keras`` file carries its own preprocessing.
"""

from __future__ import annotations

import keras
from keras import layers, regularizers

from .data import EMOTIONS, IMAGE_SIZE

#: Parameter count of the baseline with a 48x48x1 input (the report's "about 4.5 million").
BASELINE_PARAMS = 4_496_903
#: Input scalings :func:`build_baseline` knows.
INPUT_NORMS: tuple[str, ...] = ("rescale", "standardize")
#: Names of the conv layers, first to last.
CONV_LAYERS: tuple[str, ...] = ("conv1", "conv2", "conv3", "conv4", "conv5")


@keras.saving.register_keras_serializable(package="fer_utils")
class PerImageStandardization(layers.Layer):
    """Scale each image to zero mean and unit standard deviation (over its own pixels).

    An alternative to the report's division by 255 that makes the model indifferent
    to each face's brightness and contrast. ``benchmarks/input_scaling.py`` compares
    the two on the genuine data; notebook 01 prints which one the study uses and why.
    (It was once the default because of a defective copy of the data whose Training
    images were blurred and low in contrast; on canonical FER-2013 the splits agree.)
    ``min_std`` (in input units) keeps near-blank images finite. No weights: the
    parameter count of the model is unchanged.
    """

    def __init__(self, min_std: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.min_std = float(min_std)

    def call(self, inputs):
        x = keras.ops.cast(inputs, "float32")
        mean = keras.ops.mean(x, axis=(1, 2, 3), keepdims=True)
        std = keras.ops.std(x, axis=(1, 2, 3), keepdims=True)
        return (x - mean) / keras.ops.maximum(std, self.min_std)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "min_std": self.min_std}


def build_baseline(
    *,
    l2: float = 0.01,
    dropout: float = 0.25,
    num_classes: int = len(EMOTIONS),
    input_size: int = IMAGE_SIZE,
    bn_before_relu: bool = False,
    bn_momentum: float = 0.99,
    input_norm: str = "rescale",
    augmentation: str | None = None,
    seed: int | None = None,
) -> keras.Model:
    """Build the baseline CNN (uncompiled).

    Conv 32@3x3 -> Conv 64@3x3 -> BN -> MaxPool -> Dropout
    -> Conv 128@5x5 -> BN -> MaxPool -> Dropout
    -> Conv 512@3x3 (L2) -> BN -> MaxPool -> Dropout
    -> Conv 512@3x3 (L2) -> BN -> MaxPool -> Dropout
    -> Flatten -> Dense 256 -> BN -> Dropout -> Dense 512 -> BN -> Dropout -> Dense 7 -> softmax

    Args:
        l2: L2 kernel penalty on the two 512-filter conv layers (0 disables it).
        dropout: rate of every Dropout layer.
        num_classes: output classes.
        input_size: side of the square grayscale input.
        bn_before_relu: apply each BatchNormalization to the pre-activation (Conv -> BN -> ReLU)
            instead of after the ReLU. Same layers and parameter count; only the order differs.
        bn_momentum: momentum of the BatchNormalization moving statistics.
        input_norm: ``"rescale"`` (default: the report's division by 255, chosen on the genuine data by
            ``benchmarks/input_scaling.py``) or ``"standardize"`` (per-image zero mean and unit variance,
            see :class:`PerImageStandardization`).
        augmentation: None, or a recipe of :mod:`fer_utils.augment` (``"report"``, ``"face"``):
            preprocessing layers placed first, active in training only; they add no parameters.
        seed: seed of the augmentation layers.
    """
    if input_norm not in INPUT_NORMS:
        raise ValueError(f"input_norm must be one of {INPUT_NORMS}, got {input_norm!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    reg = regularizers.L2(l2) if l2 > 0 else None
    from .augment import augmentation_layers

    stack: list[layers.Layer] = [
        keras.Input((input_size, input_size, 1), name="image"),
        *(augmentation_layers(augmentation, seed) if augmentation else []),
        # float32 islands under mixed precision: the input statistics and the softmax
        PerImageStandardization(name="standardize", dtype="float32")
        if input_norm == "standardize"
        else layers.Rescaling(1.0 / 255, name="rescale", dtype="float32"),
        layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1"),
    ]

    inner_act = None if bn_before_relu else "relu"

    def block(layer: layers.Layer, k: int) -> None:
        """``layer`` then BatchNormalization ``bn<k>``, with the ReLU before or after the BN."""
        stack.extend([layer, layers.BatchNormalization(momentum=bn_momentum, name=f"bn{k}")])
        if bn_before_relu:
            stack.append(layers.Activation("relu", name=f"relu{k}"))

    for k, (filters, size, name, penalty) in enumerate(
        [(64, 3, "conv2", None), (128, 5, "conv3", None), (512, 3, "conv4", reg),
         (512, 3, "conv5", reg)], start=1,
    ):
        block(layers.Conv2D(filters, size, padding="same", activation=inner_act, name=name,
                            kernel_regularizer=penalty), k)
        stack.extend([layers.MaxPooling2D(2, name=f"pool{k}"),
                      layers.Dropout(dropout, name=f"drop{k}")])
    stack.append(layers.Flatten(name="flatten"))
    for k, units in ((5, 256), (6, 512)):
        block(layers.Dense(units, activation=inner_act, name=f"dense{k - 4}"), k)
        stack.append(layers.Dropout(dropout, name=f"drop{k}"))
    stack.extend([layers.Dense(num_classes, name="logits"),
                  layers.Activation("softmax", name="predictions", dtype="float32")])
    return keras.Sequential(stack, name="baseline_cnn")


def build_vgg(
    *,
    width: int = 64,
    convs_per_stage: int = 2,
    stages: int = 4,
    crop: int = 40,
    dropout: float = 0.4,
    num_classes: int = len(EMOTIONS),
    input_size: int = IMAGE_SIZE,
    augmentation: str | None = None,
    seed: int | None = None,
) -> keras.Model:
    """A VGG-style CNN for 48x48 faces (notebook 08's architecture step; uncompiled).

    [Conv 3x3 -> BN -> ReLU] x ``convs_per_stage`` -> MaxPool, for ``stages`` stages of
    ``width``, 2 x ``width``, 4 x ``width``, ... filters (the last stage is not pooled), then global
    average pooling -> Dropout -> Dense (``logits``) -> softmax. The design of the networks that beat
    the report on FER-2013 (Khaireddin & Chen 2021 and the challenge's winners): many small 3x3 convs,
    batch normalisation before every ReLU, and no large dense layers; the conv layers are unbiased
    (the BN after them has the bias).

    The model takes the 48x48 uint8 images like the baseline and looks at their central
    ``crop`` x ``crop`` pixels (``keras.layers.CenterCrop``, named ``crop``). Shifting an image by up to
    the margin ``(48 - crop) / 2`` before that crop (the ``strong`` augmentation in training,
    :func:`fer_utils.beyond.tta_probabilities` at test time) makes it see a random or a corner crop,
    the ten-crop scheme of the literature; the crop also costs 31 % less computing than the full 48x48.
    Conv layers are named ``conv1`` .. ``conv<stages x convs_per_stage>`` for Grad-CAM.

    Args:
        width: filters of the first stage (doubled at each following one).
        convs_per_stage: 3x3 conv layers per stage.
        stages: stages (4 at 40x40 leaves 5x5 maps for the average pooling).
        crop: side of the central crop the convs see; ``input_size`` for none.
        dropout: rate of the Dropout before the classifier.
        num_classes: output classes.
        input_size: side of the square grayscale input.
        augmentation: None, or a recipe of :mod:`fer_utils.augment` placed first (training only).
        seed: seed of the augmentation layers.
    """
    if width < 1 or convs_per_stage < 1 or stages < 1:
        raise ValueError(f"width, convs_per_stage and stages must be >= 1, got {width}, {convs_per_stage}, {stages}")
    if not 8 <= crop <= input_size:
        raise ValueError(f"crop must lie in 8..{input_size}, got {crop}")
    if crop // 2 ** (stages - 1) < 1:
        raise ValueError(f"{stages} stages pool a {crop}x{crop} crop to nothing")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    from .augment import augmentation_layers

    stack: list[layers.Layer] = [
        keras.Input((input_size, input_size, 1), name="image"),
        *(augmentation_layers(augmentation, seed) if augmentation else []),
        layers.CenterCrop(crop, crop, name="crop", dtype="float32"),
        layers.Rescaling(1.0 / 255, name="rescale", dtype="float32"),
    ]
    k = 0
    for stage in range(stages):
        for _ in range(convs_per_stage):
            k += 1
            stack.extend([
                layers.Conv2D(width * 2 ** stage, 3, padding="same", use_bias=False, name=f"conv{k}"),
                layers.BatchNormalization(name=f"bn{k}"),
                layers.Activation("relu", name=f"relu{k}"),
            ])
        if stage < stages - 1:
            stack.append(layers.MaxPooling2D(2, name=f"pool{stage + 1}"))
    stack.extend([
        layers.GlobalAveragePooling2D(name="gap"),
        layers.Dropout(dropout, name="drop"),
        layers.Dense(num_classes, name="logits"),
        layers.Activation("softmax", name="predictions", dtype="float32"),
    ])
    return keras.Sequential(stack, name=f"vgg{k}_w{width}")


@keras.saving.register_keras_serializable(package="fer_utils")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy on integer labels with label smoothing (Szegedy et al., 2016).

    The target is ``1 - smoothing`` on the true class plus ``smoothing / K`` spread over all ``K``
    classes, so a confident mistake costs less and the model is discouraged from pushing its
    probabilities to 0 and 1, which helps on labels as noisy as FER-2013's. Keras 3's
    ``SparseCategoricalCrossentropy`` has no smoothing and its ``CategoricalCrossentropy`` needs one-hot
    labels; this keeps the study's integer labels and its ``accuracy`` metric. Takes probabilities
    (the models end in a softmax); ``smoothing=0`` is the ordinary sparse cross-entropy.
    """

    def __init__(self, smoothing: float = 0.1, name: str = "smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"label smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = float(smoothing)

    def call(self, y_true, y_pred):
        probs = keras.ops.clip(keras.ops.cast(y_pred, "float32"), 1e-7, 1.0)
        log_probs = keras.ops.log(probs)
        k = keras.ops.shape(probs)[-1]
        labels = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
        true_term = -keras.ops.sum(keras.ops.one_hot(labels, k) * log_probs, axis=-1)
        uniform_term = -keras.ops.mean(log_probs, axis=-1)
        return (1.0 - self.smoothing) * true_term + self.smoothing * uniform_term

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction, "smoothing": self.smoothing}


#: Optimisers :func:`compile_model` knows.
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd")


def compile_model(
    model: keras.Model,
    *,
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = 1e-3,
    optimizer: str = "adam",
    weight_decay: float | None = None,
    momentum: float = 0.9,
    label_smoothing: float = 0.0,
) -> keras.Model:
    """Compile for integer labels with sparse categorical cross-entropy and accuracy.

    Args:
        model: the model to compile (in place; also returned).
        learning_rate: a constant rate or a Keras schedule (e.g. :func:`fer_utils.train.cosine_schedule`).
        optimizer: ``"adam"`` (the report's), ``"adamw"`` or ``"sgd"`` (with Nesterov momentum).
        weight_decay: decoupled weight decay of the optimiser (None: the optimiser's default, none for
            Adam and SGD).
        momentum: SGD's momentum.
        label_smoothing: 0 for the plain cross-entropy, else :class:`SmoothedSparseCrossentropy`.

    Keras compiles the training step (XLA) when every layer says it can be compiled; the
    augmentation layers of :mod:`fer_utils.augment` say so under JAX, where they can.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {sorted(OPTIMIZERS)}")
    if weight_decay is not None and weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    decay = {} if weight_decay is None else {"weight_decay": weight_decay}
    if optimizer == "sgd":
        opt = keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum, nesterov=True, **decay)
    elif optimizer == "adamw":
        opt = keras.optimizers.AdamW(learning_rate=learning_rate, **decay)
    else:
        opt = keras.optimizers.Adam(learning_rate=learning_rate, **decay)
    loss = SmoothedSparseCrossentropy(label_smoothing) if label_smoothing else "sparse_categorical_crossentropy"
    model.compile(optimizer=opt, loss=loss, metrics=["accuracy"])
    return model
