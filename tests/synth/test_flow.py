"""Synthesis flow on a tiny Amaranth design: every target runs for real and is sanity-checked.

The design is an 8-bit adder behind one stream pipeline register (9 payload bits + valid = 10
flip-flops). All targets run once per module, in parallel threads (the tools are separate
processes); xc7 is the slowest (~9 s warm, mostly reading Yosys' Xilinx cell library).
"""

import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")     # toolchain.md P6

from amaranth import Module, unsigned
from amaranth.back import verilog
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

import synth
from synth import flow, report
from synth.flow import TARGETS, SynthError, ToolMissing, run_synth, tool_versions

pytestmark = pytest.mark.synth

WIDTH = 8
REG_BITS = (WIDTH + 1) + 1                  # registered sum + valid
IO_BITS = 2 * WIDTH + 2 + (WIDTH + 1) + 2 + 2   # i payload/valid/ready, o ..., clk, rst


class RegisteredAdder(wiring.Component):
    """``o.payload = i.payload.a + i.payload.b``, one cycle later, with backpressure."""

    def __init__(self, width=WIDTH):
        pair = data.StructLayout({"a": unsigned(width), "b": unsigned(width)})
        super().__init__({"i": In(stream.Signature(pair)),
                          "o": Out(stream.Signature(unsigned(width + 1)))})

    def elaborate(self, platform):
        m = Module()
        advance = self.o.ready | ~self.o.valid
        m.d.comb += self.i.ready.eq(advance)
        with m.If(advance):
            m.d.sync += [self.o.valid.eq(self.i.valid),
                         self.o.payload.eq(self.i.payload.a + self.i.payload.b)]
        return m


class SmallRam(wiring.Component):
    """16 x 8-bit memory with one write port and one synchronous read port."""

    addr: In(4)
    wdata: In(8)
    we: In(1)
    rdata: Out(8)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=8, depth=16, init=[])
        wr, rd = mem.write_port(), mem.read_port()
        m.d.comb += [wr.addr.eq(self.addr), wr.data.eq(self.wdata), wr.en.eq(self.we),
                     rd.addr.eq(self.addr), self.rdata.eq(rd.data)]
        return m


COMMON_KEYS = {"cells", "ff", "rtl_ff_bits", "memory_bits", "latches", "io_bits", "fmax_mhz",
               "critical_path_ns", "note", "runtime_s"}
FPGA_KEYS = {"lut", "carry", "bram", "dsp", "lutram", "device", "memory_mapping"}
METRIC_KEYS = {
    "cmos": COMMON_KEYS | {"gates", "transistors", "transistors_partial", "memory_mapping"},
    "asic": COMMON_KEYS | {"liberty", "area_um2", "sequential_area_um2",
                           "combinational_area_um2", "nand2_cell", "nand2_area_um2", "nand2_eq",
                           "memory_mapping", "sta_period_ns", "arrival_ns", "setup_ns",
                           "slack_ns"},
    "ice40": COMMON_KEYS | FPGA_KEYS | {"lc_used", "lc_available", "io_used", "io_available"},
    "ecp5": COMMON_KEYS | FPGA_KEYS | {"comb_used", "comb_available", "ff_used", "ff_available"},
    "xc7": COMMON_KEYS | FPGA_KEYS,
}


def _latch_cells(cells):
    latch = ("$_DLATCH", "$_SR_", "LDCE", "LDPE")
    return {c: n for c, n in cells.items() if "LATCH" in c.upper() or c.startswith(latch)}


@pytest.fixture(scope="module")
def adder_v(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth_src") / "t.v"
    path.write_text(verilog.convert(RegisteredAdder(), name="t", emit_src=False))
    return path


@pytest.fixture(scope="module")
def results(adder_v, tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_runs")
    order = sorted(TARGETS, key=lambda t: t != "xc7")      # the slowest first
    with ThreadPoolExecutor(max_workers=min(len(TARGETS), os.cpu_count() or 1)) as pool:
        futures = {t: pool.submit(run_synth, adder_v, "t", t, root / t) for t in order}
        return {t: f.result() for t, f in futures.items()}


@pytest.mark.parametrize("target", TARGETS)
def test_common(results, target):
    r = results[target]
    m = r.metrics
    assert (r.target, r.top) == (target, "t")
    assert r.yosys.startswith("Yosys 0.") and r.tools["yosys"].startswith("Yosys 0.")
    assert m["rtl_ff_bits"] == REG_BITS
    assert m["latches"] == 0 and not _latch_cells(r.cells)
    assert m["memory_bits"] == 0
    assert m["io_bits"] == IO_BITS
    assert m["ff"] == REG_BITS
    assert m["cells"] == sum(r.cells.values()) > REG_BITS
    assert isinstance(m["note"], str) and m["runtime_s"] > 0
    for path in (r.script, r.log, r.report, *r.files.values()):
        assert path.is_file() and path.parent == r.workdir
    assert "$$" not in r.script.read_text() and "${" not in r.script.read_text()
    assert all(isinstance(v, int | float | str | type(None)) for v in m.values())
    assert set(m) == METRIC_KEYS[target]
    assert json.loads(json.dumps(r.to_dict()))["metrics"] == m


def test_cmos(results):
    m = results["cmos"].metrics
    assert m["transistors"] > 0 and m["transistors_partial"] is False
    assert results["cmos"].cells["$_DFF_P_"] == REG_BITS
    assert m["gates"] == m["cells"] - REG_BITS > 0
    assert m["memory_mapping"] == "flip-flops"
    assert m["fmax_mhz"] is None


def test_asic(results):
    r = results["asic"]
    m = r.metrics
    assert m["area_um2"] > m["sequential_area_um2"] > 0
    assert m["combinational_area_um2"] == pytest.approx(m["area_um2"] - m["sequential_area_um2"])
    assert m["nand2_cell"] == "NAND2X1" and m["nand2_area_um2"] > 0
    assert m["nand2_eq"] == pytest.approx(m["area_um2"] / m["nand2_area_um2"], abs=0.05)
    assert 0 < m["arrival_ns"] < m["sta_period_ns"] and m["setup_ns"] > 0
    assert m["critical_path_ns"] == pytest.approx(m["arrival_ns"] + m["setup_ns"], abs=1e-3)
    assert m["fmax_mhz"] == pytest.approx(1000 / m["critical_path_ns"], rel=1e-3)
    assert m["slack_ns"] > 0
    assert "opensta" in r.tools and r.files["netlist"].read_text().startswith("/*")


@pytest.mark.parametrize("target", ["ice40", "ecp5"])
def test_fpga_pnr(results, target):
    m = results[target].metrics
    assert m["lut"] + m["carry"] > 0
    assert m["bram"] == m["dsp"] == m["lutram"] == 0
    assert m["fmax_mhz"] > 0
    assert m["critical_path_ns"] == pytest.approx(1000 / m["fmax_mhz"], rel=1e-3)
    assert f"nextpnr-{target}" in results[target].tools
    if target == "ice40":
        assert 0 < m["lc_used"] <= m["lc_available"] and m["io_used"] == m["io_bits"]
    else:
        assert m["ff_used"] == REG_BITS and 0 < m["comb_used"] <= m["comb_available"]


def test_xc7(results):
    m = results["xc7"].metrics
    assert m["lut"] > 0 and m["carry"] > 0
    assert not any(c.startswith(("IBUF", "OBUF")) for c in results["xc7"].cells)   # -noiopad
    assert m["fmax_mhz"] is None and "resources only" in m["note"]


def test_ice40_io_limit_gives_resources_only(tmp_path):
    width = 72                                   # 2*72 + 73 + 6 = 223 IO bits > 206
    (tmp_path / "w.v").write_text(verilog.convert(RegisteredAdder(width), name="w",
                                                  emit_src=False))
    progress = []
    r = run_synth(tmp_path / "w.v", "w", "ice40", tmp_path / "ice40", progress=progress.append)
    m = r.metrics
    assert m["io_bits"] == 223 and m["ff"] == m["rtl_ff_bits"] == width + 2
    assert m["fmax_mhz"] is None and m["lc_used"] is None
    assert m["note"] == "design has 223 IO bits, HX8K ct256 has 206; resources only"
    assert set(m) == METRIC_KEYS["ice40"]
    assert progress[0] == "yosys ice40…" and progress[1].startswith("nextpnr-ice40 skipped")
    assert "pnr_report" in r.files and not r.files["pnr_report"].exists()


def test_memory_becomes_flip_flops(tmp_path):
    (tmp_path / "m.v").write_text(verilog.convert(SmallRam(), name="m", emit_src=False))
    m = run_synth(tmp_path / "m.v", "m", "cmos", tmp_path / "cmos").metrics
    assert m["memory_bits"] == 16 * 8
    assert m["rtl_ff_bits"] == 8                       # the read port's data register
    assert m["ff"] == 16 * 8 + 8 and m["memory_mapping"] == "flip-flops"


def test_bad_verilog_is_one_line_error(tmp_path):
    (tmp_path / "bad.v").write_text("module t(input a, output b);\n  assign b = a +;\nendmodule\n")
    progress = []
    with pytest.raises(SynthError) as info:
        run_synth(tmp_path / "bad.v", "t", "cmos", tmp_path / "w", progress=progress.append)
    message = str(info.value)
    assert "\n" not in message and "ERROR" in message and "syntax error" in message
    assert str(tmp_path / "w" / "cmos.log") in message
    assert not isinstance(info.value, ToolMissing)
    assert progress == ["yosys cmos…"]


def test_missing_liberty(adder_v, tmp_path):
    with pytest.raises(ToolMissing) as info:
        run_synth(adder_v, "t", "asic", tmp_path / "w", liberty=tmp_path / "missing.lib")
    assert "\n" not in str(info.value) and "missing.lib" in str(info.value)
    assert not (tmp_path / "w").exists()               # tools are checked before any work


def test_missing_yosys(adder_v, tmp_path, monkeypatch):
    monkeypatch.setenv("YOSYS", str(tmp_path / "no-yosys"))
    with pytest.raises(ToolMissing, match="YOSYS"):
        run_synth(adder_v, "t", "cmos", tmp_path / "w")


def test_argument_errors(adder_v, tmp_path):
    with pytest.raises(ValueError, match="target must be one of"):
        run_synth(adder_v, "t", "vivado", tmp_path)
    with pytest.raises(ValueError, match="top must be"):
        run_synth(adder_v, "t; shell", "cmos", tmp_path)
    with pytest.raises(SynthError, match="verilog must be an existing file"):
        run_synth(tmp_path / "none.v", "t", "cmos", tmp_path)


def test_tool_versions():
    versions = tool_versions()
    assert set(versions) == {"yosys", "nextpnr-ice40", "nextpnr-ecp5", "opensta"}
    assert versions["yosys"].startswith("Yosys ")
    assert versions["opensta"].startswith("OpenSTA ")


def test_all_exports_resolve():
    for module in (synth, flow, report):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
