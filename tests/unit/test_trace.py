"""The GPT-2 trace reader (``sim.trace``): the two real files against reference.md section 3,
malformed files, the deterministic sample, and the traffic, bound and replay parameters of a
row worked out by hand."""

import re
from dataclasses import replace
from pathlib import Path

import pytest

import sim.trace as trace_mod
from generators.presets import PRESETS
from sim.golden.core import Traffic
from sim.trace import (BOUND_DEFINITION, COLUMNS, TraceFormatError, TraceRow, dense_traffic,
                       load_trace, row_bound, row_params, row_traffic, sample, spread, summary,
                       trace_bound)

WORKLOADS = Path(__file__).resolve().parents[2].parent / "shared" / "workloads" / "spatten-gpt2"
PRUNED = WORKLOADS / "gpt2-small-wikitext2-pruned.csv"
DENSE = WORKLOADS / "gpt2-medium-ptb-dense.csv"
PAPER = PRESETS["paper"]


def _real(path: Path):
    if not path.is_file():
        pytest.skip(f"workload trace {path} is absent (the shared workloads folder is not "
                    f"checked out beside the repository)")
    return load_trace(path)


@pytest.fixture(scope="module")
def pruned():
    return _real(PRUNED)


@pytest.fixture(scope="module")
def dense():
    return _real(DENSE)


# A row shaped like the pruned trace: 6-bit K/V, progressive quantization at 0.05.
BASE = dict(iteration_id=0, layer_id=0, head_id=0, embedding_length_D=64,
            sentence_length_L=100, key_fetch_num=40, quant_key_bit=6, quant_query_bit=16,
            auto_requant_thres=0.05, if_requant=False, auto_requant_incre=4,
            value_fetch_num=10, quant_value_bit=6, if_accumulate_importance=True,
            if_rescale_previous_importance=False, if_topk=False, topk=-1)
UNQUANT = dict(quant_key_bit=-1, quant_query_bit=-1, quant_value_bit=-1,
               auto_requant_thres=-1, auto_requant_incre=-1)


def _row(**kw) -> TraceRow:
    return TraceRow(**(BASE | kw))


def _fields(**kw) -> list[str]:
    d = BASE | kw
    return [f"{float(d[c])}" if c == "embedding_length_D" else str(d[c]) for c in COLUMNS]


def _write(tmp_path, lines, name="t.csv") -> Path:
    p = tmp_path / name
    p.write_text("".join(line + "\n" for line in lines))
    return p


HEADER = ",".join(COLUMNS)
FOOTER = "configs/test.yml" + "," * (len(COLUMNS) - 1)


def test_all_names_resolve():
    assert trace_mod.__all__ and len(set(trace_mod.__all__)) == len(trace_mod.__all__)
    assert all(hasattr(trace_mod, n) for n in trace_mod.__all__)


# ---- the real traces (reference.md section 3) -------------------------------------------
def test_pruned_summary_matches_reference(pruned):
    s = summary(pruned)
    assert s["rows"] == 4608
    assert (s["iterations"], s["layers"], s["heads"]) == (32, 12, 12)
    assert 993 <= s["mean_L"] <= 1024
    assert s["keys_pct"] == pytest.approx(27.7, abs=0.1)
    assert s["values_pct"] == pytest.approx(5.5, abs=0.05)
    assert s["requant_pct"] == pytest.approx(7.0, abs=0.1)
    assert s["k_bits"] == s["v_bits"] == (6,)
    assert s["model"].startswith("configs/gpt2/wikitext2/")
    assert {r.sentence_length_L for r in pruned.rows} == set(range(993, 1025))


def test_dense_summary_fetches_everything(dense):
    s = summary(dense)
    assert s["rows"] == 12288
    assert (s["iterations"], s["layers"], s["heads"]) == (32, 24, 16)
    assert s["keys_pct"] == s["values_pct"] == 100.0
    assert s["requant_pct"] == 0.0
    assert s["k_bits"] == s["v_bits"] == s["q_bits"] == (-1,)
    assert s["model"] == "configs/gpt2/ptb/medium_baseline_train+eval.yml"
    assert all(r.key_fetch_num == r.value_fetch_num == r.sentence_length_L
               and r.full_precision for r in dense.rows)


@pytest.mark.parametrize("name", ["paper", "eighth"])
def test_dense_traffic_bounds_pruned_on_every_row(pruned, dense, name):
    cfg = PRESETS[name]
    for row in pruned.rows + dense.rows:
        p, d = row_traffic(cfg, row), dense_traffic(cfg, row)
        for kind in ("q", "kmsb", "klsb", "vmsb", "vlsb", "out"):
            assert getattr(d, kind) >= getattr(p, kind), (row, kind)
    # The dense trace prunes nothing: its traffic is the dense traffic.
    assert all(row_traffic(cfg, r) == dense_traffic(cfg, r) for r in dense.rows)


def test_real_bounds_on_paper(pruned, dense):
    p = trace_bound(PAPER, pruned)
    d = trace_bound(PAPER, pruned, dense=True)
    assert p["rows"] == 4608 and p["dram_bytes"] < d["dram_bytes"] and p["cycles"] < d["cycles"]
    # The Q·K term alone is the authors' Q·K-bound figure for this trace (1.96e5 cycles at
    # 8 keys per cycle, recomputes of the requantized rows included).
    assert p["qk_lines"] == pytest.approx(1.96e5, rel=0.005)
    assert d["limited_by"]["dram_cycles"] == 4608
    m = trace_bound(PAPER, dense)
    assert m == trace_bound(PAPER, dense.rows, dense=True)


def test_real_rows_replay_on_paper(pruned, dense):
    ps = [row_params(PAPER, r) for r in pruned.rows]
    assert all(p["msb_only"] == 1 and p["head_keep"] == 1 for p in ps)
    assert sum(p["force_refetch"] for p in ps) == sum(r.if_requant for r in pruned.rows)
    assert all(row_params(PAPER, r)["msb_only"] == 0 for r in dense.rows[:100])


def test_real_sample(pruned):
    s = sample(pruned, 100)
    idx = [pruned.rows.index(r) for r in s]
    assert idx[0] == 0 and len(idx) == 100
    assert {b - a for a, b in zip(idx, idx[1:])} <= {46, 47}      # 4608 / 100 = 46.08
    assert s == sample(pruned, 100)


# ---- loading --------------------------------------------------------------------------
def test_load_small_file(tmp_path):
    p = _write(tmp_path, [HEADER, ",".join(_fields()), "",
                          ",".join(_fields(head_id=1, if_requant=True)), FOOTER])
    t = load_trace(p)
    assert t.model == "configs/test.yml" and t.path == p and len(t) == 2
    assert t.rows[0] == _row()
    assert t.rows[1].if_requant is True and t.rows[1].head_id == 1
    assert isinstance(t.rows[0].embedding_length_D, int)
    assert isinstance(t.rows[0].auto_requant_thres, float)


def test_load_without_footer_and_reordered_header(tmp_path):
    cols = list(reversed(COLUMNS))
    vals = dict(zip(COLUMNS, _fields()))
    p = _write(tmp_path, [",".join(cols), ",".join(vals[c] for c in cols)])
    t = load_trace(p)
    assert t.model == "" and t.rows == (_row(),)


def _bad(**kw):
    return ",".join(_fields(**kw))


MALFORMED = [
    ("short row", ",".join(_fields()[:-1]), None, "expected 17 fields, not 16"),
    ("non-numeric", _bad(key_fetch_num="abc"), "key_fetch_num", "must be an integer"),
    ("float in int column", _bad(value_fetch_num="10.0"), "value_fetch_num",
     "must be an integer"),
    ("fractional D", _bad(embedding_length_D="64.5"), "embedding_length_D", "whole number"),
    ("bad bool", _bad(if_requant="true"), "if_requant", "True or False"),
    ("keys above L", _bad(key_fetch_num=101), "key_fetch_num",
     "in 1..sentence_length_L (100), not 101"),
    ("values above keys", _bad(value_fetch_num=41), "value_fetch_num",
     "in 1..key_fetch_num (40), not 41"),
    ("negative id", _bad(layer_id=-1), "layer_id", "non-negative"),
    ("bad bit width", _bad(quant_key_bit=0), "quant_key_bit", "-1 or positive"),
    ("requant unquantized", _bad(if_requant=True, **UNQUANT), "if_requant",
     "without progressive quantization"),
    ("topk without if_topk", _bad(topk=20), "topk", "-1 when if_topk is False"),
    ("threshold out of range", _bad(auto_requant_thres=1.5), "auto_requant_thres",
     "-1 or in 0..1"),
    ("repeated key", _bad(), None, "repeats line 2"),
]


@pytest.mark.parametrize("line, column, message", [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_row(tmp_path, line, column, message):
    p = _write(tmp_path, [HEADER, _bad(), line, FOOTER])
    with pytest.raises(TraceFormatError, match=re.escape(message)) as e:
        load_trace(p)
    assert (e.value.path, e.value.line, e.value.column) == (p, 3, column)
    assert str(e.value).startswith(f"{p}, line 3" + (f", column {column}:" if column else ":"))


@pytest.mark.parametrize("lines, message", [
    ([], "empty file"),
    ([HEADER, FOOTER], "no data rows"),
    ([HEADER.replace("quant_value_bit", "quant_v_bit"), _bad()],
     r"missing \['quant_value_bit'\], unknown \['quant_v_bit'\]"),
    ([HEADER + ",topk", _bad()], "header must name the columns"),
])
def test_malformed_file(tmp_path, lines, message):
    with pytest.raises(TraceFormatError, match=message):
        load_trace(_write(tmp_path, lines))


def test_row_type_checks():
    with pytest.raises(ValueError, match="key_fetch_num must be an int, not '40'"):
        _row(key_fetch_num="40")
    with pytest.raises(ValueError, match="if_requant must be a bool, not 1"):
        _row(if_requant=1)
    with pytest.raises(ValueError, match="topk must be in 1..sentence_length_L"):
        _row(if_topk=True, topk=-1)


# ---- sampling -------------------------------------------------------------------------
def test_sample_indices_by_hand():
    rows = [_row(head_id=h) for h in range(10)]
    # round(i * 10 / 4) with halves up: 0, 2.5 -> 3, 5, 7.5 -> 8
    assert [r.head_id for r in sample(rows, 4)] == [0, 3, 5, 8]
    assert [r.head_id for r in sample(rows, 3)] == [0, 3, 7]
    assert sample(rows, 10) == rows and sample(rows, 11) == rows
    assert [r.head_id for r in sample(rows, 1)] == [0]
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="count must be a positive integer"):
            sample(rows, bad)


@pytest.mark.parametrize("n, count", [(4608, 7), (4608, 1000), (12288, 64), (5, 4)])
def test_sample_spacing(n, count):
    rows = [_row(iteration_id=i) for i in range(n)]
    idx = [r.iteration_id for r in sample(rows, count)]
    assert len(idx) == count and idx[0] == 0 and idx[-1] < n
    assert {b - a for a, b in zip(idx, idx[1:])} <= {n // count, -(-n // count)}


# ---- traffic by hand (paper: D = 64, 64-byte bus, q 12, 8 + 4 planes, out 12) -----------
# Q: 64 * 12 / 8 = 96 -> 128 bytes; MSB row 64 * 8 / 8 = 64; LSB row 32 -> 64; out 96 -> 128.
def test_row_traffic_msb_only_by_hand():
    t = row_traffic(PAPER, _row())
    assert isinstance(t, Traffic)
    assert t == Traffic(q=128, kmsb=40 * 64, klsb=0, vmsb=10 * 64, vlsb=0, out=128)


def test_row_traffic_requantized_and_unquantized_by_hand():
    full = Traffic(q=128, kmsb=40 * 64, klsb=40 * 64, vmsb=10 * 64, vlsb=10 * 64, out=128)
    assert row_traffic(PAPER, _row(if_requant=True)) == full
    assert row_traffic(PAPER, _row(**UNQUANT)) == full


def test_row_traffic_padding_six_bit_msb():
    # 6-bit MSB at D = 64: 48 bytes -> 64 on a 64-byte bus, 64 on a 32-byte bus too; Q 96
    # bytes is 128 on 64 bytes, 96 on 32; 4-bit LSB 32 bytes is 64 on 64, 32 on 32.
    six = replace(PAPER, attn=replace(PAPER.attn, msb_bits=6))
    assert row_traffic(six, _row(if_requant=True)) == Traffic(
        q=128, kmsb=40 * 64, klsb=40 * 64, vmsb=10 * 64, vlsb=10 * 64, out=128)
    narrow = replace(six, core=replace(six.core, bus_bytes=32))
    assert row_traffic(narrow, _row(if_requant=True)) == Traffic(
        q=96, kmsb=40 * 64, klsb=40 * 32, vmsb=10 * 64, vlsb=10 * 32, out=96)


def test_dense_traffic_by_hand():
    assert dense_traffic(PAPER, _row()) == Traffic(q=128, kmsb=100 * 64, klsb=100 * 64,
                                                   vmsb=100 * 64, vlsb=100 * 64, out=128)


def test_traffic_refuses_other_geometry():
    with pytest.raises(ValueError, match=r"row D \(64\) must equal cfg.attn.head_dim \(16\)"):
        row_traffic(PRESETS["ci"], _row())
    with pytest.raises(NotImplementedError, match="K quantized and V not"):
        row_traffic(PAPER, _row(quant_value_bit=-1))


# ---- bound by hand ----------------------------------------------------------------------
def test_row_bound_by_hand():
    # 40 keys / 8 = 5 lines; 10 values / 8 -> 2 lines; 128 + 2560 + 640 + 128 = 3456 bytes
    # / 64 = 54 beats.
    b = row_bound(PAPER, _row())
    assert b == {"qk_lines": 5, "pv_lines": 2, "dram_bytes": 3456, "dram_cycles": 54,
                 "cycles": 54, "limit": "dram_cycles"}
    # Requantized: two Q·K passes (10 lines) and the LSB planes (+2560 + 640 bytes).
    b = row_bound(PAPER, _row(if_requant=True), bytes_per_cycle=1000)
    assert (b["qk_lines"], b["dram_bytes"], b["dram_cycles"]) == (10, 6656, 7)
    assert (b["cycles"], b["limit"]) == (10, "qk_lines")
    assert row_bound(PAPER, _row(key_fetch_num=41), bytes_per_cycle=1e9)["qk_lines"] == 6


def test_row_bound_pv_limited_and_ties():
    one_pair = replace(PAPER, attn=replace(PAPER.attn, pv_multipliers=64))   # 1 pair/cycle
    b = row_bound(one_pair, _row(), bytes_per_cycle=1e9)
    assert (b["pv_lines"], b["cycles"], b["limit"]) == (10, 10, "pv_lines")
    tie = row_bound(PAPER, _row(key_fetch_num=8, value_fetch_num=8), bytes_per_cycle=1e9)
    assert (tie["qk_lines"], tie["pv_lines"], tie["dram_cycles"]) == (1, 1, 1)
    assert tie["limit"] == "qk_lines"


def test_row_bound_dense_by_hand():
    # 100 keys: 13 Q·K lines, 13 prob·V lines; 128 + 4 * 6400 + 128 = 25856 bytes -> 404.
    b = row_bound(PAPER, _row(if_requant=True), dense=True)
    assert (b["qk_lines"], b["pv_lines"], b["dram_bytes"], b["dram_cycles"]) == \
        (13, 13, 25856, 404)


def test_trace_bound_sums_rows():
    # At 1000 bytes per cycle: 5 lines vs 4 cycles; 10 vs 7; 1 line vs 1280 bytes -> 2.
    rows = [_row(), _row(head_id=1, if_requant=True),
            _row(head_id=2, key_fetch_num=8, value_fetch_num=8)]
    t = trace_bound(PAPER, rows, bytes_per_cycle=1000)
    each = [row_bound(PAPER, r, bytes_per_cycle=1000) for r in rows]
    for k in ("qk_lines", "pv_lines", "dram_bytes", "dram_cycles", "cycles"):
        assert t[k] == sum(b[k] for b in each)
    assert t["rows"] == 3 and t["bytes_per_cycle"] == 1000
    assert t["cycles"] == 5 + 10 + 2
    assert sum(t["limited_by"].values()) == 3
    assert t["limited_by"] == {"qk_lines": 2, "pv_lines": 0, "dram_cycles": 1}
    assert trace_bound(PAPER, [])["cycles"] == 0


@pytest.mark.parametrize("bad", [0, -64, True, "64", float("inf")])
def test_bytes_per_cycle_validated(bad):
    with pytest.raises(ValueError, match="bytes_per_cycle must be a positive number"):
        row_bound(PAPER, _row(), bytes_per_cycle=bad)


def test_bound_definition_text():
    for word in ("max(", "keys_per_cycle", "pv_rows", "bus_bytes", "if_requant",
                 "1.96e5", "3.89e6"):
        assert word in BOUND_DEFINITION
    assert BOUND_DEFINITION in row_bound.__doc__ or ":data:`BOUND_DEFINITION`" in \
        row_bound.__doc__


# ---- replay parameters -------------------------------------------------------------------
def test_row_params_by_hand():
    assert row_params(PAPER, _row()) == {"n": 100, "token_keep": 40, "head_keep": 1,
                                         "value_keep": 10, "msb_only": 1, "force_refetch": 0}
    assert row_params(PAPER, _row(if_requant=True))["force_refetch"] == 1
    p = row_params(PAPER, _row(**UNQUANT))
    assert (p["msb_only"], p["force_refetch"]) == (0, 0)


def test_row_params_capacity():
    assert row_params(PAPER, _row(sentence_length_L=1024, key_fetch_num=40))["n"] == 1024
    with pytest.raises(ValueError, match=r"sentence_length_L \(1025\) must be at most "
                                         r"topk.capacity \(1024\)"):
        row_params(PAPER, _row(sentence_length_L=1025))
    ci = PRESETS["ci"]
    with pytest.raises(ValueError, match=r"at most topk.capacity \(64\) of config 'ci'"):
        row_params(ci, _row(embedding_length_D=16))


def test_spread_reaches_every_layer_and_head(pruned):
    """The golden-ratio pick is deterministic, distinct, in file order, and does not alias
    with the trace's period the way a fixed stride does (every 4th iteration's layer 0,
    head 0 at 8 rows)."""
    s = spread(pruned, 24)
    assert s == spread(pruned, 24) and len({id(r) for r in s}) == 24
    idx = [pruned.rows.index(r) for r in s]
    assert idx == sorted(idx)
    assert len({r.layer_id for r in s}) >= 8 and len({r.head_id for r in s}) >= 8
    assert {(r.layer_id, r.head_id) for r in sample(pruned, 8)} == {(0, 0)}
    assert spread(pruned.rows[:5], 9) == list(pruned.rows[:5])
