"""The output path: each accepted pass's output vector goes to DRAM as one row and to the
head's importance.

Spec: ``docs/core.md`` (the controller, step 4): each output row is written to OUT and its
``sum |out|`` goes to the head's importance.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from generators.config import SpAttenConfig

from ..attn.layouts import out_layout
from .check import CoreComponent
from .heads import head_out_layout
from .layouts import out_tag_layout, row_address, write_row_layout
from .regs import desc_layout

__all__ = ["OutputPath"]


class OutputPath(CoreComponent):
    """``o`` (with its ``tags`` entry) → ``imp`` and one row on ``row``.

    Behaviour: an output vector is taken from ``o`` together with the oldest entry of
    ``tags`` (its query's position and head) in a cycle where both are valid, ``imp`` is
    ready and no row is waiting; in that cycle it goes out on ``imp`` with its head, and it
    is held as the row of plane OUT at its position and head
    (:func:`layouts.row_address`), valid on ``row`` from the next cycle until taken (the
    writer takes it once it is written). ``written`` is high in the cycle a row is taken.
    One vector per row write.

    Members
    -------
    o : ``In(stream.Signature(attn.layouts.out_layout(cfg)))``: from the head
    tags : ``In(stream.Signature(layouts.out_tag_layout(cfg)))``: the accepted passes
    imp : ``Out(stream.Signature(heads.head_out_layout(cfg)))``: to the head importance
    row : ``Out(stream.Signature(layouts.write_row_layout(cfg)))``: to the DRAM writer
    desc : ``In(regs.desc_layout(cfg))``: the running layer (the ``out`` base)
    written : ``Out(1)``
    """

    def _ports(self, cfg: SpAttenConfig) -> dict:
        return {
            "o": In(stream.Signature(out_layout(cfg))),
            "tags": In(stream.Signature(out_tag_layout(cfg))),
            "imp": Out(stream.Signature(head_out_layout(cfg))),
            "row": Out(stream.Signature(write_row_layout(cfg))),
            "desc": In(desc_layout(cfg)),
            "written": Out(1),
        }

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        o, tags, imp, row = self.o, self.tags, self.imp, self.row
        busy = Signal()                      # a row is held (row.valid)
        data = Signal.like(o.payload.data)
        tag = Signal.like(tags.payload)
        open_ = ~busy & tags.valid
        take = o.valid & open_ & imp.ready
        m.d.comb += [imp.valid.eq(o.valid & open_), imp.payload.head.eq(tags.payload.head),
                     imp.payload.data.eq(o.payload.data),
                     o.ready.eq(open_ & imp.ready), tags.ready.eq(take)]
        with m.If(take):
            m.d.sync += [busy.eq(1), data.eq(o.payload.data), tag.eq(tags.payload)]
        m.d.comb += [row.valid.eq(busy), row.payload.data.eq(data),
                     row.payload.addr.eq(row_address(cfg, cfg.attn.out.width, self.desc.out,
                                                     tag.head, tag.pos)),
                     self.written.eq(row.valid & row.ready)]
        with m.If(row.valid & row.ready):
            m.d.sync += busy.eq(0)
        return m
