"""synth.macro without any tool: memory dump parsing, netlist renaming, macro liberty."""

import pytest

from synth.macro import (MACRO_CELL, MemoryMap, SramMacro, _const, liberty_text,
                         rename_macros)
from synth.report import LibertyInfo

DUMP = r"""

  attribute \src "t.v:32.13-32.16|t_sram_map.v:88.4-96.3"
  attribute \module_not_derived 1
  cell \SPATTEN_SRAM \mem
    parameter \DEPTH 128
    parameter \WIDTH 192
    parameter \ABITS 7
    parameter \BWE 1'0
    connect \CLK \clk
    connect \RE \ce
    connect \RADDR \raddr
    connect \RDATA \_0_
  end

  cell $mem_v2 \lut
    parameter \MEMID "\\lut"
    parameter \WIDTH 8
    parameter \OFFSET 0
    parameter \SIZE 16
    parameter \ABITS 4
    parameter \INIT 8'xxxxxxxx
    parameter \RD_PORTS 2
    connect \RD_CLK 2'xx
  end

  cell \SPATTEN_SRAM \mem2
    parameter \DEPTH 128
    parameter \WIDTH 192
    parameter \ABITS 7
    parameter \BWE 1'0
  end

  cell \SPATTEN_SRAM \mask
    parameter \DEPTH 32'00000000000000000000000000010000
    parameter \WIDTH 8
    parameter \ABITS 4
    parameter \BWE 1'1
  end
"""

NETLIST = r"""module t(clk, a, q);
  DFFPOSX1 _1_ (
    .CLK(clk),
    .D(a),
    .Q(q)
  );
  SPATTEN_SRAM #(
    .ABITS(32'd7),
    .BWE(1'h0),
    .DEPTH(32'd128),
    .WIDTH(32'd192)
  ) mem (
    .CLK(clk),
    .WE(we)
  );
  SPATTEN_SRAM #(
    .ABITS(32'd4),
    .BWE(1'h1),
    .DEPTH(32'd16),
    .WIDTH(32'd8)
  ) \mask$12  (
    .CLK(clk)
  );
endmodule
"""


def test_const():
    assert _const("16") == 16 and _const("1'0") == 0 and _const("1'1") == 1
    assert _const("32'00000000000000000000000010000000") == 128
    assert _const("32'd192") == 192 and _const("1'h0") == 0 and _const("8'sb1010") == 10


def test_macro_names():
    m = SramMacro(128, 192, 7)
    assert (m.cell, m.shape, m.bits) == ("SRAM_128x192_1R1W", "128x192 1R1W", 24576)
    b = SramMacro(16, 8, 4, bwe=True)
    assert (b.cell, b.shape) == ("SRAM_16x8_1R1W_BWE", "16x8 1R1W bit-write")


def test_memory_map_from_dump():
    mm = MemoryMap.from_dump(DUMP)
    assert mm.macros == (SramMacro(16, 8, 4, True), SramMacro(128, 192, 7),
                         SramMacro(128, 192, 7))
    assert mm.flop_memories == ((16, 8),)
    assert mm.mapping == "macro+flip-flops"
    assert mm.summary == "1 × 16x8 1R1W bit-write, 2 × 128x192 1R1W"
    assert mm.macro_bits == 128 + 2 * 24576


def test_memory_map_cases():
    empty = MemoryMap.from_dump("")
    assert (empty.mapping, empty.summary, empty.macros) == ("macro", None, ())
    flops = MemoryMap.from_dump("cell $mem_v2 \\m\n parameter \\SIZE 4\n"
                                " parameter \\WIDTH 2\nend\n")
    assert (flops.mapping, flops.summary) == ("flip-flops", None)
    with pytest.raises(ValueError, match="lacks a readable parameter"):
        MemoryMap.from_dump(f"cell \\{MACRO_CELL} \\m\n parameter \\WIDTH 2\nend\n")
    with pytest.raises(ValueError, match="has no 'end'"):
        MemoryMap.from_dump(f"cell \\{MACRO_CELL} \\m\n parameter \\WIDTH 2\n")


def test_rename_macros():
    text, found = rename_macros(NETLIST)
    assert found == (SramMacro(128, 192, 7), SramMacro(16, 8, 4, True))
    assert "  SRAM_128x192_1R1W mem (\n    .CLK(clk),\n    .WE(we)\n  );" in text
    assert "  SRAM_16x8_1R1W_BWE \\mask$12  (\n" in text
    assert MACRO_CELL not in text and "DFFPOSX1 _1_ (" in text
    assert rename_macros("module t; endmodule\n") == ("module t; endmodule\n", ())
    with pytest.raises(ValueError, match="DEPTH"):
        rename_macros(f"  {MACRO_CELL} #(\n    .WIDTH(32'd8)\n  ) m (\n  );\n")
    with pytest.raises(ValueError, match="unexpected form"):
        rename_macros(f"  {MACRO_CELL} m (\n  );\n")


def test_liberty_text():
    text = liberty_text([SramMacro(128, 192, 7), SramMacro(128, 192, 7),
                         SramMacro(2, 4, 1, True)])
    info = LibertyInfo.from_text(text)
    assert info.name == "spatten_sram"
    assert set(info.cells) == {"SRAM_128x192_1R1W", "SRAM_2x4_1R1W_BWE"}
    assert all(c.area == 0 and c.kind is None for c in info.cells.values())
    for width in (4, 7, 192):
        assert f"type (sram_bus_{width})" in text
    assert "type (sram_bus_1)" not in text          # 1-bit ports are plain pins
    assert text.count("timing_type : rising_edge;") == 2
    assert text.count("timing_type : setup_rising;") == 2 * 5   # RE RADDR WE WADDR WDATA
    assert text.count("{") == text.count("}")
