"""Mixed precision: which float type the network computes in on a device, and the way back to float32.

``auto`` is bfloat16 on CUDA GPUs that have it, float16 on older ones (with a gradient scaler in
training), bfloat16 on CPUs with native bfloat16 arithmetic (AVX512-BF16 or AMX: 1.3-1.4x faster
training steps and 2x faster prediction than float32, see docs/benchmarks.md), and float32 on other
CPUs and on Apple GPUs. Weights, optimiser state, losses and blending stay float32 in every case;
only the network's forward pass runs under :func:`torch.autocast`.
"""

from __future__ import annotations

import torch

from ..errors import UserInputError

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CHOICES = ("auto", *PRECISIONS)


def check_precision(name: str) -> None:
    """Refuse a precision name that is not one of :data:`CHOICES`."""
    if name not in CHOICES:
        raise UserInputError(f"unknown precision {name!r}: use one of {', '.join(CHOICES)}")


def resolve_precision(name: str, device: torch.device | str) -> torch.dtype:
    """The float type for ``name`` (``auto``, ``fp32``, ``bf16`` or ``fp16``) on ``device``."""
    check_precision(name)
    if name != "auto":
        return PRECISIONS[name]
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    if kind == "cpu" and cpu_has_native_bfloat16():
        return torch.bfloat16
    return torch.float32


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX); elsewhere torch emulates
    it, slower than float32. Asks torch's CPU feature probes (private: False if they are gone)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def precision_name(dtype: torch.dtype) -> str:
    """``fp32``, ``bf16`` or ``fp16``."""
    return next(name for name, value in PRECISIONS.items() if value == dtype)


def autocast(device: torch.device, dtype: torch.dtype) -> torch.autocast:
    """The forward-pass context for ``dtype`` on ``device`` (a no-op for float32)."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def use_fixed_shape_tuning(device: torch.device) -> None:
    """Let cuDNN pick the fastest convolution for each (fixed) patch and tile shape on CUDA.

    This sets ``torch.backends.cudnn.benchmark`` for the whole process (as nnU-Net does) and stays
    on; GPU results were never bit-for-bit repeatable run to run, and now certainly are not.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
