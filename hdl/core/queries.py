"""A job's queries, read from DRAM a few ahead of the passes that use them.

Spec: ``docs/core.md`` (the controller, step 4): the queries (each kept token in
summarization, the newest position in generation) are read at most
:data:`QUERY_FIFO_DEPTH` ahead into a queue.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from generators.config import SpAttenConfig

from ..common.queue import Queue
from .check import CoreComponent
from .layouts import (ReadKind, job_layout, queries_per_job, query_row_layout,
                      read_req_layout, row_address, row_layout, slot_port_signature)
from .regs import desc_layout

__all__ = ["QueryFetch", "QUERY_FIFO_DEPTH"]

# Queries read ahead of the pass that uses them.
QUERY_FIFO_DEPTH = 2


class QueryFetch(CoreComponent):
    """A job's query reads (``cmd`` → ``req`` → ``rows``) into a queue → ``o``.

    Behaviour: a ``cmd`` beat (always taken) starts the reads of queries ``0 .. nq - 1`` for
    ``head`` (``nq``: the descriptor's ``token_keep`` in summarization, 1 in generation).
    Query ``i``'s position is slot ``i`` of the keep list (``keep``, one cycle) in
    summarization and the newest position in generation; its row is requested on ``req``
    (held until taken), one request per cycle while ``req`` is taken at once, and at most
    :data:`QUERY_FIFO_DEPTH` queries are read and not yet taken from ``o``. A landed row
    (``rows``, always accepted) goes into a queue of ``QUERY_FIFO_DEPTH + 1`` entries, which
    never fills because of that bound; ``o`` is the queue's output (2 cycles after the row
    lands). The reads stop after query ``nq - 1``.

    Members
    -------
    cmd : ``In(stream.Signature(layouts.job_layout(cfg), always_ready=True))``
    req : ``Out(stream.Signature(layouts.read_req_layout(cfg)))``: row reads (kind ``Q``,
        the slot is the query's position)
    rows : ``In(stream.Signature(layouts.row_layout(cfg), always_ready=True))``: landed
        query rows
    keep : ``Out(layouts.slot_port_signature(cfg))``: the keep list (slot → position)
    desc : ``In(regs.desc_layout(cfg))``: the running layer (``mode``, ``token_keep``,
        ``newest``, the ``q`` base)
    o : ``Out(stream.Signature(layouts.query_row_layout(cfg)))``: the queries, in order
    """

    def _ports(self, cfg: SpAttenConfig) -> dict:
        return {
            "cmd": In(stream.Signature(job_layout(cfg), always_ready=True)),
            "req": Out(stream.Signature(read_req_layout(cfg))),
            "rows": In(stream.Signature(row_layout(cfg), always_ready=True)),
            "keep": Out(slot_port_signature(cfg)),
            "desc": In(desc_layout(cfg)),
            "o": Out(stream.Signature(query_row_layout(cfg))),
        }

    def elaborate(self, platform):
        cfg = self._cfg
        a, t = cfg.attn, cfg.topk
        m = Module()
        d, req, keep = self.desc, self.req, self.keep
        m.submodules.queue = queue = Queue(query_row_layout(cfg), QUERY_FIFO_DEPTH + 1)
        nq = Signal(t.count_bits)
        m.d.comb += nq.eq(queries_per_job(cfg, d))
        run = Signal()
        head = Signal.like(self.cmd.payload.head)
        s = Signal(t.count_bits)                        # next query
        ahead = Signal(range(QUERY_FIFO_DEPTH + 1))     # read and not yet taken from o
        hold = Signal()                                 # a request waiting for its grant
        adv = ~hold | (req.valid & req.ready)
        more = run & (s < nq) & (ahead < QUERY_FIFO_DEPTH)
        pos = Mux(d.mode, d.newest[:t.index_bits], keep.pos)
        m.d.comb += [req.valid.eq(hold), req.payload.kind.eq(ReadKind.Q),
                     req.payload.slot.eq(pos),
                     req.payload.addr.eq(row_address(cfg, a.q_bits, d.q, head, pos)),
                     keep.slot.eq(s), keep.en.eq(adv & more)]
        m.d.sync += ahead.eq(ahead + (adv & more) - (self.o.valid & self.o.ready))
        with m.If(adv):
            m.d.sync += hold.eq(more)
            with m.If(more):
                m.d.sync += s.eq(s + 1)
        # the last read is on its way: stop (s no longer moves, so this changes nothing
        # before the next job, whose nq may differ)
        with m.If(run & (s >= nq)):
            m.d.sync += run.eq(0)
        with m.If(self.cmd.valid):
            m.d.sync += [run.eq(1), s.eq(0), head.eq(self.cmd.payload.head)]
        # the queue never fills (at most QUERY_FIFO_DEPTH rows are read ahead), so a landed
        # row is always taken and w.ready need not be looked at
        rows = self.rows.payload
        m.d.comb += [queue.w.valid.eq(self.rows.valid),
                     queue.w.payload.q.eq(rows.data[:a.head_dim * a.q_bits]),
                     queue.w.payload.pos.eq(rows.slot)]
        wiring.connect(m, queue.r, wiring.flipped(self.o))
        return m
