"""What a model computes: params, MACs, FLOPs, bytes moved, arithmetic intensity, memory, and roofline.

``profile(model, ...)`` traces one forward (and for training the real backward) on fake tensors and
prices every aten op; see :mod:`aicompute.profile.api`.
"""

from aicompute.profile.api import DTYPES, parse_dtype, parse_shape, profile
from aicompute.profile.records import CATEGORIES, OpRecord
from aicompute.profile.result import CONVENTION, ProfileResult

__all__ = [
    "profile",
    "ProfileResult",
    "OpRecord",
    "CATEGORIES",
    "CONVENTION",
    "DTYPES",
    "parse_dtype",
    "parse_shape",
]
