"""The per-head attention pipeline: Q·K → softmax → local value pruning → prob·V.

Ref: SpAtten (HPCA 2021), Section IV (Fig. 9, the pipeline of one query of one head): the
Q·K array, softmax, the progressive-quantization decision, the local-value top-k engine,
the V fetch and the prob·V array. The numeric specification is ``docs/numerics.md``; the
golden model of one pass is :func:`sim.golden.attention.head_pass`.

Data flow (every arrow a ``lib.stream`` with back-pressure)::

    q, k ──> QKArray ──> Softmax ──dec──────────────────────────────────────> dec
                            │ probabilities
                            └──> Fork ──────────────────────────────────────> p
                                   ├──> ToTopK ──> TopK × n ──> Chunker ──> Fork ──> vreq
                                   └──> msb_only FIFO ───────────┘         └──> chunk FIFO
    v ──────────────────────────────────────────────────────────────> ProbV <──┘ ──> o

``TopK × n`` is ``attn.topk_engines`` top-k engines behind a :class:`PacketSplit` and a
:class:`PacketMerge`: query ``j`` is selected by engine ``j mod n`` and its kept tokens are
taken back in the same turn, so they stay in query order while one engine's refine and
filter passes overlap the next engine's.

Protocol, per *pass* (one query against one row of keys):

1. one ``q`` beat (query vector, score scale and shift, ``meta``: keep count, refetch
   threshold, ``msb_only``), then the row's ``k`` beats (``keys_per_cycle`` keys each, as
   MSB and LSB planes; ``last`` ends the row). The next pass may follow at once.
2. one ``dec`` beat: ``refetch``, ``pmax``, ``truncated``. A refetched pass (MSB-only and
   ``pmax < threshold``) ends here: the host sends the same query again with
   ``msb_only = 0`` (its LSB planes fetched).
3. an accepted pass emits its probabilities on ``p`` (``lanes`` per beat: the token
   importance input of the core) and its kept tokens on ``vreq``: ``pv_rows`` indices per
   beat, in original order, the ``keep`` most probable ones (local value pruning).
4. the host answers every ``vreq`` beat, in order, with one ``v`` beat holding those V
   rows (MSB and LSB planes; an MSB-only pass uses the MSB planes only).
5. one ``o`` beat: the attention output vector.

Passes are processed in order and the blocks overlap: while one pass is in prob·V, the next
can be in the top-k engine, the one after in the softmax and another in the Q·K array. The
host decides how far ahead to send: a pass that may be refetched must be followed by its
full-precision pass before the next query (the host waits for ``dec``); others can stream
back to back.

Raises
------
TypeError
    if ``cfg`` is not a :class:`~generators.config.SpAttenConfig`.
ConfigError
    if its top-k and attention configs do not fit together
    (:meth:`~generators.config.SpAttenConfig.check_head`).
"""

from __future__ import annotations

from amaranth.hdl import Module, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from generators.config import SpAttenConfig

from ..common.queue import Queue
from ..common.stream import Fork, PacketMerge, PacketSplit
from ..topk import TopK
from ..topk.layouts import in_layout, out_layout as topk_out_layout
from .adapt import Chunker, ToTopK
from .layouts import (chunk_layout, decision_layout, head_config, key_layout, out_layout,
                      prob_layout, query_layout, value_layout, vreq_layout)
from .pv import ProbV
from .qk import QKArray
from .softmax import Softmax

__all__ = ["Head"]

# Outstanding V requests the head can hold (kept chunks waiting for their V rows); more
# only add latency tolerance, the pipeline is correct with any depth >= 1.
CHUNK_FIFO_DEPTH = 8


def meta_fifo_depth(engines: int) -> int:
    """Rows between the softmax and the chunker: each top-k engine holds at most two packets
    plus one in its output pipeline, and one more is in the adapters."""
    return 3 * engines + 1


class Head(wiring.Component):
    """One head's attention pipeline for one query at a time (see the module docstring)."""

    def __init__(self, cfg: SpAttenConfig):
        head_config(cfg)
        self._cfg = cfg
        super().__init__({
            "q": In(stream.Signature(query_layout(cfg))),
            "k": In(stream.Signature(key_layout(cfg))),
            "v": In(stream.Signature(value_layout(cfg))),
            "dec": Out(stream.Signature(decision_layout(cfg))),
            "p": Out(stream.Signature(prob_layout(cfg))),
            "vreq": Out(stream.Signature(vreq_layout(cfg))),
            "o": Out(stream.Signature(out_layout(cfg))),
        })

    @property
    def cfg(self) -> SpAttenConfig:
        return self._cfg

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        m.submodules.qk = qk = QKArray(cfg)
        m.submodules.softmax = sm = Softmax(cfg)
        m.submodules.fork_p = fork_p = Fork(prob_layout(cfg), 3)
        m.submodules.to_topk = to_topk = ToTopK(cfg)
        m.submodules.meta_fifo = meta_fifo = Queue(
            unsigned(1), meta_fifo_depth(cfg.attn.topk_engines))
        m.submodules.chunker = chunker = Chunker(cfg)
        m.submodules.fork_c = fork_c = Fork(chunk_layout(cfg), 2)
        m.submodules.chunk_fifo = chunk_fifo = Queue(chunk_layout(cfg), CHUNK_FIFO_DEPTH)
        m.submodules.pv = pv = ProbV(cfg)

        wiring.connect(m, wiring.flipped(self.q), qk.q)
        wiring.connect(m, wiring.flipped(self.k), qk.k)
        wiring.connect(m, qk.o, sm.i)
        wiring.connect(m, sm.dec, wiring.flipped(self.dec))
        wiring.connect(m, sm.o, fork_p.i)
        wiring.connect(m, fork_p.o0, wiring.flipped(self.p))
        wiring.connect(m, fork_p.o1, to_topk.i)
        self._engines(m, to_topk.o, chunker.i)

        # Third copy of the probabilities: only each row's last beat matters, it queues the
        # row's msb_only for the chunker (the top-k engine does not carry side fields).
        o2 = fork_p.o2
        m.d.comb += [
            meta_fifo.w.payload.eq(o2.payload.meta.msb_only),
            meta_fifo.w.valid.eq(o2.valid & o2.payload.last),
            o2.ready.eq(~o2.payload.last | meta_fifo.w.ready),
        ]
        wiring.connect(m, meta_fifo.r, chunker.msb_only)
        wiring.connect(m, chunker.o, fork_c.i)

        # Kept chunks: their indices go out as V requests; the chunks wait in a FIFO for
        # the V rows to come back.
        req = fork_c.o0
        m.d.comb += [
            self.vreq.payload.index.eq(req.payload.index),
            self.vreq.payload.count.eq(req.payload.count),
            self.vreq.payload.last.eq(req.payload.last),
            self.vreq.valid.eq(req.valid),
            req.ready.eq(self.vreq.ready),
        ]
        wiring.connect(m, fork_c.o1, chunk_fifo.w)
        wiring.connect(m, chunk_fifo.r, pv.c)
        wiring.connect(m, wiring.flipped(self.v), pv.v)
        wiring.connect(m, pv.o, wiring.flipped(self.o))
        return m

    def _engines(self, m, i, o):
        """The local-value top-k engines from stream ``i`` to stream ``o``, in turn."""
        cfg = self._cfg
        n = cfg.attn.topk_engines
        if n == 1:
            m.submodules.topk = topk = TopK(cfg.topk)
            wiring.connect(m, i, topk.i)
            wiring.connect(m, topk.o, o)
            return
        m.submodules.split = split = PacketSplit(in_layout(cfg.topk), n)
        m.submodules.merge = merge = PacketMerge(topk_out_layout(cfg.topk), n)
        wiring.connect(m, i, split.i)
        for j in range(n):
            topk = TopK(cfg.topk)
            m.submodules[f"topk{j}"] = topk
            wiring.connect(m, getattr(split, f"o{j}"), topk.i)
            wiring.connect(m, topk.o, getattr(merge, f"i{j}"))
        wiring.connect(m, merge.o, o)
