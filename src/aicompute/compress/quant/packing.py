"""Int4 packing: two 4-bit codes per byte, in ONNX's ``INT4``/``UINT4`` layout.

Codes are flattened in row-major order; element ``2i`` goes in the low nibble of byte ``i`` and element
``2i + 1`` in its high nibble, and an odd count leaves the last high nibble 0. Signed codes (``[-8, 7]``) are
stored in two's complement. A tensor of ``n`` codes takes ``ceil(n / 2)`` bytes, so the packed bytes are
exactly the ``raw_data`` of an ONNX int4 initializer (what :mod:`.export` writes for weight-only 4-bit layers).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from aicompute.errors import AicomputeError

__all__ = ["pack_int4", "unpack_int4"]


def pack_int4(q: Tensor, *, signed: bool = True) -> bytes:
    """Codes in ``[-8, 7]`` (``[0, 15]`` unsigned) packed two per byte; ``ceil(numel / 2)`` bytes."""
    if not isinstance(q, Tensor) or q.is_floating_point() or q.is_complex() or q.dtype == torch.bool:
        raise AicomputeError(f"pack_int4 takes an integer tensor of codes, got {getattr(q, 'dtype', type(q).__name__)}")
    lo, hi = (-8, 7) if signed else (0, 15)
    flat = q.detach().cpu().reshape(-1).to(torch.int16)
    if flat.numel() and (flat.min() < lo or flat.max() > hi):
        raise AicomputeError(
            f"int4 codes must lie in [{lo}, {hi}] ({'signed' if signed else 'unsigned'}), got values in "
            f"[{int(flat.min())}, {int(flat.max())}]"
        )
    nibbles = (flat & 0xF).to(torch.uint8)  # two's complement low 4 bits
    if nibbles.numel() % 2:
        nibbles = torch.cat([nibbles, nibbles.new_zeros(1)])
    pairs = nibbles.reshape(-1, 2)  # (ceil(n/2), 2): (low, high)
    return (pairs[:, 0] | (pairs[:, 1] << 4)).numpy().tobytes()


def unpack_int4(data: bytes, shape: tuple[int, ...] | torch.Size, *, signed: bool = True) -> Tensor:
    """Inverse of :func:`pack_int4`: int8 codes of ``shape`` from ``ceil(numel / 2)`` packed bytes."""
    numel = math.prod(shape)
    if len(data) != (numel + 1) // 2:
        raise AicomputeError(
            f"{len(data)} packed bytes cannot hold shape {tuple(shape)}: it needs ceil({numel} / 2) = "
            f"{(numel + 1) // 2} bytes"
        )
    packed = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
    nibbles = torch.stack([packed & 0xF, packed >> 4], dim=1).reshape(-1)[:numel].to(torch.int8)  # (numel,)
    if signed:
        nibbles = torch.where(nibbles > 7, nibbles - 16, nibbles)
    return nibbles.reshape(tuple(shape))
