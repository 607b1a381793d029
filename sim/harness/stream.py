"""Stream source and sink for Amaranth ``lib.stream`` ports flattened to Verilog.

A port ``i`` becomes ``i__payload``/``i__valid``/``i__ready``. Payloads are packed with the
hardware's own layout (:mod:`sim.packing`), so testbench and hardware cannot disagree about
bit positions.

:class:`StreamPump` drives one input stream and drains one output stream from a single
per-cycle loop (two awaits a cycle, race-free on Icarus and Verilator): inputs change on the
falling edge, and a transfer is recorded when ``valid`` and ``ready`` are both high in the
read-only phase before the rising edge. Random bubbles on the input (``in_stall``) and random
back-pressure on the output (``out_stall``) are drawn every cycle; ``valid`` is never dropped
before its transfer.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from cocotb.triggers import FallingEdge, ReadOnly

from sim.packing import pack, unpack

__all__ = ["StreamPump"]


class StreamPump:
    def __init__(self, dut, layout_in, layout_out, *, rng: random.Random, in_stall: float = 0.0,
                 out_stall: float = 0.0, i: str = "i", o: str = "o"):
        self.dut, self.rng = dut, rng
        self.li, self.lo = layout_in, layout_out
        self.in_stall, self.out_stall = in_stall, out_stall
        self.ip, self.iv, self.ir = (getattr(dut, f"{i}__{s}") for s in ("payload", "valid",
                                                                          "ready"))
        self.op, self.ov, self.orr = (getattr(dut, f"{o}__{s}") for s in ("payload", "valid",
                                                                           "ready"))
        self.cycle = 0

    async def run(self, packets: list[list[dict]], *, on_beat: Callable[[dict, int], None],
                  on_sent: Callable[[int, int], None] | None = None, serial: bool = False,
                  max_cycles: int) -> bool:
        """Send ``packets`` (lists of beats) and receive until as many ``last`` beats came out.

        ``on_beat(beat, cycle)`` sees every output beat, ``on_sent(packet, cycle)`` the cycle
        of every packet's last input beat. With ``serial`` a packet is sent only after the
        previous packet's output is complete (isolated latency). Returns ``False`` if
        ``max_cycles`` ran out first.
        """
        clk = self.dut.clk
        beats = [(p, b, beat) for p, pkt in enumerate(packets) for b, beat in enumerate(pkt)]
        last_beat = {p: len(pkt) - 1 for p, pkt in enumerate(packets)}
        pos, done = 0, 0
        holding = False
        self.iv.value = 0
        self.orr.value = 0
        while done < len(packets):
            await FallingEdge(clk)
            self.cycle += 1
            if self.cycle > max_cycles:
                return False
            if not holding and pos < len(beats):
                p = beats[pos][0]
                blocked = serial and p > done
                if not blocked and self.rng.random() >= self.in_stall:
                    self.ip.value = pack(self.li, beats[pos][2])
                    holding = True
            self.iv.value = int(holding)
            ready = int(self.rng.random() >= self.out_stall)
            self.orr.value = ready
            await ReadOnly()
            if holding and int(self.ir.value):
                p, b, _ = beats[pos]
                if on_sent is not None and b == last_beat[p]:
                    on_sent(p, self.cycle)
                pos += 1
                holding = False
            if ready and int(self.ov.value):
                beat = unpack(self.lo, int(self.op.value))
                on_beat(beat, self.cycle)
                done += int(beat["last"])
        await FallingEdge(clk)
        self.iv.value = 0
        self.orr.value = 0
        return True
