"""fer_utils.device: when the fast path (bfloat16 mixed precision) is chosen, and what it keeps in float32."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fer_utils import device as speed
from fer_utils.model import build_baseline, compile_model
from fer_utils.train import train_model

SAPPHIRE_RAPIDS = {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
ZEN3 = {"avx2", "fma", "sse4_2"}


@pytest.fixture
def restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_cpu_flags_are_read_from_cpuinfo_text():
    text = "processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx2 amx_bf16\nbugs\t: none\n"
    assert speed.cpu_flags(text) == {"fpu", "avx2", "amx_bf16"}
    assert speed.cpu_flags("no flags line") == set()


def test_auto_picks_bfloat16_only_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(speed.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(keras.backend, "backend", lambda: "tensorflow")
    assert speed.choose_precision("auto", SAPPHIRE_RAPIDS, accelerator=False) == "mixed_bfloat16"
    assert speed.choose_precision("auto", {"avx512_bf16"}, accelerator=False) == "mixed_bfloat16"
    assert speed.choose_precision("auto", ZEN3, accelerator=False) == "float32"  # emulated bf16 is slower
    # on a GPU the GPU decides: bfloat16 from Ampere (compute capability 8.0) on, float16 before
    assert speed.choose_precision("auto", ZEN3, accelerator=True, gpu_bfloat16=True) == "mixed_bfloat16"
    assert speed.choose_precision("auto", SAPPHIRE_RAPIDS, accelerator=True, gpu_bfloat16=False) == "mixed_float16"
    assert speed.choose_precision("float32", SAPPHIRE_RAPIDS, accelerator=False) == "float32"
    assert speed.choose_precision("mixed_bfloat16", ZEN3, accelerator=False) == "mixed_bfloat16"
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")  # oneDNN's fast path is TensorFlow's
    assert speed.choose_precision("auto", SAPPHIRE_RAPIDS, accelerator=False) == "float32"
    assert speed.choose_precision("auto", ZEN3, accelerator=True, gpu_bfloat16=True) == "mixed_bfloat16"
    monkeypatch.setattr(keras.backend, "backend", lambda: "tensorflow")
    monkeypatch.setattr(speed.platform, "machine", lambda: "aarch64")
    assert speed.choose_precision("auto", SAPPHIRE_RAPIDS, accelerator=False) == "float32"
    with pytest.raises(ValueError, match="precision must be one of auto, float32, mixed_bfloat16, mixed_float16, got 'fp16'"):
        speed.choose_precision("fp16")


def test_mixed_model_keeps_float32_islands_and_trains(restore_policy, tmp_path):
    assert speed.set_precision("mixed_bfloat16") == "mixed_bfloat16"
    keras.utils.set_random_seed(0)
    model = compile_model(build_baseline(input_size=24, augmentation="face", seed=0))
    assert model.count_params() == compile_model(build_baseline(input_size=24)).count_params()
    dtypes = {layer.name: layer.compute_dtype for layer in model.layers}
    assert dtypes["conv3"] == "bfloat16" and dtypes["dense1"] == "bfloat16"
    assert dtypes["rescale"] == dtypes["predictions"] == dtypes["aug_rotate"] == "float32"
    assert all(w.dtype == "float32" for w in model.weights)  # weights stay float32
    x = np.random.default_rng(0).integers(0, 256, (32, 24, 24, 1)).astype("uint8")
    y = np.arange(32) % 7
    result = train_model(model, (x, y), (x[:8], y[:8]), tmp_path / "bf16", epochs=1, batch_size=16, verbose=0)
    assert result.settings["precision"] == "mixed_bfloat16"
    assert np.isfinite(result.history["loss"]).all()
    probs = result.model.predict(x, verbose=0)
    assert probs.dtype == np.float32 and np.allclose(probs.sum(1), 1, atol=1e-5)

    copy = speed.float32_copy(result.model)
    assert {layer.compute_dtype for layer in copy.layers} == {"float32"}
    for a, b in zip(copy.get_weights(), result.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # bfloat16 keeps about 3 significant digits: the two agree closely, not exactly
    np.testing.assert_allclose(copy.predict(x, verbose=0), probs, atol=0.05)

    keras.mixed_precision.set_global_policy("float32")
    plain = compile_model(build_baseline(input_size=24))
    assert speed.float32_copy(plain) is plain
    fresh = speed.float32_copy(plain, always_copy=True)
    assert fresh is not plain and not fresh.compiled
    settings = train_model(plain, (x, y), (x[:8], y[:8]), tmp_path / "f32", epochs=1, batch_size=16, verbose=0).settings
    assert "precision" not in settings  # float32 runs keep the settings of earlier versions


def test_describe_precision():
    native = speed.describe_precision("mixed_bfloat16", flags={"amx_bf16"}, accelerator=False)
    assert native == ("precision: mixed bfloat16 (weights float32, layers computed in bfloat16; input scaling, "
                      "softmax and loss in float32)")
    forced = speed.describe_precision("mixed_bfloat16", flags={"avx2"}, accelerator=False)
    assert "emulation" in forced and "slower than float32" in forced and "precision='float32' is faster" in forced
    assert speed.describe_precision("float32") == "precision: float32"
    on_gpu = speed.describe_precision("mixed_bfloat16", flags={"avx2"}, accelerator=True)
    assert on_gpu == native  # nothing about the machine where bfloat16 is native
