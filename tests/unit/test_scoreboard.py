"""Beat framing of sim.scoreboard and the Scoreboard's detection of stream errors."""

import copy

import numpy as np
import pytest

from generators.presets import PRESETS
from sim.golden.topk import topk_engine
from sim.scoreboard import Mismatch, Scoreboard, expected_beats, input_beats

CI = PRESETS["ci"].topk  # 4 lanes, capacity 64
PRESET_CFGS = [pytest.param(p.topk, id=name) for name, p in PRESETS.items()]


def _sizes(cfg):
    P = cfg.lanes
    return sorted({0, 1, P - 1 if P > 1 else 1, P, P + 1, 2 * P, 3 * P - 1, cfg.capacity,
                   cfg.capacity + 1})


def _scores(cfg, n, seed=0):
    rng = np.random.default_rng(seed + n)
    return rng.integers(cfg.score.min_raw, cfg.score.max_raw + 1, n).astype(np.int64)


# Framing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", PRESET_CFGS)
def test_input_beats_framing(cfg):
    P = cfg.lanes
    for n in _sizes(cfg):
        scores = _scores(cfg, n)
        beats = input_beats(cfg, scores, 7)
        assert len(beats) == max(1, -(-n // P))
        got = []
        for i, b in enumerate(beats):
            assert set(b) == {"data", "count", "k", "last"}
            assert len(b["data"]) == P
            assert b["k"] == 7
            is_last = i == len(beats) - 1
            assert b["last"] == int(is_last)
            if not is_last:
                assert b["count"] == P
            elif n == 0:
                assert b["count"] == 0
            else:
                assert 1 <= b["count"] <= P
                assert b["count"] == n - P * (len(beats) - 1)
            got += b["data"][: b["count"]]
            assert b["data"][b["count"]:] == [0] * (P - b["count"])
            assert all(type(v) is int for v in b["data"])
        assert got == scores.tolist()


def test_input_beats_empty_packet():
    assert input_beats(CI, [], 3) == [{"data": [0, 0, 0, 0], "count": 0, "k": 3, "last": 1}]


def test_input_beats_hand_written():
    beats = input_beats(CI, [1, -2, 3, -4, 5, 6], 2)
    assert beats == [
        {"data": [1, -2, 3, -4], "count": 4, "k": 2, "last": 0},
        {"data": [5, 6, 0, 0], "count": 2, "k": 2, "last": 1},
    ]
    beats = input_beats(CI, [1, 2, 3, 4], 9)
    assert beats == [{"data": [1, 2, 3, 4], "count": 4, "k": 9, "last": 1}]


def test_input_beats_rejects_out_of_format_scores():
    with pytest.raises(ValueError, match="score must fit"):
        input_beats(CI, [0, CI.score.max_raw + 1], 1)


@pytest.mark.parametrize("cfg", PRESET_CFGS)
def test_expected_beats_framing(cfg):
    P = cfg.lanes
    for n in _sizes(cfg):
        scores = _scores(cfg, n, seed=11)
        for k in sorted({0, 1, P, P + 1, n // 2, n, n + 3}):
            r = topk_engine(scores, k, cfg)
            m = len(r.indices)
            beats = expected_beats(cfg, scores, k)
            assert len(beats) == max(1, -(-m // P))
            vals, idx = [], []
            for i, b in enumerate(beats):
                assert set(b) == {"data", "index", "count", "kth", "truncated", "last"}
                assert len(b["data"]) == P and len(b["index"]) == P
                is_last = i == len(beats) - 1
                assert b["last"] == int(is_last)
                assert b["kth"] == r.kth
                assert b["truncated"] == int(n > cfg.capacity)
                if not is_last:
                    assert b["count"] == P
                elif m == 0:
                    assert b["count"] == 0
                else:
                    assert 1 <= b["count"] <= P
                c = b["count"]
                assert b["data"][c:] == [0] * (P - c), "unused data lanes must be 0"
                assert b["index"][c:] == [0] * (P - c), "unused index lanes must be 0"
                vals += b["data"][:c]
                idx += b["index"][:c]
            assert vals == r.values.tolist()
            assert idx == r.indices.tolist()


def test_expected_beats_empty_packet():
    for scores, k in (([], 0), ([], 5), ([3, 4, 5], 0)):
        assert expected_beats(CI, scores, k) == [{
            "data": [0, 0, 0, 0], "index": [0, 0, 0, 0], "count": 0,
            "kth": CI.score.max_raw, "truncated": 0, "last": 1}]


def test_expected_beats_hand_written():
    # The 9, the 7 and the three 5s are kept (the 2 and the -1 are not).
    beats = expected_beats(CI, [5, -1, 7, 5, 2, 9, 5], 5)
    assert beats == [
        {"data": [5, 7, 5, 9], "index": [0, 2, 3, 5], "count": 4, "kth": 5,
         "truncated": 0, "last": 0},
        {"data": [5, 0, 0, 0], "index": [6, 0, 0, 0], "count": 1, "kth": 5,
         "truncated": 0, "last": 1},
    ]


# Scoreboard ------------------------------------------------------------------------------

def _packets():
    """Three packets: 3 output beats with distinct indices, an empty one, 1 partial beat."""
    return [
        (np.arange(-6, 6, dtype=np.int64), 12),  # 12 kept → 3 beats of 4
        (np.array([], dtype=np.int64), 2),  # empty → one beat, count 0
        (np.array([3, 1, 2], dtype=np.int64), 2),  # 2 kept → one beat
    ]


def _board(context=""):
    sb = Scoreboard(CI, context=context)
    outs = []
    for scores, k in _packets():
        sb.expect(scores, k)
        outs.append(expected_beats(CI, scores, k))
    return sb, outs


def _feed(sb, beats):
    for b in beats:
        sb.got(copy.deepcopy(b))


def test_scoreboard_passes_on_correct_beats():
    sb, outs = _board()
    assert sb.pending == 3
    assert [len(o) for o in outs] == [3, 1, 1]
    _feed(sb, [b for o in outs for b in o])
    assert sb.finish() is None
    assert sb.mismatches == 0 and sb.first is None
    assert sb.packets == 3 and sb.pending == 0


def test_scoreboard_accepts_numpy_ints_in_beats():
    sb, outs = _board()
    for o in outs:
        for b in o:
            sb.got({key: (np.array(v, dtype=np.int64) if isinstance(v, list) else np.int64(v))
                    for key, v in b.items()})
    assert sb.finish() is None


def test_scoreboard_wrong_lane_value():
    sb, outs = _board(context="ci seed=42")
    bad = copy.deepcopy(outs[2][0])
    bad["data"][1] += 1
    _feed(sb, outs[0] + outs[1] + [bad])
    msg = sb.finish()
    assert msg is not None
    assert sb.mismatches == 1
    assert sb.first == Mismatch(2, 0, "data", 1, outs[2][0]["data"][1] + 1,
                                outs[2][0]["data"][1])
    assert "packet 2" in msg and "beat 0" in msg and "lane 1" in msg and "data" in msg
    assert "ci seed=42" in msg


@pytest.mark.parametrize("field,lane", [("index", 3), ("data", 0)])
def test_scoreboard_wrong_lane_in_middle_beat(field, lane):
    sb, outs = _board()
    bad = copy.deepcopy(outs[0][1])
    bad[field][lane] ^= 1
    _feed(sb, [outs[0][0], bad, outs[0][2]] + outs[1] + outs[2])
    msg = sb.finish()
    assert msg is not None
    assert (sb.first.packet, sb.first.beat, sb.first.field, sb.first.lane) == (0, 1, field, lane)
    assert f"packet 0 beat 1 {field} lane {lane}" in msg


def test_scoreboard_reports_first_wrong_lane_once_per_field():
    sb, outs = _board()
    bad = copy.deepcopy(outs[0][0])
    bad["data"][3] += 1
    bad["data"][1] += 1
    _feed(sb, [bad] + outs[0][1:] + outs[1] + outs[2])
    assert sb.mismatches == 1
    assert sb.first.lane == 1
    assert sb.finish().startswith("1 mismatching beats")


def test_scoreboard_nonzero_unused_lane():
    sb, outs = _board()
    bad = copy.deepcopy(outs[2][0])
    assert bad["count"] == 2
    bad["index"][3] = 1  # beyond count: must be 0
    _feed(sb, outs[0] + outs[1] + [bad])
    msg = sb.finish()
    assert msg is not None and "lane 3" in msg


@pytest.mark.parametrize("field", ["kth", "count", "truncated"])
def test_scoreboard_wrong_scalar_field(field):
    sb, outs = _board()
    bad = copy.deepcopy(outs[1][0])
    bad[field] ^= 1
    _feed(sb, outs[0] + [bad] + outs[2])
    msg = sb.finish()
    assert msg is not None
    assert sb.first.packet == 1 and sb.first.field == field and sb.first.lane is None
    assert f"packet 1 beat 0 {field}:" in msg


def test_scoreboard_dropped_middle_beat():
    sb, outs = _board()
    _feed(sb, [outs[0][0], outs[0][2]] + outs[1] + outs[2])
    msg = sb.finish()
    assert msg is not None and sb.mismatches >= 1
    assert sb.first.packet == 0 and sb.first.beat == 1


def test_scoreboard_dropped_last_beat():
    sb, outs = _board()
    _feed(sb, outs[0][:2])
    msg = sb.finish()
    assert msg is not None
    assert sb.mismatches == 0  # what came was right, but packets are missing
    assert "never came out" in msg and "first: 0" in msg


def test_scoreboard_duplicated_beat():
    sb, outs = _board()
    o = outs[0]
    _feed(sb, [o[0], o[0], o[1], o[2]] + outs[1] + outs[2])
    msg = sb.finish()
    assert msg is not None
    assert sb.first.packet == 0 and sb.first.beat == 1


def test_scoreboard_duplicated_last_beat():
    sb, outs = _board()
    _feed(sb, outs[0] + outs[1] + outs[2] + [outs[2][0]])
    msg = sb.finish()
    assert msg is not None
    assert "extra beat" in msg


def test_scoreboard_extra_packet():
    sb, outs = _board()
    _feed(sb, outs[0] + outs[1] + outs[2])
    _feed(sb, expected_beats(CI, [1, 2, 3], 1))
    msg = sb.finish()
    assert msg is not None and "extra beat" in msg
    assert sb.first.packet == 3


def test_scoreboard_missing_packet():
    sb, outs = _board(context="ctx")
    _feed(sb, outs[0] + outs[1])
    assert sb.pending == 1
    msg = sb.finish()
    assert msg is not None
    assert "1 packets never came out" in msg and "first: 2" in msg and "[ctx]" in msg


def test_scoreboard_early_last():
    sb, outs = _board()
    short = copy.deepcopy(outs[0][1])
    short["last"] = 1  # a packet ended one beat early
    _feed(sb, [outs[0][0], short] + outs[1] + outs[2])
    msg = sb.finish()
    assert msg is not None
    assert sb.first.packet == 0 and sb.first.beat == 1 and sb.first.field == "last"


def test_scoreboard_missing_last_flag():
    sb, outs = _board()
    nolast = copy.deepcopy(outs[1][0])
    nolast["last"] = 0
    _feed(sb, outs[0] + [nolast] + outs[2])
    msg = sb.finish()
    assert msg is not None
    assert sb.first.packet == 1 and sb.first.field == "last"


def test_scoreboard_no_packets_no_beats():
    assert Scoreboard(CI).finish() is None
    sb = Scoreboard(CI)
    sb.got(expected_beats(CI, [], 0)[0])
    assert "extra beat" in sb.finish()


def test_mismatch_str():
    assert str(Mismatch(3, 1, "data", 2, 5, 6)) == "packet 3 beat 1 data lane 2: got 5, expected 6"
    assert str(Mismatch(0, 0, "kth", None, 1, 2)) == "packet 0 beat 0 kth: got 1, expected 2"
