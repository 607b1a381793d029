"""A first-in, first-out queue between two streams whose payload is any shape or
``amaranth.lib.data`` layout, so that no FIFO word is packed or sliced by hand.

It wraps :class:`amaranth.lib.fifo.SyncFIFOBuffered` (the default: a registered output, block
RAM friendly) or :class:`amaranth.lib.fifo.SyncFIFO` (``buffered=False``: a combinational
read, one cycle less from an empty queue to its output) through their ``w_stream`` and
``r_stream``; the payload's bits travel unchanged, so the layout is the only definition of
the word.
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

__all__ = ["Queue"]


class Queue(wiring.Component):
    """``w`` → up to ``depth`` payloads → ``r``, in order.

    Behaviour: ``w.ready`` is high while the queue has room and ``r.valid`` while it holds a
    payload; neither depends on the other side's ``valid`` or ``ready`` in the same cycle
    (the FIFO's ``w_rdy`` and ``r_rdy``). Latency from a write into an empty queue to
    ``r.valid``: 2 cycles buffered, 1 cycle unbuffered. Throughput one payload per cycle on
    each side (a buffered queue of depth 1 alternates).

    Parameters
    ----------
    shape : the payload's shape (an ``unsigned``/``signed`` shape, an enumeration or a
        ``data.Layout``).
    depth : entries (at least 1).
    buffered : ``SyncFIFOBuffered`` if true, ``SyncFIFO`` if false.

    Members
    -------
    w : ``In(stream.Signature(shape))``
    r : ``Out(stream.Signature(shape))``
    level : ``Out(range(depth + 1))``: entries held

    Raises
    ------
    TypeError
        if ``shape`` is not shape-castable.
    ValueError
        if ``depth`` is not a positive integer.
    """

    def __init__(self, shape, depth: int, *, buffered: bool = True):
        Shape.cast(shape)
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
            raise ValueError(f"depth must be a positive integer, not {depth!r}")
        self._shape, self._depth, self._buffered = shape, depth, bool(buffered)
        super().__init__({"w": In(stream.Signature(shape)),
                          "r": Out(stream.Signature(shape)),
                          "level": Out(range(depth + 1))})

    @property
    def depth(self) -> int:
        return self._depth

    def elaborate(self, platform):
        m = Module()
        fifo_cls = SyncFIFOBuffered if self._buffered else SyncFIFO
        m.submodules.fifo = fifo = fifo_cls(width=Shape.cast(self._shape).width,
                                            depth=self._depth)
        w, r = fifo.w_stream, fifo.r_stream
        m.d.comb += [w.payload.eq(self.w.payload), w.valid.eq(self.w.valid),
                     self.w.ready.eq(w.ready),
                     self.r.payload.eq(r.payload), self.r.valid.eq(r.valid),
                     r.ready.eq(self.r.ready),
                     self.level.eq(fifo.level)]
        return m
