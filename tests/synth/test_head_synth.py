"""Smoke synthesis of the ci head pipeline and the breakdown arithmetic of `spatten synth
head --breakdown`."""

import pytest

from generators.cli import area_breakdown
from generators.emit import emit
from generators.presets import PRESETS
from synth import run_synth

CFG = PRESETS["ci"]


@pytest.mark.synth
def test_head_ci_synthesizes_for_cmos(tmp_path):
    em = emit(CFG, "head", tmp_path / "rtl")
    r = run_synth(em.verilog, em.top, "cmos", tmp_path / "cmos")
    m = r.metrics
    assert m["latches"] == 0
    assert m["transistors"] > 10000
    # Memories: the softmax's 3 row buffers and the top-k's packet buffers at least.
    a, t = CFG.attn, CFG.topk
    assert m["memory_bits"] >= 3 * t.capacity * a.score.width + t.buffers * t.capacity * \
        t.score.width


def test_area_breakdown_shares_and_glue():
    rows = [{"block": b, "config": "x", "target": "asic", "area_um2": v}
            for b, v in (("qk", 30.0), ("softmax", 20.0), ("topk", 10.0), ("pv", 30.0),
                         ("head", 100.0))]
    out = {r["block"]: r for r in area_breakdown(rows, "asic")}
    assert out["topk"]["share"] == "10.0 %"
    assert out["glue (head - parts)"]["area_um2"] == 10.0
    assert out["head"]["share"] == "100.0 %"


def test_area_breakdown_counts_every_topk_engine():
    rows = [{"block": b, "config": "x", "target": "ecp5", "lut": v, "fmax_mhz": 50.0}
            for b, v in (("qk", 30), ("softmax", 20), ("topk", 10), ("pv", 20),
                         ("head", 100))]
    out = {r["block"]: r for r in area_breakdown(rows, "ecp5", engines=2)}
    assert out["topk × 2"]["lut"] == 20 and out["topk × 2"]["fmax_mhz"] == 50.0
    assert out["topk × 2"]["share"] == "20.0 %"
    assert out["glue (head - parts)"]["lut"] == 10


def test_area_breakdown_of_the_core():
    from generators.cli import CORE_PARTS

    rows = [{"block": b, "config": "x", "target": "asic", "area_um2": v}
            for b, v in zip((*CORE_PARTS, "core"), (50.0, 20.0, 5.0, 1.0, 1.0, 3.0, 100.0))]
    out = {r["block"]: r for r in area_breakdown(rows, "asic", whole="core",
                                                 parts=CORE_PARTS)}
    assert out["glue (core - parts)"]["area_um2"] == 20.0
    assert out["head"]["share"] == "50.0 %" and out["core"]["share"] == "100.0 %"
