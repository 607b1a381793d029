"""amaranth.sim helpers: stream put/get with random stalls, opt-in waveforms (``WAVES=1``)."""

from __future__ import annotations

import os
import random
from pathlib import Path

from amaranth.sim import Simulator

from .packing import const_to_py

__all__ = ["read_port_model", "row_reader_models", "run", "run_models", "stream_send",
           "stream_recv"]


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


def run(dut, *testbenches, background=(), vcd_name: str = "dut",
        deadline: float | None = None):
    """Run ``testbenches`` against ``dut`` with a clock until they all end (``background``
    ones are models that never end); with a ``deadline`` (seconds of simulated time) a run
    still going then fails (a hang is a failure, not a stuck test). VCD in build/waves/ if
    ``WAVES=1``."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for tb in testbenches:
        sim.add_testbench(tb)
    for tb in background:
        sim.add_testbench(tb, background=True)
    if deadline:
        async def watchdog(ctx):
            await ctx.delay(deadline)
            raise AssertionError(f"the testbenches did not end within {deadline * 1e8:.0f} "
                                 "cycles")

        sim.add_testbench(watchdog, background=True)
    if os.environ.get("WAVES") == "1":
        out = Path("build/waves")
        out.mkdir(parents=True, exist_ok=True)
        with sim.write_vcd(str(out / f"{vcd_name}.vcd")):
            sim.run()
    else:
        sim.run()


def run_models(dut, critical, background=(), max_cycles: int = 50_000):
    """:func:`run` with the ``critical`` testbenches, the ``background`` models and a
    deadline of ``max_cycles`` clock cycles."""
    run(dut, *critical, background=background, deadline=max_cycles * 1e-8)


def read_port_model(port, table):
    """A memory read port's model: ``port.pos`` is ``table[port.slot]`` (0 past its end) from
    the cycle after ``port.en``, held until the next read."""
    async def model(ctx):
        pos = 0
        while True:
            _, _, en, slot = await ctx.tick().sample(port.en, port.slot)
            if en:
                pos = table[slot] if slot < len(table) else 0
            ctx.set(port.pos, pos)
    return model


def row_reader_models(req, rows, data_for, *, seed: int, stall, requests: list | None = None,
                      on_landed=None):
    """A DRAM's two models: one takes row requests from ``req`` with random back-pressure
    (probability ``stall[1]``) into ``requests``; the other lands them in order on the
    always-ready ``rows`` after random delays (``stall[0]``), each as ``{kind, slot,
    data_for(request, rng)}``; ``on_landed(count)`` follows each landing. Pass your own
    ``requests`` list to see what was asked."""
    requests = [] if requests is None else requests

    async def take(ctx):
        r = random.Random(seed + 1)
        while True:
            ready = int(r.random() >= stall[1])
            ctx.set(req.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(req.valid, req.payload)
            if valid and ready:
                requests.append(const_to_py(payload))

    async def land(ctx):
        r = random.Random(seed + 2)
        served = 0
        while True:
            while served >= len(requests) or r.random() < stall[0]:
                await ctx.tick()
            q = requests[served]
            ctx.set(rows.payload, {"kind": q["kind"], "slot": q["slot"],
                                   "data": data_for(q, r)})
            ctx.set(rows.valid, 1)
            await ctx.tick()
            ctx.set(rows.valid, 0)
            served += 1
            if on_landed is not None:
                on_landed(served)

    return take, land
