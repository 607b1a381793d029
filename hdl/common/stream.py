"""Small stream plumbing: an eager fork and a packet-wise round-robin split and merge.

``Fork`` copies each input beat to several outputs. Each output keeps a ``done`` flag, so
an output that has taken the beat does not see it again while a slower one catches up, and
no output's ``valid`` depends on any ``ready`` (stream rule 3 of ``hdl.common``).

``PacketSplit`` and ``PacketMerge`` run ``n`` copies of an in-order block side by side:
packet ``j`` goes to copy ``j mod n`` and the results are taken back from copy ``j mod n``,
so the merged stream keeps the input's packet order whatever each copy's latency. Both are
combinational (no added latency); ``valid`` never depends on ``ready``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Fork", "PacketSplit", "PacketMerge"]


class Fork(wiring.Component):
    """``i`` → ``o0 .. o{n-1}``, every beat delivered once to every output.

    Parameters
    ----------
    shape : the payload shape of all ports.
    n : number of outputs (at least 2).
    """

    def __init__(self, shape, n: int = 2):
        if not isinstance(n, int) or n < 2:
            raise ValueError(f"n must be an integer of at least 2, not {n!r}")
        self._n = n
        super().__init__({"i": In(stream.Signature(shape)),
                          **{f"o{j}": Out(stream.Signature(shape)) for j in range(n)}})

    def elaborate(self, platform):
        m = Module()
        outs = [getattr(self, f"o{j}") for j in range(self._n)]
        done = [Signal(name=f"done{j}") for j in range(self._n)]
        finished = [Signal(name=f"finished{j}") for j in range(self._n)]
        for o, d, f in zip(outs, done, finished):
            m.d.comb += [o.payload.eq(self.i.payload), o.valid.eq(self.i.valid & ~d),
                         f.eq(d | o.ready)]
        all_done = Signal()
        m.d.comb += [all_done.eq(Cat(*finished).all()), self.i.ready.eq(all_done)]
        for o, d in zip(outs, done):
            with m.If(self.i.valid):
                with m.If(all_done):
                    m.d.sync += d.eq(0)
                with m.Elif(o.valid & o.ready):
                    m.d.sync += d.eq(1)
        return m


def _check_ways(shape, n) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ValueError(f"n must be an integer of at least 2, not {n!r}")
    if not isinstance(shape, data.StructLayout) or "last" not in shape.members:
        raise ValueError(f"shape must be a StructLayout with a 'last' field (packets end on "
                         f"it), not {shape!r}")
    return n


class _RoundRobin(wiring.Component):
    """Shared by the split and the merge: ``sel`` counts packets (``last`` beats) mod n."""

    def __init__(self, n: int, members: dict):
        self._n = n
        super().__init__(members)

    def _selector(self, m, beat_taken):
        sel = Signal(range(self._n))
        with m.If(beat_taken):
            m.d.sync += sel.eq(Mux(sel == self._n - 1, 0, sel + 1))
        return sel


class PacketSplit(_RoundRobin):
    """``i`` → ``o0 .. o{n-1}``: whole packets (ended by ``payload.last``), round-robin from
    ``o0``.

    Parameters
    ----------
    shape : the payload shape of all ports; it must have a ``last`` field.
    n : number of outputs (at least 2).
    """

    def __init__(self, shape, n: int = 2):
        super().__init__(_check_ways(shape, n), {
            "i": In(stream.Signature(shape)),
            **{f"o{j}": Out(stream.Signature(shape)) for j in range(n)}})

    def elaborate(self, platform):
        m = Module()
        outs = [getattr(self, f"o{j}") for j in range(self._n)]
        sel = self._selector(m, self.i.valid & self.i.ready & self.i.payload.last)
        for j, o in enumerate(outs):
            m.d.comb += [o.payload.eq(self.i.payload), o.valid.eq(self.i.valid & (sel == j))]
            with m.If(sel == j):
                m.d.comb += self.i.ready.eq(o.ready)
        return m


class PacketMerge(_RoundRobin):
    """``i0 .. i{n-1}`` → ``o``: one whole packet from each input in turn, from ``i0``.

    Parameters
    ----------
    shape : the payload shape of all ports; it must have a ``last`` field.
    n : number of inputs (at least 2).
    """

    def __init__(self, shape, n: int = 2):
        super().__init__(_check_ways(shape, n), {
            **{f"i{j}": In(stream.Signature(shape)) for j in range(n)},
            "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        ins = [getattr(self, f"i{j}") for j in range(self._n)]
        sel = self._selector(m, self.o.valid & self.o.ready & self.o.payload.last)
        for j, i in enumerate(ins):
            m.d.comb += i.ready.eq(self.o.ready & (sel == j))
            with m.If(sel == j):
                m.d.comb += [self.o.payload.eq(i.payload), self.o.valid.eq(i.valid)]
        return m
