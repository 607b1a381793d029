"""amaranth.sim helpers: stream put/get with random stalls, opt-in waveforms (``WAVES=1``)."""

from __future__ import annotations

import os
import random
from pathlib import Path

from amaranth.sim import Simulator

from .packing import const_to_py

__all__ = ["run", "stream_send", "stream_recv"]


async def stream_send(ctx, port, items, *, rng: random.Random, stall: float = 0.0,
                      stop=None):
    """Drive ``items`` (dicts for the port's layout, or ready-made payload values) into a
    stream with random bubbles. ``stop()``, if given, is polled while a beat waits for
    ``ready``: returning true abandons the rest (a receiver that finished or timed out)."""
    layout = port.payload.shape()
    for item in items:
        while rng.random() < stall:
            ctx.set(port.valid, 0)
            await ctx.tick()
        ctx.set(port.payload, layout.const(item) if isinstance(item, (dict, list)) else item)
        ctx.set(port.valid, 1)
        if stop is None:
            await ctx.tick().until(port.ready)
            continue
        while True:
            _, _, ready = await ctx.tick().sample(port.ready)
            if ready:
                break
            if stop():
                return
    ctx.set(port.valid, 0)


async def stream_recv(ctx, port, *, rng: random.Random, stall: float = 0.0,
                      until_last: int | None = None, until_beats: int | None = None,
                      on_beat=None):
    """Accept beats with random back-pressure until ``until_last`` beats with ``last`` set
    have been taken, or ``until_beats`` beats (for payloads without ``last``)."""
    if (until_last is None) == (until_beats is None):
        raise ValueError("give exactly one of until_last and until_beats")
    seen, goal = 0, until_beats if until_last is None else until_last
    while seen < goal:
        ready = int(rng.random() >= stall)
        ctx.set(port.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
        if ready and valid:
            beat = const_to_py(payload)
            if on_beat is not None:
                on_beat(beat)
            seen += 1 if until_last is None else int(beat["last"])
    ctx.set(port.ready, 0)


def run(dut, *testbenches, vcd_name: str = "dut", deadline: float | None = None):
    """Run ``testbenches`` against ``dut`` with a clock; VCD in build/waves/ if ``WAVES=1``."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for tb in testbenches:
        sim.add_testbench(tb)
    if os.environ.get("WAVES") == "1":
        out = Path("build/waves")
        out.mkdir(parents=True, exist_ok=True)
        with sim.write_vcd(str(out / f"{vcd_name}.vcd")):
            sim.run_until(deadline) if deadline else sim.run()
    else:
        sim.run_until(deadline) if deadline else sim.run()
