"""The parallel top-k engine."""

from .layouts import in_layout, out_layout
from .topk import TopK, latency_bound

__all__ = ["TopK", "in_layout", "latency_bound", "out_layout"]
