"""cocotb testbench of the generated ``dma`` Verilog against cocotbext-axi's AXI RAM model.

Random row reads and writes (bus-aligned, 1..8 beats, never across 4 KB) go in on ``rcmd``
/ ``wcmd`` / ``wdata`` with random bubbles; ``rdata`` is back-pressured at random and the RAM
pauses every AXI channel at random. Every read beat must equal the RAM's bytes (reads and
writes use disjoint halves of the RAM), every written row must land, nothing else may change,
and the byte counters must match. Environment: ``TB_CONFIG``, ``TB_PACKETS`` (rows per
direction), ``TB_STALLS``, ``TB_RESULT`` (``sim.harness.env``).
"""

import os
import random

import cocotb
from cocotb.triggers import RisingEdge
from cocotbext.axi import AxiBus, AxiRam

from generators.config import SpAttenConfig
from hdl.core.axi import beat_layout, row_cmd_layout
from sim.harness import env
from sim.harness.multi import MultiPump

CFG = SpAttenConfig.from_json(os.environ["TB_CONFIG"])
STALLS = env.stalls()
RAM_BYTES = 1 << 16
MAX_BEATS = 8


def _pauses(rng, p):
    while True:
        yield rng.random() < p


def _rows(rng, lo, hi, count):
    """``count`` random rows ``(addr, beats)`` inside ``[lo, hi)``, none across 4 KB."""
    bus = CFG.core.bus_bytes
    rows = []
    while len(rows) < count:
        beats = rng.randint(1, MAX_BEATS)
        addr = rng.randrange(lo, hi - beats * bus, bus)
        if addr // 4096 == (addr + beats * bus - 1) // 4096:
            rows.append((addr, beats))
    return rows


def _words(blob: bytes, bus: int) -> list[int]:
    return [int.from_bytes(blob[i:i + bus], "little") for i in range(0, len(blob), bus)]


async def _settle(dut, cycles=4):
    for _ in range(cycles):
        await RisingEdge(dut.clk)


@cocotb.test()
@cocotb.parametrize(stall=STALLS)
async def random_rows(dut, stall):
    """Random reads and writes; data, untouched bytes and counters checked."""
    rng = await env.start(dut)
    rng = random.Random(rng.random() + stall[0] * 10 + stall[1])
    bus = CFG.core.bus_bytes
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_"), dut.clk, dut.rst, size=RAM_BYTES)
    for ch in (ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel,
               ram.read_if.ar_channel, ram.read_if.r_channel):
        ch.set_pause_generator(_pauses(rng, stall[1]))
    image = bytes(rng.getrandbits(8) for _ in range(RAM_BYTES))
    ram.write(0, image)
    half = RAM_BYTES // 2
    rows = env.packets(stall, 40)
    reads = _rows(rng, 0, half, rows)
    writes = _rows(rng, half, RAM_BYTES, rows)
    expect_r = [w for a, n in reads for w in _words(image[a:a + n * bus], bus)]
    expect_last = [int(i == n - 1) for _, n in reads for i in range(n)]
    model = bytearray(image)
    wbeats = []
    for a, n in writes:
        blob = bytes(rng.getrandbits(8) for _ in range(n * bus))
        model[a:a + n * bus] = blob  # later rows overwrite earlier ones, as on the bus
        wbeats += [{"data": w, "last": int(i == n - 1)} for i, w in enumerate(_words(blob, bus))]

    pump = MultiPump(dut, {"rcmd": (row_cmd_layout(CFG), stall[0]),
                           "wcmd": (row_cmd_layout(CFG), stall[0]),
                           "wdata": (beat_layout(CFG), stall[0])},
                     {"rdata": (beat_layout(CFG), stall[1])}, rng=rng)
    pump.push("rcmd", [{"addr": a, "beats": n} for a, n in reads])
    pump.push("wcmd", [{"addr": a, "beats": n} for a, n in writes])
    pump.push("wdata", wbeats)
    got = []
    finished = await pump.run(on_beat=lambda s, b, c: got.append(b),
                              done=lambda: len(got) >= len(expect_r) and pump.idle(),
                              max_cycles=400 * rows * MAX_BEATS)
    for _ in range(2000):  # the last write responses
        if not int(dut.busy.value):
            break
        await RisingEdge(dut.clk)
    idle = not int(dut.busy.value)
    await _settle(dut)
    mism = sum(g["data"] != e or g["last"] != l for g, e, l in zip(got, expect_r, expect_last))
    changed = ram.read(0, RAM_BYTES) != bytes(model)
    counters = (int(dut.bytes_read.value), int(dut.bytes_written.value))
    want = (len(expect_r) * bus, len(wbeats) * bus)
    env.record("runs", {"stall": list(stall), "rows": rows, "finished": finished,
                        "read_beats": len(got), "mismatches": mism, "ram_ok": not changed,
                        "counters_ok": counters == want, "error": int(dut.error.value),
                        "idle": idle, "cycles": pump.cycle})
    assert finished, f"timed out: {len(got)}/{len(expect_r)} read beats"
    assert idle, "bursts still in flight 2000 cycles after the last beat"
    assert len(got) == len(expect_r) and mism == 0, f"{mism} read beats differ"
    assert not changed, "the RAM differs from the model after the writes"
    assert counters == want, f"byte counters {counters}, expected {want}"
    assert int(dut.error.value) == 0


@cocotb.test()
async def bad_rows_are_dropped_and_flagged(dut):
    """A misaligned, an empty and a 4 KB-crossing read set error bit 2 and issue no burst;
    a good read after them still returns its data."""
    rng = await env.start(dut)
    bus = CFG.core.bus_bytes
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_"), dut.clk, dut.rst, size=RAM_BYTES)
    image = bytes(rng.getrandbits(8) for _ in range(RAM_BYTES))
    ram.write(0, image)
    bad = [{"addr": bus // 2 if bus > 1 else 1, "beats": 1}, {"addr": 0, "beats": 0},
           {"addr": 4096 - bus, "beats": 2}]
    good = {"addr": 8 * bus, "beats": 3}
    pump = MultiPump(dut, {"rcmd": (row_cmd_layout(CFG), 0.0)},
                     {"rdata": (beat_layout(CFG), 0.0)}, rng=rng)
    pump.push("rcmd", bad + [good])
    got = []
    finished = await pump.run(on_beat=lambda s, b, c: got.append(b),
                              done=lambda: len(got) >= 3, max_cycles=500)
    await _settle(dut, 20)
    assert finished and [g["data"] for g in got] == _words(image[8 * bus:11 * bus], bus)
    assert int(dut.error.value) == 0b100 and int(dut.bytes_read.value) == 3 * bus
    env.record("bad_rows", {"error": int(dut.error.value), "beats": len(got)})
