"""Token importance accumulation for one layer: the head's probability rows → per-slot sums.

Spec: ``docs/core.md`` (Importance). Every row of a layer has the same keys (the layer's kept
tokens, in order), so the probability a token receives from every head and query of the layer
adds up in *slot* order: slot ``s`` is the ``s``-th kept token. :class:`SlotAccumulator`
keeps one ``core.imp_bits`` saturating sum per slot, ``attn.lanes`` slots per memory word
(the width of the head's ``p`` beats), and then streams the sums out in slot order while
clearing them, for the merge into the position-indexed importance (``min(imp + sum,
2**imp_bits - 1)`` per token equals the golden model's pass-by-pass saturating sum, since
every increment is non-negative).

- ``p``: the head's probability beats (``hdl.attn.layouts.prob_layout``); beat ``j`` of a row
  adds its lanes ``0 .. count-1`` to word ``j``; ``last`` ends the row. One beat per cycle,
  any rows back to back: a word written in one cycle and read in the next is forwarded.
- ``drain``: a slot count ``n`` (the rows' length: no row may be longer), taken when no
  ``p`` beat is on offer; the unit then sends ``max(1, ceil(n / lanes))`` words on ``sums``
  (``count`` valid lanes on the last one, ``last`` on it), zeroes every word it sends and
  takes ``p`` again.

Raises
------
TypeError
    if ``cfg`` is not a :class:`~generators.config.SpAttenConfig`.
ConfigError
    if the config's head or core parts do not fit together (``cfg.check_core()``).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from generators.config import SpAttenConfig
from generators.numerics import bits_for

from ..attn.layouts import prob_layout
from .check import CoreComponent

__all__ = ["SlotAccumulator", "sums_layout"]


def sums_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """``lanes`` slot sums; ``count`` valid lanes (all but on the last word); ``last``."""
    a = cfg.attn
    return data.StructLayout({
        "data": data.ArrayLayout(unsigned(cfg.core.imp_bits), a.lanes),
        "count": unsigned(bits_for(a.lanes)),
        "last": unsigned(1),
    })


class SlotAccumulator(CoreComponent):
    """Per-slot saturating sums of a layer's probability rows (see the module docstring).

    Members
    -------
    p : ``In(stream.Signature(prob_layout(cfg)))``
    drain : ``In(stream.Signature(unsigned(topk.count_bits)))``
    sums : ``Out(stream.Signature(sums_layout(cfg)))``
    """

    def _ports(self, cfg: SpAttenConfig) -> dict:
        return {
            "p": In(stream.Signature(prob_layout(cfg))),
            "drain": In(stream.Signature(unsigned(cfg.topk.count_bits))),
            "sums": Out(stream.Signature(sums_layout(cfg))),
        }

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        A, IB = cfg.attn.lanes, cfg.core.imp_bits
        depth = -(-cfg.topk.capacity // A)
        top = (1 << IB) - 1
        word = data.ArrayLayout(unsigned(IB), A)
        m.submodules.mem = mem = Memory(shape=word, depth=depth, init=[])
        wp, rp = mem.write_port(), mem.read_port()

        # ---- accumulate: S1 (read issued) -> S2 (add, write) -----------------------------
        draining = Signal()
        addr = Signal(range(depth))          # word of the next p beat
        s2_valid = Signal()
        s2_addr = Signal(range(depth))
        s2_data = Signal(prob_layout(cfg))
        fwd_valid = Signal()                 # last cycle's write, for a read issued then
        fwd_addr = Signal(range(depth))
        fwd_data = Signal(word)
        take = self.p.valid & self.p.ready
        m.d.comb += self.p.ready.eq(~draining)
        with m.If(take):
            m.d.sync += addr.eq(Mux(self.p.payload.last, 0, addr + 1))
        m.d.sync += [s2_valid.eq(take), s2_addr.eq(addr), s2_data.eq(self.p.payload)]

        old = Signal(word)
        m.d.comb += old.eq(Mux(fwd_valid & (fwd_addr == s2_addr), fwd_data, rp.data))
        new = Signal(word)
        for j in range(A):
            inc = Mux(s2_data.last & (j >= s2_data.count), 0, s2_data.data[j])
            total = old[j] + inc
            m.d.comb += new[j].eq(Mux(total > top, top, total))

        # ---- drain: read word i, present it, zero it -------------------------------------
        n = Signal(cfg.topk.count_bits)
        words = Signal(range(depth + 1))
        i = Signal(range(depth + 1))         # next word to read
        have = Signal()                      # rp.data holds word i - 1 (not yet shown)
        out_w = Signal(range(depth + 1))
        o = self.sums
        advance = ~o.valid | o.ready

        with m.If(~draining):
            m.d.comb += [rp.addr.eq(addr), rp.en.eq(take),
                         wp.addr.eq(s2_addr), wp.data.eq(new), wp.en.eq(s2_valid)]
            m.d.sync += [fwd_valid.eq(s2_valid), fwd_addr.eq(s2_addr), fwd_data.eq(new)]
            # The last beat is written first, and no beat may be on offer.
            start = self.drain.valid & ~s2_valid & ~self.p.valid
            m.d.comb += self.drain.ready.eq(~s2_valid & ~self.p.valid)
            with m.If(start):
                nw = (self.drain.payload + A - 1) // A
                m.d.sync += [draining.eq(1), n.eq(self.drain.payload), i.eq(0), have.eq(0),
                             words.eq(Mux(nw == 0, 1, nw)), fwd_valid.eq(0)]
        with m.Else():
            m.d.comb += [rp.addr.eq(i), rp.en.eq(advance & (i < words))]
            with m.If(advance):
                m.d.sync += o.valid.eq(have)
                with m.If(have):
                    last = out_w == words - 1
                    m.d.sync += [o.payload.data.eq(rp.data), o.payload.last.eq(last),
                                 o.payload.count.eq(Mux(last, n - out_w * A, A))]
                    # zero the word just shown
                    m.d.comb += [wp.addr.eq(out_w), wp.data.eq(0), wp.en.eq(1)]
                m.d.sync += [have.eq(i < words), out_w.eq(i)]
                with m.If(i < words):
                    m.d.sync += i.eq(i + 1)
            with m.If(o.valid & o.ready & o.payload.last):
                m.d.sync += [draining.eq(0), addr.eq(0)]
        return m
