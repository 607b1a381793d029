"""Stream payload layouts of the top-k engine: one definition for hardware and testbench."""

from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from generators.config import TopKConfig

__all__ = ["in_layout", "out_layout"]


def in_layout(cfg: TopKConfig) -> data.StructLayout:
    """One input beat: ``lanes`` scores, lane 0 first (least significant bits).

    - ``data``: the scores (raw ``cfg.score``).
    - ``count``: valid lanes (``0..lanes``) of the *last* beat; every earlier beat of a packet
      carries ``lanes`` elements and its ``count`` is ignored. An empty packet is one beat
      with ``last = 1`` and ``count = 0``.
    - ``k``: elements to keep; read on the last beat (keep it constant within a packet).
    - ``last``: marks the packet's final beat.
    """
    return data.StructLayout({
        "data": data.ArrayLayout(signed(cfg.score.width), cfg.lanes),
        "count": unsigned(cfg.lane_count_bits),
        "k": unsigned(cfg.count_bits),
        "last": unsigned(1),
    })


def out_layout(cfg: TopKConfig) -> data.StructLayout:
    """One output beat: up to ``lanes`` kept elements in original order.

    - ``data``/``index``: value and packet index of each kept element, lanes ``0..count-1``;
      lanes at and above ``count`` are zero.
    - ``count``: ``lanes`` on every beat but the last, which holds the remainder
      (``1..lanes``); a packet that keeps nothing is one beat with ``count = 0``.
    - ``kth``: the smallest kept value (``score.max_raw`` when nothing is kept), on every beat.
    - ``truncated``: the packet had more than ``capacity`` elements; the rest were dropped.
    - ``last``: the packet's final beat.
    """
    return data.StructLayout({
        "data": data.ArrayLayout(signed(cfg.score.width), cfg.lanes),
        "index": data.ArrayLayout(unsigned(cfg.index_bits), cfg.lanes),
        "count": unsigned(cfg.lane_count_bits),
        "kth": signed(cfg.score.width),
        "truncated": unsigned(1),
        "last": unsigned(1),
    })
