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


def compile_model(
    model: keras.Model,
    *,
    learning_rate: float = 1e-3,
    optimizer: str = "adam",
) -> keras.Model:
    """Compile for integer labels with sparse categorical cross-entropy and accuracy."""
    optimizers = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW}
    if optimizer not in optimizers:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {sorted(optimizers)}")
    model.compile(
        optimizer=optimizers[optimizer](learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
