"""The fast path: bfloat16 mixed precision where the processor computes bfloat16 natively.

On CPUs with Intel AMX-BF16 or AVX-512 BF16 (Xeon Sapphire Rapids and later, AMD Zen 4
and later), oneDNN runs the convolutions in bfloat16 several times faster than in
float32 (measured in ``benchmarks/speed_levers.py`` and ``python -m fer_utils.machinery.bench``).
Keras' ``mixed_bfloat16`` policy keeps every weight in float32 and computes each layer in
bfloat16; this module also keeps the input scaling, the softmax and the loss
in float32. The architecture and the parameter count do not change.

Where the CPU has no native bfloat16 (AVX2-only machines), emulated bfloat16 is slower than
float32, so ``"auto"`` keeps float32 there. The fast path is TensorFlow's (oneDNN): on the JAX
backend a CPU trains no faster in bfloat16, so ``"auto"`` keeps float32 there too.

On a GPU, ``"auto"`` picks ``mixed_bfloat16`` where the GPU computes bfloat16 natively (CUDA compute
capability 8.0, Ampere, and later) and ``mixed_float16`` on older GPUs; Keras wraps the optimizer of
a ``mixed_float16`` model in a ``LossScaleOptimizer`` when it is compiled, so small gradients do not
vanish in float16.
"""

from __future__ import annotations

import platform
from pathlib import Path

import keras

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
    from .backend import gpus

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
            from .backend import supports_bfloat16

            gpu_bfloat16 = supports_bfloat16()
        return "mixed_bfloat16" if gpu_bfloat16 else "mixed_float16"
    flags = cpu_flags() if flags is None else flags
    native = platform.machine() in ("x86_64", "AMD64") and bool(flags & BF16_FLAGS)
    # the CPU fast path is oneDNN's, which only TensorFlow uses: XLA on the CPU (JAX) trains no faster
    # in bfloat16 than in float32 (measured on a Zen 4), so float32 keeps its exactness there
    return "mixed_bfloat16" if native and keras.backend.backend() == "tensorflow" else "float32"


def set_precision(precision: str = "auto") -> str:
    """Set Keras' global dtype policy for the models built after this call; return its name.

    Call it before building models (the notebooks do it in their first cell).
    """
    policy = choose_precision(precision)
    keras.mixed_precision.set_global_policy(policy)
    return policy


def describe_precision(policy: str, flags: set[str] | None = None, accelerator: bool | None = None) -> str:
    """One line for a notebook: which precision its models train in, and why.

    ``accelerator``: whether the backend computes on a GPU or other accelerator (default: ask it);
    there the layers run in bfloat16 on the accelerator. Otherwise ``flags`` are the CPU flags to
    judge native bfloat16 by (default: this machine's); a forced ``mixed_bfloat16`` on a CPU without
    native units is said to be emulated, and slow.
    """
    if policy == "mixed_bfloat16":
        accelerator = has_accelerator() if accelerator is None else accelerator
        flags = cpu_flags() if flags is None else flags
        where = ("on the accelerator" if accelerator else
                 "on this CPU's native bfloat16 units" if flags & BF16_FLAGS else
                 "in emulation: this CPU has no native bfloat16, so this is slower than float32")
        return (f"precision: mixed bfloat16 (weights float32, layers computed in bfloat16 {where}; "
                "input scaling, softmax and loss in float32)")
    if policy == "mixed_float16":
        return ("precision: mixed float16 (weights float32, layers computed in float16 on the GPU, loss "
                "scaled by Keras' LossScaleOptimizer; input scaling, softmax and loss in float32)")
    return "precision: float32"


def float32_copy(model: keras.Model, always_copy: bool = False) -> keras.Model:
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
