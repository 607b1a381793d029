# amaranth: UnusedElaboratable=no
"""Fast tier: amaranth.sim of hdl.attn.ProbV against golden ``prob_v``, bit for bit.

Every preset plus D = 32 and D = 128 variants; random passes (probabilities up to the max raw
value, garbage in rows at and above a chunk's ``count``), saturating passes (all
probabilities at max, all values at max or min), passes built so HALF_EVEN ties occur,
empty passes and partial last chunks, ``msb_only`` 0 and 1; random bubbles on ``c`` and
``v`` (independently) and random back-pressure on ``o``, plus a no-stall run that also checks
the throughput (one chunk per cycle across passes) and the stated latency.
"""

import random
import zlib
from dataclasses import replace

import numpy as np
import pytest

from generators.presets import PRESETS
from hdl.attn.layouts import chunk_layout, value_layout
from hdl.attn.pv import ProbV
from sim import pysim
from sim.golden.attention import prob_v
from sim.packing import const_to_py

_ci = PRESETS["ci"]
CONFIGS = {
    **PRESETS,
    # D = 32 at ci's 32 multipliers: one row per chunk (no adder tree), one softmax lane.
    "ci-d32": replace(_ci, name="ci-d32", attn=replace(_ci.attn, head_dim=32)),
    # D = 128: four rows per chunk (a two-level adder tree).
    "ci-d128": replace(_ci, name="ci-d128", attn=replace(
        _ci.attn, head_dim=128, qk_multipliers=256, pv_multipliers=512)),
}
# Passes per config (amaranth.sim is slow on the 512-multiplier paper array).
PASSES = {"ci": 70, "ci-d32": 24, "ci-d128": 16, "paper": 6, "eighth": 8}
MAX_ROWS = {"ci": 64, "ci-d32": 20, "ci-d128": 24, "paper": 24, "eighth": 12}


def make_passes(cfg, rng: np.random.Generator, count: int, max_rows: int):
    """``(prob, vmsb, vlsb, msb_only)`` passes mixing random, saturating, tie and empty ones."""
    a = cfg.attn
    D, R = a.head_dim, a.pv_rows
    pmax = a.prob.max_raw
    mlo, mhi = -(1 << (a.msb_bits - 1)), (1 << (a.msb_bits - 1)) - 1
    lhi = (1 << a.lsb_bits) - 1
    shift = a.prob.frac - a.out.frac
    out = []

    def rand_planes(n):
        return (rng.integers(mlo, mhi + 1, size=(n, D)), rng.integers(0, lhi + 1, size=(n, D)))

    kinds = ["empty", "sat_hi", "sat_lo", "tie", "one_chunk", "partial"]
    for p in range(count):
        kind = kinds[p] if p < len(kinds) else rng.choice(
            ["random", "random", "random", "maxprob", "tie", "empty", "sat_hi", "sat_lo"])
        msb_only = int(rng.integers(0, 2))
        if kind == "empty":
            n = 0
        elif kind == "one_chunk":
            n = R
        elif kind == "partial":
            n = 2 * R + max(1, R // 2) if R > 1 else 3
        elif kind == "tie":
            n = 1
        else:
            n = int(rng.integers(1, max_rows + 1))
        if kind in ("sat_hi", "sat_lo"):
            n = max(n, 4)  # a few max-size rows saturate every preset's output
        n = min(n, cfg.topk.capacity)
        vmsb, vlsb = rand_planes(n)
        prob = rng.integers(0, pmax + 1, size=n)
        if kind == "maxprob":
            prob[rng.random(n) < 0.5] = pmax
        elif kind in ("sat_hi", "sat_lo"):
            prob[:] = pmax
            n_hi = mhi if kind == "sat_hi" else mlo
            vmsb[:] = n_hi
            vlsb[:] = lhi if kind == "sat_hi" else 0
        elif kind == "tie" and shift > 0:
            # prob = 2**(shift-1): acc = value * 2**(shift-1) is an exact half for odd values,
            # with both even and odd quotients (and negative values) across the D lanes.
            prob[:] = 1 << (shift - 1)
            msb_only = 0
        out.append((prob.astype(np.int64), vmsb.astype(np.int64), vlsb.astype(np.int64),
                    msb_only))
    return out


def beats(cfg, rng: np.random.Generator, prob, vmsb, vlsb, msb_only):
    """The chunk and V beats of one pass (garbage in rows at and above ``count``)."""
    a = cfg.attn
    D, R = a.head_dim, a.pv_rows
    n = len(prob)
    nch = max(1, -(-n // R))
    chunks, values = [], []
    for c in range(nch):
        lo = c * R
        cnt = min(R, n - lo)
        p = rng.integers(0, a.prob.max_raw + 1, size=R)
        idx = rng.integers(0, cfg.topk.capacity, size=R)
        msb = rng.integers(-(1 << (a.msb_bits - 1)), 1 << (a.msb_bits - 1), size=(R, D))
        lsb = rng.integers(0, 1 << a.lsb_bits, size=(R, D))
        p[:cnt] = prob[lo:lo + cnt]
        msb[:cnt] = vmsb[lo:lo + cnt]
        lsb[:cnt] = vlsb[lo:lo + cnt]
        chunks.append({"prob": [int(x) for x in p], "index": [int(x) for x in idx],
                       "count": cnt, "msb_only": msb_only, "last": int(c == nch - 1)})
        values.append({"msb": msb.tolist(), "lsb": lsb.tolist()})
    return chunks, values


async def send(ctx, port, items, *, rng, stall, state):
    """Drive payloads with random bubbles until ``state["done"]`` (receiver finished)."""
    await pysim.stream_send(ctx, port, items, rng=rng, stall=stall,
                            stop=lambda: state.get("done"))


def run_probv(name, in_stall, out_stall, *, check_timing=False):
    cfg = CONFIGS[name]
    seed = 0x9F + zlib.crc32(name.encode()) % 1000
    rng = np.random.default_rng(seed)
    passes = make_passes(cfg, rng, PASSES[name], MAX_ROWS[name])
    dut = ProbV(cfg)
    cl, vl = chunk_layout(cfg), value_layout(cfg)
    chunks, values, expect = [], [], []
    for prob, vmsb, vlsb, msb_only in passes:
        c, v = beats(cfg, rng, prob, vmsb, vlsb, msb_only)
        chunks += [cl.const(x) for x in c]
        values += [vl.const(x) for x in v]
        expect.append(prob_v(prob, vmsb, vlsb, msb_only, cfg.attn))
    crng, vrng, orng = (random.Random(seed + j) for j in range(3))
    got, takes, outs = [], [], []
    state = {"done": False}

    stall_factor = 1 + int(20 * max(in_stall, out_stall))
    budget = (len(chunks) + 2 * len(expect)) * stall_factor + 20 * dut.latency + 200

    async def consumer(ctx):
        held = None  # a beat offered but not taken must stay (stream rule 2)
        for _ in range(budget):  # a hang ends here, and the senders give up
            if len(got) == len(expect):
                break
            ready = int(orng.random() >= out_stall)
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            data = const_to_py(payload)["data"] if valid else None
            if held is not None:
                assert valid and data == held, "o changed or dropped a beat before its transfer"
            held = data if valid and not ready else None
            if valid and ready:
                got.append(data)
        ctx.set(dut.o.ready, 0)
        state["done"] = True
        for _ in range(dut.latency + 4 if len(got) == len(expect) else 0):
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            assert not valid, "an extra output beat"

    async def monitor(ctx):
        cyc = 0
        while not state["done"]:
            _, _, cv, cr, vv, vr, ov, orr = await ctx.tick().sample(
                dut.c.valid, dut.c.ready, dut.v.valid, dut.v.ready, dut.o.valid, dut.o.ready)
            assert cr == vr, "c and v must be taken together"
            assert not cr or (cv and vv), "ready without both valid"
            if cv and cr:
                takes.append(cyc)
            if ov and orr:
                outs.append(cyc)
            cyc += 1

    async def csrc(ctx):
        await send(ctx, dut.c, chunks, rng=crng, stall=in_stall, state=state)

    async def vsrc(ctx):
        await send(ctx, dut.v, values, rng=vrng, stall=in_stall, state=state)

    pysim.run(dut, csrc, vsrc, consumer, monitor, vcd_name=f"pv_{name}")
    assert len(got) == len(expect), f"{name} seed={seed}: {len(got)} of {len(expect)} outputs"
    assert len(takes) == len(chunks)
    for j, (g, e) in enumerate(zip(got, expect)):
        assert g == [int(x) for x in e], f"{name} seed={seed} pass {j}: {g} != {list(e)}"
    if check_timing:
        # Sustained throughput: every chunk taken in consecutive cycles, across passes.
        assert takes == list(range(takes[0], takes[0] + len(chunks))), "a bubble on input"
        last_takes, k = [], 0
        for prob, *_ in passes:
            k += max(1, -(-len(prob) // cfg.attn.pv_rows))
            last_takes.append(takes[k - 1])
        assert [o - t for o, t in zip(outs, last_takes)] == [dut.latency] * len(expect)
    return got, expect


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("stall", [(0.0, 0.0), (0.3, 0.5)], ids=["nostall", "stall"])
def test_probv_matches_golden(name, stall):
    got, expect = run_probv(name, *stall, check_timing=stall == (0.0, 0.0))
    a = CONFIGS[name].attn
    # The stimulus reaches both saturation limits and non-saturated values.
    flat = np.concatenate(expect)
    assert flat.max() == a.out.max_raw and flat.min() == a.out.min_raw
    assert ((flat > a.out.min_raw) & (flat < a.out.max_raw)).any()


def test_ties_occur():
    """The tie passes really hit exact halves with both quotient parities (ci)."""
    cfg = PRESETS["ci"]
    a = cfg.attn
    shift = a.prob.frac - a.out.frac
    passes = make_passes(cfg, np.random.default_rng(1), 6, 8)
    prob, vmsb, vlsb, msb_only = passes[3]
    from sim.golden.attention import join_planes
    acc = prob @ join_planes(vmsb, vlsb, msb_only, a).reshape(-1, a.head_dim)
    rem = acc & ((1 << shift) - 1)
    halves = acc[rem == 1 << (shift - 1)] >> shift
    assert (halves % 2 == 0).any() and (halves % 2 == 1).any()


def test_probv_rejects_bad_config():
    with pytest.raises(TypeError, match="cfg must be a SpAttenConfig"):
        ProbV(PRESETS["ci"].attn)
    bad = replace(_ci, topk=replace(_ci.topk, lanes=1, capacity=64))
    with pytest.raises(ValueError, match="topk.lanes"):
        ProbV(bad)


@pytest.mark.rtl
def test_probv_verilog_lint_clean(tmp_path):
    from generators.tools import setup_env

    setup_env()
    from amaranth.back import verilog

    from sim.lint import lint

    v = tmp_path / "spatten_pv.v"
    v.write_text(verilog.convert(ProbV(PRESETS["ci"]), name="spatten_pv", emit_src=False))
    assert lint(v) == []
