"""cocotb testbench of the generated ``head`` Verilog, bit-exact against ``sim.golden.attention``
(scenarios and environment variables: ``sim.tb.attn``)."""

import cocotb

from sim.tb.attn import BENCH, STALLS, bench_test, random_passes_test


@cocotb.test(skip=BENCH is not None)
@cocotb.parametrize(stall=STALLS)
async def random_passes(dut, stall):
    """Edge sizes then random passes, random bubbles and back-pressure on every stream."""
    await random_passes_test(dut, "head", stall)


@cocotb.test(skip=BENCH is None)
async def bench(dut):
    """Latency and steady-state throughput of the head pipeline (``TB_BENCH``)."""
    await bench_test(dut)
