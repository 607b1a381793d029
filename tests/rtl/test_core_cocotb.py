"""RTL tier of the core's blocks, driven by cocotbext-axi: the DMA (hdl.core.axi.Dma) against
its AXI RAM with random pauses on every AXI channel and random bubbles and back-pressure on
its streams (sim/tb/tb_dma.py); the host interface (hdl.core.regs.HostRegs) through its
AXI4-Lite manager, good and bad descriptors (sim/tb/tb_regs.py)."""

import pytest

from generators.presets import PRESETS
from sim.runner import run_cocotb

STALLS = "0:0,0.3:0,0:0.5,0.3:0.5"


@pytest.mark.rtl
@pytest.mark.parametrize("name", ["ci", "paper"])
def test_dma_rows_against_axi_ram(name):
    r = run_cocotb(PRESETS[name], "dma", simulator="icarus", packets=40, seed=4,
                   stalls=STALLS)
    assert r.ok, f"{r.failed} of {r.tests} cocotb tests failed (logs in {r.build_dir})"
    runs = r.result.get("runs", [])
    assert len(runs) == len(STALLS.split(","))
    assert all(x["finished"] and x["mismatches"] == 0 and x["ram_ok"] and x["counters_ok"]
               and x["idle"] for x in runs)
    assert r.result["bad_rows"] == [{"error": 0b100, "beats": 3}]


@pytest.mark.rtl
@pytest.mark.parametrize("name", ["ci", "paper"])
def test_host_registers_check_descriptors(name):
    r = run_cocotb(PRESETS[name], "regs", simulator="icarus", packets=40, seed=5, stalls="0:0")
    assert r.ok, f"{r.failed} of {r.tests} cocotb tests failed (logs in {r.build_dir})"
    run = r.result["runs"][0]
    assert set(run["codes"]) == {0, 2, 4, 5, 6} and run["good"] == run["codes"].count(0)
