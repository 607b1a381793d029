"""Small stream plumbing: an eager fork.

``Fork`` copies each input beat to several outputs. Each output keeps a ``done`` flag, so
an output that has taken the beat does not see it again while a slower one catches up, and
no output's ``valid`` depends on any ``ready`` (stream rule 3 of ``hdl.common``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Fork"]


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
