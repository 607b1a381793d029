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

from amaranth import Module, Signal, unsigned
from amaranth.back import verilog
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

import synth
from synth import flow, macro, report
from generators.tools import ToolNotFound
from synth.flow import MEMORY_MODES, TARGETS, SynthError, run_synth, tool_versions

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
    """``depth`` (16) x 8-bit memory with one write port and one synchronous read port."""

    addr: In(4)
    wdata: In(8)
    we: In(1)
    rdata: Out(8)

    def __init__(self, depth=16):
        self._depth = depth
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=8, depth=self._depth, init=[])
        wr, rd = mem.write_port(), mem.read_port()
        m.d.comb += [wr.addr.eq(self.addr), wr.data.eq(self.wdata), wr.en.eq(self.we),
                     rd.addr.eq(self.addr), self.rdata.eq(rd.data)]
        return m


class RamPipe(wiring.Component):
    """16 x 8-bit memory between registers: a 4-bit read address counter feeds the read port
    and the read data + 1 is registered (reg -> memory -> reg paths for OpenSTA).

    ``granularity`` gives the write port one enable per 4 bits; ``transparent`` makes the read
    port transparent for the write port (no macro fits it). With ``twin`` a second, transparent
    16 x 8 memory sits beside the first."""

    waddr: In(4)
    wdata: In(8)
    we: In(2)
    rdata: Out(8)

    def __init__(self, *, granularity=None, transparent=False, twin=False):
        self._granularity, self._transparent, self._twin = granularity, transparent, twin
        super().__init__()

    def _memory(self, m, name, raddr, transparent):
        m.submodules[name] = mem = memory.Memory(shape=8, depth=16, init=[])
        wr = mem.write_port(granularity=self._granularity)
        rd = mem.read_port(transparent_for=[wr] if transparent else ())
        m.d.comb += [wr.addr.eq(self.waddr), wr.data.eq(self.wdata), rd.addr.eq(raddr),
                     wr.en.eq(self.we if self._granularity else self.we[0])]
        return rd.data

    def elaborate(self, platform):
        m = Module()
        raddr, out = Signal(4), Signal(8)
        data = self._memory(m, "mem", raddr, self._transparent)
        if self._twin:
            data = data ^ self._memory(m, "twin", raddr, True)
        m.d.sync += [raddr.eq(raddr + 1), out.eq(data + 1)]
        m.d.comb += self.rdata.eq(out)
        return m


RAM_BITS = 16 * 8
RAM_READ_REG = 8                            # read data register, inside the macro
RAM_REG_BITS = 4 + RAM_READ_REG + 8         # RTL flip-flops: address counter, read data, output


COMMON_KEYS = {"cells", "ff", "rtl_ff_bits", "memory_bits", "latches", "io_bits", "fmax_mhz",
               "critical_path_ns", "note", "runtime_s"}
FPGA_KEYS = {"lut", "carry", "bram", "dsp", "lutram", "device", "memory_mapping"}
METRIC_KEYS = {
    "cmos": COMMON_KEYS | {"gates", "transistors", "transistors_partial", "memory_mapping",
                           "memory_macros", "area_excludes"},
    "asic": COMMON_KEYS | {"liberty", "area_um2", "sequential_area_um2",
                           "combinational_area_um2", "nand2_cell", "nand2_area_um2", "nand2_eq",
                           "memory_mapping", "memory_macros", "area_excludes", "sta_period_ns",
                           "arrival_ns", "setup_ns", "slack_ns"},
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
    assert m["memory_mapping"] == "macro"          # the default, with nothing to map
    assert m["memory_macros"] is None and m["area_excludes"] is None
    assert m["fmax_mhz"] is None
    assert "sram_liberty" not in results["asic"].files
    assert "SRAM" not in results["asic"].metrics["note"]


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
        # the fit check's lower bound: a LUT4 takes one TRELLIS_COMB slot, a CCU2C two
        assert m["lut"] + 2 * m["carry"] <= m["comb_used"]


def test_ecp5_fit_check():
    """P&R is skipped for what cannot fit the LFE5U-85F; LUT4 + 2 x CCU2C counts slots."""
    fits = {"lut": 13127, "carry": 3717, "dsp": 4, "bram": 10, "ff": 7541}   # eighth select
    assert flow.ecp5_over(fits) == []
    # paper select with the flat top-k histogram: 72,899 LUT4 alone would fit, with its
    # 9,823 carry cells it does not
    assert flow.ecp5_over(fits | {"lut": 72899, "carry": 9823}) == [
        "92545 LUT4 + 2 x CCU2C slots > 83640"]
    assert flow.ecp5_over(fits | {"dsp": 528, "ff": 90000}) == ["528 DSP > 156",
                                                                 "90000 FF > 83640"]
    assert flow.ecp5_over({"lut": None, "carry": None, "dsp": None}) == []


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
    m = run_synth(tmp_path / "m.v", "m", "cmos", tmp_path / "cmos", memory="flops").metrics
    assert m["memory_bits"] == 16 * 8
    assert m["rtl_ff_bits"] == 8                       # the read port's data register
    assert m["ff"] == 16 * 8 + 8 and m["memory_mapping"] == "flip-flops"
    assert m["memory_macros"] is None and m["area_excludes"] is None


def test_memory_below_macro_depth_stays_flip_flops(tmp_path):
    """A FIFO's few words are a register file, not an SRAM macro, even in macro mode."""
    depth = macro.MIN_MACRO_DEPTH // 2
    (tmp_path / "m.v").write_text(verilog.convert(SmallRam(depth), name="m", emit_src=False))
    m = run_synth(tmp_path / "m.v", "m", "cmos", tmp_path / "cmos", memory="macro").metrics
    assert m["memory_bits"] == depth * 8 and m["ff"] == depth * 8 + 8
    assert m["memory_mapping"] == "flip-flops" and m["memory_macros"] is None


@pytest.fixture(scope="module")
def ram_runs(tmp_path_factory):
    """RamPipe on cmos and asic in both memory modes: {(target, memory): SynthResult}."""
    root = tmp_path_factory.mktemp("ram_runs")
    (root / "r.v").write_text(verilog.convert(RamPipe(), name="r", emit_src=False))
    jobs = [(t, mem) for t in ("cmos", "asic") for mem in MEMORY_MODES]
    with ThreadPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1)) as pool:
        futures = {job: pool.submit(run_synth, root / "r.v", "r", job[0],
                                    root / f"{job[0]}_{job[1]}", memory=job[1]) for job in jobs}
        return {job: f.result() for job, f in futures.items()}


@pytest.mark.parametrize("target", ["cmos", "asic"])
def test_memory_macro(ram_runs, target):
    r, flops = ram_runs[target, "macro"], ram_runs[target, "flops"]
    m = r.metrics
    assert set(m) == METRIC_KEYS[target]
    assert m["memory_bits"] == RAM_BITS and m["rtl_ff_bits"] == RAM_REG_BITS
    assert m["memory_mapping"] == "macro"
    assert m["memory_macros"] == "1 × 16x8 1R1W" and m["area_excludes"] == "SRAM macros"
    # The memory and its read data register are in the macro; the other flip-flops are not.
    assert m["ff"] == flops.metrics["ff"] - RAM_BITS - RAM_READ_REG == RAM_REG_BITS - RAM_READ_REG
    assert r.cells[macro.MACRO_CELL] == 1 and m["cells"] == sum(r.cells.values())
    assert not any(c.startswith("$mem") for c in r.cells)
    assert f"cell \\{macro.MACRO_CELL} \\mem" in r.files["memories"].read_text()
    for role in ("sram_bb", "sram_map", "memories"):
        assert r.files[role].is_file() and r.files[role].parent == r.workdir
    if target == "cmos":
        assert m["gates"] == m["cells"] - m["ff"] - 1
        assert 0 < m["transistors"] < flops.metrics["transistors"] / 3
        assert m["transistors_partial"] is False and "SRAM macros excluded" in m["note"]
    else:
        assert 0 < m["area_um2"] < flops.metrics["area_um2"] / 3
        assert m["sequential_area_um2"] == m["ff"] * 96.0          # DFFPOSX1 only
        netlist = r.files["netlist"].read_text()
        assert "SRAM_16x8_1R1W mem (" in netlist and macro.MACRO_CELL not in netlist
        assert "cell (SRAM_16x8_1R1W)" in r.files["sram_liberty"].read_text()
        assert "read_liberty asic_sram.lib" in r.files["sta_script"].read_text()
        assert m["fmax_mhz"] > 0 and 0 < m["critical_path_ns"] < m["sta_period_ns"]
        assert m["note"].startswith("reg->reg, ideal clock; SRAM macros are registered")
        sta_log = r.files["sta_log"].read_text()
        assert "(SRAM_16x8_1R1W)" in sta_log and "Warning" not in sta_log


@pytest.mark.parametrize("target", ["cmos", "asic"])
def test_memory_flops_mode(ram_runs, target):
    r = ram_runs[target, "flops"]
    m = r.metrics
    assert set(m) == METRIC_KEYS[target]
    assert m["memory_mapping"] == "flip-flops"
    assert m["memory_macros"] is None and m["area_excludes"] is None
    assert m["ff"] == RAM_BITS + RAM_REG_BITS               # memory bits are flip-flops
    assert macro.MACRO_CELL not in r.cells and "memories" not in r.files
    if target == "asic":
        assert m["fmax_mhz"] > 0 and "sram_liberty" not in r.files
        assert m["note"] == "reg->reg, ideal clock"


def test_memory_macro_bit_write_enable(tmp_path):
    (tmp_path / "g.v").write_text(verilog.convert(RamPipe(granularity=4), name="g",
                                                  emit_src=False))
    r = run_synth(tmp_path / "g.v", "g", "asic", tmp_path / "asic")
    m = r.metrics
    assert m["memory_mapping"] == "macro" and m["memory_macros"] == "1 × 16x8 1R1W bit-write"
    assert m["ff"] == RAM_REG_BITS - RAM_READ_REG and m["fmax_mhz"] > 0
    assert "SRAM_16x8_1R1W_BWE mem (" in r.files["netlist"].read_text()
    assert "bus (WE) {" in r.files["sram_liberty"].read_text()


def test_memory_macro_fallback_to_flip_flops(tmp_path):
    """A transparent read port fits no macro: that memory alone becomes flip-flops."""
    (tmp_path / "x.v").write_text(verilog.convert(RamPipe(transparent=True), name="x",
                                                  emit_src=False))
    (tmp_path / "y.v").write_text(verilog.convert(RamPipe(twin=True), name="y",
                                                  emit_src=False))
    x = run_synth(tmp_path / "x.v", "x", "cmos", tmp_path / "x").metrics
    assert x["memory_mapping"] == "flip-flops" and x["memory_macros"] is None
    assert x["area_excludes"] is None and x["ff"] >= RAM_BITS
    y = run_synth(tmp_path / "y.v", "y", "cmos", tmp_path / "y").metrics
    assert y["memory_bits"] == 2 * RAM_BITS
    assert y["memory_mapping"] == "macro+flip-flops" and y["memory_macros"] == "1 × 16x8 1R1W"
    assert RAM_BITS <= y["ff"] < 2 * RAM_BITS


def test_fpga_ignores_memory_mode(tmp_path):
    (tmp_path / "r.v").write_text(verilog.convert(RamPipe(), name="r", emit_src=False))
    runs = [run_synth(tmp_path / "r.v", "r", "ice40", tmp_path / mem, memory=mem)
            for mem in MEMORY_MODES]
    assert runs[0].metrics == {**runs[1].metrics, "runtime_s": runs[0].metrics["runtime_s"]}
    assert runs[0].metrics["memory_mapping"] == "inferred by synth_ice40"
    assert "memory_macros" not in runs[0].metrics


def test_bad_verilog_is_one_line_error(tmp_path):
    (tmp_path / "bad.v").write_text("module t(input a, output b);\n  assign b = a +;\nendmodule\n")
    progress = []
    with pytest.raises(SynthError) as info:
        run_synth(tmp_path / "bad.v", "t", "cmos", tmp_path / "w", progress=progress.append)
    message = str(info.value)
    assert "\n" not in message and "ERROR" in message and "syntax error" in message
    assert str(tmp_path / "w" / "cmos.log") in message
    assert not isinstance(info.value, ToolNotFound)
    assert progress == ["yosys cmos…"]


def test_missing_liberty(adder_v, tmp_path):
    with pytest.raises(ToolNotFound) as info:
        run_synth(adder_v, "t", "asic", tmp_path / "w", liberty=tmp_path / "missing.lib")
    assert "\n" not in str(info.value) and "missing.lib" in str(info.value)
    assert not (tmp_path / "w").exists()               # tools are checked before any work


def test_missing_yosys(adder_v, tmp_path, monkeypatch):
    monkeypatch.setenv("YOSYS", str(tmp_path / "no-yosys"))
    with pytest.raises(ToolNotFound, match="YOSYS"):
        run_synth(adder_v, "t", "cmos", tmp_path / "w")


def test_argument_errors(adder_v, tmp_path):
    with pytest.raises(ValueError, match="target must be one of"):
        run_synth(adder_v, "t", "vivado", tmp_path)
    with pytest.raises(ValueError, match="top must be"):
        run_synth(adder_v, "t; shell", "cmos", tmp_path)
    with pytest.raises(SynthError, match="verilog must be an existing file"):
        run_synth(tmp_path / "none.v", "t", "cmos", tmp_path)
    with pytest.raises(ValueError, match="memory must be one of macro, flops"):
        run_synth(adder_v, "t", "ice40", tmp_path, memory="bram")


class TwoAdders(wiring.Component):
    """Two registered adders in a row (``first`` and ``second``) and a registered output."""

    def __init__(self):
        pair = data.StructLayout({"a": unsigned(WIDTH), "b": unsigned(WIDTH)})
        super().__init__({"i": In(stream.Signature(pair)),
                          "o": Out(stream.Signature(unsigned(WIDTH + 2)))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.first = first = RegisteredAdder()
        m.submodules.second = second = RegisteredAdder(WIDTH + 1)
        wiring.connect(m, wiring.flipped(self.i), first.i)
        m.d.comb += [second.i.valid.eq(first.o.valid), first.o.ready.eq(second.i.ready),
                     second.i.payload.a.eq(first.o.payload), second.i.payload.b.eq(1)]
        wiring.connect(m, second.o, wiring.flipped(self.o))
        return m


@pytest.fixture(scope="module")
def two_adders_v(tmp_path_factory):
    path = tmp_path_factory.mktemp("two") / "two.v"
    path.write_text(verilog.convert(TwoAdders(), name="two", emit_src=False))
    return path


@pytest.mark.parametrize("target", ["asic", "ecp5"])
def test_blackbox_measures_the_rest(two_adders_v, tmp_path, target):
    whole = run_synth(two_adders_v, "two", target, tmp_path / "whole").metrics
    rest = run_synth(two_adders_v, "two", target, tmp_path / "rest",
                     blackbox=["two.second"]).metrics
    # the first adder's 10 flip-flops stay, the second's 11 go with its black box
    assert whole["ff"] == REG_BITS + REG_BITS + 1 and rest["ff"] == REG_BITS
    assert rest["blackboxes"] == "two.second" and "black boxes (two.second)" in rest["note"]
    assert "blackboxes" not in whole
    assert rest["fmax_mhz"] is not None     # the netlist without the box still times


def test_blackbox_argument_errors(two_adders_v, tmp_path):
    with pytest.raises(ValueError, match="blackbox module 'two.third' is not in the Verilog"):
        run_synth(two_adders_v, "two", "cmos", tmp_path, blackbox=["two.third"])
    with pytest.raises(ValueError, match="module names below 'two', not 'two'"):
        run_synth(two_adders_v, "two", "cmos", tmp_path, blackbox=["two"])
    with pytest.raises(ValueError, match="names a module twice"):
        run_synth(two_adders_v, "two", "cmos", tmp_path, blackbox=["two.first", "two.first"])


def test_tool_versions():
    versions = tool_versions()
    assert set(versions) == {"yosys", "nextpnr-ice40", "nextpnr-ecp5", "opensta"}
    assert versions["yosys"].startswith("Yosys ")
    assert versions["opensta"].startswith("OpenSTA ")


def test_all_exports_resolve():
    for module in (synth, flow, macro, report):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
