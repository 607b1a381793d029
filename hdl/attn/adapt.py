"""Stream adapters around the top-k engine of the attention datapath.

- :class:`ToTopK`: softmax probabilities (``attn.lanes`` per beat) → top-k input beats
  (``topk.lanes`` per beat), for local value pruning (SpAtten, HPCA 2021, Section III-C: the
  top-k engine keeps the ``keep`` largest probabilities of a row).
- :class:`Chunker`: top-k output beats (kept probabilities and their token indices) →
  prob·V chunks of ``pv_rows`` pairs (Section IV: the prob·V array takes ``pv_rows`` kept
  (probability, V row) pairs per cycle), tagged with the pass's ``msb_only`` flag.

Both are one register stage (``latency = 1``) whose register loads when it is empty or being
drained (``~o.valid | o.ready``), so back-pressure on ``o`` stalls them in place and no
``valid`` depends on a ``ready``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from generators.config import SpAttenConfig
from generators.numerics import bits_for, ceil_log2

from ..topk.layouts import in_layout, out_layout as topk_out_layout
from .layouts import chunk_layout, head_config, prob_layout

__all__ = ["ToTopK", "Chunker"]


class ToTopK(wiring.Component):
    """Pack ``m = topk.lanes / attn.lanes`` probability beats into one top-k input beat.

    Beats ``0..m-1`` of a row fill top-k lanes ``0..attn.lanes-1``, ``attn.lanes..``, and so
    on, in order; each probability is zero-extended into the signed top-k score (it is
    narrower than ``topk.score``, see ``SpAttenConfig.check_head``). A top-k beat is sent
    when its ``m``-th probability beat arrives or when the row ends (``last``); the row's last
    top-k beat may hold fewer beats, and its ``count`` is the number of valid elements in it
    (``j * attn.lanes + count`` of the last probability beat, for the row's ``j``-th beat in
    the top-k beat); earlier top-k beats carry ``count = topk.lanes``. ``k`` is the beat's
    ``meta.keep`` (constant within a row); ``last`` marks the row's final beat. An empty row
    (one beat, ``count = 0``) becomes one top-k beat with ``count = 0`` and ``last = 1``.
    Lanes of slots not yet filled are zero; ``threshold`` and ``msb_only`` are not carried.

    Timing: one probability beat per cycle, sustained (the partial beat is held in a separate
    buffer, so the output register is free every cycle the consumer is ready); a top-k beat is
    valid one cycle after the probability beat that completes it is taken (``latency = 1``).

    Raises
    ------
    TypeError
        if ``cfg`` is not a :class:`~generators.config.SpAttenConfig`.
    ConfigError
        if the top-k and attention configs do not fit together (``cfg.check_head()``).

    Members
    -------
    i : ``In(stream.Signature(prob_layout(cfg)))``
    o : ``Out(stream.Signature(in_layout(cfg.topk)))``
    """

    latency = 1

    def __init__(self, cfg: SpAttenConfig):
        self._cfg = head_config(cfg)
        super().__init__({
            "i": In(stream.Signature(prob_layout(cfg))),
            "o": Out(stream.Signature(in_layout(cfg.topk))),
        })

    @property
    def cfg(self) -> SpAttenConfig:
        return self._cfg

    @property
    def ratio(self) -> int:
        """Probability beats per top-k beat (``topk.lanes / attn.lanes``)."""
        return self._cfg.topk.lanes // self._cfg.attn.lanes

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        A, M = cfg.attn.lanes, self.ratio
        i, o = self.i, self.o

        ce = Signal()  # the output register loads this cycle
        m.d.comb += ce.eq(~o.valid | o.ready)
        take = Signal()
        m.d.comb += [i.ready.eq(ce), take.eq(i.valid & ce)]

        # Slots 0..M-2 of the beat being assembled; slot `slot` comes from the input beat.
        # (With M = 1 there is no slot counter: every beat is a whole top-k beat.)
        slot = Signal(range(M), name="slot") if M > 1 else None
        held = [Signal(data.ArrayLayout(unsigned(cfg.attn.prob.width), A), name=f"held{s}")
                for s in range(M - 1)]
        complete = Signal()
        m.d.comb += complete.eq(i.payload.last | (slot == M - 1) if M > 1 else 1)
        done_elems = slot * A if M > 1 else 0  # elements of this top-k beat already held

        with m.If(take):
            for s in range(M - 1):
                with m.If(slot == s):
                    m.d.sync += held[s].eq(i.payload.data)
            if M > 1:
                m.d.sync += slot.eq(Mux(complete, 0, slot + 1))

        with m.If(ce):
            m.d.sync += o.valid.eq(take & complete)
            with m.If(take & complete):
                m.d.sync += [
                    o.payload.k.eq(i.payload.meta.keep),
                    o.payload.last.eq(i.payload.last),
                    o.payload.count.eq(Mux(i.payload.last, done_elems + i.payload.count,
                                           cfg.topk.lanes)),
                ]
                for s in range(M):
                    # Slot s: a held beat (s < slot), the input beat (s == slot) or zero.
                    src = i.payload.data
                    for lane in range(A):
                        if M == 1:
                            val = src[lane]
                        elif s < M - 1:
                            val = Mux(slot == s, src[lane], Mux(slot > s, held[s][lane], 0))
                        else:  # the last slot is never held (slot > M - 1 is impossible)
                            val = Mux(slot == s, src[lane], 0)
                        m.d.sync += o.payload.data[s * A + lane].eq(val)
        return m


class Chunker(wiring.Component):
    """Split top-k output beats into prob·V chunks of ``pv_rows`` (probability, index) pairs.

    Each top-k beat gives ``topk.lanes / pv_rows`` chunks, of which only those with
    ``count > 0`` are sent: chunk ``s`` holds lanes ``s*pv_rows ..`` with ``count =
    min(pv_rows, beat.count - s*pv_rows)`` (rows at and above it pass the top-k's zero lanes
    through). ``prob`` is the top-k value's low ``prob.width`` bits (the kept values are
    non-negative probabilities). An empty packet (a beat with ``count = 0``, necessarily its
    only and last beat) gives one chunk with ``count = 0`` and ``last = 1``. ``last`` is set
    on the packet's final chunk. Every chunk of a packet carries ``msb_only`` from the side
    stream ``msb_only`` (one beat per packet): no chunk of a packet is sent before that beat
    is valid, and it is taken together with the packet's last chunk. ``kth`` and
    ``truncated`` are not carried.

    Timing: one chunk per cycle (a top-k beat is taken with its last chunk); a chunk is valid
    one cycle after it is formed (``latency = 1``).

    Raises
    ------
    TypeError
        if ``cfg`` is not a :class:`~generators.config.SpAttenConfig`.
    ConfigError
        if the top-k and attention configs do not fit together (``cfg.check_head()``).

    Members
    -------
    i : ``In(stream.Signature(out_layout(cfg.topk)))`` (``hdl.topk.layouts.out_layout``)
    msb_only : ``In(stream.Signature(unsigned(1)))``
    o : ``Out(stream.Signature(chunk_layout(cfg)))``
    """

    latency = 1

    def __init__(self, cfg: SpAttenConfig):
        self._cfg = head_config(cfg)
        super().__init__({
            "i": In(stream.Signature(topk_out_layout(cfg.topk))),
            "msb_only": In(stream.Signature(unsigned(1))),
            "o": Out(stream.Signature(chunk_layout(cfg))),
        })

    @property
    def cfg(self) -> SpAttenConfig:
        return self._cfg

    @property
    def ratio(self) -> int:
        """Chunks per top-k beat (``topk.lanes / pv_rows``)."""
        return self._cfg.topk.lanes // self._cfg.attn.pv_rows

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        R, Q, PW = cfg.attn.pv_rows, self.ratio, cfg.attn.prob.width
        i, side, o = self.i, self.msb_only, self.o

        ce = Signal()  # the output register loads this cycle
        m.d.comb += ce.eq(~o.valid | o.ready)
        emit = Signal()  # a chunk of the current beat goes into the output register
        m.d.comb += emit.eq(i.valid & side.valid & ce)

        # Chunk s of the current beat is next (with Q = 1 there is no chunk counter).
        s = Signal(range(Q), name="chunk") if Q > 1 else None
        cnt = i.payload.count
        beat_done = Signal()  # chunk s is the beat's last chunk (at least one per beat)
        rest = Signal(bits_for(cfg.topk.lanes), name="rest")  # elements from chunk s on
        if Q > 1:
            # Chunks of this beat: ceil(count / R), at least 1 (the empty packet's chunk).
            n_chunks = Signal(range(Q + 1), name="n_chunks")
            m.d.comb += [
                n_chunks.eq(Mux(cnt == 0, 1, (cnt + (R - 1)) >> ceil_log2(R))),
                beat_done.eq(s + 1 >= n_chunks),
                rest.eq(cnt - s * R),
            ]
        else:
            m.d.comb += [beat_done.eq(1), rest.eq(cnt)]

        m.d.comb += [i.ready.eq(emit & beat_done),
                     side.ready.eq(emit & beat_done & i.payload.last)]
        if Q > 1:
            with m.If(emit):
                m.d.sync += s.eq(Mux(beat_done, 0, s + 1))

        with m.If(ce):
            m.d.sync += o.valid.eq(emit)
            with m.If(emit):
                m.d.sync += [
                    o.payload.count.eq(Mux(rest > R, R, rest)),
                    o.payload.msb_only.eq(side.payload),
                    o.payload.last.eq(i.payload.last & beat_done),
                ]
                def load(q):  # chunk q: lanes q*R .. q*R + R - 1
                    for r in range(R):
                        m.d.sync += [
                            o.payload.prob[r].eq(i.payload.data[q * R + r][:PW]),
                            o.payload.index[r].eq(i.payload.index[q * R + r]),
                        ]

                if Q == 1:
                    load(0)
                else:
                    with m.Switch(s):
                        for q in range(Q):
                            with m.Case(q):
                                load(q)
                        with m.Default():  # unreachable (s < Q); every Switch has a Default
                            pass
        return m
