"""Stream payload layouts of the attention datapath: one definition for hardware and testbench.

Packet conventions (as for the top-k engine): a row of ``n`` elements travels as
``ceil(n / lanes)`` beats (an empty row as one beat with ``count = 0``); every beat but the
last is full, ``count`` (valid lanes) is only meaningful on the ``last`` beat, lanes at and
above ``count`` are don't-care on input and zero on output. Lane 0 is in the least
significant bits. Per-pass side fields (``meta``) are repeated on every beat of a row.
"""

from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from generators.config import SpAttenConfig
from generators.numerics import bits_for

__all__ = ["head_config", "meta_layout", "query_layout", "key_layout", "score_layout", "decision_layout",
           "prob_layout", "chunk_layout", "vreq_layout", "value_layout", "out_layout"]


def head_config(cfg) -> SpAttenConfig:
    """``cfg`` if it is a :class:`SpAttenConfig` whose top-k and attention parts fit one head
    pipeline; raises ``TypeError`` or ``ConfigError`` otherwise (every ``hdl.attn`` block's
    constructor check)."""
    if not isinstance(cfg, SpAttenConfig):
        raise TypeError(f"cfg must be a SpAttenConfig, not {cfg!r}")
    return cfg.check_head()


def _rows(cfg: SpAttenConfig, rows: int) -> dict:
    a = cfg.attn
    return {
        "msb": data.ArrayLayout(data.ArrayLayout(signed(a.msb_bits), a.head_dim), rows),
        "lsb": data.ArrayLayout(data.ArrayLayout(unsigned(a.lsb_bits), a.head_dim), rows),
    }


def meta_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """Per-pass side fields that travel with a row through the pipeline.

    - ``keep``: probabilities kept by local value pruning (the top-k's ``k``).
    - ``threshold``: raw ``prob``; an MSB-only pass with ``pmax < threshold`` is refetched.
    - ``msb_only``: 1 for an MSB-only pass (LSB planes replaced by their midpoint).
    """
    return data.StructLayout({
        "keep": unsigned(cfg.topk.count_bits),
        "threshold": unsigned(cfg.attn.prob.width),
        "msb_only": unsigned(1),
    })


def query_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """One beat per pass: the query vector and the pass's runtime parameters.

    ``score = fit(shift_round(q·k * scale, shift, HALF_UP), score, SATURATE)``.
    """
    a = cfg.attn
    return data.StructLayout({
        "q": data.ArrayLayout(signed(a.q_bits), a.head_dim),
        "scale": unsigned(a.scale_bits),
        "shift": unsigned(a.shift_bits),
        "meta": meta_layout(cfg),
    })


def key_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """``keys_per_cycle`` K rows per beat as MSB and LSB planes; ``last`` ends the pass's row."""
    a = cfg.attn
    return data.StructLayout({
        **_rows(cfg, a.keys_per_cycle),
        "count": unsigned(bits_for(a.keys_per_cycle)),
        "last": unsigned(1),
    })


def score_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """Q·K array → softmax: ``lanes`` raw scores per beat."""
    a = cfg.attn
    return data.StructLayout({
        "data": data.ArrayLayout(signed(a.score.width), a.lanes),
        "count": unsigned(bits_for(a.lanes)),
        "meta": meta_layout(cfg),
        "last": unsigned(1),
    })


def decision_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """One beat per pass, before its probabilities.

    - ``refetch``: the pass was MSB-only and ``pmax < threshold``; its probabilities and
      output are discarded and the host must send the query again at full precision.
    - ``pmax``: the largest probability of the row (0 for an empty row).
    - ``truncated``: the row had more than ``topk.capacity`` keys; the rest were dropped.
    """
    return data.StructLayout({
        "refetch": unsigned(1),
        "pmax": unsigned(cfg.attn.prob.width),
        "truncated": unsigned(1),
    })


def prob_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """Softmax → top-k and the head's probability output: ``lanes`` raw probabilities."""
    a = cfg.attn
    return data.StructLayout({
        "data": data.ArrayLayout(unsigned(a.prob.width), a.lanes),
        "count": unsigned(bits_for(a.lanes)),
        "meta": meta_layout(cfg),
        "last": unsigned(1),
    })


def chunk_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """Kept (index, probability) pairs, ``pv_rows`` per beat, in original order.

    Only the last chunk of a pass may be partial; a pass that keeps nothing is one chunk with
    ``count = 0``. ``msb_only`` selects how the V rows are rebuilt from their planes.
    """
    a = cfg.attn
    return data.StructLayout({
        "prob": data.ArrayLayout(unsigned(a.prob.width), a.pv_rows),
        "index": data.ArrayLayout(unsigned(cfg.topk.index_bits), a.pv_rows),
        "count": unsigned(bits_for(a.pv_rows)),
        "msb_only": unsigned(1),
        "last": unsigned(1),
    })


def vreq_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """V fetch request: the token indices of one chunk (the host answers with one V beat)."""
    a = cfg.attn
    return data.StructLayout({
        "index": data.ArrayLayout(unsigned(cfg.topk.index_bits), a.pv_rows),
        "count": unsigned(bits_for(a.pv_rows)),
        "last": unsigned(1),
    })


def value_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """One V beat per request beat: the requested rows as planes (rows at and above the
    request's ``count`` are ignored)."""
    return data.StructLayout(_rows(cfg, cfg.attn.pv_rows))


def out_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """The attention output of one accepted pass (one beat)."""
    a = cfg.attn
    return data.StructLayout({"data": data.ArrayLayout(signed(a.out.width), a.head_dim)})
