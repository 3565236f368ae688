"""The Keras backend and the device the study runs on, and the one step that differs between backends.

The study keeps to Keras 3's own APIs, so it runs on any of its backends: TensorFlow (the default,
the one ``environment.yml`` installs), JAX or PyTorch, chosen with the ``KERAS_BACKEND`` environment
variable before Keras is imported (``fer-study --backend jax`` sets it for every notebook).

Only two things here need the backend itself:

* :func:`device_info` asks it which accelerator it computes on (GPU name, memory and CUDA compute
  capability), so that notebooks and metrics files can say where a result came from;
* :func:`gradient_of_sum` takes a gradient, which Keras has no backend-neutral call for: one small
  function per backend (TensorFlow's ``GradientTape``, ``jax.grad``, torch's autograd) behind one
  interface. Grad-CAM uses it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Callable

import numpy as np

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


def gradient_of_sum(fn: Callable, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``fn(x)`` and the gradient of ``sum(fn(x))`` with respect to ``x``, both as NumPy arrays.

    ``fn`` maps a backend tensor to a backend tensor using Keras layers or ``keras.ops``. When each
    row of ``fn(x)`` depends only on the same row of ``x`` (a model in inference mode), the gradient's
    row ``i`` is the gradient of output row ``i`` alone: one backward pass serves a whole batch.
    """
    import keras

    name = backend()
    x = np.asarray(x, dtype=np.float32)
    if name == "tensorflow":
        import tensorflow as tf

        tensor = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(tensor)
            out = fn(tensor)
            total = tf.reduce_sum(out)
        return keras.ops.convert_to_numpy(out), keras.ops.convert_to_numpy(tape.gradient(total, tensor))
    if name == "jax":
        import jax
        import jax.numpy as jnp

        def total(t):
            out = fn(t)
            return jnp.sum(out), out

        grad, out = jax.grad(total, has_aux=True)(jnp.asarray(x))
        return np.asarray(out), np.asarray(grad)
    if name == "torch":
        tensor = keras.ops.convert_to_tensor(x).detach().requires_grad_(True)
        out = fn(tensor)
        out.sum().backward()
        return keras.ops.convert_to_numpy(out.detach()), keras.ops.convert_to_numpy(tensor.grad)
    raise NotImplementedError(f"no gradient for Keras backend {name!r}; use one of {', '.join(BACKENDS)}")
