"""Head importance and cascade head selection.

Spec: ``docs/core.md`` (Importance, Selection); golden model: ``himp`` updates in
:func:`sim.golden.core._job` and :func:`sim.golden.select.select` over the candidate heads.

- ``o``: one beat per accepted pass, the head pipeline's output vector and the head it
  belongs to; ``sum(|out|)`` over the ``D`` elements (an adder tree, registered) is added to
  ``himp[head]`` saturating at ``2**head_imp_bits - 1``. One beat per cycle.
- ``cmd``: select the heads of one layer among ``0 .. n-1``: candidates are ``all`` of them
  or those in mask ``src``, with ``has_upper`` only those also in mask ``upper``; the
  ``keep`` with the largest importance are kept (ties to the lower head), written as mask
  ``dst`` when ``store`` is set and sent on ``keep`` (the mask and the count). Head ``h`` is kept when fewer than
  ``keep`` candidates rank before it, ``rank(h) = #{g : s[g] > s[h] or (s[g] = s[h] and g <
  h)}``: one head per cycle against all ``heads`` scores, so a selection takes ``heads + 4``
  cycles and ``heads`` comparators (SpAtten runs its head top-k once per layer too).
  ``keep`` of 0 or above the candidate count gives ``KEEP_RANGE`` on ``status`` and changes
  nothing. ``o`` is not taken while a command runs. ``clear`` (a level, between commands and
  passes) zeroes every accumulator.

Raises
------
TypeError
    if ``cfg`` is not a :class:`~generators.config.SpAttenConfig`.
ConfigError
    if the config's head or core parts do not fit together (``cfg.check_core()``).
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from generators.config import SpAttenConfig
from generators.status import Status
from generators.numerics import ceil_log2

from ..common.arith import popcount, tree_sum
from .check import CoreComponent, status_state
from .select import status_layout

__all__ = ["HeadImportance", "head_out_layout", "head_cmd_layout", "head_keep_layout"]


def head_out_layout(cfg: SpAttenConfig) -> data.StructLayout:
    a = cfg.attn
    return data.StructLayout({"head": unsigned(max(1, (cfg.core.heads - 1).bit_length())),
                              "data": data.ArrayLayout(signed(a.out.width), a.head_dim)})


def head_cmd_layout(cfg: SpAttenConfig) -> data.StructLayout:
    c = cfg.core
    lb = max(1, (c.layers - 1).bit_length())
    hb = (c.heads).bit_length()
    return data.StructLayout({"n": unsigned(hb), "keep": unsigned(hb), "all": unsigned(1),
                              "src": unsigned(lb), "has_upper": unsigned(1),
                              "upper": unsigned(lb), "dst": unsigned(lb),
                              "store": unsigned(1)})


def head_keep_layout(cfg: SpAttenConfig) -> data.StructLayout:
    c = cfg.core
    return data.StructLayout({"mask": unsigned(c.heads), "count": unsigned(c.heads.bit_length())})


class HeadImportance(CoreComponent):
    """Head importance accumulators and per-layer head masks (see the module docstring).

    Members
    -------
    o : ``In(stream.Signature(head_out_layout(cfg)))``
    cmd : ``In(stream.Signature(head_cmd_layout(cfg)))``
    keep : ``Out(stream.Signature(head_keep_layout(cfg)))``
    status : ``Out(stream.Signature(select.status_layout(cfg)))``
    """

    def _ports(self, cfg: SpAttenConfig) -> dict:
        return {
            "o": In(stream.Signature(head_out_layout(cfg))),
            "cmd": In(stream.Signature(head_cmd_layout(cfg))),
            "keep": Out(stream.Signature(head_keep_layout(cfg))),
            "status": Out(stream.Signature(status_layout(cfg))),
            "clear": In(1),
        }

    def elaborate(self, platform):
        cfg = self._cfg
        c, a = cfg.core, cfg.attn
        m = Module()
        H, HB = c.heads, c.head_imp_bits
        top = (1 << HB) - 1
        himp = Array(Signal(HB, name=f"himp{h}") for h in range(H))
        masks = Array(Signal(H, name=f"heads{layer}") for layer in range(c.layers))

        # ---- accumulate: |out| summed (registered), then added to himp[head] ---------------
        busy = Signal()
        s_valid = Signal()
        s_head = Signal.like(self.o.payload.head)
        s_sum = Signal(a.out.width + ceil_log2(a.head_dim))
        # sum |v| = sum (v XOR sign) + (number of negative v): one XOR row per element and a
        # popcount instead of 64 negators and muxes (which also took ABC over 10 minutes)
        elems = list(self.o.payload.data)
        signs = [v[-1] for v in elems]
        total = (tree_sum(v.as_unsigned() ^ s.replicate(len(v)) for v, s in zip(elems, signs))
                 + popcount(signs))
        m.d.comb += self.o.ready.eq(~busy)
        m.d.sync += [s_valid.eq(self.o.valid & ~busy), s_head.eq(self.o.payload.head),
                     s_sum.eq(total)]
        with m.If(self.clear):
            m.d.sync += [x.eq(0) for x in himp]
        with m.Elif(s_valid):
            new = himp[s_head] + s_sum
            m.d.sync += himp[s_head].eq(Mux(new > top, top, new))

        # ---- select ------------------------------------------------------------------------
        cmd = Signal(head_cmd_layout(cfg))
        cand = Signal(H)
        h = Signal(range(H + 1))
        kept = Signal(H)
        code = Signal(Status)
        for g in range(H):
            src_bit = Mux(cmd.all, 1, masks[cmd.src].bit_select(g, 1))
            up_bit = Mux(cmd.has_upper, masks[cmd.upper].bit_select(g, 1), 1)
            m.d.comb += cand[g].eq((g < cmd.n) & src_bit & up_bit)
        mine = himp[h]
        before = []
        for g in range(H):
            better = (himp[g] > mine) | ((himp[g] == mine) & (g < h))
            before.append(cand[g] & better)
        rank = popcount(before)
        ncand = popcount([cand[g] for g in range(H)])
        ncand_r = Signal(H.bit_length())

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(~s_valid & ~self.o.valid)
                with m.If(self.cmd.valid & ~s_valid & ~self.o.valid):
                    m.d.sync += [cmd.eq(self.cmd.payload), h.eq(0), kept.eq(0), busy.eq(1)]
                    m.next = "CHECK"
            with m.State("CHECK"):
                bad = (cmd.keep == 0) | (cmd.keep > ncand)
                m.d.sync += [code.eq(Mux(bad, Status.KEEP_RANGE, Status.OK)),
                             ncand_r.eq(ncand)]
                m.next = "RANK"
                with m.If(bad):
                    m.next = "STATUS"
            with m.State("RANK"):
                with m.If(h < H):
                    with m.If(cand.bit_select(h, 1) & (rank < cmd.keep)):
                        m.d.sync += kept.bit_select(h, 1).eq(1)
                    m.d.sync += h.eq(h + 1)
                with m.Else():
                    with m.If(cmd.store):
                        m.d.sync += masks[cmd.dst].eq(kept)
                    m.next = "KEEP"
            with m.State("KEEP"):
                m.d.comb += [self.keep.valid.eq(1), self.keep.payload.mask.eq(kept),
                             self.keep.payload.count.eq(popcount([kept[g] for g in range(H)]))]
                with m.If(self.keep.ready):
                    m.next = "STATUS"
            with m.State("STATUS"):
                status_state(m, self.status, code, ncand_r, busy)
        return m
