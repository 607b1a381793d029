"""Clock, reset, seeded randomness, the run's settings and its results, for cocotb
testbenches.

The runner (``sim.runner``) passes the settings in ``TB_*`` variables; the testbench writes
what it measured with :func:`record` (``TB_RESULT``, a JSON file of this run's own folder)
and how far it got with :func:`advance` (``TB_PROGRESS``), both replaced atomically so a
reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import random
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

__all__ = ["start", "record", "stalls", "packets", "advance"]


async def start(dut, *, reset_cycles: int = 3) -> random.Random:
    """Start a 100 MHz clock on ``dut.clk``, pulse ``dut.rst``, return a seeded RNG."""
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, reset_cycles)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    return random.Random(cocotb.RANDOM_SEED)


def _settings() -> list[tuple[tuple[float, float], int | None]]:
    out = []
    for s in os.environ.get("TB_STALLS", "0:0,0.3:0.5").split(","):
        x = s.split(":")
        out.append(((float(x[0]), float(x[1])), int(x[2]) if len(x) > 2 else None))
    return out


def stalls() -> list[tuple[float, float]]:
    """``TB_STALLS`` (``in:out`` or ``in:out:count`` separated by commas) as ``(in, out)``
    tuples, the stall probabilities of the inputs and the outputs."""
    return [s for s, _ in _settings()]


def packets(stall: tuple[float, float], default: int) -> int:
    """The packets of stall setting ``stall``: its ``count`` in ``TB_STALLS`` if it has one,
    else ``TB_PACKETS`` (else ``default``)."""
    for s, count in _settings():
        if tuple(stall) == s and count is not None:
            return count
    return int(os.environ.get("TB_PACKETS", default))


def _write(path: str, obj):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def record(key: str, value):
    """Append ``value`` to the list ``key`` of the JSON summary at ``TB_RESULT`` (if set)."""
    path = os.environ.get("TB_RESULT")
    if not path:
        return
    try:
        with open(path) as f:
            result = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        result = {}
    result.setdefault(key, []).append(value)
    _write(path, result)


_last = [0.0]


def advance(done: int, total: int | None, label: str = ""):
    """Tell the runner ``done`` of ``total`` units of the running test (``label``: which
    one, e.g. its stall setting) are through; at most twice a second, and always the last
    unit."""
    path = os.environ.get("TB_PROGRESS")
    now = time.monotonic()
    if not path or (now - _last[0] < 0.5 and done != total):
        return
    _last[0] = now
    _write(path, [done, total, label])
