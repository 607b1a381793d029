"""The core's read port: three requesters share the DMA's row reads, and every row that
comes back is routed to the buffer it was read for.

Spec: ``docs/core.md`` (DRAM traffic, the controller): one DMA read port serves every kind
of row, V first, then K, then queries; a tag queue in issue order routes each returning row,
and every buffer always accepts, so reads cannot deadlock.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from generators.config import SpAttenConfig
from generators.dram import plane_bits, row_bytes

from ..common.queue import Queue
from .axi import MAX_OUTSTANDING, beat_layout, row_cmd_layout
from .check import CoreComponent
from .layouts import ReadKind, read_req_layout, row_data_bits, row_layout

__all__ = ["ReadRouter", "row_beats"]


def row_beats(cfg: SpAttenConfig, kind: ReadKind) -> int:
    """Bus beats of one row of plane ``kind``."""
    return row_bytes(cfg, plane_bits(cfg, kind.name.lower())) // cfg.core.bus_bytes


class ReadRouter(CoreComponent):
    """Requesters ``v``, ``k``, ``q`` → DMA ``rcmd``; DMA ``rdata`` → whole rows on
    ``vrows``, ``krows``, ``qrows``.

    Behaviour: a request is a stream beat held until it is taken (``ready`` is the grant).
    In a cycle where ``rcmd`` is taken, the highest-priority valid requester is granted
    (``v`` before ``k`` before ``q``: prob·V is kept fed first); its row's beats follow from
    its kind (:func:`row_beats`) and its kind and slot go into a tag queue of
    ``MAX_OUTSTANDING`` entries (no request is issued while it is full). Returning beats are
    assembled into a row, one beat per cycle; with the row's last beat the row leaves on the
    stream of its kind in the same cycle (combinational: the row register plus the beat on
    the bus), tagged with its kind and slot. The row streams are ``always_ready``: every
    buffer accepts a landing row, so ``rdata`` is taken whenever a tag is waiting. Zero
    latency from a requester's ``valid`` to ``rcmd.valid``.

    Members
    -------
    v, k, q : ``In(stream.Signature(layouts.read_req_layout(cfg)))``: row reads (V rows,
        K rows, queries), in priority order
    rcmd : ``Out(stream.Signature(axi.row_cmd_layout(cfg)))``: to the DMA
    rdata : ``In(stream.Signature(axi.beat_layout(cfg)))``: from the DMA
    vrows, krows, qrows : ``Out(stream.Signature(layouts.row_layout(cfg), always_ready=True))``:
        landed rows of kind ``VMSB``/``VLSB``, ``KMSB``/``KLSB`` and ``Q``
    """

    def _ports(self, cfg: SpAttenConfig) -> dict:
        req, row = stream.Signature(read_req_layout(cfg)), stream.Signature(row_layout(cfg),
                                                                              always_ready=True)
        return {"v": In(req), "k": In(req), "q": In(req),
                "rcmd": Out(stream.Signature(row_cmd_layout(cfg))),
                "rdata": In(stream.Signature(beat_layout(cfg))),
                "vrows": Out(row), "krows": Out(row), "qrows": Out(row)}

    def elaborate(self, platform):
        m = Module()
        tag = data.StructLayout({"kind": ReadKind,
                                 "slot": unsigned(self._cfg.topk.index_bits)})
        m.submodules.tags = tags = Queue(tag, MAX_OUTSTANDING, buffered=False)
        self._issue(m, tags.w)
        self._land(m, tags.r)
        return m

    def _issue(self, m, tag_w):
        """The arbiter: the first valid requester's row goes to ``rcmd`` and its tag into
        the queue, in the same cycle."""
        cfg = self._cfg
        reqs = [self.v, self.k, self.q]             # priority order
        rc = self.rcmd
        m.d.comb += rc.valid.eq(Cat(r.valid for r in reqs).any() & tag_w.ready)
        chosen = Signal(read_req_layout(cfg))
        with m.If(self.v.valid):
            m.d.comb += chosen.eq(self.v.payload)
        with m.Elif(self.k.valid):
            m.d.comb += chosen.eq(self.k.payload)
        with m.Else():
            m.d.comb += chosen.eq(self.q.payload)
        beats = Const(0, 9)
        for kind in ReadKind:
            beats = Mux(chosen.kind == kind, row_beats(cfg, kind), beats)
        go = rc.ready & tag_w.ready
        m.d.comb += [rc.payload.addr.eq(chosen.addr), rc.payload.beats.eq(beats),
                     tag_w.valid.eq(rc.valid & rc.ready),
                     tag_w.payload.kind.eq(chosen.kind), tag_w.payload.slot.eq(chosen.slot),
                     self.v.ready.eq(go),
                     self.k.ready.eq(go & ~self.v.valid),
                     self.q.ready.eq(go & ~self.v.valid & ~self.k.valid)]

    def _land(self, m, tag_r):
        """Row assembly: beat ``j`` of a row lands in word ``j`` of the row register; the
        last beat completes the row, which goes out with the oldest tag."""
        cfg = self._cfg
        bus = 8 * cfg.core.bus_bytes
        words = row_data_bits(cfg) // bus
        row = Signal(words * bus)
        bi = Signal(range(words))
        rd = self.rdata
        m.d.comb += rd.ready.eq(tag_r.valid)
        full_row = Cat(*[Mux(bi == j, rd.payload.data, row[j * bus:(j + 1) * bus])
                         for j in range(words)])
        got = rd.valid & rd.ready
        landed = Signal()
        m.d.comb += [landed.eq(got & rd.payload.last), tag_r.ready.eq(landed)]
        with m.If(got):
            m.d.sync += [row.eq(full_row), bi.eq(Mux(rd.payload.last, 0, bi + 1))]
        kind = tag_r.payload.kind
        dest = {self.qrows: kind == ReadKind.Q,
                self.krows: (kind == ReadKind.KMSB) | (kind == ReadKind.KLSB),
                self.vrows: (kind == ReadKind.VMSB) | (kind == ReadKind.VLSB)}
        for out, mine in dest.items():
            m.d.comb += [out.valid.eq(landed & mine), out.payload.kind.eq(kind),
                         out.payload.slot.eq(tag_r.payload.slot),
                         out.payload.data.eq(full_row)]
