#!/usr/bin/env bash
# Set up, then run the unit tests, the real-data tests, the smoke-profile study run (on TensorFlow and
# on JAX), and nbval on the committed notebooks' stable cells (checkable copies made by fer_study.nbcheck in .nbval/).
# Real-data tests need FER2013_DIR (or data/fer2013); without the data they are skipped (under CI they fail).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The tests also run the study and Grad-CAM on a second Keras backend (JAX, on the CPU), and open the
# notebooks in JupyterLab in Chromium (when the system has Chromium; .ci/run installs it).
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[test,jax,browser]"
export FER2013_CACHE="${FER2013_CACHE:-$PWD/.cache/fer2013}"
.venv/bin/python -m fer_study.nbcheck .nbval > /dev/null
exec .venv/bin/python -m pytest tests .nbval/*.ipynb --nbval-lax --sanitize-with tests/nbval_sanitize.cfg \
    -p no:cacheprovider "$@"
