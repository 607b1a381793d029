"""One job: every query of a layer against one head's keys, sent to the head pipeline as
passes, with the progressive-quantization refetch.

Spec: ``docs/core.md`` (One job, the controller step 4); the pass protocol is
:mod:`hdl.attn.head`'s.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from generators.config import SpAttenConfig
from generators.numerics import ceil_log2

from ..attn.layouts import decision_layout, key_layout, query_layout
from ..common.queue import Queue
from .check import CoreComponent
from .layouts import (ReadKind, job_layout, key_port_signature, out_tag_layout, pass_layout,
                      queries_per_job, query_row_layout, sweep_layout)
from .regs import desc_layout

__all__ = ["Job", "PASS_FIFO_DEPTH"]

# Passes sent to the head whose V requests or outputs are still to come.
PASS_FIFO_DEPTH = 16


class Job(CoreComponent):
    """The passes of one head's job (``start`` → ``q``, ``k`` → ``passes``, ``outs``).

    Behaviour: a ``start`` beat (taken when the previous job is done) runs a job for its
    ``head``: a K MSB sweep on ``sweep`` (and a K LSB sweep when the layer is not MSB-only),
    each waited for on ``swept``; then the query reads start (``fetch``) and every query
    taken from ``queries`` becomes a pass: one ``q`` beat (the query, the layer's scale,
    shift, ``value_keep``, threshold and ``msb_only``), then ``ceil(kc / keys_per_cycle)``
    ``k`` beats read from the K buffer (``keys``, word 0 read while the ``q`` beat waits,
    then one word per beat taken: one beat per cycle while ``k`` is ready). An MSB-only pass
    then waits for its ``dec`` beat (``dec`` is always taken, every pass has one, in order);
    on ``refetch`` the K LSB rows are swept (once per job) and the pass is sent again at full
    precision. An accepted pass is pushed, in one cycle, into two queues of
    :data:`PASS_FIFO_DEPTH` (``passes`` for the V server, ``outs`` for the output rows),
    waiting while either is full. ``done`` is valid after the last query's pass is pushed
    and ends the job when taken.

    Members
    -------
    start : ``In(stream.Signature(layouts.job_layout(cfg)))``: a job (its head)
    done : ``Out(stream.Signature(layouts.job_layout(cfg)))``: the job (its head) whose
        passes are all pushed
    desc : ``In(regs.desc_layout(cfg))``: the running layer
    sweep : ``Out(stream.Signature(layouts.sweep_layout(cfg), always_ready=True))``: K row
        sweeps (:class:`~hdl.core.keys.KeyLoader`)
    swept : ``In(stream.Signature(layouts.sweep_layout(cfg)))``: a sweep's rows are in the
        K buffer
    keys : ``Out(layouts.key_port_signature(cfg))``: the K buffer's read port
    fetch : ``Out(stream.Signature(layouts.job_layout(cfg), always_ready=True))``: start the
        query reads (:class:`~hdl.core.queries.QueryFetch`)
    queries : ``In(stream.Signature(layouts.query_row_layout(cfg)))``: the job's queries
    q : ``Out(stream.Signature(attn.layouts.query_layout(cfg)))``: to the head
    k : ``Out(stream.Signature(attn.layouts.key_layout(cfg)))``: to the head
    dec : ``In(stream.Signature(attn.layouts.decision_layout(cfg), always_ready=True))``:
        from the head
    passes : ``Out(stream.Signature(layouts.pass_layout(cfg)))``: accepted passes, for the
        V server
    outs : ``Out(stream.Signature(layouts.out_tag_layout(cfg)))``: accepted passes, for the
        output rows
    """

    def _ports(self, cfg: SpAttenConfig) -> dict:
        return {
            "start": In(stream.Signature(job_layout(cfg))),
            "done": Out(stream.Signature(job_layout(cfg))),
            "desc": In(desc_layout(cfg)),
            "sweep": Out(stream.Signature(sweep_layout(cfg), always_ready=True)),
            "swept": In(stream.Signature(sweep_layout(cfg))),
            "keys": Out(key_port_signature(cfg)),
            "fetch": Out(stream.Signature(job_layout(cfg), always_ready=True)),
            "queries": In(stream.Signature(query_row_layout(cfg))),
            "q": Out(stream.Signature(query_layout(cfg))),
            "k": Out(stream.Signature(key_layout(cfg))),
            "dec": In(stream.Signature(decision_layout(cfg), always_ready=True)),
            "passes": Out(stream.Signature(pass_layout(cfg))),
            "outs": Out(stream.Signature(out_tag_layout(cfg))),
        }

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        m.submodules.passq = passq = Queue(pass_layout(cfg), PASS_FIFO_DEPTH)
        m.submodules.outq = outq = Queue(out_tag_layout(cfg), PASS_FIFO_DEPTH)
        wiring.connect(m, passq.r, wiring.flipped(self.passes))
        wiring.connect(m, outq.r, wiring.flipped(self.outs))
        s = _JobState(cfg, self.desc, self.start.payload.head, self.queries.payload)
        self._decisions(m, s)
        self._beats(m, s)
        self._fsm(m, s, passq.w, outq.w)
        return m

    def _decisions(self, m, s):
        """Decisions are counted; the last one's refetch bit is kept."""
        with m.If(self.dec.valid):
            m.d.sync += [s.decs.eq(s.decs + 1), s.dec_refetch.eq(self.dec.payload.refetch)]

    def _beats(self, m, s):
        """The ``q`` beat's fields and the ``k`` beats (word ``kb`` of the K buffer)."""
        cfg = self._cfg
        kpc = cfg.attn.keys_per_cycle
        d, hq, hk = self.desc, self.q, self.k
        m.d.comb += [s.nkb.eq((s.kc + kpc - 1) >> ceil_log2(kpc)),
                     hq.payload.q.eq(s.query), hq.payload.scale.eq(d.scale),
                     hq.payload.shift.eq(d.shift), hq.payload.meta.keep.eq(d.value_keep),
                     hq.payload.meta.threshold.eq(d.threshold),
                     hq.payload.meta.msb_only.eq(~s.full),
                     hk.payload.msb.eq(self.keys.msb), hk.payload.lsb.eq(self.keys.lsb),
                     hk.payload.count.eq(Mux(s.k_last,
                                             s.kc - ((s.nkb - 1) << ceil_log2(kpc)), kpc)),
                     hk.payload.last.eq(s.k_last), hk.valid.eq(s.kv),
                     self.keys.addr.eq(s.kb)]

    def _sweep(self, m, kind, head):
        m.d.comb += [self.sweep.valid.eq(1), self.sweep.payload.kind.eq(kind),
                     self.sweep.payload.head.eq(head)]

    def _fetch(self, m, s):
        m.d.comb += [self.fetch.valid.eq(1), self.fetch.payload.head.eq(s.head)]

    def _fsm(self, m, s, pass_w, out_w):
        """IDLE → K sweeps → (POP → Q → K → [DEC → [REFETCH →] Q … →] PUSH) per query."""
        d, hq, hk = self.desc, self.q, self.k
        with m.FSM(name="job"):
            with m.State("IDLE"):
                m.d.comb += self.start.ready.eq(1)
                with m.If(self.start.valid):
                    m.d.sync += [s.klsb_loaded.eq(0), s.first.eq(1), s.done_q.eq(0),
                                 s.head.eq(self.start.payload.head)]
                    self._sweep(m, ReadKind.KMSB, self.start.payload.head)
                    m.next = "KMSB"
            with m.State("KMSB"):
                m.d.comb += self.swept.ready.eq(1)
                with m.If(self.swept.valid):
                    with m.If(~d.msb_only):
                        self._sweep(m, ReadKind.KLSB, s.head)
                        m.next = "KLSB"
                    with m.Else():
                        self._fetch(m, s)
                        m.next = "POP"
            with m.State("KLSB"):
                m.d.comb += self.swept.ready.eq(1)
                with m.If(self.swept.valid):
                    m.d.sync += s.klsb_loaded.eq(1)
                    self._fetch(m, s)
                    m.next = "POP"
            with m.State("POP"):
                with m.If(s.done_q == s.nq):
                    m.d.comb += [self.done.valid.eq(1), self.done.payload.head.eq(s.head)]
                    with m.If(self.done.ready):
                        m.next = "IDLE"
                with m.Else():
                    m.d.comb += self.queries.ready.eq(1)
                    with m.If(self.queries.valid):
                        m.d.sync += [s.query.eq(self.queries.payload.q),
                                     s.pos.eq(self.queries.payload.pos),
                                     s.full.eq(~d.msb_only)]
                        m.next = "Q"
            with m.State("Q"):
                # kb is 0 here: word 0 is read while the query beat waits
                m.d.comb += [hq.valid.eq(1), self.keys.en.eq(1)]
                with m.If(hq.ready):
                    m.d.sync += [s.kv.eq(1), s.k_last.eq(s.nkb == 1), s.kb.eq(1)]
                    m.next = "K"
            with m.State("K"):
                with m.If(~s.kv | hk.ready):
                    m.d.comb += self.keys.en.eq(1)
                    m.d.sync += [s.kv.eq(s.kb < s.nkb), s.k_last.eq(s.kb == s.nkb - 1),
                                 s.kb.eq(s.kb + 1)]
                    with m.If(s.kv & s.k_last):
                        m.d.sync += [s.kv.eq(0), s.kb.eq(0), s.sent.eq(s.sent + 1)]
                        m.next = "PUSH"
                        with m.If(~s.full):
                            m.next = "DEC"
            with m.State("DEC"):
                with m.If(s.decs == s.sent):
                    with m.If(s.dec_refetch):
                        m.d.sync += s.full.eq(1)
                        with m.If(s.klsb_loaded):
                            m.next = "Q"
                        with m.Else():
                            self._sweep(m, ReadKind.KLSB, s.head)
                            m.next = "REFETCH"
                    with m.Else():
                        m.next = "PUSH"
            with m.State("REFETCH"):
                m.d.comb += self.swept.ready.eq(1)
                with m.If(self.swept.valid):
                    m.d.sync += s.klsb_loaded.eq(1)
                    m.next = "Q"
            with m.State("PUSH"):
                m.d.comb += [pass_w.payload.pos.eq(s.pos), pass_w.payload.full.eq(s.full),
                             pass_w.payload.head.eq(s.head), pass_w.payload.first.eq(s.first),
                             out_w.payload.pos.eq(s.pos), out_w.payload.head.eq(s.head)]
                with m.If(pass_w.ready & out_w.ready):
                    m.d.comb += [pass_w.valid.eq(1), out_w.valid.eq(1)]
                    m.d.sync += [s.first.eq(0), s.done_q.eq(s.done_q + 1)]
                    m.next = "POP"


class _JobState:
    """The job's registers (and the counts it derives from the descriptor)."""

    def __init__(self, cfg, desc, head, query):
        t, kpc = cfg.topk, cfg.attn.keys_per_cycle
        words = -(-t.capacity // kpc)
        self.head = Signal.like(head, name="job_head")
        self.first = Signal(name="job_first")       # the next pass pushed is the job's first
        self.query = Signal.like(query.q, name="job_query")
        self.pos = Signal.like(query.pos, name="job_pos")
        self.full = Signal(name="job_full")         # the pass runs at full precision
        self.klsb_loaded = Signal(name="klsb_loaded")
        self.done_q = Signal(t.count_bits, name="done_q")  # passes pushed
        self.kb = Signal(range(words + 1), name="kb")      # next K word
        self.nkb = Signal(range(words + 1), name="nkb")    # K words per pass
        self.kv, self.k_last = Signal(name="kv"), Signal(name="k_last")
        self.decs, self.sent = Signal(16, name="decs"), Signal(16, name="sent")
        self.dec_refetch = Signal(name="dec_refetch")
        self.kc = desc.token_keep[:t.count_bits]    # keys per pass
        self.nq = queries_per_job(cfg, desc)        # queries per job
