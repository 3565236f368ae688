#!/usr/bin/env bash
# Set up, then test in two stages, the quick one first, so a broken change fails in minutes:
#   1. unit tests: small synthetic data, no notebook runs;
#   2. the study on the real data: real-data tests, the smoke-profile study (every notebook on TensorFlow,
#      the backend-dependent ones on JAX, each exercise as handed out and answered), the rendering check in Chromium, and nbval on
#      the committed notebooks' stable cells (checkable copies made by fer_study.nbcheck in .nbval/).
# Real-data tests need FER2013_DIR (or data/fer2013); without the data they are skipped (under CI they fail).
# Arguments go to every pytest call (e.g. -q, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# the second Keras backend (JAX, on the CPU) and JupyterLab for the rendering check (when the system has Chromium)
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[test,jax,browser]"
export FER2013_CACHE="${FER2013_CACHE:-$PWD/.cache/fer2013}"
PYTEST=(.venv/bin/python -m pytest -p no:cacheprovider --durations=8)
# this machine's float32 matrix-product ceiling, measured alone before the tests, by the function every benchmark
# states its figures against: this run's time times the ratio of this ceiling to another machine's estimates that
# machine's time (a failed measurement is reported as such and stops nothing)
ceiling=$(.venv/bin/python -c 'from fer_study.bench import measure_matmul; print(f"{measure_matmul(repeats=3):.0f}")' \
  2>/dev/null) && ceiling="float32 matrix-product ceiling here: $ceiling GFLOP/s" \
  || ceiling="float32 matrix-product ceiling not measured"
started=$SECONDS
echo "== 1/2 unit tests"
# two workers: the unit tests are independent, and most of their time is single-threaded Python
"${PYTEST[@]}" -n 2 tests -m "not slow and not realdata" "$@"
echo "== 2/2 the study on the real data and the committed notebooks' outputs ($((SECONDS - started)) s so far)"
copies=$(.venv/bin/python -m fer_study.nbcheck .nbval)
[ -n "$copies" ] || echo "no committed notebook outputs to check (the notebooks are not published yet)"
# two workers (each notebook's cells kept in one, where they run in order in one kernel): a test alone leaves a
# core idle for a third of its time (kernels starting, files written), which the other worker fills
# shellcheck disable=SC2086
"${PYTEST[@]}" -n 2 --dist loadgroup tests $copies -m "slow or realdata" \
  --nbval-lax --sanitize-with tests/nbval_sanitize.cfg "$@"
echo "tests: both stages passed in $((SECONDS - started)) s ($ceiling)"
