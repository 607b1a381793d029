# amaranth: UnusedElaboratable=no
"""amaranth.sim of hdl.core.importance.SlotAccumulator: a layer's probability rows summed per
slot with saturation, drained in slot order and cleared, against NumPy. Rows of one beat
back to back (the write-to-read forwarding), full-scale rows that saturate, empty drains,
random bubbles on ``p`` and ``drain``, random back-pressure on ``sums``."""

import random

import numpy as np
import pytest

from generators.presets import PRESETS
from hdl.core.importance import SlotAccumulator
from sim import pysim


def _layers(cfg, rng, count):
    """``count`` layers: (slots n, rows of n probabilities)."""
    A, top = cfg.attn.lanes, cfg.attn.prob.max_raw
    out = []
    for j in range(count):
        n = [1, A, A + 1, 0][j] if j < 4 else int(rng.integers(1, cfg.topk.capacity + 1))
        rows = int(rng.integers(1, 12))
        hi = top if j % 3 else top // 50
        out.append((n, rng.integers(0, hi + 1, (rows, n)) if n else np.zeros((rows, 0), int)))
    return out


def _beats(cfg, row):
    A = cfg.attn.lanes
    n = len(row)
    beats = []
    for b in range(max(1, -(-n // A))):
        chunk = [int(x) for x in row[b * A:(b + 1) * A]]
        last = (b + 1) * A >= n
        beats.append({"data": chunk + [int(x) for x in np.random.randint(0, 5, A - len(chunk))],
                      "count": len(chunk) if last else A, "last": int(last),
                      "meta": {"keep": 1, "threshold": 0, "msb_only": 0}})
    return beats


@pytest.mark.parametrize("name,stall", [("ci", (0.0, 0.0)), ("ci", (0.3, 0.5)),
                                        ("paper", (0.3, 0.5))])
def test_slot_sums_match_numpy(name, stall):
    cfg = PRESETS[name]
    if name == "ci":  # tiny accumulators, so that sums saturate
        from dataclasses import replace
        cfg = replace(cfg, core=replace(cfg.core, imp_bits=9))
    dut = SlotAccumulator(cfg)
    seed = 0xACC + int(stall[1] * 10) + len(name)
    nprng, rng = np.random.default_rng(seed), random.Random(seed)
    layers = _layers(cfg, nprng, 8 if name == "ci" else 3)
    top = (1 << cfg.core.imp_bits) - 1
    A = cfg.attn.lanes
    expect = []
    for n, rows in layers:
        sums = np.minimum(rows.sum(axis=0), top)
        for b in range(max(1, -(-n // A))):
            chunk = [int(x) for x in sums[b * A:(b + 1) * A]]
            last = (b + 1) * A >= n
            expect.append({"data": chunk + [0] * (A - len(chunk)),
                           "count": len(chunk) if last else A, "last": int(last)})
    got, drained = [], []
    saturated = any(int(rows.sum(axis=0).max(initial=0)) > top for _, rows in layers)

    async def send(ctx):
        for k, (n, rows) in enumerate(layers):
            beats = [b for row in rows for b in (_beats(cfg, row) if n else [])]
            await pysim.stream_send(ctx, dut.p, beats, rng=rng, stall=stall[0])
            await pysim.stream_send(ctx, dut.drain, [n], rng=rng, stall=stall[0])
            while len(drained) <= k:  # the next layer's rows go after this drain
                await ctx.tick()

    async def recv(ctx):
        def on_beat(b):
            got.append({k: b[k] for k in ("data", "count", "last")})
            if b["last"]:
                drained.append(len(got))
        await pysim.stream_recv(ctx, dut.sums, rng=random.Random(seed + 1), stall=stall[1],
                                until_last=len(layers), on_beat=on_beat)

    cycles = sum(rows.size // A + 4 * n // A + 50 for n, rows in layers) * 4
    pysim.run(dut, send, recv, vcd_name=f"importance_{name}",
              deadline=cycles / (1 - max(stall)) * 1e-8)
    if name == "ci":
        assert saturated
    assert len(got) == len(expect)
    for j, (g, e) in enumerate(zip(got, expect)):
        assert g == e, f"sums beat {j}: {g} != {e}"


def test_core_units_reject_bad_configs():
    from dataclasses import replace

    from generators.config import ConfigError
    from hdl.core.select import TokenSelect
    cfg = PRESETS["ci"]
    for cls in (SlotAccumulator, TokenSelect):
        with pytest.raises(TypeError, match="cfg must be a SpAttenConfig"):
            cls(cfg.core)
        with pytest.raises(ConfigError, match="core.head_imp_bits \\(12\\) must be at least"):
            cls(replace(cfg, core=replace(cfg.core, head_imp_bits=12)))
