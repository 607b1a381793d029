"""`verilator --lint-only -Wall` is clean on the generated Verilog of every preset (the waivers
in hdl/lint_waivers.vlt cover only the Amaranth back end's output style, each explained)."""

import pytest

from hdl.blocks import BLOCKS, emit
from generators.presets import PRESETS
from sim.lint import constant_always, lint


@pytest.mark.rtl
@pytest.mark.parametrize("block", list(BLOCKS))
@pytest.mark.parametrize("name", list(PRESETS))
def test_verilator_lint_clean(name, block, tmp_path):
    em = emit(PRESETS[name], block, tmp_path)
    assert lint(em.verilog) == []


@pytest.mark.rtl
def test_lint_reports_findings(tmp_path):
    """The check can fail: an output left undriven in hand-written Verilog is reported."""
    v = tmp_path / "bad.v"
    v.write_text("module bad(input [3:0] a, output [1:0] y, output z);\n"
                 "  assign z = ^a;\nendmodule\n")
    assert any("UNDRIVEN" in ln for ln in lint(v))


def test_constant_always_blocks_are_found():
    text = "  always @*\n    \\cmd [45] = 1'h0;\n  always @*\n    x = y;\n"
    assert constant_always(text) == ["\\cmd [45]"]
