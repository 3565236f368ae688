"""fer_utils.device: device facts and the one gradient step, on whichever Keras backend is installed."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from conftest import SHIPPED_BASELINE
from fer_utils import device as backend


def test_device_info_on_this_machine():
    info = backend.device_info()
    assert info["backend"] == keras.backend.backend() in backend.BACKENDS
    assert info["kind"] in ("cpu", "gpu") and info["name"] and info["cores"] >= 1
    line = backend.describe_device(info)
    assert line.startswith(f"Keras backend {info['backend']} on ")
    if info["kind"] == "cpu":
        assert line.endswith("cores, no GPU") and not backend.supports_bfloat16(info)


def test_describe_device_and_bfloat16_on_gpus():
    h200 = {"backend": "jax", "kind": "gpu", "name": "NVIDIA H200", "count": 1, "memory_gib": 139.8,
            "compute_capability": "9.0", "cores": 16}
    assert backend.describe_device(h200) == "Keras backend jax on GPU NVIDIA H200, 139.8 GiB"
    assert backend.supports_bfloat16(h200)
    t4 = {**h200, "name": "Tesla T4", "count": 2, "memory_gib": None, "compute_capability": "7.5"}
    assert backend.describe_device(t4) == "Keras backend jax on GPU 2 x Tesla T4"
    assert not backend.supports_bfloat16(t4)  # Turing: float16 only
    assert not backend.supports_bfloat16({**h200, "compute_capability": None})


def test_gradient_of_sum_known_answer():
    """d/dx sum(x**2 * w) = 2 x w, row by row, whatever the backend."""
    x = np.array([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]], np.float32)
    w = keras.ops.convert_to_tensor(np.array([1.0, 2.0, 3.0], np.float32))
    value, grad = backend.gradient_of_sum(lambda t: keras.ops.sum(t * t * w, axis=1), x)
    np.testing.assert_allclose(value, [1 + 8 + 27, 0.25 + 0 + 3], rtol=1e-6)
    np.testing.assert_allclose(grad, 2 * x * np.array([1.0, 2.0, 3.0]), rtol=1e-6)
    assert isinstance(grad, np.ndarray) and grad.dtype == np.float32


def test_compiled_gradient_of_sum_known_answer():
    """The compiled form: d/dx sum(x**2 * w) = 2 x w, with w given as a constant, on two batch sizes."""
    calls = backend.compiled_gradient_of_sum(lambda t, w: keras.ops.sum(t * t * w, axis=1))
    x = np.array([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]], np.float32)
    w = np.array([1.0, 2.0, 3.0], np.float32)
    for rows in (slice(0, 2), slice(0, 1)):
        value, grad = calls(x[rows], w)
        np.testing.assert_allclose(value, [1 + 8 + 27, 0.25 + 0 + 3][rows], rtol=1e-6)
        np.testing.assert_allclose(grad, 2 * x[rows] * w, rtol=1e-6)
        assert isinstance(grad, np.ndarray) and grad.dtype == np.float32
    pairs = backend.compiled_gradient_of_sum(lambda a, b: (a * b, [a + b]), has_aux=True)
    value, (ga, gb), (total,) = pairs([x, 2 * x])
    np.testing.assert_allclose(value, 2 * x * x)
    np.testing.assert_allclose(total, 3 * x)
    np.testing.assert_allclose(ga, 2 * x)
    np.testing.assert_allclose(gb, x)


def test_gradient_through_a_keras_layer_in_inference_mode():
    layer = keras.layers.Dense(2, use_bias=False)
    layer.build((None, 3))
    kernel = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], np.float32)
    layer.set_weights([kernel])
    x = np.ones((4, 3), np.float32)
    _, grad = backend.gradient_of_sum(lambda t: layer(t), x)
    np.testing.assert_allclose(grad, np.tile(kernel.sum(axis=1), (4, 1)), rtol=1e-6)


OTHER_BACKEND_SCRIPT = r"""
import sys
from pathlib import Path

import keras
import numpy as np

import fer_utils.model  # registers the study's layers for loading

shipped, folder = sys.argv[1], Path(sys.argv[2])
model = keras.saving.load_model(shipped)
np.save(folder / "shipped_probs.npy", model.predict(np.load(folder / "test_x.npy"), batch_size=256, verbose=0))
print(keras.backend.backend())
"""


def _installed_backends() -> list[str]:
    import importlib.util

    return [name for name in backend.BACKENDS if importlib.util.find_spec(name) is not None]


@pytest.mark.xdist_group(SHIPPED_BASELINE)
def test_the_shipped_model_moves_to_every_backend_on_the_real_data(real_data, shipped_baseline_probabilities,
                                                                    tmp_path):
    """The committed model (saved by TensorFlow), loaded on each other installed backend, predicts the same
    PrivateTest classes (>= 99.9 %) and probabilities (within 1e-3). The other direction, a model trained
    and saved on JAX loaded here, is checked on the model notebook 01 trains in the JAX smoke study
    (tests/test_runner.py)."""
    import os
    import subprocess
    import sys

    from fer_utils.data import repo_root

    here = keras.backend.backend()
    others = [name for name in _installed_backends() if name != here]
    if not others:
        if os.environ.get("CI"):
            pytest.fail("CI installs a second Keras backend (jax); none found")
        pytest.skip("only one Keras backend installed")
    shipped = repo_root() / "models" / "baseline.keras"
    np.save(tmp_path / "test_x.npy", real_data.split("PrivateTest").images)
    shipped_here = shipped_baseline_probabilities  # models/baseline.keras on this backend
    for other in others:
        done = subprocess.run([sys.executable, "-c", OTHER_BACKEND_SCRIPT, str(shipped), str(tmp_path)],
                              env={**os.environ, "KERAS_BACKEND": other}, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.strip().splitlines()[-1] == other
        there = np.load(tmp_path / "shipped_probs.npy")
        agree = np.mean(there.argmax(1) == shipped_here.argmax(1))
        assert agree >= 0.999, f"{here} -> {other}: {agree:.4%} of PrivateTest predictions agree"
        np.testing.assert_allclose(there, shipped_here, atol=1e-3)


def test_gradcam_known_answers_on_every_installed_backend():
    """The Grad-CAM and gradient known-answer tests, run again under each other installed backend, except the
    test of the compiled Grad-CAM passes: only TensorFlow compiles them, and elsewhere they are the op-by-op
    passes the other tests check."""
    import os
    import subprocess
    import sys

    from fer_utils.data import repo_root

    others = [name for name in _installed_backends() if name != keras.backend.backend()]
    if not others:
        pytest.skip("only one Keras backend installed")
    for other in others:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_gradcam.py",
             "tests/test_device.py", "-k", "not real_data and not every_installed and not compiled_passes"],
            cwd=repo_root(), env={**os.environ, "KERAS_BACKEND": other}, capture_output=True, text=True,
            timeout=600)
        assert done.returncode == 0, f"on {other}:\n{done.stdout[-3000:]}"
        assert " passed" in done.stdout and "skipped" not in done.stdout


def test_augmented_models_compile_where_the_backend_can(tmp_path):
    """Under JAX the augmented VGG-style model's steps are compiled, also once loaded from a file
    (through fer_utils.augment.compilable); under TensorFlow Keras' own choice stands (not compiled:
    its image transform has no XLA kernel)."""
    import warnings

    from fer_utils.augment import compilable, load_model
    from fer_utils.model import build_vgg, compile_model

    jax = keras.backend.backend() == "jax"
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 255, (8, 48, 48, 1)).astype("uint8"), rng.integers(0, 7, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # Keras warns when it cannot compile as asked
        model = compile_model(build_vgg(width=8, augmentation="strong", seed=0))
        model.fit(x, y, batch_size=4, epochs=1, verbose=0)
        assert model.jit_compile is jax
        model.save(tmp_path / "vgg.keras")
    with warnings.catch_warnings(record=True):  # under JAX, Keras warns it cannot compile as saved
        loaded = keras.saving.load_model(tmp_path / "vgg.keras")
    assert loaded.jit_compile is False  # Keras' own layers again
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert compilable(loaded).jit_compile is jax
        assert load_model(tmp_path / "vgg.keras").jit_compile is jax  # what the study's loaders call
        assert load_model(tmp_path / "vgg.keras", compile=False).jit_compile is jax  # fer-predict's
        np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
