"""fer_utils.bench: quick mode runs and writes well-formed JSON (speed is not checked here)."""

from __future__ import annotations

import json

import pytest

from fer_utils import bench
from fer_utils.model import build_baseline


def test_model_flops_match_the_study_guide():
    flops = bench.model_flops(build_baseline())
    assert sum(flops.values()) / 1e9 == pytest.approx(0.663, abs=0.002)
    assert max(flops, key=flops.get) == "conv3"  # the 5x5 conv is the most expensive layer


@pytest.mark.realdata
def test_quick_benchmark_writes_json(real_data_path, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = bench.main(["--quick", "--data", str(real_data_path), "--json", str(out)])
    assert code == 0
    payload = json.loads(out.read_text())
    figures = payload["figures"]
    for key in ("cold_load_s", "cached_load_s", "matmul_gflops", "train_images_per_s",
                "infer_images_per_s", "peak_memory_mib"):
        assert figures[key] > 0, key
    assert payload["quick"] is True and payload["ceilings"]["train_images_per_s"] > 0
    assert "ratio" in capsys.readouterr().out
