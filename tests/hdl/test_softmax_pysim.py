# amaranth: UnusedElaboratable=no
"""Fast tier: amaranth.sim of hdl.attn.Softmax against the golden softmax, bit for bit.

Every output bit is compared: the ``dec`` beat of every row (refetch, pmax, truncated) and
every ``o`` beat (all lanes, the zero lanes included, count, meta, last), in order, with
random input bubbles and random back-pressure on both outputs, and without any stall. After
the expected beats the consumers keep watching, so a duplicated or invented beat fails too.
"""

import random
import zlib

import numpy as np
import pytest
from amaranth.sim import Simulator

from generators.config import ConfigError, SpAttenConfig, TopKConfig
from generators.numerics import QFormat
from generators.presets import PRESETS
from generators.tables import exp2_table
from hdl.attn import Softmax
from sim import attn_stim as S
from sim import pysim
from sim.golden.attention import softmax
from sim.packing import const_to_py
from sim.scoreboard import StreamChecker

PATTERNS = ("random", "near", "peaked", "flat", "extreme")


# ---- Stimulus and expected beats ------------------------------------------------------------
def make_row(cfg: SpAttenConfig, rng: np.random.Generator, n: int, pattern: str) -> np.ndarray:
    a = cfg.attn
    lo, hi = a.score.min_raw, a.score.max_raw
    # Differences below this give non-zero exponentials.
    span = min((a.exp_bits + 3) << a.score.frac, hi - lo)
    if pattern == "random":
        s = rng.integers(lo, hi + 1, n)
    elif pattern == "near":  # within the useful range of the table: every e is non-trivial
        base = int(rng.integers(lo, hi - span + 1))
        s = base + rng.integers(0, span, n)
    elif pattern == "peaked":  # one large score, the rest far below: most e = 0, pmax saturates
        s = rng.integers(lo, lo + (hi - lo) // 4, n)
        if n:
            s[rng.integers(0, n)] = int(rng.integers(hi - 8, hi + 1))
    elif pattern == "flat":
        s = np.full(n, int(rng.integers(lo, hi + 1)))
    elif pattern == "extreme":
        s = rng.choice(np.array([lo, lo + 1, -1, 0, hi - 1, hi]), n)
    else:
        raise ValueError(pattern)
    return np.asarray(s, dtype=np.int64)


def golden(cfg: SpAttenConfig, scores, meta):
    return softmax(np.asarray(scores, dtype=np.int64)[:cfg.topk.capacity],
                   msb_only=meta["msb_only"], threshold=meta["threshold"], cfg=cfg.attn)


def make_meta(cfg: SpAttenConfig, rng: np.random.Generator, scores, mode: str) -> dict:
    """``mode``: "refetch" (msb_only, threshold just above pmax), "pass" (msb_only, threshold
    at pmax), or "random" (any msb_only and threshold)."""
    a = cfg.attn
    keep = int(rng.integers(0, 1 << cfg.topk.count_bits))
    probe = golden(cfg, scores, {"msb_only": 0, "threshold": 0})
    if mode == "refetch" and len(scores) and probe.pmax < a.prob.max_raw:
        return {"keep": keep, "threshold": probe.pmax + 1, "msb_only": 1}
    if mode in ("refetch", "pass"):
        return {"keep": keep, "threshold": probe.pmax, "msb_only": 1}
    return {"keep": keep, "threshold": int(rng.integers(0, a.prob.max_raw + 1)),
            "msb_only": int(rng.integers(0, 2))}


def input_beats(cfg: SpAttenConfig, scores, meta, rng: random.Random) -> list[dict]:
    """Full beats, then the last with ``count`` lanes; don't-care lanes and the ``count`` of
    non-last beats are random (the block must ignore them)."""
    a = cfg.attn
    beats = S.lane_beats(scores, a.lanes, meta,
                         fill=lambda: rng.randint(a.score.min_raw, a.score.max_raw))
    cmax = (1 << a.lanes.bit_length()) - 1
    for b in beats[:-1]:
        b["count"] = rng.randint(0, cmax)
    return beats


def expected_beats(cfg: SpAttenConfig, scores, meta) -> tuple[dict, list[dict]]:
    """The ``dec`` beat and the ``o`` beats (none when refetched) of one row."""
    sm = golden(cfg, scores, meta)
    dec = {"refetch": int(sm.refetch), "pmax": int(sm.pmax),
           "truncated": int(len(scores) > cfg.topk.capacity)}
    return dec, [] if sm.refetch else S.lane_beats(sm.probs, cfg.attn.lanes, meta)


def edge_rows(cfg: SpAttenConfig, rng: np.random.Generator) -> list:
    """Every pattern × n in {0, 1, lanes-1, lanes+1, capacity, capacity+3} × a threshold
    mode, then a few random rows."""
    L, C = cfg.attn.lanes, cfg.topk.capacity
    rows = []
    modes = ("refetch", "pass", "random")
    for n in sorted({0, 1, max(L - 1, 0), L + 1, C, C + 3}):
        for k, pattern in enumerate(PATTERNS):
            s = make_row(cfg, rng, n, pattern)
            rows.append((s, make_meta(cfg, rng, s, modes[(k + n) % 3])))
    return rows


def _variant(cfg: SpAttenConfig, scores, *, e_half_up=True, dr=0, p_half_up=True):
    """The golden arithmetic with one deliberate slip (for picking sensitive stimuli):
    ``e`` or ``p`` rounded down instead of half up, or ``r`` off by ``dr``."""
    a = cfg.attn
    E, F, Rb, P = a.exp_bits, a.score.frac, a.recip_bits, a.prob.frac
    t = np.asarray(exp2_table(a), dtype=np.int64)
    s = np.asarray(scores, dtype=np.int64)
    d = s.max() - s
    k = np.minimum(d >> F, E + 2)
    e = (t[d & ((1 << F) - 1)] + (((1 << k) >> 1) if e_half_up else 0)) >> k
    total = int(e.sum())
    z = total.bit_length() - 1
    r = (1 << (z + Rb)) // total + dr
    sh = z + Rb - P
    half = (1 << (sh - 1)) if p_half_up else 0
    probs = np.minimum((e * r + half) >> sh, a.prob.max_raw)
    return probs, min(((1 << E) * r + half) >> sh, a.prob.max_raw)


def sensitive_rows(cfg: SpAttenConfig, rng: np.random.Generator, per_slip: int) -> list:
    """Short rows on which a plausible slip (``e`` or ``p`` rounded down, ``r`` off by one)
    changes an output: rounding bugs that random rows almost never expose."""
    slips = [{"e_half_up": False}, {"p_half_up": False}, {"dr": 1}, {"dr": -1}]
    found = [[] for _ in slips]
    L = cfg.attn.lanes
    span = (cfg.attn.exp_bits + 3) << cfg.attn.score.frac
    for _ in range(3000):
        if all(len(f) >= per_slip for f in found):
            break
        n = int(rng.integers(2, 3 * L + 3))
        s = make_row(cfg, rng, n, "near") if rng.random() < 0.5 else \
            int(rng.integers(0, 64)) + rng.integers(0, span // 4, n)
        s = cfg.attn.score.check(s, "score")
        g = golden(cfg, s, {"msb_only": 0, "threshold": 0})
        for f, slip in zip(found, slips):
            probs, pmax = _variant(cfg, s, **slip)
            if len(f) < per_slip and (pmax != g.pmax or (probs != g.probs).any()):
                f.append((s, make_meta(cfg, rng, s, "random")))
                break
    assert all(found), "no sensitive rows found for some slip"
    return [row for f in found for row in f]


def random_rows(cfg: SpAttenConfig, rng: np.random.Generator, count: int, nmax: int) -> list:
    rows = []
    for _ in range(count):
        n = int(rng.integers(0, nmax + 1))
        s = make_row(cfg, rng, n, PATTERNS[int(rng.integers(0, len(PATTERNS)))])
        rows.append((s, make_meta(cfg, rng, s, ("refetch", "pass", "random")[
            int(rng.integers(0, 3))])))
    return rows


# ---- Simulation -----------------------------------------------------------------------------
def simulate(cfg: SpAttenConfig, rows, *, seed: int, in_stall=0.0, dec_stall=0.0, o_stall=0.0,
             buffers: int = 3, gaps=None):
    """Run ``rows`` through the block; returns (checker, trace). ``trace`` holds, per cycle
    index, the events seen: input last beats taken, dec first valid, o last beats valid.
    ``gaps[r]`` idle cycles are inserted before row ``r`` (``None``: back to back)."""
    dut = Softmax(cfg, buffers=buffers)
    chk = StreamChecker(context=f"{cfg.name} seed={seed} buffers={buffers}")
    n_o = 0
    for s, meta in rows:
        d, ob = expected_beats(cfg, s, meta)
        chk.expect("dec", [d])
        chk.expect("o", ob)
        n_o += len(ob)
    prng = random.Random(seed)
    state = {"done": 0, "cycle": 0}
    trace = {"in_last": [], "dec_valid": [], "o_last": []}

    async def producer(ctx):
        for r, (s, meta) in enumerate(rows):
            for _ in range(gaps[r] if gaps else 0):
                await ctx.tick()
            await pysim.stream_send(ctx, dut.i, input_beats(cfg, s, meta, prng), rng=prng,
                                    stall=in_stall)

    def consumer(port, name, count, stall):
        async def run(ctx):
            seen = 0
            while seen < count:
                ready = int(prng.random() >= stall)
                ctx.set(port.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
                if ready and valid:
                    chk.got(name, const_to_py(payload))
                    seen += 1
            ctx.set(port.ready, 1)  # anything after the expected beats is an extra beat
            for _ in range(48):
                _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
                if valid:
                    chk.got(name, const_to_py(payload))
            state["done"] += 1
        return run

    async def monitor(ctx):
        new_dec = True  # the next cycle with dec.valid shows a new decision
        async for _, _, iv, ir, il, dv, dr, ov, orr, ol in ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.i.payload.last, dut.dec.valid, dut.dec.ready,
                dut.o.valid, dut.o.ready, dut.o.payload.last):
            c = state["cycle"]
            if iv and ir and il:
                trace["in_last"].append(c)
            if dv and new_dec:
                trace["dec_valid"].append(c)
            new_dec = not dv or bool(dr)
            if ov and orr and ol:
                trace["o_last"].append(c)
            state["cycle"] = c + 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer(dut.dec, "dec", len(rows), dec_stall))
    sim.add_testbench(consumer(dut.o, "o", n_o, o_stall))
    sim.add_testbench(monitor, background=True)
    words = sum(max(1, -(-min(len(s), cfg.topk.capacity) // cfg.attn.lanes)) for s, _ in rows)
    budget = int(8 * (words + 3 * len(rows) * (cfg.attn.recip_bits + 40))) + 2000
    t = 0
    while state["done"] < 2 and t < budget:
        t += 256
        sim.run_until(t * 1e-8)
    return chk, trace


# ---- Tests ----------------------------------------------------------------------------------
# (input bubbles, dec back-pressure, o back-pressure); "squeeze": a saturated input into a
# slow o consumer, so rows are refilled behind a stalling pass B.
STALLS = {"nostall": (0.0, 0.0, 0.0), "stall": (0.3, 0.4, 0.5), "squeeze": (0.0, 0.2, 0.8)}


def preset_rows(name: str, rng: np.random.Generator) -> list:
    cfg = PRESETS[name]
    L, C = cfg.attn.lanes, cfg.topk.capacity
    if name == "ci":  # every edge case, then random rows up to beyond the capacity
        return edge_rows(cfg, rng) + sensitive_rows(cfg, rng, 3) + \
            random_rows(cfg, rng, 100, C + 5)
    # The big presets: short edge rows of every pattern, one full and one truncated row.
    rows = []
    modes = ("refetch", "pass", "random")
    for n in sorted({0, 1, max(L - 1, 0), L + 1}):
        for k, pattern in enumerate(PATTERNS):
            s = make_row(cfg, rng, n, pattern)
            rows.append((s, make_meta(cfg, rng, s, modes[(k + n) % 3])))
    for n, pattern, mode in ((C, "near", "pass"), (C + 3, "peaked", "refetch")):
        s = make_row(cfg, rng, n, pattern)
        rows.append((s, make_meta(cfg, rng, s, mode)))
    return rows + sensitive_rows(cfg, rng, 2) + random_rows(cfg, rng, 6, 4 * L + 40)


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("stall", list(STALLS))
def test_softmax_matches_golden(name, stall):
    cfg = PRESETS[name]
    seed = 0x50F7 + zlib.crc32(f"{name}/{stall}".encode()) % 1000
    rows = preset_rows(name, np.random.default_rng(seed))
    refetched = [expected_beats(cfg, s, m)[0]["refetch"] for s, m in rows]
    assert 0 < sum(refetched) < len(rows)  # both kinds of rows occur
    assert {m["msb_only"] for _, m in rows} == {0, 1}
    in_stall, dec_stall, o_stall = STALLS[stall]
    chk, _ = simulate(cfg, rows, seed=seed, in_stall=in_stall, dec_stall=dec_stall,
                      o_stall=o_stall)
    assert chk.finish() is None, chk.finish()
    assert chk.checked["dec"] == len(rows)


@pytest.mark.parametrize("buffers", [1, 2, 3, 4])
def test_softmax_buffers_under_pressure(buffers):
    """Back-to-back rows into a slow ``o`` consumer: rows are refilled behind pass B's reads
    while pass B stalls; any buffer count is exact."""
    cfg = PRESETS["ci"]
    seed = 0xB0F + buffers
    rng = np.random.default_rng(seed)
    rows = random_rows(cfg, rng, 40, cfg.topk.capacity + 3)
    chk, _ = simulate(cfg, rows, seed=seed, in_stall=0.0, dec_stall=0.2, o_stall=0.8,
                      buffers=buffers)
    assert chk.finish() is None, chk.finish()


def test_softmax_throughput_and_latency():
    """``paper``: cycles per row for back-to-back rows (printed) and the latency of a row into
    an idle block (equal to :meth:`Softmax.decision_latency` / :meth:`Softmax.latency`)."""
    cfg = PRESETS["paper"]
    dut = Softmax(cfg)
    rng = np.random.default_rng(0x7A7)
    meta = {"keep": 8, "threshold": 0, "msb_only": 0}
    for n in (128, 512, 1024):
        rows = [(make_row(cfg, rng, n, "near"), meta) for _ in range(7)]
        chk, trace = simulate(cfg, rows, seed=n)
        assert chk.finish() is None, chk.finish()
        ends = trace["in_last"]
        steady = (ends[-1] - ends[3]) / (len(ends) - 4)  # after the buffers have filled
        print(f"\npaper softmax, back-to-back rows of n = {n} ({n // cfg.attn.lanes} beats): "
              f"{steady:.2f} cycles per row in steady state "
              f"(row-to-row gaps {[b - a for a, b in zip(ends, ends[1:])]})")
    for n in (0, 1, cfg.attn.lanes + 1, 128, 1024):
        chk, trace = simulate(cfg, [(make_row(cfg, rng, n, "near"), meta)], seed=n)
        assert chk.finish() is None, chk.finish()
        dec = trace["dec_valid"][0] - trace["in_last"][0]
        out = trace["o_last"][0] - trace["in_last"][0]
        print(f"paper softmax, n = {n}: last input beat -> dec {dec} cycles, "
              f"-> last o beat {out} cycles")
        assert (dec, out) == (dut.decision_latency(n), dut.latency(n))


def test_softmax_verilog_lint_clean(tmp_path):
    from generators.tools import setup_env

    setup_env()
    from amaranth.back import verilog

    from sim.lint import lint

    path = tmp_path / "spatten_softmax.v"
    path.write_text(verilog.convert(Softmax(PRESETS["ci"]), name="spatten_softmax",
                                    emit_src=False))
    assert lint(path) == []


def test_softmax_rejects_bad_arguments():
    cfg = PRESETS["ci"]
    with pytest.raises(TypeError, match="cfg must be a SpAttenConfig"):
        Softmax(cfg.attn)
    bad = SpAttenConfig(name="bad", attn=cfg.attn,
                        topk=TopKConfig(lanes=4, capacity=64, score=QFormat(7, 0)))
    with pytest.raises(ConfigError, match="must be narrower than topk.score"):
        Softmax(bad)
    for buffers in (0, 9, 2.0, True):
        with pytest.raises(ValueError, match="buffers must be an integer in 1..8"):
            Softmax(cfg, buffers=buffers)
    dut = Softmax(cfg, buffers=2)
    assert dut.cfg is cfg and dut.buffers == 2


def test_softmax_decision_does_not_wait_for_o():
    """With ``o`` never ready, the decisions of the row stuck in pass B and of the next row
    still come out (``dec`` never waits for its own row's probabilities)."""
    cfg = PRESETS["ci"]
    rng = np.random.default_rng(0xDEC)
    meta = {"keep": 1, "threshold": 0, "msb_only": 0}
    rows = [(make_row(cfg, rng, 2 * cfg.attn.lanes, "near"), meta) for _ in range(4)]
    dut = Softmax(cfg)
    got = []

    async def producer(ctx):
        for s, m in rows:
            await pysim.stream_send(ctx, dut.i, input_beats(cfg, s, m, random.Random(1)),
                                    rng=random.Random(1))

    async def dec_consumer(ctx):
        ctx.set(dut.dec.ready, 1)
        for _ in range(400):
            _, _, valid, payload = await ctx.tick().sample(dut.dec.valid, dut.dec.payload)
            if valid:
                got.append(const_to_py(payload))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(dec_consumer)
    sim.run()
    assert len(got) >= 2
    assert got == [expected_beats(cfg, s, m)[0] for s, m in rows[:len(got)]]
