"""cocotb testbench of the generated ``pv`` Verilog, bit-exact against ``sim.golden.attention``
(scenarios and environment variables: ``sim.tb.attn``)."""

import cocotb

from sim.tb.attn import BENCH, STALLS, random_passes_test


@cocotb.test(skip=BENCH is not None)
@cocotb.parametrize(stall=STALLS)
async def random_passes(dut, stall):
    """Edge sizes then random passes, random bubbles and back-pressure on every stream."""
    await random_passes_test(dut, "pv", stall)
