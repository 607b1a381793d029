"""Input generators shared by every test tier and the benchmarks (NumPy only).

A packet is ``(scores, k)`` with raw integer scores of ``cfg.score``.
"""

from __future__ import annotations

import numpy as np

from generators.config import TopKConfig

__all__ = ["PATTERNS", "topk_packet", "topk_packets", "topk_edge_packets"]

PATTERNS = ("random", "equal", "ties", "sorted", "reverse", "extreme")


def topk_packet(cfg: TopKConfig, rng: np.random.Generator, n: int, k: int,
                pattern: str = "random") -> tuple[np.ndarray, int]:
    """One packet of ``n`` scores following ``pattern`` (see :data:`PATTERNS`)."""
    lo, hi = cfg.score.min_raw, cfg.score.max_raw
    if pattern == "random":
        s = rng.integers(lo, hi + 1, n)
    elif pattern == "equal":
        s = np.full(n, rng.integers(lo, hi + 1))
    elif pattern == "ties":  # a handful of distinct values: many ties at the k-th
        vals = rng.integers(lo, hi + 1, rng.integers(1, 5))
        s = rng.choice(vals, n)
    elif pattern == "sorted":
        s = np.sort(rng.integers(lo, hi + 1, n))
    elif pattern == "reverse":
        s = np.sort(rng.integers(lo, hi + 1, n))[::-1]
    elif pattern == "extreme":
        s = rng.choice(np.array([lo, lo + 1, -1, 0, hi - 1, hi]), n)
    else:
        raise ValueError(f"pattern must be one of {', '.join(PATTERNS)}, not {pattern!r}")
    return np.asarray(s, dtype=np.int64), int(k)


def _k_choices(n: int, cap: int) -> list[int]:
    return sorted({0, 1, max(n - 1, 0), n, n + 1, min(cap, n + 7)})


def topk_edge_packets(cfg: TopKConfig, rng: np.random.Generator) -> list[tuple[np.ndarray, int]]:
    """Every pattern × n in {0, 1, capacity} × k in {0, 1, n-1, n, >n}."""
    out = []
    for n in (0, 1, cfg.capacity):
        for pattern in PATTERNS:
            for k in _k_choices(n, cfg.capacity):
                out.append(topk_packet(cfg, rng, n, k, pattern))
    return out


def topk_packets(cfg: TopKConfig, rng: np.random.Generator, count: int, *,
                 edges: bool = True) -> list[tuple[np.ndarray, int]]:
    """``count`` packets: the edge cases first (if ``edges``; a random half of the count when
    there are too few packets for all of them), then random n, k and pattern.

    Packets longer than the capacity are included now and then (the engine truncates them).
    """
    out = topk_edge_packets(cfg, rng) if edges else []
    if len(out) > count // 2:  # too few packets for every edge case: a random half of them
        keep = sorted(rng.choice(len(out), count // 2, replace=False))
        out = [out[i] for i in keep]
    while len(out) < count:
        u = rng.random()
        if u < 0.05:
            n = int(rng.integers(cfg.capacity + 1, cfg.capacity + 2 * cfg.lanes + 1))
        elif u < 0.4:
            n = cfg.capacity
        else:
            n = int(rng.integers(0, cfg.capacity + 1))
        k = int(rng.integers(0, min(n, cfg.capacity) + 2))
        pattern = PATTERNS[int(rng.integers(0, len(PATTERNS)))] if rng.random() < 0.5 \
            else "random"
        out.append(topk_packet(cfg, rng, n, k, pattern))
    return out
