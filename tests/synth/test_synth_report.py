"""Pure-Python tests of synth.report on small hand-written tool outputs (no tools run)."""

import json

import pytest

from synth.report import (
    CELL_CLASSES,
    AreaReport,
    LibertyInfo,
    NextpnrReport,
    StaReport,
    classify_cells,
)

CREATOR = "Yosys 0.70 (git sha1 28ba3cb92, Release, Clang 22.1.0)"

STAT_CMOS = json.dumps({
    "creator": CREATOR,
    "invocation": "stat -json -tech cmos ",
    "modules": {"\\t": {"num_cells": 7}},
    "design": {
        "num_port_bits": 31, "num_memories": 0, "num_memory_bits": 0, "num_cells": 7,
        "num_cells_by_type": {"$_DFF_P_": 2, "$_NAND_": 3, "$_NOT_": 1, "$_SDFFE_PP0P_": 1},
        "estimated_num_transistors": "4548+",
    },
})

STAT_LIBERTY = json.dumps({
    "creator": CREATOR,
    "design": {"num_cells": 3, "area": 120.5, "sequential_area": 96.0,
               "num_cells_by_type": {"DFFPOSX1": 1, "NAND2X1": 1, "INVX1": 1}},
})

STAT_RTL = json.dumps({
    "creator": CREATOR,
    "design": {"num_port_bits": 23, "num_memory_bits": 128, "num_cells": 6,
               "num_cells_by_type": {"$dff_9": 2, "$dff_1": 1, "$adff_4": 1, "$dlatch_3": 1,
                                     "$add_9": 1}},
})

# Yosys 0.23: no "design" block and no area (toolchain.md P11).
STAT_OLD = json.dumps({
    "creator": "Yosys 0.23 (git sha1 7ce5011c24b)",
    "modules": {"\\t": {"num_cells": 2, "num_cells_by_type": {"SB_LUT4": 1, "SB_DFF": 1}}},
})

NEXTPNR = json.dumps({
    "fmax": {"clk$SB_IO_IN_$glb_clk": {"achieved": 290.6, "constraint": 100},
             "slow_clk": {"achieved": 150.0, "constraint": 100},
             "other": {"achieved": 90.0, "constraint": 100}},
    "utilization": {"ICESTORM_LC": {"available": 7680, "used": 15}},
})

STA = """\
Startpoint: _132_ (rising edge-triggered flip-flop clocked by clk)
Endpoint: _125_ (rising edge-triggered flip-flop clocked by clk)
Path Group: clk
Path Type: max

   Delay     Time   Description
-----------------------------------------------------------
   0.000    0.000 ^ _132_/CLK (DFFPOSX1)
   0.164    0.164 v _132_/Q (DFFPOSX1)
   0.657    0.821 ^ _115_/Y (NOR2X1)
   0.000    0.821 ^ _125_/D (DFFPOSX1)
            0.821   data arrival time

  10.000   10.000   clock clk (rise edge)
           10.000 ^ _125_/CLK (DFFPOSX1)
  -0.179    9.821   library setup time
            9.821   data required time
-----------------------------------------------------------
            9.821   data required time
           -0.821   data arrival time
-----------------------------------------------------------
            9.000   slack (MET)


wns 0.00
"""

LIBERTY = """\
library(tiny) {
  time_unit : "1ns";
  cell (INVX2) { area : 24; pin(A) { direction : input; } }
  cell (INVX1) {
    area : 16;
    pin(Y) { direction : output; function : "(!A)"; }
  }
  cell (NAND2X2) { area : 32; }
  cell (NAND2X1) {
  area : 24;
  }
  cell (NAND2BX1) { area : 20; }
  cell (DFFPOSX1) {
    area : 96;
    ff (DS0000,P0002) { next_state : "D"; clocked_on : "CLK"; }
  }
  cell (LATCH) {
    area : 0;
    latch (DS0000,P0000) { data_in : "D"; enable : "CLK"; }
  }
}
"""


def test_area_report_cmos():
    r = AreaReport.from_stat_json(STAT_CMOS)
    assert r.yosys == CREATOR and r.short_version == "Yosys 0.70 (git sha1 28ba3cb92)"
    assert (r.transistors, r.transistors_partial) == (4548, True)
    assert r.num_cells == 7 and r.port_bits == 31 and r.memory_bits == 0
    assert r.area is None and r.sequential_area is None
    assert r.count("$_DFF", "$_SDFF") == 3 and r.count("SB_") == 0
    assert r.register_bits == 3                     # fine-grained flops count one each
    with pytest.raises(TypeError):
        r.cells["$_NOT_"] = 2                       # read-only mapping


def test_area_report_liberty_and_classes():
    r = AreaReport.from_stat_json(STAT_LIBERTY)
    assert (r.area, r.sequential_area, r.transistors, r.transistors_partial) == (
        120.5, 96.0, None, False)
    info = LibertyInfo.from_text(LIBERTY)
    counts = classify_cells("asic", r.cells, info)
    assert counts["ff"] == 1 and counts["latch"] == 0
    with pytest.raises(ValueError, match="needs the LibertyInfo"):
        classify_cells("asic", r.cells)


def test_area_report_rtl_bits():
    r = AreaReport.from_stat_json(STAT_RTL)
    assert r.register_bits == 2 * 9 + 1 + 4
    assert r.latch_bits == 3
    assert r.memory_bits == 128 and r.port_bits == 23
    bare = AreaReport.from_stat_json(STAT_RTL.replace("$dff_1", "$dff"))
    with pytest.raises(ValueError, match="stat -width"):
        _ = bare.register_bits


def test_area_report_old_yosys():
    r = AreaReport.from_stat_json(STAT_OLD, top="t")
    assert dict(r.cells) == {"SB_LUT4": 1, "SB_DFF": 1} and r.area is None
    assert r.port_bits is None and r.memory_bits is None
    assert classify_cells("ice40", r.cells) == {
        "lut": 1, "ff": 1, "latch": 0, "carry": 0, "bram": 0, "dsp": 0, "lutram": 0}
    with pytest.raises(ValueError, match="'creator'"):
        AreaReport.from_stat_json("[]")


def test_cell_classes_table():
    assert set(CELL_CLASSES) == {"cmos", "asic", "ice40", "ecp5", "xc7"}
    for classes in CELL_CLASSES.values():
        assert set(classes) == {"lut", "ff", "latch", "carry", "bram", "dsp", "lutram"}
    cells = {"LUT2": 9, "LUT6": 1, "FDRE": 10, "CARRY4": 3, "RAMB36E1": 1, "DSP48E1": 2,
             "SRLC32E": 1, "BUFG": 1}
    assert classify_cells("xc7", cells) == {
        "lut": 10, "ff": 10, "latch": 0, "carry": 3, "bram": 1, "dsp": 2, "lutram": 1}
    with pytest.raises(ValueError, match="target must be one of"):
        classify_cells("gowin", cells)


def test_nextpnr_report():
    r = NextpnrReport.from_json(NEXTPNR)
    assert r.clock_fmax() == ("slow_clk", 150.0)            # the slowest "clk" clock
    assert r.clock_fmax("glb") == ("clk$SB_IO_IN_$glb_clk", 290.6)
    assert r.clock_fmax("sys") == ("other", 90.0)           # no match: slowest of all
    assert r.constraint["other"] == 100.0
    assert (r.used("ICESTORM_LC"), r.available("ICESTORM_LC")) == (15, 7680)
    assert r.used("SB_IO") is None
    assert NextpnrReport.from_json("{}").clock_fmax() is None


def test_sta_report():
    r = StaReport.from_text(STA)
    assert (r.arrival_ns, r.setup_ns, r.slack_ns) == (0.821, 0.179, 9.0)
    assert (r.startpoint, r.endpoint) == ("_132_", "_125_")
    assert r.critical_path_ns == pytest.approx(1.0)
    assert r.fmax_mhz == pytest.approx(1000.0)
    none = StaReport.from_text("No paths found.\nwns 0.00\n")
    assert none.critical_path_ns is None and none.fmax_mhz is None
    with pytest.raises(ValueError, match="data arrival time"):
        StaReport.from_text("Error: something\n")


def test_liberty_info():
    info = LibertyInfo.from_text(LIBERTY)
    assert info.name == "tiny"
    assert info.nand2.name == "NAND2X1" and info.nand2.area == 24.0    # NAND2BX1 is no NAND2
    assert info.inverter.name == "INVX1"
    assert info.cells["DFFPOSX1"].kind == "ff" and info.cells["LATCH"].kind == "latch"
    assert info.cells["INVX1"].kind is None
    sky = "library(x) {\n  cell (sky130_fd_sc_hd__inv_1) { area : 3.75; }\n}\n"
    no_nand = LibertyInfo.from_text(sky)
    assert no_nand.nand2 is None and no_nand.inverter.name == "sky130_fd_sc_hd__inv_1"
    with pytest.raises(ValueError, match="library"):
        LibertyInfo.from_text("not a liberty file")
