"""The parallel top-k engine."""

from .layouts import in_layout, out_layout
from .topk import TopK

__all__ = ["TopK", "in_layout", "out_layout"]
