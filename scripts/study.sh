#!/usr/bin/env bash
# Set up, then run every notebook with papermill. Arguments go to the runner:
#   bash scripts/study.sh                      # default profile (reference) into runs/reference
#   bash scripts/study.sh --profile smoke      # the CI profile, in minutes
#   bash scripts/study.sh --data PATH          # a copy of FER-2013 elsewhere (else FER2013_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m fer_study.runner "$@"
