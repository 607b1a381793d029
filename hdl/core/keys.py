"""A job's K rows: read from DRAM for every kept slot into the K buffer, which the job's
passes read ``keys_per_cycle`` keys at a time.

Spec: ``docs/core.md`` (DRAM traffic): the K MSB rows of the kept tokens are read at the
start of a job, the LSB rows when its first full-precision pass starts.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from generators.config import SpAttenConfig
from generators.dram import plane_bits
from generators.numerics import ceil_log2

from .axi import MAX_OUTSTANDING
from .check import CoreComponent
from .layouts import (ReadKind, key_port_signature, read_req_layout, row_address, row_layout,
                      slot_port_signature, sweep_layout)
from .regs import desc_layout

__all__ = ["KeyLoader"]


class KeyLoader(CoreComponent):
    """K row sweeps (``cmd`` → ``req`` → ``rows``) into the K buffer, read through ``words``.

    Behaviour: a ``cmd`` beat (always taken) starts a sweep of plane ``kind`` (``KMSB`` or
    ``KLSB``) for ``head`` over slots ``0 .. kc - 1`` (``kc`` = the descriptor's
    ``token_keep``): slot ``s``'s kept position is read from the keep list (``keep``, one
    cycle), then its row is requested on ``req`` (held until taken); one request per cycle
    while ``req`` is taken at once. A landed row (``rows``, always accepted) of slot ``s`` is
    written into lane ``s mod keys_per_cycle`` of word ``s / keys_per_cycle`` of the
    plane's buffer. ``done`` is valid once every request of the sweep has been taken and
    every K row has landed, and it ends the sweep when taken; a ``cmd`` in the same cycle
    starts the next one.

    Members
    -------
    cmd : ``In(stream.Signature(layouts.sweep_layout(cfg), always_ready=True))``
    done : ``Out(stream.Signature(layouts.sweep_layout(cfg)))``: the sweep whose rows are
        all in the buffer
    req : ``Out(stream.Signature(layouts.read_req_layout(cfg)))``: row reads
    rows : ``In(stream.Signature(layouts.row_layout(cfg), always_ready=True))``: landed K rows
    keep : ``Out(layouts.slot_port_signature(cfg))``: the keep list (slot → position)
    desc : ``In(regs.desc_layout(cfg))``: the running layer (``token_keep``, the ``kmsb``
        and ``klsb`` bases)
    words : ``In(layouts.key_port_signature(cfg))``: the K buffer's read port
    """

    def _ports(self, cfg: SpAttenConfig) -> dict:
        return {
            "cmd": In(stream.Signature(sweep_layout(cfg), always_ready=True)),
            "done": Out(stream.Signature(sweep_layout(cfg))),
            "req": Out(stream.Signature(read_req_layout(cfg))),
            "rows": In(stream.Signature(row_layout(cfg), always_ready=True)),
            "keep": Out(slot_port_signature(cfg)),
            "desc": In(desc_layout(cfg)),
            "words": In(key_port_signature(cfg)),
        }

    def elaborate(self, platform):
        cfg = self._cfg
        a, t = cfg.attn, cfg.topk
        m = Module()
        d, req, keep = self.desc, self.req, self.keep
        kc = d.token_keep[:t.count_bits]          # keys per pass
        run = Signal()
        kind = Signal(ReadKind)
        head = Signal.like(self.cmd.payload.head)
        s = Signal(t.count_bits)                  # next slot to read from the keep list
        hold, slot = Signal(), Signal(t.index_bits)   # a request waiting for its grant
        grant = req.valid & req.ready
        adv = ~hold | grant
        more = run & (s < kc)
        m.d.comb += [req.valid.eq(hold), req.payload.kind.eq(kind), req.payload.slot.eq(slot),
                     req.payload.addr.eq(Mux(
                         kind == ReadKind.KMSB,
                         row_address(cfg, a.msb_bits, d.kmsb, head, keep.pos),
                         row_address(cfg, a.lsb_bits, d.klsb, head, keep.pos))),
                     keep.slot.eq(s), keep.en.eq(adv & more)]
        with m.If(adv):
            m.d.sync += [hold.eq(more), slot.eq(s)]
            with m.If(more):
                m.d.sync += s.eq(s + 1)
        # K rows requested and not landed yet
        pending = Signal(range(MAX_OUTSTANDING + 2))
        m.d.sync += pending.eq(pending + grant - self.rows.valid)
        m.d.comb += [self.done.valid.eq(run & (s == kc) & ~hold & (pending == 0)),
                     self.done.payload.kind.eq(kind), self.done.payload.head.eq(head)]
        with m.If(self.done.valid & self.done.ready):
            m.d.sync += run.eq(0)
        with m.If(self.cmd.valid):
            m.d.sync += [run.eq(1), kind.eq(self.cmd.payload.kind), s.eq(0),
                         head.eq(self.cmd.payload.head)]
        self._buffer(m)
        return m

    def _buffer(self, m):
        """One memory per plane, ``keys_per_cycle`` rows per word, written a row at a time
        (a write enable per lane)."""
        cfg = self._cfg
        a, t = cfg.attn, cfg.topk
        kpc = a.keys_per_cycle
        kw = ceil_log2(kpc)
        rows = self.rows.payload
        for kind, out in ((ReadKind.KMSB, self.words.msb), (ReadKind.KLSB, self.words.lsb)):
            rw = a.head_dim * plane_bits(cfg, kind.name.lower())
            mem = Memory(shape=kpc * rw, depth=-(-t.capacity // kpc), init=[])
            m.submodules[f"k{kind.name.lower()}"] = mem
            wp = mem.write_port(granularity=rw)
            lane_en = Const(1, 1) if kpc == 1 else (1 << rows.slot[:kw])
            mine = self.rows.valid & (rows.kind == kind)
            m.d.comb += [wp.addr.eq(rows.slot >> kw),
                         wp.data.eq(rows.data[:rw].replicate(kpc)),
                         wp.en.eq(Mux(mine, lane_en, 0))]
            rp = mem.read_port()
            m.d.comb += [rp.addr.eq(self.words.addr), rp.en.eq(self.words.en),
                         out.eq(rp.data)]
