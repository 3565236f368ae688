"""fer_study.bench: quick mode runs and writes well-formed JSON (speed is not checked here)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fer_study import bench
from fer_utils import device
from fer_utils.model import build_baseline


def test_model_flops_match_the_study_guide():
    flops = bench.model_flops(build_baseline())
    assert sum(flops.values()) / 1e9 == pytest.approx(0.663, abs=0.002)
    assert max(flops, key=flops.get) == "conv3"  # the 5x5 conv is the most expensive layer


@pytest.mark.realdata
def test_quick_benchmark_writes_json(real_data_path, tmp_path, capsys):
    out = tmp_path / "bench.json"
    import keras

    on_tensorflow = keras.backend.backend() == "tensorflow"
    layers = ["--layers"] if on_tensorflow else []  # the layer profile is TensorFlow's alone
    code = bench.main(["--quick", *layers, "--data", str(real_data_path), "--json", str(out)])
    assert code == 0
    payload = json.loads(out.read_text())
    figures = payload["figures"]
    for key in ("cold_load_s", "cached_load_s", "matmul_gflops", "train_images_per_s",
                "infer_images_per_s", "train_images_per_s_float32", "infer_images_per_s_float32",
                "gradcam_faces_per_s", "peak_memory_mib"):
        assert figures[key] > 0, key
    assert payload["ceilings"]["gradcam_faces_per_s"] == pytest.approx(payload["ceilings"]["train_images_per_s_float32"])
    assert payload["quick"] is True and payload["ceilings"]["train_images_per_s"] > 0
    printed = capsys.readouterr().out
    assert "ratio" in printed
    if not on_tensorflow:
        with pytest.raises(SystemExit):
            bench.main(["--quick", "--layers"])
        assert "--layers needs the TensorFlow backend" in capsys.readouterr().err
        return
    assert "layer by layer" in printed
    assert "float32" in payload["layer_profile"]
    rows = {r["layer"]: r for r in payload["layer_profile"][payload["fast_path_precision"]]}
    assert {"conv1", "conv5", "dense2", "logits", "adam_update"} <= set(rows)


def test_layer_profile_rows_add_up():
    import keras

    if keras.backend.backend() != "tensorflow":
        with pytest.raises(NotImplementedError, match="needs the TensorFlow backend"):
            bench.layer_profile(batch_size=4, repeats=1)
        return
    rows = bench.layer_profile(batch_size=4, repeats=1)
    names = [r["layer"] for r in rows]
    assert names[0] == "rescale" and names[-1] == "adam_update"
    assert sum(r["flop_share"] for r in rows) == pytest.approx(1.0)
    assert sum(r["time_share"] for r in rows) == pytest.approx(1.0)
    assert max(rows, key=lambda r: r["flop_share"])["layer"] == "conv3"
    assert all(r["forward_backward_ms"] > 0 for r in rows)
    by_type = bench.profile_by_type(rows)
    assert by_type["Conv2D"]["layers"] == 5 and by_type["BatchNormalization"]["layers"] == 6
    assert by_type["Conv2D"]["flop_share"] > 0.99 and by_type["BatchNormalization"]["flop_share"] == 0
    assert sum(g["time_share"] for g in by_type.values()) == pytest.approx(1.0)
    table = bench.format_layer_profile(rows, 4)
    assert table.splitlines()[0].split()[:2] == ["layer", "type"] and "sum of layers" in table


def test_training_throughputs_keep_every_timed_pass_and_the_best_is_the_fastest(monkeypatch):
    """The probe's passes take 4 s, then 1 s, then 2 s: 256 images over the best 1 s."""
    import keras

    model = keras.Sequential([keras.Input((48, 48)), keras.layers.Flatten(), keras.layers.Dense(7)])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    clock = iter([0.0, 4.0, 10.0, 11.0, 20.0, 22.0])
    monkeypatch.setattr(device.time, "perf_counter", lambda: next(clock))
    images, labels = np.zeros((300, 48, 48), "uint8"), np.zeros(300, "int64")
    passes = device.training_throughputs({"m": model}, images, labels, batch_size=128, batches=2)["m"]
    assert passes == [64.0, 256.0, 128.0] and max(passes) == 256.0
    with pytest.raises(ValueError, match="rounds must be at least 1"):
        device.training_throughputs({"m": model}, images, labels, rounds=0)


def test_training_throughputs_take_turns_and_time_whole_batches(monkeypatch):
    """Two models timed in turns, 3 rounds: a, b, a, b, a, b; 300 images at batch 128 and 4 batches
    asked give 2 whole batches (256 images) per pass."""
    import keras

    fitted = []

    def model(name):
        m = keras.Sequential([keras.Input((48, 48)), keras.layers.Flatten(), keras.layers.Dense(7)])
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        monkeypatch.setattr(m, "fit", lambda x, y, **kw: fitted.append((name, len(x))))
        return m

    clock = iter([0.0, 1.0, 0.0, 2.0, 0.0, 2.0, 0.0, 2.0, 0.0, 1.0, 0.0, 4.0])
    monkeypatch.setattr(device.time, "perf_counter", lambda: next(clock))
    images, labels = np.zeros((300, 48, 48), "uint8"), np.zeros(300, "int64")
    passes = device.training_throughputs({"a": model("a"), "b": model("b")}, images, labels, 128, 4, 3)
    assert [n for n, _ in fitted] == ["a", "b"] + ["a", "b"] * 3    # warm-up each, then in turns
    assert {size for _, size in fitted} == {256}
    assert passes == {"a": [256.0, 128.0, 256.0], "b": [128.0, 128.0, 64.0]}
    with pytest.raises(ValueError, match="rounds must be at least 1"):
        device.training_throughputs({"a": model("a")}, images, labels, rounds=0)
    fitted.clear()
    monkeypatch.setattr(device.time, "perf_counter", iter([0.0, 1.0]).__next__)
    device.training_throughputs({"a": model("a")}, np.zeros((2000, 48, 48), "uint8"), np.zeros(2000, "int64"),
                               batch_size=32, rounds=1)
    assert {size for _, size in fitted} == {512}  # 16 batches of 32: the default 512 images a pass


def test_describe_throughputs_tells_cost_from_noise():
    clear = device.describe_throughputs({"none": [100.0, 98.0], "face": [80.0, 79.0]}, "none")
    assert "none: 100.0 training images/s (best of 2 passes, slowest 98.0)" in clear
    assert "face costs 20.0% of the training throughput of none" in clear
    noisy = device.describe_throughputs({"none": [100.0, 70.0], "face": [95.0, 90.0]}, "none")
    assert "face against none: +5.0%, within this measurement's noise" in noisy and "up to 30%" in noisy
    odd = device.describe_throughputs({"none": [99.4, 98.0], "face": [141.1, 140.0]}, "none")
    assert "face measured 42.0% faster than none" in odd and "measure again" in odd


