"""Several stream sources and sinks driven from one per-cycle loop (cocotb).

The multi-port sibling of :class:`sim.harness.stream.StreamPump`, for blocks with more than
one input or output stream (the attention datapath). Same timing discipline: inputs change on
the falling edge, transfers are recorded in the read-only phase before the rising edge, so
it is race-free on Icarus and Verilator. Every cycle each source with a queued beat raises
``valid`` unless a random bubble is drawn (``valid`` then stays high, payload unchanged,
until the transfer), and each sink's ``ready`` is drawn at random.

Sources are fed while the loop runs (``push``), so a callback can answer an output beat
with an input beat (a memory answering a fetch request) or release the next request.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable

from cocotb.triggers import FallingEdge, ReadOnly

from sim.packing import pack, unpack

__all__ = ["MultiPump"]


class _Port:
    def __init__(self, dut, name: str, layout, stall: float):
        self.name, self.layout, self.stall = name, layout, stall
        self.payload, self.valid, self.ready = (getattr(dut, f"{name}__{s}")
                                                for s in ("payload", "valid", "ready"))


class MultiPump:
    """``sources``/``sinks``: ``{port name: (layout, stall probability)}``."""

    def __init__(self, dut, sources: dict, sinks: dict, *, rng: random.Random):
        self.dut, self.rng = dut, rng
        self.src = {n: _Port(dut, n, lay, st) for n, (lay, st) in sources.items()}
        self.snk = {n: _Port(dut, n, lay, st) for n, (lay, st) in sinks.items()}
        self.queue = {n: deque() for n in self.src}
        self.holding = {n: None for n in self.src}
        self.cycle = 0
        self.sent = {n: 0 for n in self.src}
        self.received = {n: 0 for n in self.snk}

    def push(self, name: str, beats):
        self.queue[name].extend(beats)

    def idle(self) -> bool:
        """No beat is queued or presented on any source."""
        return all(not q for q in self.queue.values()) and \
            all(h is None for h in self.holding.values())

    async def run(self, *, on_beat: Callable[[str, dict, int], None],
                  done: Callable[[], bool], max_cycles: int,
                  on_sent: Callable[[str, dict, int], None] | None = None) -> bool:
        """Run until ``done()`` is true; ``False`` if ``max_cycles`` ran out first.

        ``on_beat(sink, beat, cycle)`` sees every output beat, ``on_sent(source, beat,
        cycle)`` every input beat taken.
        """
        clk = self.dut.clk
        for p in self.src.values():
            p.valid.value = 0
        for p in self.snk.values():
            p.ready.value = 0
        while not done():
            await FallingEdge(clk)
            self.cycle += 1
            if self.cycle > max_cycles:
                return False
            for n, p in self.src.items():
                if self.holding[n] is None and self.queue[n] and self.rng.random() >= p.stall:
                    self.holding[n] = self.queue[n].popleft()
                    p.payload.value = pack(p.layout, self.holding[n])
                p.valid.value = int(self.holding[n] is not None)
            ready = {}
            for n, p in self.snk.items():
                ready[n] = int(self.rng.random() >= p.stall)
                p.ready.value = ready[n]
            await ReadOnly()
            taken = [(n, self.holding[n]) for n, p in self.src.items()
                     if self.holding[n] is not None and int(p.ready.value)]
            beats = [(n, unpack(p.layout, int(p.payload.value))) for n, p in self.snk.items()
                     if ready[n] and int(p.valid.value)]
            for n, beat in taken:
                self.holding[n] = None
                self.sent[n] += 1
                if on_sent is not None:
                    on_sent(n, beat, self.cycle)
            for n, beat in beats:
                self.received[n] += 1
                on_beat(n, beat, self.cycle)
        await FallingEdge(clk)
        for p in self.src.values():
            p.valid.value = 0
        for p in self.snk.values():
            p.ready.value = 0
        return True
