"""The layer's keep list on chip: slot → kept position, for the readers of K rows, queries
and V rows.

Spec: ``docs/core.md`` (the controller): the token selection's kept positions, in order,
are both written to DRAM (:class:`~hdl.core.writeback.WriteBack`) and kept here, so that a
job can turn a slot (a key's index in the job's key row, or a kept list's index) into the
DRAM row of that position.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from generators.config import SpAttenConfig
from generators.numerics import ceil_log2

from ..topk.layouts import out_layout as topk_out_layout
from .check import CoreComponent
from .layouts import slot_port_signature

__all__ = ["KeepList", "READERS"]

# The copies of the keep list, one read port each: K row loads, query reads, V row reads.
READERS = ("k", "q", "v")


class KeepList(CoreComponent):
    """A tap on the kept positions ``i`` → ``o``, stored in one memory per reader.

    Behaviour: ``o`` is ``i`` passed through combinationally (``i.ready`` is ``o.ready``, no
    added latency). Every beat taken is written, ``topk.lanes`` positions per word, at the
    next word of every copy; after a beat with ``last`` the next list starts again at word
    0 (one list per layer). Each copy has one read port (:func:`layouts.slot_port_signature`):
    the position of ``slot`` is valid the cycle after ``en`` and held while ``en`` is low. A
    read of a word in the cycle it is written returns the old word (the readers only read a
    list after it has been written).

    Members
    -------
    i : ``In(stream.Signature(topk.layouts.out_layout(cfg.select_topk)))``: the token
        selection's kept positions (``index``, ``count``, ``last``)
    o : ``Out(stream.Signature(topk.layouts.out_layout(cfg.select_topk)))``: the same beats
    k, q, v : ``In(layouts.slot_port_signature(cfg))``: the read ports of the three copies
    """

    def _ports(self, cfg: SpAttenConfig) -> dict:
        keep = stream.Signature(topk_out_layout(cfg.select_topk))
        return {"i": In(keep), "o": Out(keep),
                **{r: In(slot_port_signature(cfg)) for r in READERS}}

    def elaborate(self, platform):
        m = Module()
        i, o = self.i, self.o
        word = Signal(range(self._cfg.topk.rows + 1))
        take = i.valid & o.ready
        m.d.comb += [o.payload.eq(i.payload), o.valid.eq(i.valid), i.ready.eq(o.ready)]
        with m.If(take):
            m.d.sync += word.eq(word + 1)
            with m.If(i.payload.last):
                m.d.sync += word.eq(0)
        for name in READERS:
            self._copy(m, name, getattr(self, name), word, take)
        return m

    def _copy(self, m, name, port, word, take):
        """One copy: written at ``word`` with each beat's indices, read through ``port``."""
        t = self._cfg.topk
        lanes = self.i.payload.index.shape()
        mem = Memory(shape=lanes, depth=t.rows, init=[])
        m.submodules[f"keeplist_{name}"] = mem
        wp, rp = mem.write_port(), mem.read_port()
        m.d.comb += [wp.addr.eq(word), wp.data.eq(self.i.payload.index), wp.en.eq(take)]
        lb = ceil_log2(t.lanes)
        m.d.comb += [rp.addr.eq(port.slot >> lb), rp.en.eq(port.en)]
        if not lb:
            m.d.comb += port.pos.eq(rp.data[0])
            return
        lane = Signal(range(t.lanes), name=f"keeplist_{name}_lane")   # lane of the last read
        with m.If(port.en):
            m.d.sync += lane.eq(port.slot[:lb])
        m.d.comb += port.pos.eq(rp.data[lane])
