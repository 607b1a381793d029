"""Clock, reset and seeded randomness for cocotb testbenches."""

from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

__all__ = ["start"]


async def start(dut, *, reset_cycles: int = 3) -> random.Random:
    """Start a 100 MHz clock on ``dut.clk``, pulse ``dut.rst``, return a seeded RNG."""
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, reset_cycles)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    return random.Random(cocotb.RANDOM_SEED)
