"""aicompute: the three compute modes of modern AI.

1. what a network computes (model structure and its cost),
2. making it smaller and faster (compression, lightweight design),
3. making it fit and scale (distributed parallelism).
"""

from aicompute.errors import AicomputeError

__version__ = "0.1.0"
__all__ = ["AicomputeError", "__version__"]
