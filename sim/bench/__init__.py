"""Benches from RTL simulation (cycles, utilization, DRAM bytes), every run also checked
against the golden model; each writes markdown, JSON (and CSV/PNG) into its output folder."""

from .core import bench_core_sweep, bench_core_trace
from .head import bench_head
from .topk import bench_topk

__all__ = ["bench_topk", "bench_head", "bench_core_trace", "bench_core_sweep"]
