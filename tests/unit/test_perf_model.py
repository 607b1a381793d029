"""Unit tests of sim.perf_model, the SpAtten authors' quick-select top-k latency model."""

import numpy as np
import pytest

from sim.perf_model import authors_model_latency, quickselect_cycles


def _scala_mirror(scores, k, lanes, overhead, rng):
    """The Scala ``topKLatency`` loop in plain Python, on negated scores with target = k - 1.

    It makes the same ``rng.integers`` calls as ``quickselect_cycles``, in the same order, so
    with the same seed both give the same count, run for run.
    """
    seq = [-int(v) for v in scores]
    target, cycles = k - 1, 0
    while seq:
        cycles += (len(seq) + lanes - 1) // lanes + overhead
        pivot = seq[int(rng.integers(len(seq)))]
        less = [v for v in seq if v < pivot]
        cnt = sum(1 for v in seq if v == pivot)
        if len(less) <= target:
            if len(less) + cnt > target:
                return cycles
            target -= len(less) + cnt
            seq = [v for v in seq if v > pivot]
        else:
            seq = less
    return cycles


@pytest.mark.parametrize("n, k, ref", [(1024, 512, 259), (512, 128, 132)])
def test_reproduces_reference_means(n, k, ref):
    r = authors_model_latency(n, k)
    assert abs(r["selection_mean"] - ref) <= 0.10 * ref
    assert r["fill_filter"] == -(-n // 16)
    assert r["mean"] == pytest.approx(r["selection_mean"] + r["fill_filter"])
    assert r["mean"] <= r["p99"] <= r["max"]
    assert isinstance(r["max"], int) and isinstance(r["fill_filter"], int)


@pytest.mark.parametrize("bits", [4, 12, 32])
@pytest.mark.parametrize("n, k, lanes, overhead", [(100, 7, 16, 3), (64, 64, 4, 0),
                                                     (33, 1, 1, 2), (200, 100, 16, 3)])
def test_matches_scala_loop_run_for_run(bits, n, k, lanes, overhead):
    data_rng = np.random.default_rng(n * 1000 + k + bits)
    for trial in range(5):
        s = data_rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=n)
        got = quickselect_cycles(s, k, lanes=lanes, overhead=overhead,
                                 rng=np.random.default_rng(trial))
        want = _scala_mirror(s, k, lanes, overhead, np.random.default_rng(trial))
        assert got == want


@pytest.mark.parametrize("n", [1, 2, 17, 256])
def test_k_edges_terminate(n):
    rng = np.random.default_rng(1)
    s = rng.permutation(n) - n // 2  # distinct values: no early stop on ties
    first = -(-n // 16) + 3
    for k in (1, n):
        c = quickselect_cycles(s, k, rng=rng)
        assert first <= c <= n * first  # at most n passes, each no longer than the first
    assert quickselect_cycles(s, 0, rng=rng) == 0
    r = authors_model_latency(n, n, trials=20)
    assert r["selection_mean"] >= first


def test_all_equal_takes_one_pass():
    rng = np.random.default_rng(0)
    s = np.full(1000, 5)
    for k in (1, 500, 1000):
        assert quickselect_cycles(s, k, rng=rng) == -(-1000 // 16) + 3
        assert quickselect_cycles(s, k, lanes=7, overhead=0, rng=rng) == -(-1000 // 7)


def test_deterministic_for_a_seed():
    a = authors_model_latency(256, 32, trials=50, seed=7)
    b = authors_model_latency(256, 32, trials=50, seed=7)
    c = authors_model_latency(256, 32, trials=50, seed=8)
    assert a == b
    assert a != c


def test_more_lanes_is_faster():
    slow = authors_model_latency(512, 128, lanes=8, trials=50)
    fast = authors_model_latency(512, 128, lanes=32, trials=50)
    assert fast["selection_mean"] < slow["selection_mean"]
    assert fast["fill_filter"] == 16 and slow["fill_filter"] == 64


@pytest.mark.parametrize("call, msg", [
    (lambda: authors_model_latency(1024, 2000), r"k must be in 0\.\.n \(1024\), not 2000"),
    (lambda: authors_model_latency(1024, -1), r"k must be in 0\.\.n \(1024\), not -1"),
    (lambda: authors_model_latency(64, 8, lanes=0), r"lanes must be >= 1, not 0"),
    (lambda: authors_model_latency(0, 0), r"n must be >= 1, not 0"),
    (lambda: authors_model_latency(64, 8, trials=0), r"trials must be >= 1, not 0"),
    (lambda: authors_model_latency(64, 8, score_bits=0), r"score_bits must be in 1\.\.63"),
    (lambda: quickselect_cycles(np.zeros(10), 11, rng=np.random.default_rng()),
     r"k must be in 0\.\.n \(10\), not 11"),
    (lambda: quickselect_cycles(np.zeros(10), 1, lanes=-2, rng=np.random.default_rng()),
     r"lanes must be >= 1, not -2"),
    (lambda: quickselect_cycles(np.zeros(10), 1, overhead=-1, rng=np.random.default_rng()),
     r"overhead must be >= 0, not -1"),
    (lambda: quickselect_cycles(np.zeros((2, 5)), 1, rng=np.random.default_rng()),
     r"scores must be 1-D"),
])
def test_bad_arguments(call, msg):
    with pytest.raises(ValueError, match=msg):
        call()


@pytest.mark.parametrize("call, msg", [
    (lambda: authors_model_latency(64, 8.5), r"k must be an integer, not 8\.5"),
    (lambda: authors_model_latency(64, True), r"k must be an integer, not True"),
    (lambda: quickselect_cycles(np.zeros(10), 1, rng=None), r"rng must be a numpy"),
])
def test_bad_types(call, msg):
    with pytest.raises(TypeError, match=msg):
        call()
