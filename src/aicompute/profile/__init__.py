"""What a model computes: params, MACs, FLOPs, bytes moved, arithmetic intensity, memory, and roofline.

``profile(model, ...)`` traces one forward (and for training the real backward) on fake tensors and
prices every aten op; see :mod:`aicompute.profile.api`. ``roofline(result, hw)`` turns that into time on a chip
(:mod:`aicompute.profile.hardware` lists them; :func:`probe_local` measures this machine).
"""

from aicompute.profile.api import DTYPES, parse_dtype, parse_shape, profile
from aicompute.profile.hardware import HardwareSpec, get_hardware, list_hardware
from aicompute.profile.probe import probe_local
from aicompute.profile.records import CATEGORIES, OpRecord
from aicompute.profile.result import CONVENTION, ProfileResult
from aicompute.profile.roofline import RooflineResult, roofline

__all__ = [
    "profile",
    "ProfileResult",
    "roofline",
    "RooflineResult",
    "HardwareSpec",
    "get_hardware",
    "list_hardware",
    "probe_local",
    "OpRecord",
    "CATEGORIES",
    "CONVENTION",
    "DTYPES",
    "parse_dtype",
    "parse_shape",
]
