"""Clock, reset and seeded randomness for cocotb testbenches."""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

__all__ = ["start", "record", "stalls"]


async def start(dut, *, reset_cycles: int = 3) -> random.Random:
    """Start a 100 MHz clock on ``dut.clk``, pulse ``dut.rst``, return a seeded RNG."""
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, reset_cycles)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    return random.Random(cocotb.RANDOM_SEED)


def stalls() -> list[tuple[float, float]]:
    """``TB_STALLS`` (``in:out`` pairs separated by commas) as ``(in, out)`` tuples."""
    return [tuple(float(x) for x in s.split(":"))
            for s in os.environ.get("TB_STALLS", "0:0,0.3:0.5").split(",")]


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
    with open(path, "w") as f:
        json.dump(result, f)
