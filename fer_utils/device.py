"""The machine the study runs on: Keras backend, device, precision, and how fast it trains.

*The lesson.* The same model trains in very different times on different machines. Two things decide
most of it: whether there is a GPU, and whether the processor computes in bfloat16 natively. This module
asks the backend which device it computes on, picks the precision (``"auto"``: mixed bfloat16 where the
hardware computes it natively, float32 elsewhere) and times short training passes, so that a notebook can
say what it ran on and what a method costs.

The study keeps to Keras 3's own APIs, so it runs on any of its backends: TensorFlow (the default),
JAX or PyTorch, chosen with the ``KERAS_BACKEND`` environment variable before Keras is imported.
Only :func:`device_info` and :func:`gradient_of_sum` (which Grad-CAM uses: Keras has no
backend-neutral gradient call; :func:`compiled_gradient_of_sum` is its compiled form for many batches) need
the backend itself.

Precision. On CPUs with Intel AMX-BF16 or AVX-512 BF16 (Xeon Sapphire Rapids and later, AMD Zen 4 and
later), oneDNN runs the convolutions in bfloat16 several times faster than in float32. Keras'
``mixed_bfloat16`` policy keeps every weight in float32 and computes each layer in bfloat16; the
study's models keep the input scaling, the softmax and the loss in float32. Where the CPU has no native
bfloat16, emulated bfloat16 is slower than float32, so ``"auto"`` keeps float32 there; on the JAX
backend a CPU trains no faster in bfloat16, so ``"auto"`` keeps float32 there too. On a GPU, ``"auto"``
picks ``mixed_bfloat16`` from CUDA compute capability 8.0 (Ampere) on and ``mixed_float16`` before.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

if TYPE_CHECKING:
    import keras

# keras is imported inside the functions: importing this module (for BACKENDS) must not fix the
# backend of the process, since the runner chooses it for the notebooks' kernels.

#: The Keras backends the study supports.
BACKENDS: tuple[str, ...] = ("tensorflow", "jax", "torch")


def backend() -> str:
    """The Keras backend in use (``tensorflow``, ``jax`` or ``torch``)."""
    import keras

    return keras.backend.backend()


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo``; ``platform`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpus_tensorflow() -> list[dict]:
    import tensorflow as tf

    found = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        capability = details.get("compute_capability")
        found.append({"name": details.get("device_name", device.name), "memory_gib": None,
                      "compute_capability": ".".join(map(str, capability)) if capability else None})
    return found


def _gpus_jax() -> list[dict]:
    import jax

    found = []
    for device in jax.devices():
        if device.platform == "cpu":
            continue
        try:
            limit = (device.memory_stats() or {}).get("bytes_limit")
        except Exception:  # noqa: BLE001 - not every platform reports memory
            limit = None
        found.append({"name": getattr(device, "device_kind", str(device)),
                      "memory_gib": round(limit / 2**30, 1) if limit else None,
                      "compute_capability": getattr(device, "compute_capability", None)})
    return found


def _gpus_torch() -> list[dict]:
    import torch

    found = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            found.append({"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                          "compute_capability": f"{props.major}.{props.minor}"})
    return found


def gpus() -> list[dict]:
    """The GPUs the Keras backend computes on: ``name``, ``memory_gib`` and ``compute_capability``
    (None where the backend does not say); an empty list on a CPU-only machine."""
    finder = {"tensorflow": _gpus_tensorflow, "jax": _gpus_jax, "torch": _gpus_torch}.get(backend())
    try:
        return finder() if finder else []
    except Exception:  # noqa: BLE001 - a broken driver means: no usable GPU
        return []


def device_info() -> dict:
    """Where the models compute: ``backend``, ``kind`` (``gpu`` or ``cpu``), ``name`` (the GPU's or
    the processor's), ``memory_gib`` (GPU memory where known), ``cores`` (CPU) and
    ``compute_capability`` (CUDA GPUs)."""
    found = gpus()
    if found:
        first = found[0]
        return {"backend": backend(), "kind": "gpu", "name": first["name"], "count": len(found),
                "memory_gib": first["memory_gib"], "compute_capability": first["compute_capability"],
                "cores": os.cpu_count()}
    return {"backend": backend(), "kind": "cpu", "name": cpu_name(), "count": 1, "memory_gib": None,
            "compute_capability": None, "cores": os.cpu_count()}


def describe_device(info: dict | None = None) -> str:
    """One line: the backend and the device, e.g. ``Keras backend jax on GPU NVIDIA H200 (139.8 GiB)``."""
    info = device_info() if info is None else info
    if info["kind"] == "gpu":
        memory = f", {info['memory_gib']:g} GiB" if info.get("memory_gib") else ""
        many = f"{info['count']} x " if info.get("count", 1) > 1 else ""
        return f"Keras backend {info['backend']} on GPU {many}{info['name']}{memory}"
    return f"Keras backend {info['backend']} on CPU {info['name']}, {info['cores']} cores, no GPU"


def supports_bfloat16(info: dict | None = None) -> bool:
    """Whether the GPU computes bfloat16 natively (CUDA compute capability 8.0, Ampere, and later)."""
    info = device_info() if info is None else info
    capability = info.get("compute_capability")
    if info["kind"] != "gpu" or not capability:
        return False
    try:
        return float(str(capability).split(".")[0]) >= 8
    except ValueError:
        return False


def gradient_of_sum(fn: Callable, x: np.ndarray | Sequence[np.ndarray], has_aux: bool = False) -> tuple:
    """``fn(x)`` and the gradient of ``sum(fn(x))`` with respect to ``x``, both as NumPy arrays.

    ``fn`` maps a backend tensor to a backend tensor using Keras layers or ``keras.ops``. When each
    row of ``fn(x)`` depends only on the same row of ``x`` (a model in inference mode), the gradient's
    row ``i`` is the gradient of output row ``i`` alone: one backward pass serves a whole batch.

    ``x`` may also be a list of arrays: then ``fn`` takes that many tensors and the gradients come back
    as a list, one per input, all from the same backward pass. With ``has_aux=True``, ``fn`` returns
    ``(value, extras)``, ``extras`` a list of tensors computed on the way (no gradient flows from them),
    and the result is ``(value, gradients, extras)``.
    """
    import keras

    several = isinstance(x, (list, tuple))
    xs = [np.asarray(a, dtype=np.float32) for a in (x if several else [x])]

    def split(result):
        return result if has_aux else (result, [])

    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        tensors = [tf.convert_to_tensor(a) for a in xs]
        # only the inputs are watched: the weights' gradients are never needed here
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(tensors)
            out, extras = split(fn(*tensors))
            total = tf.reduce_sum(out)
        grads = tape.gradient(total, tensors)
    elif name == "jax":
        import jax
        import jax.numpy as jnp

        def total(ts):
            out, extras = split(fn(*ts))
            return jnp.sum(out), (out, extras)

        grads, (out, extras) = jax.grad(total, has_aux=True)([jnp.asarray(a) for a in xs])
    elif name == "torch":
        tensors = [keras.ops.convert_to_tensor(a).detach().requires_grad_(True) for a in xs]
        out, extras = split(fn(*tensors))
        out.sum().backward()
        grads = [t.grad for t in tensors]
        out, extras = out.detach(), [e.detach() for e in extras]
    else:
        raise NotImplementedError(f"no gradient for Keras backend {name!r}; use one of {', '.join(BACKENDS)}")
    out, grads = keras.ops.convert_to_numpy(out), [keras.ops.convert_to_numpy(g) for g in grads]
    grads = grads if several else grads[0]
    if has_aux:
        return out, grads, [keras.ops.convert_to_numpy(e) for e in extras]
    return out, grads


def compiled_gradient_of_sum(fn: Callable, has_aux: bool = False) -> Callable:
    """:func:`gradient_of_sum` of ``fn`` as a function to call on many batches: ``g(x, *constants)`` returns
    what ``gradient_of_sum(lambda *t: fn(*t, *constants), x, has_aux)`` returns, the gradient taken with
    respect to ``x`` only (``constants``, arrays such as the images or the chosen classes, get none).

    Under TensorFlow the forward and the backward pass are traced once into one graph, which ran the
    baseline's Grad-CAM at all five conv layers 1.4 times as fast as taking them op by op (batches of 256
    faces on 2 CPU cores; ``benchmarks/gradcam_speed.py`` measures both). The first call traces; the first
    call with another batch size traces once more, to a graph that then serves every size. The graph reads
    the variables' values when it runs, so weights assigned or trained further are followed. Keep ``g`` for
    as long as the same ``fn`` serves many batches (``g.step`` is the traced function, for inspection). Other
    backends take the gradient as :func:`gradient_of_sum` does.
    """
    if backend() != "tensorflow":
        def eager(x, *constants):
            return gradient_of_sum(lambda *t: fn(*t, *constants), x, has_aux=has_aux)
        return eager
    import keras
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def step(xs, constants):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(xs)
            result = fn(*xs, *constants)
            out, extras = result if has_aux else (result, [])
            total = tf.reduce_sum(out)
        return out, tape.gradient(total, xs), extras

    def compiled(x, *constants):
        several = isinstance(x, (list, tuple))
        xs = [tf.convert_to_tensor(np.asarray(a, dtype=np.float32)) for a in (x if several else [x])]
        out, grads, extras = step(xs, [tf.convert_to_tensor(c) for c in constants])
        out, grads = keras.ops.convert_to_numpy(out), [keras.ops.convert_to_numpy(g) for g in grads]
        grads = grads if several else grads[0]
        if has_aux:
            return out, grads, [keras.ops.convert_to_numpy(e) for e in extras]
        return out, grads

    compiled.step = step
    return compiled


PRECISIONS: tuple[str, ...] = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
#: CPU flags (as in /proc/cpuinfo) that mean native bfloat16 arithmetic.
BF16_FLAGS: frozenset[str] = frozenset({"amx_bf16", "avx512_bf16"})


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where it cannot be read)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def has_accelerator() -> bool:
    """Whether the Keras backend computes on a GPU."""
    return bool(gpus())


def choose_precision(precision: str = "auto", flags: set[str] | None = None,
                     accelerator: bool | None = None, gpu_bfloat16: bool | None = None) -> str:
    """The Keras dtype policy name that ``precision`` means on this machine.

    Args:
        precision: ``"auto"``, ``"float32"``, ``"mixed_bfloat16"`` or ``"mixed_float16"``.
        flags: CPU flags to decide on (default: this machine's).
        accelerator: whether the backend computes on a GPU (default: ask it).
        gpu_bfloat16: whether that GPU computes bfloat16 natively (default: ask the backend).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    accelerator = has_accelerator() if accelerator is None else accelerator
    if accelerator:
        if gpu_bfloat16 is None:
            gpu_bfloat16 = supports_bfloat16()
        return "mixed_bfloat16" if gpu_bfloat16 else "mixed_float16"
    flags = cpu_flags() if flags is None else flags
    native = platform.machine() in ("x86_64", "AMD64") and bool(flags & BF16_FLAGS)
    # the CPU fast path is oneDNN's, which only TensorFlow uses: XLA on the CPU (JAX) trains no faster
    # in bfloat16 than in float32 (measured on a Zen 4), so float32 keeps its exactness there
    return "mixed_bfloat16" if native and backend() == "tensorflow" else "float32"


def set_precision(precision: str = "auto") -> str:
    """Set Keras' global dtype policy for the models built after this call; return its name.

    Call it before building models (the notebooks do it in their first cell).
    """
    import keras

    policy = choose_precision(precision)
    keras.mixed_precision.set_global_policy(policy)
    return policy


def describe_precision(policy: str, flags: set[str] | None = None, accelerator: bool | None = None) -> str:
    """One line for a notebook: which precision its models train in.

    ``accelerator``: whether the backend computes on a GPU or other accelerator (default: ask it).
    Otherwise ``flags`` are the CPU flags to judge native bfloat16 by (default: this machine's): a forced
    ``mixed_bfloat16`` on a CPU without native units is emulated, and slow, and the line says so and
    what to set instead; where it is native, the line says nothing about the machine.
    """
    if policy == "mixed_bfloat16":
        accelerator = has_accelerator() if accelerator is None else accelerator
        flags = cpu_flags() if flags is None else flags
        emulated = not accelerator and not flags & BF16_FLAGS
        where = (", in emulation: this CPU has no native bfloat16, so this is slower than float32 (precision="
                 "'float32' is faster here)" if emulated else "")
        return (f"precision: mixed bfloat16 (weights float32, layers computed in bfloat16{where}; "
                "input scaling, softmax and loss in float32)")
    if policy == "mixed_float16":
        return ("precision: mixed float16 (weights float32, layers computed in float16 on the GPU, loss "
                "scaled by Keras' LossScaleOptimizer; input scaling, softmax and loss in float32)")
    return "precision: float32"


def float32_copy(model: "keras.Model", always_copy: bool = False) -> "keras.Model":
    """The same model (architecture and weights) with every layer in float32.

    For analysis and export: Grad-CAM gradients and shipped models should not depend on the
    precision the model happened to be trained in. A float32 model is returned as is unless
    ``always_copy``. A copy is not compiled (it carries no optimizer).
    """
    config = model.get_config()

    def to_float32(node):
        if isinstance(node, dict):
            if node.get("class_name") == "DTypePolicy" and isinstance(node.get("config"), dict):
                return {**node, "config": {**node["config"], "name": "float32"}}
            return {k: to_float32(v) for k, v in node.items()}
        if isinstance(node, list):
            return [to_float32(v) for v in node]
        return node

    if config == to_float32(config) and not always_copy:
        return model
    copy = model.__class__.from_config(to_float32(config))
    copy.set_weights(model.get_weights())
    return copy


def _probe_slice(images: np.ndarray, labels: np.ndarray, batch_size: int, batches: int):
    """The first whole batches of the data (a last, partial batch would be a second shape to compile)."""
    whole = max(1, min(batches, len(images) // batch_size))
    n = min(len(images), batch_size * whole)
    return images[:n], labels[:n]


def training_throughputs(models: dict, images: np.ndarray, labels: np.ndarray, batch_size: int = 128,
                         batches: int | None = None, rounds: int = 3,
                         images_per_pass: int = 512) -> dict[str, list[float]]:
    """Training images per second of ``model.fit`` for each of ``models`` (name -> compiled model),
    one timed pass per model and round, after one warm-up pass each (tracing, compiling, allocating).
    A pass is ``batches`` batches, by default as many as make ``images_per_pass`` images (a pass of
    about a second, as 4 batches of 32 take on a CPU, is mostly noise).

    The models take turns within each round, so that a change in the machine's load (other work,
    a clock that speeds up or slows down) touches all of them alike instead of whichever was timed
    last. Returns name -> the images per second of each timed pass; compare the best (noise only
    ever slows a pass down) and look at the spread (:func:`describe_throughputs`). The models'
    weights change: pass throw-away copies.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    batches = batches or max(1, images_per_pass // batch_size)
    x, y = _probe_slice(images, labels, batch_size, batches)
    for model in models.values():
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    passes: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            t0 = time.perf_counter()
            model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
            passes[name].append(len(x) / (time.perf_counter() - t0))
    return passes


def describe_throughputs(passes: dict[str, list[float]], reference: str) -> str:
    """What the timed passes of :func:`training_throughputs` say: each model's best images per
    second, and each one's cost against ``reference``, or that the difference is within the
    measurement's noise (smaller than the spread between passes of one model)."""
    best = {name: max(p) for name, p in passes.items()}
    spread = max((max(p) - min(p)) / max(p) for p in passes.values())
    lines = [f"{name}: {best[name]:.1f} training images/s (best of {len(p)} passes, slowest "
             f"{min(p):.1f})" for name, p in passes.items()]
    for name in passes:
        if name == reference:
            continue
        cost = 1 - best[name] / best[reference]
        if abs(cost) <= spread:
            lines.append(f"{name} against {reference}: {cost:+.1%}, within this measurement's noise "
                         f"(passes of one model differ by up to {spread:.0%}): no cost measurable here")
        elif cost > 0:
            lines.append(f"{name} costs {cost:.1%} of the training throughput of {reference}")
        else:
            lines.append(f"{name} measured {-cost:.1%} faster than {reference}, which the extra layers "
                         "cannot make it: the machine's speed changed between passes; measure again")
    return "\n".join(lines)
