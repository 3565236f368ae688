"""pyproject.toml and environment.yml pin the same versions; the README documents the data setting."""

from __future__ import annotations

import re
import tomllib

from fer_utils.data import DATA_ENV, repo_root


def pins(lines) -> dict[str, str]:
    found = {}
    for line in lines:
        m = re.match(r"^\s*-?\s*\"?([A-Za-z0-9_.-]+)==([^\s\",]+)", line)
        if m:
            found[m.group(1).lower().replace("_", "-")] = m.group(2)
    return found


def test_pyproject_and_environment_agree():
    project = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]
    declared = pins(project["dependencies"] + project["optional-dependencies"]["test"])
    env = pins((repo_root() / "environment.yml").read_text().splitlines())
    assert declared and declared == env
    assert all("==" in dep for dep in project["dependencies"])  # everything pinned


def test_readme_documents_data_setting_and_commands():
    readme = (repo_root() / "README.md").read_text()
    assert DATA_ENV in readme
    assert "bash .ci/run" in readme


def test_constraints_agree_with_the_direct_pins():
    project = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]
    declared = pins(project["dependencies"] + project["optional-dependencies"]["test"])
    locked = pins((repo_root() / "constraints.txt").read_text().splitlines())
    for name, version in declared.items():
        assert locked.get(name) == version, name


def test_backend_extras_are_pinned_outside_the_default_environment():
    """jax and torch are optional extras, pinned in pyproject and constraints.txt; environment.yml
    (the default, TensorFlow) installs neither."""
    project = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    locked = pins((repo_root() / "constraints.txt").read_text().splitlines())
    env = pins((repo_root() / "environment.yml").read_text().splitlines())
    for extra in ("jax", "torch"):
        declared = pins(extras[extra])
        assert declared and all("==" in dep for dep in extras[extra]), extra
        for name, version in declared.items():
            assert locked.get(name) == version and name not in env, name
    assert "tensorflow-cpu" in env


def test_gpu_device_run_check_says_when_a_call_would_carry_too_much(tmp_path):
    """scripts/gpu_device_run.sh check: the working tree travels with every call to the GPU machine (at most
    64 MiB a call), so a repository grown by published models must be caught here, not there."""
    import subprocess

    script = repo_root() / "scripts" / "gpu_device_run.sh"
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "tracked.bin").write_bytes(b"\0" * (20 << 20))
    subprocess.run(["git", "-C", str(tmp_path), "add", "tracked.bin"], check=True)
    for part, mib in ((".gpu/a/part_0", 30), (".gpu/b/part_1", 5), (".whl/k.whl", 10)):
        (tmp_path / part).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / part).write_bytes(b"\0" * (mib << 20))
    (tmp_path / ".git" / "info" / "exclude").write_text("/.gpu/\n/.whl/\n")

    def check() -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(script), "check"], cwd=tmp_path, capture_output=True, text=True)

    fine = check()
    assert fine.returncode == 0, fine.stdout + fine.stderr
    assert "stage (tree + .gpu/a)              50.0 MiB of 64" in fine.stdout
    assert "run (tree + .gpu/b + .whl)         35.0 MiB of 64" in fine.stdout
    (tmp_path / "untracked.bin").write_bytes(b"\0" * (15 << 20))  # untracked, not ignored: it travels too
    grown = check()
    assert grown.returncode == 5
    assert "65.0 MiB of 64  TOO LARGE" in grown.stdout and "the working tree alone is 35 MiB" in grown.stdout
