#!/usr/bin/env bash
# Set up, then run the unit tests, the real-data tests, the smoke-profile study run and nbval on notebook 00.
# Real-data tests need FER2013_DIR (or data/fer2013); without the data they are skipped (under CI they fail).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export FER2013_CACHE="${FER2013_CACHE:-$PWD/.cache/fer2013}"
exec .venv/bin/python -m pytest tests notebooks/00_data_exploration.ipynb --nbval-lax -p no:cacheprovider "$@"
