# amaranth: UnusedElaboratable=no
"""Fast tier: amaranth.sim of hdl.attn.QKArray against the golden ``qk_scores``, bit-exact.

Every preset at D = 32, 64 and 128 (``qk_multipliers``/``pv_multipliers`` raised to D where a
preset has fewer, so the config stays valid), random valid bubbles on ``q`` and ``k`` and
random back-pressure on ``o``; a stall-free run checks the cycle behaviour (one key beat per
cycle, no bubble between passes, ``latency``); the ``ci`` Verilog is lint-clean.
"""

import dataclasses
import random
import zlib

import numpy as np
import pytest

from generators.config import SpAttenConfig
from generators.presets import PRESETS
from hdl.attn import QKArray
from sim import attn_stim as S
from sim import pysim
from sim.golden.attention import PassParams, qk_scores

DIMS = [32, 64, 128]
# Passes per (preset, D) in the stall run: the ci preset gets every edge case many times;
# the big presets (hundreds of multipliers, slow in amaranth.sim) a few passes each.
PASSES = {"ci": 60, "paper": 12, "eighth": 16}


def _cfg(name: str, d: int) -> SpAttenConfig:
    cfg = PRESETS[name]
    a = cfg.attn
    return dataclasses.replace(cfg, attn=dataclasses.replace(
        a, head_dim=d, qk_multipliers=max(a.qk_multipliers, d),
        pv_multipliers=max(a.pv_multipliers, d)))


# ---- Stimulus ----------------------------------------------------------------------------
def _pass(cfg: SpAttenConfig, rng: np.random.Generator, n: int, kind: str, msb_only: int):
    """One pass: (q, kmsb, klsb, params) with ``n`` keys; ``kind`` picks the value ranges."""
    a = cfg.attn
    D = a.head_dim
    qlo, qhi = -(1 << (a.q_bits - 1)), (1 << (a.q_bits - 1)) - 1
    mlo, mhi = -(1 << (a.msb_bits - 1)), (1 << (a.msb_bits - 1)) - 1
    lhi = (1 << a.lsb_bits) - 1
    if kind == "extreme":  # the most negative values everywhere: |acc| at its maximum
        q = np.full(D, qlo)
        kmsb = rng.choice([mlo, mhi], size=(n, D))
        klsb = rng.choice([0, lhi], size=(n, D))
        kmsb[: n // 2] = mlo
        klsb[: n // 2] = 0
    elif kind == "small":  # small sums: exact halves at small shifts
        q = rng.integers(-2, 3, D)
        kmsb = rng.integers(-1, 1, (n, D))
        klsb = rng.integers(0, min(lhi, 3) + 1, (n, D))
    else:  # full range
        q = rng.integers(qlo, qhi + 1, D)
        q[rng.integers(D)] = qlo
        kmsb = rng.integers(mlo, mhi + 1, (n, D))
        klsb = rng.integers(0, lhi + 1, (n, D))
    # Scale and shift: calibrated so that scores land around the score range, or extremes.
    top = (1 << a.scale_bits) - 1
    scale = int(rng.choice([top, 1, 0, int(rng.integers(1, top + 1))],
                           p=[0.2, 0.1, 0.05, 0.65]))
    peak = max(1, int(np.abs(kmsb.astype(np.int64) * (1 << a.lsb_bits) @ q).max(initial=1)))
    calibrated = (peak * max(scale, 1)).bit_length() - a.score.width + int(rng.integers(-3, 4))
    shift = int(rng.choice([min(63, max(0, calibrated)), 0, 63, int(rng.integers(0, 64)),
                            int(rng.integers(1, 4))], p=[0.55, 0.1, 0.1, 0.15, 0.1]))
    if kind == "small":  # exact halves, in range
        scale, shift = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    params = PassParams(scale=scale, shift=shift,
                        keep=int(rng.integers(0, cfg.topk.capacity + 1)),
                        threshold=int(rng.integers(0, a.prob.max_raw + 1)), msb_only=msb_only)
    return q, kmsb, klsb, params.check(cfg)


def _passes(cfg: SpAttenConfig, rng: np.random.Generator, count: int):
    K = cfg.attn.keys_per_cycle
    # Edge rows first: empty, one key, one short of a beat, a beat and one, plus extremes.
    lengths = [0, 1, max(1, K - 1), K + 1, 2 * K + (K > 1), 3 * K]
    kinds = ["extreme", "extreme", "full", "small", "full", "small"]
    out = []
    for i in range(count):
        if i < len(lengths):
            n, kind = lengths[i], kinds[i]
        else:
            n = int(rng.integers(0, 5 * K + 2))
            kind = str(rng.choice(["full", "full", "small", "extreme"]))
        q, kmsb, klsb, params = _pass(cfg, rng, n, kind,
                                      msb_only=int(i % 2 == 0 or rng.random() < 0.3))
        if i in (1, 2):  # shift 0 with the largest scale (saturates); the largest shift
            params = dataclasses.replace(params, scale=(1 << cfg.attn.scale_bits) - 1,
                                         shift=0 if i == 1 else 63)
        out.append((q, kmsb, klsb, params))
    return out


def _expected(cfg: SpAttenConfig, q, kmsb, klsb, params: PassParams) -> list[dict]:
    _, score = qk_scores(q, kmsb, klsb, params, cfg.attn)
    return S.lane_beats(score, cfg.attn.keys_per_cycle, S.meta_of(params))


# ---- Harness -----------------------------------------------------------------------------
def _simulate(cfg, passes, *, seed, q_stall, k_stall, o_stall, deadline_cycles, krng):
    """Drive the passes through a QKArray; return (expected beats, got beats, monitor)."""
    dut = QKArray(cfg)
    prng = random.Random(seed)
    expected, kbeats = [], []
    for q, kmsb, klsb, params in passes:
        expected += _expected(cfg, q, kmsb, klsb, params)
        kbeats += S.key_beats_of(cfg, kmsb, klsb, krng)
    got = []
    mon = {"k": [], "q": [], "o": []}  # cycles of each transfer

    async def q_producer(ctx):
        await pysim.stream_send(ctx, dut.q, [S.query_beat_of(q, p) for q, _, _, p in passes],
                                rng=prng, stall=q_stall)

    async def k_producer(ctx):
        await pysim.stream_send(ctx, dut.k, kbeats, rng=prng, stall=k_stall)

    async def consumer(ctx):
        await pysim.stream_recv(ctx, dut.o, rng=prng, stall=o_stall, until_last=len(passes),
                                on_beat=got.append)

    async def monitor(ctx):
        cycle = 0
        while cycle < deadline_cycles:
            *_, qv, qr, kv, kr, ov, orr = await ctx.tick().sample(
                dut.q.valid, dut.q.ready, dut.k.valid, dut.k.ready, dut.o.valid, dut.o.ready)
            for name, v, r in (("q", qv, qr), ("k", kv, kr), ("o", ov, orr)):
                if v and r:
                    mon[name].append(cycle)
            cycle += 1

    pysim.run(dut, q_producer, k_producer, consumer, monitor, vcd_name="qk",
              deadline=deadline_cycles * 1e-8)
    return dut, expected, got, mon, len(kbeats)


def _compare(expected, got, context):
    for i, (e, g) in enumerate(zip(expected, got)):
        assert g == e, f"{context}: beat {i}: got {g}, expected {e}"
    assert len(got) == len(expected), \
        f"{context}: {len(got)} output beats, expected {len(expected)} (dropped or duplicated)"
    assert sum(b["last"] for b in got) == sum(b["last"] for b in expected)


# ---- Tests -------------------------------------------------------------------------------
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("name", list(PRESETS))
def test_qk_matches_golden_with_stalls(name, d):
    cfg = _cfg(name, d)
    seed = 0x9C + zlib.crc32(f"{name}{d}".encode()) % 1000
    rng = np.random.default_rng(seed)
    passes = _passes(cfg, rng, PASSES[name])
    beats = sum(max(1, -(-len(p[1]) // cfg.attn.keys_per_cycle)) for p in passes)
    # Stalls of 0.3 / 0.3 / 0.4: about 4x the stall-free cycles; a hang trips the deadline.
    deadline = 6 * (beats + len(passes)) + 100
    _, expected, got, mon, nk = _simulate(cfg, passes, seed=seed, q_stall=0.3, k_stall=0.3,
                                          o_stall=0.4, deadline_cycles=deadline, krng=rng)
    _compare(expected, got, f"{cfg.name} D={d} seed={seed}")
    assert len(mon["q"]) == len(passes) and len(mon["k"]) == nk and len(mon["o"]) == len(got)


@pytest.mark.parametrize("name", list(PRESETS))
def test_qk_no_stall_full_rate(name):
    """With continuous inputs and an always-ready output: a key beat every cycle, no bubble
    between passes, each score beat exactly ``latency`` cycles after its key beat."""
    cfg = PRESETS[name]
    K = cfg.attn.keys_per_cycle
    seed = 0x5A + zlib.crc32(name.encode()) % 1000
    rng = np.random.default_rng(seed)
    passes = [_pass(cfg, rng, n, "full", msb_only=i % 2)
              for i, n in enumerate([3 * K + 1, 2 * K, 0, 1, 4 * K])]
    beats = sum(max(1, -(-len(p[1]) // K)) for p in passes)
    dut, expected, got, mon, nk = _simulate(cfg, passes, seed=seed, q_stall=0, k_stall=0,
                                            o_stall=0, deadline_cycles=beats + 40, krng=rng)
    _compare(expected, got, f"{cfg.name} no-stall seed={seed}")
    k0 = mon["k"][0]
    assert mon["q"][0] == k0 - 1  # the first query is loaded in a cycle of its own
    assert mon["k"] == list(range(k0, k0 + nk)), "the array idled with a key beat waiting"
    assert mon["o"] == [c + dut.latency for c in mon["k"]]


def test_qk_1024_key_row_cycles():
    """Measured (printed, not asserted beyond sanity): a 1024-key row at ``paper``."""
    cfg = PRESETS["paper"]
    K = cfg.attn.keys_per_cycle
    rng = np.random.default_rng(1024)
    passes = [_pass(cfg, rng, 1024, "full", msb_only=0)]
    dut, expected, got, mon, nk = _simulate(cfg, passes, seed=7, q_stall=0, k_stall=0,
                                            o_stall=0, deadline_cycles=1024 // K + 30,
                                            krng=rng)
    _compare(expected, got, "paper 1024 keys")
    total = mon["o"][-1] + 1  # from the query beat presented in cycle 0 to the last score
    print(f"\npaper, 1024-key row, no stalls: {nk} key beats, latency {dut.latency}, "
          f"{total} cycles from the query beat to the last score beat")
    assert total == 1 + nk + dut.latency


def test_qk_latency_values():
    assert QKArray(PRESETS["ci"]).latency == 6  # D = 16: 4 tree levels, 2 stages
    assert QKArray(PRESETS["paper"]).latency == 7  # D = 64: 6 levels, 3 stages
    assert QKArray(_cfg("paper", 128)).latency == 8


def test_qk_rejects_other_configs():
    with pytest.raises(TypeError, match="cfg must be a SpAttenConfig, not"):
        QKArray(PRESETS["ci"].attn)


def test_qk_verilog_lint_clean(tmp_path):
    from generators.tools import setup_env

    setup_env()
    from amaranth.back import verilog

    from sim.lint import lint

    path = tmp_path / "spatten_qk.v"
    path.write_text(verilog.convert(QKArray(PRESETS["ci"]), name="spatten_qk",
                                    emit_src=False))
    assert lint(path) == []
