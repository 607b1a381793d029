"""sim.accuracy: the softmax meets the 2**-10 target against float64, measured errors stay
within the analytic bound of docs/numerics.md, and the attention study ranks its modes as it
should."""

import numpy as np
import pytest

from generators.presets import PRESETS
from sim import accuracy

PAPER = PRESETS["paper"]
TARGET = 2.0**-10  # the target for the per-probability softmax error


@pytest.fixture(scope="module")
def paper_softmax_rows():
    rng = np.random.default_rng(accuracy.SEED)
    return accuracy.softmax_accuracy(PAPER, rng, rows_per_kind=6, n=[8, 100, 1024])


@pytest.mark.parametrize("kind", ["random", "peaked", "flat", "two-peak"])
def test_paper_softmax_error_within_target(paper_softmax_rows, kind):
    rows = [r for r in paper_softmax_rows if r["kind"] == kind]
    assert [r["n"] for r in rows] == [8, 100, 1024]
    for r in rows:
        assert r["rows"] == 6
        assert 0 < r["max_err"] <= TARGET, r
        assert r["mean_err"] <= r["max_err"]
        assert r["pmax_err_u10"] <= 1.0, r
        assert r["max_err_u10"] == pytest.approx(r["max_err"] * 1024)


def test_paper_measured_errors_within_analytic_bound(paper_softmax_rows):
    for r in paper_softmax_rows:
        assert r["max_err_u10"] <= r["bound_u10"], r
    # The adversarial row is worse than random rows: the search does find something.
    adv = max(r["max_err"] for r in paper_softmax_rows if r["kind"] == "adversarial")
    rnd = max(r["max_err"] for r in paper_softmax_rows if r["kind"] == "random")
    assert adv > rnd


def test_ci_measured_errors_within_analytic_bound():
    cfg = PRESETS["ci"]
    rows = accuracy.softmax_accuracy(cfg, np.random.default_rng(3), rows_per_kind=8)
    assert {r["n"] for r in rows} == {8, 64}
    for r in rows:
        assert r["max_err_u10"] <= r["bound_u10"], r
        # Never worse than a few ulps of the u7f7 probability (ulp = 8 units of 2**-10).
        assert r["max_err"] <= 2.0 * 2.0**-cfg.attn.prob.frac, r


def test_bound_terms():
    a = PAPER.attn
    eta = accuracy.exp_error(a)
    assert 0.5 < eta < 0.75  # table rounding (< 1/2) halved by a shift, plus 1/2
    assert accuracy.softmax_error_bound(a, 1) == pytest.approx(2.0**-11 + 2.0**-13)
    b = accuracy.softmax_error_bound(a, 1024)
    assert b == pytest.approx(2.0**-11 + 2.0**-13 + eta * 1023 / 2.0**a.exp_bits)
    assert accuracy.softmax_error_bound(a, 64) < b
    # The analytic worst case meets the 2**-10 target at the full capacity, not just the
    # measured rows (paper's exp_bits is chosen for that).
    assert accuracy.softmax_error_bound(a, PAPER.topk.capacity) <= 2.0**-10


def test_softmax_rows_are_deterministic():
    one = accuracy.softmax_accuracy(PAPER, np.random.default_rng(9), 2, n=16,
                                    kinds=("random", "flat"))
    two = accuracy.softmax_accuracy(PAPER, np.random.default_rng(9), 2, n=16,
                                    kinds=("random", "flat"))
    assert one == two and len(one) == 2


def test_softmax_accuracy_rejects_bad_input():
    with pytest.raises(ValueError, match="row sizes must be in 1..topk.capacity"):
        accuracy.softmax_accuracy(PAPER, np.random.default_rng(0), 1, n=2000)
    with pytest.raises(ValueError, match="kind must be one of"):
        accuracy.score_row("zigzag", PAPER.attn, np.random.default_rng(0), 4)


@pytest.mark.parametrize("kind", accuracy.SOFTMAX_KINDS)
def test_score_rows_fit_the_format(kind):
    a = PAPER.attn
    s = accuracy.score_row(kind, a, np.random.default_rng(1), 50)
    assert s.dtype == np.int64 and s.shape == (50,)
    assert np.all(a.score.contains(s))


@pytest.fixture(scope="module")
def paper_attention_rows():
    return accuracy.attention_accuracy(PAPER, np.random.default_rng(accuracy.SEED), n=128,
                                       queries=12)


def test_attention_full_precision_beats_msb_only(paper_attention_rows):
    rows = {r["mode"]: r for r in paper_attention_rows}
    full = rows["full 8+4 (12-bit K/V)"]
    msb = {m: rows[f"MSB-only {m}+4 ({m}-bit K/V)"] for m in (4, 6, 8)}
    assert full["rms_err"] < msb[4]["rms_err"] and full["max_err"] < msb[4]["max_err"]
    assert full["cos_min"] > msb[4]["cos_min"]
    # More MSBs, less error.
    assert msb[4]["rms_err"] > msb[6]["rms_err"] > msb[8]["rms_err"] > full["rms_err"]
    assert full["cos_min"] > 0.999 and full["rms_err"] < 2e-3


def test_attention_pruning_costs_accuracy(paper_attention_rows):
    rows = {r["mode"]: r for r in paper_attention_rows}
    full = rows["full 8+4 (12-bit K/V)"]
    half, quarter = rows["full 8+4, keep n/2"], rows["full 8+4, keep n/4"]
    assert (full["keep"], half["keep"], quarter["keep"]) == (128, 64, 32)
    assert full["rms_err"] < half["rms_err"] < quarter["rms_err"]
    for r in paper_attention_rows:
        assert r["queries"] == 12 and 0 <= r["pmax_below"] <= 1
        assert -1 <= r["cos_min"] <= r["cos_mean"] <= 1


def test_attention_accuracy_rejects_bad_n():
    with pytest.raises(ValueError, match="n must be in 1..topk.capacity"):
        accuracy.attention_accuracy(PRESETS["ci"], np.random.default_rng(0), n=65)


def test_markdown_and_main(capsys):
    table = accuracy.markdown([{"a": 1, "b": 0.5}], [("a", "A", "{}"), ("b", "B", "{:.2f}")])
    assert table.splitlines() == ["| A | B |", "|---|---|", "| 1 | 0.50 |"]
    assert accuracy.main(["--config", "ci", "--rows", "2", "--n", "16", "--queries", "2"]) == 0
    out = capsys.readouterr().out
    assert "| row kind | n |" in out and "| MSB-only 4+4 (4-bit K/V) |" in out
