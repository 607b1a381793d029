"""Smoke synthesis of the ci top-k: the verified Verilog maps cleanly on every target."""

import pytest

from hdl.blocks import emit
from generators.presets import PRESETS
from synth import run_synth

CFG = PRESETS["ci"]


@pytest.fixture(scope="module")
def verilog(tmp_path_factory):
    return emit(CFG, "topk", tmp_path_factory.mktemp("topk_ci"))


@pytest.mark.synth
@pytest.mark.parametrize("target", ["cmos", "asic", "ecp5"])
def test_topk_ci_synthesizes(verilog, target, tmp_path):
    r = run_synth(verilog.verilog, verilog.top, target, tmp_path)
    m = r.metrics
    assert m["latches"] == 0
    assert m["ff"] > 100  # histograms, pipeline and output registers
    # Both packet buffers: buffers x capacity x score width bits.
    assert m["memory_bits"] == CFG.topk.buffers * CFG.topk.capacity * CFG.topk.score.width
    if target == "cmos":
        assert m["transistors"] > 1000
    if target == "asic":
        assert m["area_um2"] > 0 and m["fmax_mhz"] > 0
    if target == "ecp5":
        assert m["lut"] > 0 and m["fmax_mhz"] > 0
