# amaranth: UnusedElaboratable=no
"""Fast tier: amaranth.sim of hdl.attn.ToTopK and hdl.attn.Chunker against Python models.

Every preset plus D = 32 and D = 128 variants; rows/packets of every size class (empty, one
element, exact multiples of the lane counts, partial last beats), garbage in don't-care lanes
and in the ``count`` of non-last input beats, probabilities up to the max raw value;
random bubbles on every input and random back-pressure on every output, plus a no-stall run
that checks the sustained rate. A ci chain ToTopK → TopK → Chunker is checked against the
golden top-k engine.
"""

import random
import zlib
from dataclasses import replace

import numpy as np
import pytest

from generators.presets import PRESETS
from hdl.attn.adapt import Chunker, ToTopK
from hdl.attn.layouts import prob_layout
from hdl.topk import TopK
from hdl.topk.layouts import out_layout as topk_out_layout
from sim import pysim
from sim.golden.topk import topk_engine
from sim.packing import const_to_py

_ci = PRESETS["ci"]
CONFIGS = {
    **PRESETS,
    "ci-d32": replace(_ci, name="ci-d32", attn=replace(_ci.attn, head_dim=32)),
    "ci-d128": replace(_ci, name="ci-d128", attn=replace(
        _ci.attn, head_dim=128, qk_multipliers=256, pv_multipliers=512)),
    # One probability beat per top-k beat and one chunk per top-k beat (ratios of 1).
    "ci-wide": replace(_ci, name="ci-wide", attn=replace(
        _ci.attn, qk_multipliers=64, pv_multipliers=64)),
}
ROWS = {"ci": 80, "ci-d32": 40, "ci-d128": 40, "ci-wide": 40, "paper": 30, "eighth": 40}
STALLS = [(0.0, 0.0), (0.3, 0.5)]


def _seed(tag, name):
    return zlib.crc32(f"{tag}-{name}".encode()) % 100000


def _sizes(rng, count, unit, cap):
    """Element counts: the edge cases first, then random ones."""
    edges = [0, 1, unit - 1, unit, unit + 1, 2 * unit, 3 * unit - 1, 0]
    out = [min(max(0, e), cap) for e in edges]
    while len(out) < count:
        out.append(int(rng.integers(0, min(cap, 4 * unit + 3) + 1)))
    return out[:count]


async def send(ctx, port, items, *, rng, stall, state):
    """Drive payloads with random bubbles until ``state["done"]`` (receiver finished)."""
    await pysim.stream_send(ctx, port, items, rng=rng, stall=stall,
                            stop=lambda: state.get("done"))


def receiver(port, got, n_last, *, rng, stall, state, budget, extra=4):
    """Take beats until ``n_last`` beats with ``last`` (or ``budget`` cycles have passed: a
    hang); check stream rule 2 and that nothing follows the last packet."""

    async def tb(ctx):
        held, seen = None, 0
        for _ in range(budget):
            if seen == n_last:
                break
            ready = int(rng.random() >= stall)
            ctx.set(port.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
            beat = const_to_py(payload) if valid else None
            if held is not None:
                assert valid and beat == held, "a beat changed or vanished before its transfer"
            held = beat if valid and not ready else None
            if valid and ready:
                got.append(beat)
                seen += beat["last"]
        ctx.set(port.ready, 0)
        state["done"] = True  # the senders give up now if anything is left (a hang)
        for _ in range(extra if seen == n_last else 0):
            _, _, valid = await ctx.tick().sample(port.valid)
            assert not valid, "an extra beat after the last packet"

    return tb


def rate_monitor(port, cycles, state):
    """Record the cycles in which ``port`` transfers."""

    async def tb(ctx):
        cyc = 0
        while not state.get("done"):
            _, _, valid, ready = await ctx.tick().sample(port.valid, port.ready)
            if valid and ready:
                cycles.append(cyc)
            cyc += 1

    return tb


# ---- ToTopK ------------------------------------------------------------------------------
def totopk_rows(cfg, rng, count):
    """``(probs, keep, beats)``: the probability beats of each row, with garbage where the
    layout says don't-care (lanes at and above ``count``, ``count`` of non-last beats)."""
    a, t = cfg.attn, cfg.topk
    A, pmax = a.lanes, a.prob.max_raw
    cmax = (1 << prob_layout(cfg)["count"].shape.width) - 1
    rows = []
    for n in _sizes(rng, count, t.lanes, t.capacity):
        probs = rng.integers(0, pmax + 1, size=n)
        probs[rng.random(n) < 0.2] = pmax
        keep = int(rng.integers(0, t.capacity + 1))
        meta = {"keep": keep, "threshold": int(rng.integers(0, pmax + 1)),
                "msb_only": int(rng.integers(0, 2))}
        nb = max(1, -(-n // A))
        beats = []
        for b in range(nb):
            lo = b * A
            cnt = min(A, n - lo)
            data = rng.integers(0, pmax + 1, size=A)
            data[:max(cnt, 0)] = probs[lo:lo + cnt]
            last = b == nb - 1
            beats.append({"data": [int(x) for x in data],
                          "count": cnt if last else int(rng.integers(0, cmax + 1)),
                          "meta": meta, "last": int(last)})
        rows.append((probs, keep, beats))
    return rows


def totopk_model(cfg, probs, keep):
    """Expected top-k beats of one row: ``(valid elements, count, k, last)`` each."""
    t = cfg.topk
    n = len(probs)
    nb = max(1, -(-n // t.lanes))
    out = []
    for b in range(nb):
        elems = [int(x) for x in probs[b * t.lanes:(b + 1) * t.lanes]]
        last = b == nb - 1
        out.append((elems, len(elems) if last else t.lanes, keep, int(last)))
    return out


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("stall", STALLS, ids=["nostall", "stall"])
def test_totopk_matches_model(name, stall):
    cfg = CONFIGS[name]
    seed = _seed("totopk", name)
    rng = np.random.default_rng(seed)
    rows = totopk_rows(cfg, rng, ROWS[name])
    dut = ToTopK(cfg)
    pl = prob_layout(cfg)
    items = [pl.const(b) for _, _, beats in rows for b in beats]
    in_stall, out_stall = stall
    irng, orng = random.Random(seed), random.Random(seed + 1)
    got, takes, state = [], [], {}

    async def src(ctx):
        await send(ctx, dut.i, items, rng=irng, stall=in_stall, state=state)

    cycles = len(items) * (1 + int(20 * max(stall))) + 200
    pysim.run(dut, src, receiver(dut.o, got, len(rows), rng=orng, stall=out_stall, state=state,
                                 budget=cycles),
              rate_monitor(dut.i, takes, state), vcd_name=f"totopk_{name}")
    expect = [e for probs, keep, _ in rows for e in totopk_model(cfg, probs, keep)]
    assert len(got) == len(expect), f"{name} seed={seed}: {len(got)} beats, not {len(expect)}"
    for j, (g, (elems, count, k, last)) in enumerate(zip(got, expect)):
        ctx = f"{name} seed={seed} beat {j}"
        assert (g["count"], g["k"], g["last"]) == (count, k, last), f"{ctx}: {g}"
        assert g["data"][:len(elems)] == elems, f"{ctx}: {g['data']} vs {elems}"
    assert len(takes) == len(items)
    if stall == (0.0, 0.0):  # one probability beat per cycle, sustained
        assert takes == list(range(takes[0], takes[0] + len(items)))


# ---- Chunker -----------------------------------------------------------------------------
def chunker_packets(cfg, rng, count):
    """``(values, indices, msb_only, beats)``: top-k output beats as the engine emits them."""
    a, t = cfg.attn, cfg.topk
    packets = []
    for n in _sizes(rng, count, t.lanes, t.capacity):
        values = rng.integers(0, a.prob.max_raw + 1, size=n)
        values[rng.random(n) < 0.2] = a.prob.max_raw
        indices = np.sort(rng.choice(t.capacity, size=n, replace=False))
        kth = int(values.min()) if n else t.score.max_raw
        trunc = int(rng.integers(0, 2))
        nb = max(1, -(-n // t.lanes))
        beats = []
        for b in range(nb):
            v = [int(x) for x in values[b * t.lanes:(b + 1) * t.lanes]]
            i = [int(x) for x in indices[b * t.lanes:(b + 1) * t.lanes]]
            pad = [0] * (t.lanes - len(v))
            beats.append({"data": v + pad, "index": i + pad, "count": len(v), "kth": kth,
                          "truncated": trunc, "last": int(b == nb - 1)})
        packets.append((values, indices, int(rng.integers(0, 2)), beats))
    return packets


def chunker_model(cfg, values, indices, msb_only):
    """Expected chunks of one packet: ``(probs, indices, count, msb_only, last)`` each."""
    R = cfg.attn.pv_rows
    n = len(values)
    if n == 0:
        return [([], [], 0, msb_only, 1)]
    nch = -(-n // R)
    return [([int(x) for x in values[c * R:(c + 1) * R]],
             [int(x) for x in indices[c * R:(c + 1) * R]],
             min(R, n - c * R), msb_only, int(c == nch - 1)) for c in range(nch)]


def check_chunks(got, expect, ctx):
    assert len(got) == len(expect), f"{ctx}: {len(got)} chunks, not {len(expect)}"
    for j, (g, (p, i, count, msb_only, last)) in enumerate(zip(got, expect)):
        assert (g["count"], g["msb_only"], g["last"]) == (count, msb_only, last), \
            f"{ctx} chunk {j}: {g}"
        assert g["prob"][:count] == p and g["index"][:count] == i, f"{ctx} chunk {j}: {g}"


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("stall", STALLS, ids=["nostall", "stall"])
def test_chunker_matches_model(name, stall):
    cfg = CONFIGS[name]
    seed = _seed("chunker", name)
    rng = np.random.default_rng(seed)
    packets = chunker_packets(cfg, rng, ROWS[name])
    dut = Chunker(cfg)
    ol = topk_out_layout(cfg.topk)
    items = [ol.const(b) for *_, beats in packets for b in beats]
    flags = [msb for _, _, msb, _ in packets]
    in_stall, out_stall = stall
    irng, srng, orng = (random.Random(seed + j) for j in range(3))
    got, outs, state = [], [], {}

    async def src(ctx):
        await send(ctx, dut.i, items, rng=irng, stall=in_stall, state=state)

    async def side(ctx):
        await send(ctx, dut.msb_only, flags, rng=srng, stall=in_stall, state=state)

    expect = [e for v, i, msb, _ in packets for e in chunker_model(cfg, v, i, msb)]
    cycles = len(expect) * (1 + int(20 * max(stall))) + 200
    pysim.run(dut, src, side,
              receiver(dut.o, got, len(packets), rng=orng, stall=out_stall, state=state,
                       budget=cycles),
              rate_monitor(dut.o, outs, state), vcd_name=f"chunker_{name}")
    check_chunks(got, expect, f"{name} seed={seed}")
    if stall == (0.0, 0.0):  # one chunk per cycle, sustained
        assert outs == list(range(outs[0], outs[0] + len(expect)))


# ---- The chain around the real top-k engine (ci) -------------------------------------------
@pytest.mark.parametrize("stall", STALLS, ids=["nostall", "stall"])
def test_chain_through_topk(stall):
    """ToTopK → TopK → Chunker on ci agrees with the golden engine and the chunk model."""
    from amaranth.hdl import Module
    from amaranth.lib import wiring

    cfg = PRESETS["ci"]
    seed = _seed("chain", "ci")
    rng = np.random.default_rng(seed)
    rows = totopk_rows(cfg, rng, 24)
    m = Module()
    m.submodules.a = a = ToTopK(cfg)
    m.submodules.t = t = TopK(cfg.topk)
    m.submodules.c = c = Chunker(cfg)
    wiring.connect(m, producer=a.o, consumer=t.i)
    wiring.connect(m, producer=t.o, consumer=c.i)
    pl = prob_layout(cfg)
    items = [pl.const(b) for _, _, beats in rows for b in beats]
    flags = [int(rng.integers(0, 2)) for _ in rows]
    in_stall, out_stall = stall
    irng, srng, orng = (random.Random(seed + j) for j in range(3))
    got, state = [], {}

    async def src(ctx):
        await send(ctx, a.i, items, rng=irng, stall=in_stall, state=state)

    async def side(ctx):
        await send(ctx, c.msb_only, flags, rng=srng, stall=in_stall, state=state)

    expect = []
    for (probs, keep, _), msb in zip(rows, flags):
        sel = topk_engine(probs, keep, cfg.topk)
        expect += chunker_model(cfg, sel.values, sel.indices, msb)
    cycles = 40 * len(items) * (1 + int(4 * max(stall))) + 2000
    pysim.run(m, src, side, receiver(c.o, got, len(rows), rng=orng, stall=out_stall,
                                     state=state, budget=cycles, extra=40),
              vcd_name="chain_ci")
    check_chunks(got, expect, f"chain ci seed={seed}")


def test_adapters_reject_bad_config():
    for cls in (ToTopK, Chunker):
        with pytest.raises(TypeError, match="cfg must be a SpAttenConfig"):
            cls(PRESETS["ci"].topk)
        with pytest.raises(ValueError, match="topk.lanes"):
            cls(replace(_ci, topk=replace(_ci.topk, lanes=1, capacity=64)))


@pytest.mark.rtl
@pytest.mark.parametrize("cls", [ToTopK, Chunker], ids=["totopk", "chunker"])
def test_adapter_verilog_lint_clean(cls, tmp_path):
    from generators.tools import setup_env

    setup_env()
    from amaranth.back import verilog

    from sim.lint import lint

    v = tmp_path / "adapter.v"
    v.write_text(verilog.convert(cls(PRESETS["ci"]), name="adapter", emit_src=False))
    assert lint(v) == []
