"""sim.golden.topk against an independent brute-force reference (pure Python sort)."""

import zlib

import numpy as np
import pytest

from generators.config import TopKConfig
from generators.numerics import QFormat
from generators.presets import PRESETS
from sim import stimulus
from sim.golden.topk import EngineResult, TopKResult, topk, topk_engine

CAPACITY = 1024
# Capacity 1024 as in the paper preset, used to draw stimulus patterns.
PAPER = PRESETS["paper"].topk
WIDE = QFormat(42, 0)  # raw values up to ±2**41, so ±2**40 and neighbours are in range


def ref_topk(scores, k):
    """Brute force: sort (-value, index), keep the first min(k, n), reorder by index."""
    s = [int(v) for v in scores]
    m = min(k, len(s))
    kept = sorted(sorted((-v, i) for i, v in enumerate(s))[:m], key=lambda t: t[1])
    idx = [i for _, i in kept]
    vals = [s[i] for i in idx]
    return idx, vals, (min(vals) if vals else None)


def check_against_ref(scores, k):
    r = topk(scores, k)
    idx, vals, kth = ref_topk(scores, k)
    n = len(scores)
    assert isinstance(r, TopKResult)
    assert r.indices.dtype == np.int64 and r.values.dtype == np.int64
    assert r.indices.ndim == 1 and r.values.ndim == 1
    assert r.indices.tolist() == idx, f"n={n} k={k}"
    assert r.values.tolist() == vals
    assert len(r) == min(k, n) == len(r.values)
    assert np.all(np.diff(r.indices) > 0), "indices must be strictly ascending"
    assert r.values.tolist() == [int(scores[i]) for i in r.indices]
    if r.kth is None:
        assert min(k, n) == 0
    else:
        assert type(r.kth) is int
        assert r.kth == min(r.values.tolist()) == kth
    assert kth == r.kth
    # Every dropped element is beaten by every kept one (value, then lower index).
    kept = set(idx)
    if kept and len(kept) < n:
        worst = min((int(scores[i]), -i) for i in kept)
        best_dropped = max((int(scores[j]), -j) for j in range(n) if j not in kept)
        assert worst > best_dropped
    return r


def k_values(n):
    return sorted({0, 1, max(n - 1, 0), n, n + 1, 10 * n + 17})


def n_values(rng):
    return [0, 1, 2, CAPACITY] + [int(x) for x in rng.integers(3, CAPACITY, 2)]


@pytest.mark.parametrize("pattern", stimulus.PATTERNS)
def test_stimulus_patterns_match_reference(pattern):
    rng = np.random.default_rng(zlib.crc32(pattern.encode()))
    for n in n_values(rng):
        for k in k_values(n):
            scores, kk = stimulus.topk_packet(PAPER, rng, n, k, pattern)
            assert len(scores) == n and kk == k
            check_against_ref(scores, k)


def _wide_arrays(rng, n):
    big = 2**40
    yield "random", rng.integers(-big, big + 1, n)
    yield "equal", np.full(n, -big)
    yield "ties", rng.choice(np.array([-big, 7, big]), n)
    yield "sorted", np.sort(rng.integers(-big, big + 1, n))
    yield "reverse", np.sort(rng.integers(-big, big + 1, n))[::-1]
    yield "extreme", rng.choice(np.array([-big, -big + 1, -1, 0, 1, big - 1, big]), n)
    # Full int64 range except int64 min (see test_int64_min below).
    yield "int64", rng.integers(-(2**63) + 1, 2**63 - 1, n, endpoint=True)
    yield "int64_ends", rng.choice(np.array([-(2**63) + 1, 0, 2**63 - 1]), n)


def test_own_arrays_with_int64_extremes():
    rng = np.random.default_rng(1234)
    for n in n_values(rng):
        for _name, raw in _wide_arrays(rng, n):
            scores = np.asarray(raw, dtype=np.int64)
            for k in k_values(n):
                check_against_ref(scores, k)


def test_random_sizes_and_narrow_dtypes():
    rng = np.random.default_rng(99)
    for _ in range(40):
        n = int(rng.integers(0, 300))
        k = int(rng.integers(0, n + 3))
        for dtype in (np.int8, np.int16, np.uint8, np.uint16, np.int32, np.int64):
            info = np.iinfo(dtype)
            scores = rng.integers(info.min, int(info.max) + 1, n).astype(dtype)
            r = check_against_ref(scores, k)
            assert r.values.dtype == np.int64


def test_accepts_python_lists_and_tuples():
    check_against_ref([3, -1, 4, 1, -5, 9, 2, 6], 3)
    check_against_ref((3, -1, 4, 1, -5, 9, 2, 6), 5)
    r = topk([3, -1, 4, 1, -5, 9, 2, 6], 3)
    assert r.indices.tolist() == [2, 5, 7]
    assert r.values.tolist() == [4, 9, 6]
    assert r.kth == 4


def test_input_is_not_modified():
    scores = np.array([5, 1, 5, 9, -3], dtype=np.int64)
    before = scores.copy()
    topk(scores, 2)
    np.testing.assert_array_equal(scores, before)


def test_tie_rule_lower_index_wins_hand_written():
    s = [5, 7, 5, 7, 5, 3]
    r = topk(s, 3)
    assert r.indices.tolist() == [0, 1, 3]  # both 7s, then the 5 at index 0 (not 2 or 4)
    assert r.values.tolist() == [5, 7, 7]
    assert r.kth == 5
    r = topk(s, 4)
    assert r.indices.tolist() == [0, 1, 2, 3]
    r = topk(s, 2)
    assert r.indices.tolist() == [1, 3] and r.kth == 7
    r = topk([2, 2, 2, 2], 2)
    assert r.indices.tolist() == [0, 1] and r.values.tolist() == [2, 2] and r.kth == 2
    r = topk([-1, 0, -1, 0, -1], 3)
    assert r.indices.tolist() == [0, 1, 3] and r.kth == -1


def test_empty_results():
    for scores, k in (([], 0), ([], 5), ([1, 2, 3], 0), (np.array([], dtype=np.int64), 1)):
        r = topk(scores, k)
        assert len(r) == 0
        assert r.indices.size == 0 and r.values.size == 0
        assert r.kth is None


def test_k_larger_than_n_keeps_everything_in_order():
    s = [4, -2, 9, 0]
    r = topk(s, 100)
    assert r.indices.tolist() == [0, 1, 2, 3]
    assert r.values.tolist() == s
    assert r.kth == -2


@pytest.mark.parametrize("k", [-1, -100])
def test_negative_k_is_rejected(k):
    with pytest.raises(ValueError, match="k must be non-negative"):
        topk([1, 2, 3], k)


@pytest.mark.parametrize("scores", [np.zeros((2, 3), dtype=np.int64), [[1, 2], [3, 4]],
                                    np.int64(5), np.zeros((0, 2), dtype=np.int64)])
def test_non_1d_input_is_rejected(scores):
    with pytest.raises(ValueError, match="one-dimensional"):
        topk(scores, 1)


@pytest.mark.parametrize("scores", [[1.0, 2.0], np.array([0.5, 1.5]), np.array([1, 2],
                                                                               dtype=np.float32)])
def test_float_input_is_rejected(scores):
    with pytest.raises(ValueError, match="integers"):
        topk(scores, 1)


def test_int64_min():
    r = topk(np.array([-(2**63), 0], dtype=np.int64), 1)
    assert r.indices.tolist() == [1]


# topk_engine -----------------------------------------------------------------------------

PRESET_CFGS = [pytest.param(p.topk, id=name) for name, p in PRESETS.items()]


def _in_format(cfg, rng, n):
    return rng.integers(cfg.score.min_raw, cfg.score.max_raw + 1, n).astype(np.int64)


@pytest.mark.parametrize("cfg", PRESET_CFGS)
def test_engine_matches_reference_on_stimulus(cfg):
    rng = np.random.default_rng(cfg.capacity + cfg.lanes)
    packets = stimulus.topk_packets(cfg, rng, 150)
    for scores, k in packets:
        e = topk_engine(scores, k, cfg)
        assert isinstance(e, EngineResult)
        kept = scores[: cfg.capacity]
        idx, vals, kth = ref_topk(kept, k)
        assert e.indices.tolist() == idx
        assert e.values.tolist() == vals
        assert e.kth == (cfg.score.max_raw if kth is None else kth)
        assert type(e.kth) is int
        assert e.truncated == (len(scores) > cfg.capacity)


@pytest.mark.parametrize("cfg", PRESET_CFGS)
def test_engine_truncates_beyond_capacity(cfg):
    rng = np.random.default_rng(7)
    cap = cfg.capacity
    # Elements beyond the capacity hold the largest score: they would win if considered.
    head = rng.integers(cfg.score.min_raw, cfg.score.max_raw, cap)  # never max_raw
    tail = np.full(cfg.lanes + 3, cfg.score.max_raw)
    scores = np.concatenate([head, tail]).astype(np.int64)
    for k in (1, 5, cap, cap + 1):
        e = topk_engine(scores, k, cfg)
        assert e.truncated is True
        assert np.all(e.indices < cap)
        assert cfg.score.max_raw not in e.values.tolist()
        r = topk(head, k)
        np.testing.assert_array_equal(e.indices, r.indices)
        np.testing.assert_array_equal(e.values, r.values)
        assert e.kth == r.kth
    exact = topk_engine(head, 3, cfg)
    assert exact.truncated is False
    one_more = topk_engine(np.concatenate([head, [0]]), 3, cfg)
    assert one_more.truncated is True


@pytest.mark.parametrize("cfg", PRESET_CFGS)
def test_engine_empty_result_reports_max_raw(cfg):
    rng = np.random.default_rng(3)
    for scores, k in (([], 0), ([], 4), (_in_format(cfg, rng, 10), 0)):
        e = topk_engine(scores, k, cfg)
        assert e.indices.size == 0 and e.values.size == 0
        assert e.kth == cfg.score.max_raw
        assert e.truncated is False


@pytest.mark.parametrize("cfg", PRESET_CFGS)
def test_engine_k_field_width(cfg):
    limit = 1 << cfg.count_bits  # k is a count_bits-wide field
    scores = [0, 1, -1]
    e = topk_engine(scores, limit - 1, cfg)  # largest k that fits: keeps everything
    assert e.indices.tolist() == [0, 1, 2]
    for bad in (limit, limit + 5, -1):
        with pytest.raises(ValueError, match="k field"):
            topk_engine(scores, bad, cfg)


@pytest.mark.parametrize("cfg", PRESET_CFGS)
def test_engine_rejects_out_of_format_scores(cfg):
    lo, hi = cfg.score.min_raw, cfg.score.max_raw
    topk_engine([lo, hi], 1, cfg)  # the bounds themselves are fine
    for bad in (hi + 1, lo - 1, 2**40):
        with pytest.raises(ValueError, match="score must fit"):
            topk_engine([0, bad, 1], 1, cfg)


def test_engine_small_custom_config():
    cfg = TopKConfig(lanes=1, capacity=3, score=QFormat(2, 0), radix_bits=1, buffers=1)
    e = topk_engine([1, -2, 1, 1, 1], 2, cfg)
    assert e.truncated is True
    assert e.indices.tolist() == [0, 2] and e.values.tolist() == [1, 1] and e.kth == 1
    assert topk_engine([], 0, cfg).kth == 1


def test_engine_rejects_float_scores():
    with pytest.raises(ValueError):
        topk_engine(np.array([1.5, 2.7]), 1, PRESETS["ci"].topk)


@pytest.mark.parametrize("cfg", PRESET_CFGS)
@pytest.mark.parametrize("pattern", stimulus.PATTERNS)
def test_stimulus_scores_fit_the_format(cfg, pattern):
    rng = np.random.default_rng(5)
    for n in (0, 1, cfg.lanes + 1, cfg.capacity):
        scores, k = stimulus.topk_packet(cfg, rng, n, 2, pattern)
        assert scores.dtype == np.int64 and scores.shape == (n,) and k == 2
        assert np.all(cfg.score.contains(scores))


def test_stimulus_rejects_unknown_pattern():
    with pytest.raises(ValueError, match="pattern must be one of"):
        stimulus.topk_packet(PAPER, np.random.default_rng(0), 4, 1, "zigzag")
