"""sim.golden.core and sim.golden.select (the core's spec) against brute-force re-derivations: selection with
protected tokens, age normalisation, importance accumulation with saturation, cascade
pruning across layers and decode steps, the DRAM traffic rule and descriptor errors."""

from dataclasses import asdict, replace
from fractions import Fraction

import numpy as np
import pytest

from generators.config import ConfigError
from generators.presets import PRESETS
from generators.tables import age_recip_table
from sim.golden.attention import PassParams, head_pass, scale_for, split_planes
from generators.dram import (BASES, counters_bytes, counters_image, keeplist_bytes,
                             keeplist_image, pack_row, row_addr, row_bytes, row_stride,
                             unpack_row)
from generators.regmap import check_descriptor
from generators.status import Status
from sim.golden.core import CoreState, LayerParams, decode_step, layer_step, summarize
from sim.golden.select import DescriptorError, Policy, age_normalise, select

CI = PRESETS["ci"]


def _brute_select(cand, scores, keep, prot):
    """Protected ones plus the best of the rest: larger score first, then earlier id."""
    rest = sorted((i for i in range(len(cand)) if not prot[i]),
                  key=lambda i: (-int(scores[i]), i))
    chosen = [i for i in range(len(cand)) if prot[i]] + rest[:keep - int(sum(prot))]
    return [int(cand[i]) for i in sorted(chosen)]


@pytest.mark.parametrize("seed", range(40))
def test_select_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, CI.topk.capacity + 1))
    cand = np.sort(rng.choice(200, size=n, replace=False))
    hi = [4, 50, (1 << CI.core.imp_bits) - 1][seed % 3]  # few values: many ties
    scores = rng.integers(0, hi + 1, n)
    prot = rng.random(n) < [0.0, 0.2][seed % 2]
    keep = int(rng.integers(max(1, int(prot.sum())), n + 1))
    got = select(CI, cand, scores, keep, protected=prot)
    assert got.tolist() == _brute_select(cand, scores, keep, prot)


def test_select_errors():
    cand = np.arange(5)
    with pytest.raises(DescriptorError, match="KEEP_RANGE: keep must be in 1..5") as e:
        select(CI, cand, np.zeros(5, dtype=int), 6)
    assert e.value.status is Status.KEEP_RANGE
    with pytest.raises(DescriptorError, match="KEEP_RANGE"):
        select(CI, cand, np.zeros(5, dtype=int), 0)
    with pytest.raises(DescriptorError, match="POLICY: 3 protected tokens") as e:
        select(CI, cand, np.zeros(5, dtype=int), 2, protected=[1, 1, 1, 0, 0])
    assert e.value.status is Status.POLICY


@pytest.mark.parametrize("name", ["ci", "paper"])
def test_age_reciprocals_and_normalisation(name):
    cfg = PRESETS[name]
    b = cfg.core.age_frac_bits
    r = age_recip_table(cfg)
    assert len(r) == cfg.topk.capacity + 1 and r[1] == 1 << b and max(r) < 1 << (b + 1)
    for a in (1, 2, 3, 7, 60, cfg.topk.capacity):
        assert abs(Fraction(r[a]) - Fraction(1 << b, a)) <= Fraction(1, 2)
    rng = np.random.default_rng(3)
    imp = rng.integers(0, 1 << cfg.core.imp_bits, 500)
    age = rng.integers(1, cfg.topk.capacity + 1, 500)
    got = age_normalise(imp, age, cfg)
    exact = [Fraction(int(i) * r[int(a)], 1 << b) for i, a in zip(imp, age)]
    assert all(g == int(e + Fraction(1, 2)) for g, e in zip(got, exact))  # HALF_UP
    assert (got <= imp).all() and (age_normalise(imp, np.ones(500, int), cfg) == imp).all()


# ---- whole runs -----------------------------------------------------------------------
def _values(cfg, rng, shape, bits):
    return rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), shape)


def _layer(cfg, rng, heads, n, peaked=False):
    a = cfg.attn
    q = _values(cfg, rng, (heads, n, a.head_dim), a.q_bits)
    k = _values(cfg, rng, (heads, n, a.head_dim), a.value_bits)
    v = _values(cfg, rng, (heads, n, a.head_dim), a.value_bits)
    if peaked:  # one key per head aligned with every query: a confident row
        k[:, n // 2] = np.clip(q[:, 0] * 4, -(1 << (a.value_bits - 1)),
                               (1 << (a.value_bits - 1)) - 1)
    return q, k, v


def _lp(cfg, **kw):
    a = cfg.attn
    scale, shift = scale_for(0.2 * 2 ** a.score.frac / (1 << (a.q_bits + a.value_bits - 8)), a)
    return LayerParams(**{"scale": scale, "shift": shift, **kw})


def _brute_job(cfg, h, queries, tokens, q, k, v, lp, imp, himp):
    """One job the long way: both passes, importance, sum |out| and the DRAM rule."""
    a = cfg.attn
    kmsb, klsb = split_planes(k[h][tokens], a)
    vmsb, vlsb = split_planes(v[h][tokens], a)
    rb = lambda bits: -(-a.head_dim * bits // (8 * cfg.core.bus_bytes)) * cfg.core.bus_bytes
    outs, k_lsb, vm, vl = [], False, set(), set()
    for i in queries:
        pp = PassParams(lp.scale, lp.shift, lp.value_keep, lp.threshold, lp.msb_only)
        r = head_pass(cfg, q[h][i], kmsb, klsb, vmsb, vlsb, pp)
        if r.refetch:
            r = head_pass(cfg, q[h][i], kmsb, klsb, vmsb, vlsb, replace(pp, msb_only=0))
        full = r.refetch or not lp.msb_only or \
            head_pass(cfg, q[h][i], kmsb, klsb, vmsb, vlsb, pp).refetch
        k_lsb |= full
        vm |= set(r.kept_index.tolist())
        if full:
            vl |= set(r.kept_index.tolist())
        for j, t in enumerate(tokens):
            imp[t] = min(imp[t] + int(r.probs[j]), (1 << cfg.core.imp_bits) - 1)
        himp[h] = min(himp[h] + int(np.abs(r.out).sum()), (1 << cfg.core.head_imp_bits) - 1)
        outs.append(r.out.tolist())
    bytes_ = {"q": len(queries) * rb(a.q_bits), "kmsb": len(tokens) * rb(a.msb_bits),
              "klsb": len(tokens) * rb(a.lsb_bits) * k_lsb, "vmsb": len(vm) * rb(a.msb_bits),
              "vlsb": len(vl) * rb(a.lsb_bits), "out": len(queries) * rb(a.out.width)}
    return outs, bytes_


def _traffic(t):
    return asdict(t)


def test_row_bytes_pad_to_the_bus():
    # ci: D = 16, bus 8 bytes: 4-bit rows are 8 bytes, 10-bit rows 20 -> 24 bytes.
    assert row_bytes(CI, 4) == 8 and row_bytes(CI, 10) == 24 and row_bytes(CI, 8) == 16
    paper = PRESETS["paper"]  # D = 64, bus 64 bytes: 6-bit rows are 48 -> 64 bytes
    assert row_bytes(paper, 6) == 64 and row_bytes(paper, 12) == 128


@pytest.mark.parametrize("seed", range(3))
def test_summarize_matches_brute_force(seed):
    cfg = CI
    rng = np.random.default_rng(seed)
    n, heads = 24, 3
    layers = [_layer(cfg, rng, heads, n, peaked=(l == 1)) for l in range(4)]
    thr = cfg.attn.prob.max_raw // 3
    params = [_lp(cfg, token_keep=24, head_keep=3, value_keep=12, msb_only=1, threshold=thr),
              _lp(cfg, token_keep=20, head_keep=3, value_keep=5, msb_only=1, threshold=thr),
              _lp(cfg, token_keep=13, head_keep=2, value_keep=13),
              _lp(cfg, token_keep=6, head_keep=1, value_keep=2, msb_only=1, threshold=thr)]
    results, state = summarize(cfg, layers, params)
    imp, himp = [0] * cfg.topk.capacity, [0] * cfg.core.heads
    tokens, hs = list(range(n)), list(range(heads))
    for (q, k, v), lp, r in zip(layers, params, results):
        tokens = sorted(sorted(tokens, key=lambda t: (-imp[t], t))[:lp.token_keep])
        hs = sorted(sorted(hs, key=lambda h: (-himp[h], h))[:lp.head_keep])
        assert r.tokens.tolist() == tokens and r.heads.tolist() == hs
        for job, h in zip(r.jobs, hs):
            outs, bytes_ = _brute_job(cfg, h, tokens, tokens, q, k, v, lp, imp, himp)
            assert job.head == h and job.out.tolist() == outs
            assert _traffic(job.traffic) == bytes_
    assert state.imp.tolist() == imp and state.himp.tolist() == himp
    assert sum(r.refetched for r in results) > 0  # the MSB-only branch ran both ways
    assert any(r.refetched < len(r.tokens) * len(r.heads) for r in results
               if params[results.index(r)].msb_only)


def test_importance_saturates_and_never_wraps():
    cfg = replace(CI, core=replace(CI.core, imp_bits=8, head_imp_bits=14))
    rng = np.random.default_rng(7)
    layers = [_layer(cfg, rng, 2, 16) for _ in range(3)]
    params = [_lp(cfg, token_keep=16, head_keep=2, value_keep=16)] * 3
    _, state = summarize(cfg, layers, params)
    assert state.imp[:16].max() == (1 << 8) - 1 and (state.imp >= 0).all()
    assert state.himp[:2].max() == (1 << 14) - 1


def test_decode_policies_and_cascade():
    cfg = CI
    rng = np.random.default_rng(11)
    heads, steps, nl = 2, 30, 2
    full = [_layer(cfg, rng, heads, steps) for _ in range(nl)]
    state = CoreState.empty(cfg)
    policy = Policy(sinks=2, recent=3)
    ever_pruned = [set() for _ in range(nl)]
    for s in range(steps):
        n = s + 1
        keep0 = min(n, 10)
        params = [_lp(cfg, token_keep=keep0, head_keep=heads, value_keep=min(keep0, 4)),
                  _lp(cfg, token_keep=min(keep0, 8), head_keep=1 if s > 5 else heads,
                      value_keep=min(keep0, 8, 3))]
        before = ([set(state.kept[li][0].tolist()) | {s} for li in range(nl)]
                  if state.kept else None)
        res = decode_step(cfg, state, [(q[:, :n], k[:, :n], v[:, :n]) for q, k, v in full],
                          params, policy)
        assert state.length == n
        for li, r in enumerate(res):
            kept = set(r.tokens.tolist())
            assert len(kept) == params[li].token_keep
            assert {t for t in range(min(2, n))} <= kept            # sinks
            assert {t for t in range(max(0, n - 3), n)} <= kept     # recent window
            assert not kept & ever_pruned[li]                       # never returns
            if before is not None:
                ever_pruned[li] |= before[li] - kept
                assert kept <= before[li]
            if li:
                assert kept <= set(res[li - 1].tokens.tolist())     # cascade over layers
                assert set(r.heads.tolist()) <= set(res[li - 1].heads.tolist())
            assert r.queries.tolist() == [s] and len(r.jobs) == len(r.heads)
    assert all(ever_pruned)


def test_decode_age_normalisation_ranks_by_importance_per_step():
    """Raw cumulative importance favours old tokens (reference.md section 1); with age_norm
    a token competes on its importance per step since arrival, age = newest - t + 1."""
    cfg = CI
    rng = np.random.default_rng(5)
    q, k, v = _layer(cfg, rng, 1, 10)
    kept = {}
    for age_norm in (False, True):
        state = CoreState.empty(cfg)
        state.length, state.kept = 9, {0: (np.arange(9), np.arange(1))}   # 9 is new
        state.imp[:9] = [90, 80, 70, 60, 50, 40, 30, 20, 10]  # ages 10..2: 9, 8.9, ..., 5
        decode_step(cfg, state, [(q, k, v)],
                    [_lp(cfg, token_keep=4, head_keep=1, value_keep=4)],
                    Policy(recent=1, age_norm=age_norm))
        kept[age_norm] = state.kept[0][0].tolist()
    assert kept[False] == [0, 1, 2, 9]
    # (imp * R[age] + half) >> B with R = round(2**12 / age): 9, 9, 9, 9, 8, 8, 8, 7, 5
    assert kept[True] == [0, 1, 2, 9]
    state = CoreState.empty(cfg)
    state.length, state.kept = 9, {0: (np.arange(9), np.arange(1))}
    state.imp[:9] = [20, 20, 20, 20, 20, 20, 30, 30, 12]    # young tokens 6, 7, 8 lead per step
    decode_step(cfg, state, [(q, k, v)], [_lp(cfg, token_keep=4, head_keep=1, value_keep=4)],
                Policy(recent=1, age_norm=True))
    assert state.kept[0][0].tolist() == [6, 7, 8, 9]
    state = CoreState.empty(cfg)
    state.length, state.kept = 9, {0: (np.arange(9), np.arange(1))}
    state.imp[:9] = [20, 20, 20, 20, 20, 20, 30, 30, 12]
    decode_step(cfg, state, [(q, k, v)], [_lp(cfg, token_keep=4, head_keep=1, value_keep=4)],
                Policy(recent=1, age_norm=False))
    assert state.kept[0][0].tolist() == [0, 6, 7, 9]


@pytest.mark.parametrize("params,status", [
    ({"token_keep": 9}, Status.KEEP_RANGE),
    ({"head_keep": 3}, Status.KEEP_RANGE),
    ({"head_keep": 0}, Status.KEEP_RANGE),
    ({"value_keep": 9}, Status.VALUE_KEEP),
    ({"shift": 64}, Status.PARAMS),
])
def test_bad_descriptors(params, status):
    cfg = CI
    rng = np.random.default_rng(1)
    layer = _layer(cfg, rng, 2, 8)
    lp = _lp(cfg, **{"token_keep": 8, "head_keep": 2, "value_keep": 8, **params})
    with pytest.raises(DescriptorError) as e:
        summarize(cfg, [layer], [lp])
    assert e.value.status is status


def test_bad_geometry():
    cfg = CI
    rng = np.random.default_rng(1)
    with pytest.raises(DescriptorError, match="GEOMETRY: heads must be in 1..4"):
        summarize(cfg, [_layer(cfg, rng, 5, 8)], [_lp(cfg, token_keep=8, head_keep=5,
                                                          value_keep=8)])
    n = cfg.topk.capacity + 1
    with pytest.raises(DescriptorError, match="GEOMETRY: tokens must be at most"):
        summarize(cfg, [_layer(cfg, rng, 1, n)], [_lp(cfg, token_keep=n, head_keep=1,
                                                          value_keep=n)])


def test_core_config_checks():
    with pytest.raises(ConfigError, match="imp_bits must be in 8..30, not 31"):
        replace(CI.core, imp_bits=31)
    bad = replace(CI, core=replace(CI.core, head_imp_bits=12))
    with pytest.raises(ConfigError, match="core.head_imp_bits \\(12\\) must be at least 14"):
        bad.check_core()
    assert PRESETS["paper"].select_topk.score.width == 32


def test_check_descriptor_rules_in_order():
    cfg = CI
    good = {"mode": 1, "age_norm": 1, "layer": 3, "heads": 4, "n": 64, "newest": 63,
            "token_keep": 10, "value_keep": 10, "scale": 4095, "threshold": 127,
            **{b: 4096 * (i + 1) for i, b in enumerate(BASES)}}
    assert check_descriptor(cfg, good) is Status.OK
    cases = [({"kmsb": 12}, Status.ALIGN), ({"out": 1 << 32}, Status.ALIGN),
             ({"counters": 4}, Status.ALIGN), ({"counters": 4096 + 8}, Status.OK),
             # bus-aligned, but a Q row (16 bytes) would cross a 4 KB page
             ({"q": 4096 - 8}, Status.ALIGN),
             ({"n": 0}, Status.GEOMETRY), ({"n": 65}, Status.GEOMETRY),
             ({"heads": 5}, Status.GEOMETRY), ({"layer": 4}, Status.GEOMETRY),
             ({"newest": 64}, Status.GEOMETRY), ({"scale": 4096}, Status.PARAMS),
             ({"threshold": 128}, Status.PARAMS), ({"mode": 0}, Status.PARAMS),
             ({"value_keep": 11}, Status.VALUE_KEEP),
             ({"kmsb": 12, "n": 0, "value_keep": 11}, Status.ALIGN),
             ({"n": 0, "threshold": 128}, Status.GEOMETRY)]
    for change, status in cases:
        assert check_descriptor(cfg, {**good, **change}) is status, change


def _same(a, b):
    assert (a.tokens == b.tokens).all() and (a.heads == b.heads).all()
    assert (a.queries == b.queries).all() and a.traffic == b.traffic
    assert len(a.jobs) == len(b.jobs)
    for x, y in zip(a.jobs, b.jobs):
        assert x.head == y.head and (x.out == y.out).all() and x.refetched == y.refetched


def test_layer_step_in_order_is_summarize_then_decode():
    """The hardware's one-descriptor-at-a-time model (layer_step) run from layer 0 equals
    summarize and then decode_step, outputs, traffic and importance included."""
    cfg = CI
    rng = np.random.default_rng(21)
    heads, n0, steps, nl = 3, 12, 4, 3
    full = [_layer(cfg, rng, heads, n0 + steps, peaked=True) for _ in range(nl)]
    sp = [_lp(cfg, token_keep=k, head_keep=h, value_keep=v, msb_only=m, threshold=t)
          for k, h, v, m, t in ((10, 3, 6, 0, 0), (8, 2, 8, 1, 60), (6, 2, 3, 1, 30))]
    a_res, a = summarize(cfg, [tuple(x[:, :n0] for x in f) for f in full], sp)
    b = CoreState.empty(cfg)
    for li in range(nl):
        _same(a_res[li], layer_step(cfg, b, li, tuple(x[:, :n0] for x in full[li]), sp[li]))
    a.length = n0
    policy = Policy(sinks=1, recent=2, age_norm=True)
    for s in range(steps):
        n = n0 + s + 1
        dp = [_lp(cfg, token_keep=k, head_keep=1, value_keep=2, msb_only=s % 2, threshold=40)
              for k in (6, 5, 4)]
        a_res = decode_step(cfg, a, [tuple(x[:, :n] for x in f) for f in full], dp, policy)
        for li in range(nl):
            _same(a_res[li], layer_step(cfg, b, li, tuple(x[:, :n] for x in full[li]), dp[li],
                                        generation=True, newest=n - 1, policy=policy))
    assert (a.imp == b.imp).all() and (a.himp == b.himp).all()


def test_layer_step_changes_nothing_on_an_error():
    cfg = CI
    rng = np.random.default_rng(5)
    layer = _layer(cfg, rng, 2, 8)
    st = CoreState.empty(cfg)
    layer_step(cfg, st, 0, layer, _lp(cfg, token_keep=6, head_keep=2, value_keep=3))
    snap = (st.imp.copy(), st.himp.copy(), dict(st.kept))
    with pytest.raises(DescriptorError) as e:
        layer_step(cfg, st, 1, layer, _lp(cfg, token_keep=7, head_keep=1, value_keep=3))
    assert e.value.status == Status.KEEP_RANGE   # 7 of the 6 kept by layer 0
    assert (st.imp == snap[0]).all() and (st.himp == snap[1]).all() and st.kept == snap[2]


def test_dram_rows_and_keep_lists():
    cfg = CI
    rng = np.random.default_rng(2)
    for bits, signed in ((cfg.attn.q_bits, True), (cfg.attn.lsb_bits, False),
                         (cfg.attn.out.width, True)):
        lo = -(1 << (bits - 1)) if signed else 0
        x = rng.integers(lo, lo + (1 << bits), cfg.attn.head_dim)
        blob = pack_row(cfg, x, bits)
        assert len(blob) == row_bytes(cfg, bits) and (unpack_row(cfg, blob, bits,
                                                                 signed=signed) == x).all()
        assert row_stride(cfg, bits) >= len(blob) and row_stride(cfg, bits) & (
            row_stride(cfg, bits) - 1) == 0
    assert row_addr(cfg, 4096, 8, 2, 5) == 4096 + (2 * cfg.topk.capacity + 5) * 16
    img = keeplist_image(cfg, [1, 4, 9], [0, 2])
    assert len(img) == keeplist_bytes(cfg, 3) == 8 + 8
    assert int.from_bytes(img[:8], "little") == 3 | 2 << 16 | 0b101 << 32
    assert [int.from_bytes(img[8 + 2 * i:10 + 2 * i], "little") for i in range(4)] == [1, 4, 9, 0]


def test_counters_image_layout():
    rec = counters_image(CI, bytes_read=1000, bytes_written=200, cycles=(1 << 48) - 1,
                         layer=3, generation=True, tokens=17, heads=2)
    assert len(rec) == counters_bytes(CI) == 32                 # 4 words, 8-byte bus
    words = [int.from_bytes(rec[8 * i:8 * i + 8], "little") for i in range(4)]
    assert words == [1000, 200, (1 << 48) - 1, 3 | 1 << 8 | 17 << 16 | 2 << 32 | 1 << 63]
    paper = PRESETS["paper"]
    assert counters_bytes(paper) == 64                          # one 64-byte beat, padded
    rec = counters_image(paper, bytes_read=1, bytes_written=2, cycles=3, layer=0,
                         generation=False, tokens=1, heads=1)
    assert len(rec) == 64 and rec[32:] == bytes(32)
    with pytest.raises(ValueError, match="bytes_read must fit 64 bits"):
        counters_image(CI, bytes_read=-1, bytes_written=0, cycles=0, layer=0,
                       generation=False, tokens=1, heads=1)
