"""RTL tier of the core and its blocks, driven by cocotbext-axi: the DMA (hdl.core.axi.Dma)
against its AXI RAM with random pauses on every AXI channel and random bubbles and
back-pressure on its streams (sim/tb/tb_dma.py); the host interface (hdl.core.regs.HostRegs)
through its AXI4-Lite manager, good and bad descriptors (sim/tb/tb_regs.py); the whole core
(hdl.core.core.SpAttenCore) end to end against sim.golden.core (sim/tb/tb_core.py)."""

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


@pytest.mark.rtl
@pytest.mark.parametrize("name,simulator,tokens,layers", [("ci", "icarus", 24, 4),
                                                          ("eighth", "verilator", 40, 3)])
def test_core_layers_bit_exact(name, simulator, tokens, layers):
    """Summarization over every layer, decode steps, bad descriptors: outputs, keep lists,
    codes and per-layer DRAM byte counts equal the golden model's; with and without AXI
    pauses; both sides of the refetch decision run."""
    stalls = "0:0,0:0.5" if name == "ci" else "0:0.3"
    r = run_cocotb(PRESETS[name], "core", simulator=simulator, packets=tokens, seed=9,
                   stalls=stalls, tb_env={"TB_LAYERS": layers, "TB_HEADS": 4})
    assert r.ok, f"{r.failed} of {r.tests} cocotb tests failed (logs in {r.build_dir})"
    runs = r.result["runs"]
    assert len(runs) == len(stalls.split(","))
    for run in runs:
        assert run["refetched"] and run["msb_kept"]
        assert {l["mode"] for l in run["layers"]} == {0, 1}
        assert {0, 1, 6} <= set(run["codes"])


@pytest.mark.rtl
def test_core_bench_sweep_prunes_traffic(tmp_path):
    """The keep-ratio sweep runs (each layer checked against the golden model in bench mode)
    and pruning cuts both DRAM bytes and cycles against the dense run."""
    from sim.bench import bench_core_sweep

    rows = bench_core_sweep(PRESETS["ci"], n=16, heads=2, layers=2, ratios=[1.0, 0.5],
                            simulator="icarus", seed=3, out=tmp_path)
    dense, pruned = rows
    assert pruned["DRAM read"] < dense["DRAM read"] and pruned["cycles"] < dense["cycles"]
    assert (tmp_path / "core_sweep.png").stat().st_size > 0
