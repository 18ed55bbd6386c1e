"""Arithmetic precision of inference: float32, or bfloat16 where the processor computes it natively.

An inference option (``precision``: ``auto``, ``fp32``, ``bf16``; :mod:`pixelplexus.options`) chooses it per
call. ``bf16`` runs the network under :func:`torch.autocast`: convolutions and matrix products take bfloat16
inputs and accumulate in float32, everything around the network (tiling, blending, colorize's decoding,
encoding) stays float32, and the network's output comes back as float32. ``auto`` picks bf16 on a CPU with
native bfloat16 instructions (x86 AVX512-BF16 or AMX, Arm's BF16 extension) and on a GPU with bfloat16 (as
training's ``auto`` does there), float32 everywhere else. ``docs/benchmarks.md`` has the speed and the
quality behind that choice.

Scores that training logs (``Task.evaluate``) run at fp32 whatever the machine, so that they compare across
machines; ``bench/quality.py --precision bf16`` measures the other. Free of torch (the batch driver checks
options with it); the autocast wrapper itself is :class:`pixelplexus.tasks.base.Autocast`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    import torch

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)

# /proc/cpuinfo flags of a native bfloat16 dot product: x86 (AVX512-BF16, AMX), Arm (FEAT_BF16)
_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


@functools.cache
def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU has bfloat16 dot-product instructions (read from ``cpuinfo``'s flags; False where
    there is no such file). Without them oneDNN emulates bfloat16, slower than float32."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features") and _BF16_FLAGS & set(value.split()):
            return True
    return False


def resolve(precision: str, device: str | torch.device) -> Literal["fp32", "bf16"]:
    """``precision`` as it runs on ``device``: ``auto`` → bf16 on a CPU with native bfloat16 and on a GPU that
    has it (as training's ``auto``), else fp32."""
    if precision == "auto":
        kind = getattr(device, "type", None) or str(device).split(":")[0]
        if kind == "cuda":
            import torch

            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if kind == "cpu" and cpu_has_native_bf16() else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision  # type: ignore[return-value]
