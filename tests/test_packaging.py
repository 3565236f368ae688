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


