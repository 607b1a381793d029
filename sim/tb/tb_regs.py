"""cocotb testbench of the generated ``regs`` Verilog (the host interface) driven by
cocotbext-axi's AXI4-Lite manager.

Random layer descriptors, good and bad, are written field by field, then STARTed: a bad one
must set DONE with ``generators.regmap.check_descriptor``'s code and send nothing; a good one
must come out on ``desc`` bit for bit, keep BUSY until the core's ``done`` beat, then show
DONE and that beat's code. Every register reads back what was written; ID and the counters
read as driven. ``desc`` is back-pressured at random. Environment: ``TB_CONFIG``,
``TB_PACKETS`` (descriptors), ``TB_RESULT``.
"""

import os

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from generators.config import SpAttenConfig
from generators.dram import BASES, base_align
from generators.regmap import (COUNTERS, ID_VALUE, OFFSETS, check_descriptor, pack_register,
                               register_writes, unpack_register)
from generators.status import Status
from hdl.core.regs import desc_layout
from sim.harness import env
from sim.packing import unpack

CFG = SpAttenConfig.from_json(os.environ["TB_CONFIG"])
COUNT = int(os.environ.get("TB_PACKETS", "40"))


def _descriptor(rng):
    c, a, t = CFG.core, CFG.attn, CFG.topk
    bus = c.bus_bytes
    mode = rng.randrange(2)
    n = rng.randint(1, t.capacity)
    d = {"mode": mode, "clear": rng.randrange(2), "age_norm": mode and rng.randrange(2),
         "layer": rng.randrange(c.layers), "heads": rng.randint(1, c.heads), "n": n,
         "newest": n - 1 if mode else rng.randrange(1 << 16),
         "token_keep": rng.randint(1, n), "head_keep": rng.randint(1, c.heads),
         "value_keep": 0, "scale": rng.randrange(1 << a.scale_bits), "shift": rng.randrange(64),
         "msb_only": rng.randrange(2), "threshold": rng.randint(0, a.prob.max_raw),
         "sinks": rng.randrange(4), "recent": rng.randrange(8),
         **{b: rng.randrange(1 << (c.addr_bits - 12)) * base_align(CFG, b) for b in BASES}}
    d["value_keep"] = rng.randint(0, d["token_keep"])
    fault = rng.randrange(8)  # about half are bad, one rule at a time
    if fault == 0:   # off the bus, or (planes) bus-aligned but off the row stride
        b = rng.choice(BASES)
        step = rng.choice([1, bus]) if base_align(CFG, b) > bus else 1
        d[b] += step * rng.randint(1, base_align(CFG, b) // step - 1)
    elif fault == 1:
        key = rng.choice(["n", "heads", "layer"])
        d[key] = {"n": rng.choice([0, min(t.capacity + 1, 0xFFFF)]),
                  "heads": rng.choice([0, c.heads + 1]), "layer": c.layers}[key]
    elif fault == 2:
        d["threshold"] = a.prob.max_raw + 1
    elif fault == 3:
        d["value_keep"] = d["token_keep"] + 1
    return d


def _words(d):
    """Register writes for descriptor ``d``, CTRL left out: {offset: value}."""
    return dict(register_writes(d)[:-1])


@cocotb.test(timeout_time=2000 * COUNT + 1000, timeout_unit="us")
async def descriptors(dut):
    """Good and bad descriptors through the registers; codes, desc beats, read-back."""
    rng = await env.start(dut)
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil_"), dut.clk, dut.rst)
    layout = desc_layout(CFG)
    counters = {"bytes_read": rng.randrange(1 << 48), "bytes_written": rng.randrange(1 << 48),
                "cycles": rng.randrange(1 << 48)}
    for k, v in counters.items():
        getattr(dut, k).value = v
    dut.done__valid.value = 0
    got = []

    async def monitor():
        while True:
            dut.desc__ready.value = int(rng.random() < 0.5)
            await ReadOnly()
            if int(dut.desc__valid.value) and int(dut.desc__ready.value):
                got.append(unpack(layout, int(dut.desc__payload.value)))
            await RisingEdge(dut.clk)

    cocotb.start_soon(monitor())
    assert await axil.read_dword(OFFSETS["ID"]) == ID_VALUE
    for off, name in COUNTERS.items():
        lo = await axil.read_dword(OFFSETS[off])
        hi = await axil.read_dword(OFFSETS[off] + 4)
        assert lo | hi << 32 == counters[name], name
    codes = []
    for j in range(COUNT):
        d = _descriptor(rng)
        want = check_descriptor(CFG, d)
        for off, val in _words(d).items():
            await axil.write_dword(off, val)
        for off, val in _words(d).items():
            assert await axil.read_dword(off) == val, hex(off)
        before = len(got)
        ctrl = pack_register("CTRL", d)                       # START reads back as 0
        await axil.write_dword(OFFSETS["CTRL"], pack_register("CTRL", {**d, "start": 1}))
        assert await axil.read_dword(OFFSETS["CTRL"]) == ctrl
        if want != Status.OK:
            st = await axil.read_dword(OFFSETS["STATUS"])
            assert st == pack_register("STATUS", {"done": 1, "code": want}), (j, hex(st), want)
            for _ in range(5):
                await RisingEdge(dut.clk)
            assert len(got) == before, "a bad descriptor went out"
        else:
            for _ in range(100):
                if len(got) > before:
                    break
                await RisingEdge(dut.clk)
            st = await axil.read_dword(OFFSETS["STATUS"])
            assert len(got) > before, f"descriptor {j}: nothing on desc, STATUS {st:#x}"
            beat = got[-1]
            assert all(beat[k] == d[k] for k in beat), (j, beat, d)
            assert st == pack_register("STATUS", {"busy": 1}), f"STATUS {st:#x} is not BUSY"
            code = rng.choice([0, 1, 3])
            dut.done__payload.value = code
            dut.done__valid.value = 1
            await RisingEdge(dut.clk)
            while not int(dut.done__ready.value):
                await RisingEdge(dut.clk)
            dut.done__valid.value = 0
            st = await axil.read_dword(OFFSETS["STATUS"])
            assert unpack_register("STATUS", st) == {"busy": 0, "done": 1, "code": code}
        codes.append(int(want))
    env.record("runs", {"descriptors": COUNT, "codes": codes, "good": len(got)})
