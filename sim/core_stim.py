"""Workloads for the SpAtten core: random layers, their DRAM image, a memory map, and the
host's register writes for a layer descriptor. The testbench (``sim/tb/tb_core.py``) and the
core benches use it; the golden model is :mod:`sim.golden.core`.

Memory map (bytes; every region bus-aligned): layer ``l`` owns ``LAYER_SPAN`` bytes from
``l * LAYER_SPAN``, split into ``PLANE_SPAN`` regions for Q, K MSB, K LSB, V MSB, V LSB and
OUT (each big enough for ``core.heads * topk.capacity`` rows at the widest stride); keep lists
sit above all layers, ``KEEP_SPAN`` bytes per (step, layer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generators.config import SpAttenConfig
from generators.dram import (BASES, PLANES, counters_bytes, keeplist_bytes, pack_row,
                             row_addr, row_stride)
from generators.numerics import QFormat

from .golden.attention import split_planes
from .golden.core import LayerParams
from .golden.select import Policy

__all__ = ["MemoryMap", "random_layer", "layer_image", "descriptor"]



@dataclass(frozen=True)
class MemoryMap:
    """Base addresses of every layer's planes and every (step, layer)'s keep list and counter
    record."""

    cfg: SpAttenConfig
    layers: int
    steps: int = 1

    @property
    def plane_span(self) -> int:
        widest = max(row_stride(self.cfg, p) for p in PLANES)
        return self.cfg.core.heads * self.cfg.topk.capacity * widest

    @property
    def keep_span(self) -> int:
        return -(-keeplist_bytes(self.cfg, self.cfg.topk.capacity) // 64) * 64

    @property
    def count_span(self) -> int:
        return -(-counters_bytes(self.cfg) // 64) * 64

    @property
    def size(self) -> int:
        return self.layers * len(PLANES) * self.plane_span + \
            self.steps * self.layers * (self.keep_span + self.count_span)

    def bases(self, layer: int, step: int = 0) -> dict:
        span = self.plane_span
        b = {p: (layer * len(PLANES) + i) * span for i, p in enumerate(PLANES)}
        at = self.layers * len(PLANES) * span
        b["keeplist"] = at + (step * self.layers + layer) * self.keep_span
        b["counters"] = at + self.steps * self.layers * self.keep_span + \
            (step * self.layers + layer) * self.count_span
        return b


def random_layer(cfg: SpAttenConfig, rng: np.random.Generator, heads: int, n: int):
    """``(q, k, v)`` of one layer: ``(heads, n, D)`` uniform integers (``q_bits``, and the
    full ``value_bits`` of K and V), with a few keys aligned to their queries so that some
    rows are peaked (no refetch) and others flat."""
    a = cfg.attn
    qf, vf = QFormat(a.q_bits, 0), QFormat(a.value_bits, 0)
    q = rng.integers(qf.min_raw, qf.max_raw + 1, size=(heads, n, a.head_dim))
    k = rng.integers(vf.min_raw, vf.max_raw + 1, size=(heads, n, a.head_dim))
    v = rng.integers(vf.min_raw, vf.max_raw + 1, size=(heads, n, a.head_dim))
    for h in range(heads):
        for t in rng.choice(n, size=max(1, n // 8), replace=False):
            k[h, t] = np.where(q[h, t] >= 0, vf.max_raw, vf.min_raw)
    return q, k, v


def layer_image(cfg: SpAttenConfig, qkv, bases: dict, write, *, positions=None):
    """Write a layer's Q rows and K/V planes through ``write(addr, bytes)``
    (``positions``: only those rows, default all)."""
    a = cfg.attn
    q, k, v = qkv
    heads, n = q.shape[0], q.shape[1]
    kmsb, klsb = split_planes(k, a)
    vmsb, vlsb = split_planes(v, a)
    planes = dict(zip(PLANES, (q, kmsb, klsb, vmsb, vlsb)))   # what a layer reads
    for h in range(heads):
        for t in (range(n) if positions is None else positions):
            for name, x in planes.items():
                write(row_addr(cfg, bases[name], name, h, t), pack_row(cfg, x[h, t], name))


def descriptor(cfg: SpAttenConfig, *, layer: int, heads: int, n: int, lp: LayerParams,
               bases: dict, generation: bool = False, newest: int | None = None,
               clear: bool = False, policy: Policy = Policy()) -> dict:
    """The descriptor fields (``generators.regmap.descriptor_fields``) and the base
    addresses."""
    return {"mode": int(generation), "clear": int(clear), "age_norm": int(policy.age_norm),
            "layer": layer, "heads": heads, "n": n,
            "newest": newest if generation else 0,
            "token_keep": lp.token_keep, "head_keep": lp.head_keep,
            "value_keep": lp.value_keep, "scale": lp.scale, "shift": lp.shift,
            "msb_only": lp.msb_only, "threshold": lp.threshold,
            "sinks": policy.sinks, "recent": policy.recent,
            **{b: bases[b] for b in BASES}}
