"""generators.config: AttentionConfig validation, SpAttenConfig.check_head, derived
quantities and the JSON/TOML round trips of the ``attn`` sub-config."""

import dataclasses
import json
import textwrap
from dataclasses import replace

import pytest

from generators.config import AttentionConfig, ConfigError, SpAttenConfig, TopKConfig
from generators.numerics import QFormat
from generators.presets import PRESETS, load_toml

# Validation: every rule of AttentionConfig.__post_init__ ---------------------------------

U11 = QFormat(11, 11, signed=False)


@pytest.mark.parametrize("kwargs,fragments", [
    # Integer fields.
    *[({name: bad}, [f"{name} must be an integer", f"not {bad!r}"])
      for name in ("head_dim", "qk_multipliers", "pv_multipliers", "q_bits", "msb_bits",
                   "lsb_bits", "scale_bits", "exp_bits", "recip_bits")
      for bad in (True, 8.0, "8")],
    # QFormat fields.
    *[({name: bad}, [f"{name} must be a QFormat", f"not {bad!r}"])
      for name in ("score", "prob", "out") for bad in ("s16f8", 16, None)],
    # head_dim: a power of two in 8..256.
    *[({"head_dim": v}, ["head_dim must be a power of two in 8..256", f"not {v}"])
      for v in (0, -64, 4, 12, 48, 512)],
    # Multipliers: a power of two from head_dim to 64 * head_dim.
    *[({name: v}, [f"{name} must be a power of two from head_dim (64) to 64 * head_dim "
                   f"(4096)", f"not {v}"])
      for name in ("qk_multipliers", "pv_multipliers") for v in (32, 96, 8192, 0)],
    ({"head_dim": 8, "qk_multipliers": 1024},
     ["qk_multipliers must be a power of two from head_dim (8) to 64 * head_dim (512)",
      "not 1024"]),
    # Widths.
    *[({"q_bits": v}, ["q_bits must be in 2..12", f"not {v}"]) for v in (1, 13, 0)],
    *[({"msb_bits": v, "lsb_bits": 1}, ["msb_bits must be in 2..12", f"not {v}"])
      for v in (1, 13)],
    *[({"lsb_bits": v, "msb_bits": 4}, ["lsb_bits must be in 1..8", f"not {v}"])
      for v in (0, 9)],
    ({"msb_bits": 9, "lsb_bits": 4}, ["msb_bits + lsb_bits must be at most 12", "not 9 + 4"]),
    ({"msb_bits": 12, "lsb_bits": 1}, ["msb_bits + lsb_bits must be at most 12",
                                       "not 12 + 1"]),
    # score: signed, 4..24 bits, frac 1..10, at least one integer bit.
    *[({"score": q}, ["score must be signed, 4..24 bits wide with 1..10 fraction bits and "
                      "at least one integer bit", f"not {q}"])
      for q in (QFormat(16, 8, signed=False), QFormat(3, 1), QFormat(25, 8), QFormat(16, 0),
                QFormat(24, 11), QFormat(8, 7), QFormat(8, 8))],
    *[({"scale_bits": v}, ["scale_bits must be in 4..24", f"not {v}"]) for v in (3, 25)],
    *[({"exp_bits": v}, ["exp_bits must be in 8..24", f"not {v}"]) for v in (7, 25)],
    # prob: unsigned, only fraction bits, 4..16 wide.
    *[({"prob": q, "recip_bits": 18}, ["prob must be unsigned with only fraction bits, 4..16 "
                                       "wide (like u11f11)", f"not {q}"])
      for q in (QFormat(11, 11), QFormat(11, 10, signed=False), QFormat(3, 3, signed=False),
                QFormat(17, 17, signed=False))],
    # recip_bits: prob.frac + 1 .. 24.
    ({"recip_bits": 11}, ["recip_bits must be in prob.frac + 1 (12)..24", "not 11"]),
    ({"recip_bits": 25}, ["recip_bits must be in prob.frac + 1 (12)..24", "not 25"]),
    ({"prob": QFormat(16, 16, signed=False), "recip_bits": 16},
     ["recip_bits must be in prob.frac + 1 (17)..24", "not 16"]),
    # out: signed, 4..24 bits, frac 0..prob.frac.
    *[({"out": q}, ["out must be signed, 4..24 bits wide with 0..prob.frac (11) fraction bits",
                    f"not {q}"])
      for q in (QFormat(12, 0, signed=False), QFormat(3, 0), QFormat(25, 0), QFormat(12, 12),
                QFormat(12, -1))],
    *[({"topk_engines": n}, [f"topk_engines must be in 1..8, not {n}"]) for n in (0, 9)],
])
def test_attn_validation_messages(kwargs, fragments):
    with pytest.raises(ConfigError) as info:
        AttentionConfig(**kwargs)
    assert isinstance(info.value, ValueError)
    msg = str(info.value)
    for frag in fragments:
        assert frag in msg, (frag, msg)


@pytest.mark.parametrize("kwargs", [
    {"head_dim": 8, "qk_multipliers": 8, "pv_multipliers": 512},
    {"head_dim": 256, "qk_multipliers": 256, "pv_multipliers": 16384},
    {"q_bits": 2, "msb_bits": 2, "lsb_bits": 1},
    {"msb_bits": 4, "lsb_bits": 8},
    {"msb_bits": 11, "lsb_bits": 1},
    {"score": QFormat(4, 1), "scale_bits": 4, "exp_bits": 8},
    {"score": QFormat(24, 10), "scale_bits": 24, "exp_bits": 24, "recip_bits": 24},
    {"score": QFormat(12, 10)},
    {"prob": QFormat(4, 4, signed=False), "recip_bits": 5, "out": QFormat(4, 4)},
    {"prob": QFormat(16, 16, signed=False), "recip_bits": 17, "out": QFormat(24, 16)},
    {"recip_bits": 12}, {"recip_bits": 24}, {"out": QFormat(12, 11)},
    {"topk_engines": 1}, {"topk_engines": 8},
])
def test_attn_boundaries_accepted(kwargs):
    a = AttentionConfig(**kwargs)
    for k, v in kwargs.items():
        assert getattr(a, k) == v


def test_attn_replace_revalidates_and_configs_are_frozen():
    a = PRESETS["paper"].attn
    with pytest.raises(ConfigError, match="msb_bits \\+ lsb_bits must be at most 12"):
        dataclasses.replace(a, msb_bits=10)
    assert dataclasses.replace(a, msb_bits=4).value_bits == 8
    assert a.msb_bits == 8
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.q_bits = 8


def test_spatten_rejects_non_attention_config():
    with pytest.raises(ConfigError, match="attn must be an AttentionConfig, not 5"):
        SpAttenConfig(attn=5)
    with pytest.raises(ConfigError, match="attn must be an AttentionConfig"):
        SpAttenConfig(attn={"head_dim": 64})


# check_head --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_pass_check_head(name):
    cfg = PRESETS[name]
    assert cfg.check_head() is cfg


@pytest.mark.parametrize("topk,attn,fragments", [
    (TopKConfig(score=QFormat(11)), AttentionConfig(),
     ["attn.prob (u11f11) must be narrower than topk.score (s11f0)",
      "probabilities are the top-k's scores"]),
    (TopKConfig(), AttentionConfig(prob=QFormat(12, 12, signed=False), recip_bits=14),
     ["attn.prob (u12f12) must be narrower than topk.score (s12f0)"]),
    (TopKConfig(lanes=4, capacity=64), AttentionConfig(),
     ["topk.lanes (4) must be a multiple of attn.lanes (qk_multipliers / head_dim = 8)"]),
    (TopKConfig(), AttentionConfig(qk_multipliers=4096),
     ["topk.lanes (16) must be a multiple of attn.lanes (qk_multipliers / head_dim = 64)"]),
    (TopKConfig(), AttentionConfig(qk_multipliers=64, pv_multipliers=2048),
     ["topk.lanes (16) must be a multiple of attn.pv_rows (pv_multipliers / head_dim = 32)"]),
])
def test_check_head_messages(topk, attn, fragments):
    cfg = SpAttenConfig(name="x", topk=topk, attn=attn)  # constructs: check_head is separate
    with pytest.raises(ConfigError) as info:
        cfg.check_head()
    for frag in fragments:
        assert frag in str(info.value), (frag, str(info.value))


def test_check_head_accepts_exact_multiples():
    cfg = SpAttenConfig(topk=TopKConfig(lanes=8, capacity=64),
                        attn=AttentionConfig(qk_multipliers=512, pv_multipliers=64))
    assert cfg.check_head() is cfg
    cfg = SpAttenConfig(topk=TopKConfig(score=QFormat(12)),
                        attn=AttentionConfig(prob=QFormat(11, 11, signed=False)))
    assert cfg.check_head() is cfg


# Derived quantities ------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PRESETS))
def test_attn_derived_quantities(name):
    a = PRESETS[name].attn
    assert a.keys_per_cycle == a.lanes == a.qk_multipliers // a.head_dim
    assert a.pv_rows * a.head_dim == a.pv_multipliers
    assert a.value_bits == a.msb_bits + a.lsb_bits
    assert a.exp_width == a.exp_bits + 1 and a.shift_bits == 6
    log2d = a.head_dim.bit_length() - 1
    assert a.acc_bits == a.q_bits + a.value_bits + log2d
    # acc_bits is the smallest signed width that holds the largest |q . k|:
    # D * (-2**(q_bits-1)) * (-2**(value_bits-1)).
    extreme = a.head_dim * 2 ** (a.q_bits - 1) * 2 ** (a.value_bits - 1)
    assert extreme <= QFormat(a.acc_bits).max_raw
    assert extreme > QFormat(a.acc_bits - 1).max_raw


def test_attn_tags_unique_and_stable():
    tags = [p.attn.tag for p in PRESETS.values()]
    assert len(set(tags)) == len(tags)
    assert PRESETS["paper"].attn.tag == \
        "d64-m512-v512-q12-k8+4-s16f8-x16-e22-r14-u11f11-s12f0-t3"
    assert dataclasses.replace(PRESETS["paper"].attn, lsb_bits=3).tag != \
        PRESETS["paper"].attn.tag


# JSON / TOML round trips -------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PRESETS))
def test_attn_json_round_trip(name):
    cfg = PRESETS[name]
    d = json.loads(cfg.to_json())
    assert d["attn"]["score"] == str(cfg.attn.score)
    assert d["attn"]["prob"] == str(cfg.attn.prob) and d["attn"]["out"] == str(cfg.attn.out)
    assert d["attn"]["msb_bits"] == cfg.attn.msb_bits
    back = SpAttenConfig.from_json(cfg.to_json())
    assert back == cfg and back.attn == cfg.attn and back.attn.tag == cfg.attn.tag


def test_attn_json_round_trip_custom():
    for kw in ({"head_dim": 8, "qk_multipliers": 16, "pv_multipliers": 8},
               {"msb_bits": 4, "lsb_bits": 8, "q_bits": 2},
               {"score": QFormat(24, 10), "prob": QFormat(16, 16, signed=False),
                "recip_bits": 24, "out": QFormat(24, 16)}):
        cfg = SpAttenConfig(name="c", attn=AttentionConfig(**kw))
        assert SpAttenConfig.from_json(cfg.to_json()) == cfg
        assert SpAttenConfig.from_dict(cfg.to_dict()) == cfg


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_attn_toml_valid(tmp_path):
    p = _write(tmp_path, "head.toml", """
        base = "ci"
        [topk]
        lanes = 4
        capacity = 64
        score = "s8f0"
        radix_bits = 4

        [attn]
        head_dim = 16
        qk_multipliers = 32
        pv_multipliers = 32
        q_bits = 8
        msb_bits = 4
        lsb_bits = 4
        score = "s12f6"
        scale_bits = 12
        exp_bits = 12
        recip_bits = 10
        prob = "u7f7"
        out = "s10f2"
        """)
    cfg = load_toml(p)
    assert cfg.attn == PRESETS["ci"].attn
    assert cfg.topk == PRESETS["ci"].topk
    assert cfg.name == "head"
    assert cfg.check_head() is cfg
    assert SpAttenConfig.from_json(cfg.to_json()) == cfg


def test_attn_toml_partial_uses_defaults(tmp_path):
    p = _write(tmp_path, "part.toml", """
        base = "paper"
        [attn]
        msb_bits = 6
        score = "s14f6"
        """)
    cfg = load_toml(p)
    assert cfg.attn == replace(PRESETS["paper"].attn, msb_bits=6, score=QFormat(14, 6))
    assert cfg.topk == PRESETS["paper"].topk and cfg.core == PRESETS["paper"].core


@pytest.mark.parametrize("text,fragments", [
    ("[attn]\nhead_dim = 12\n", ["attn.head_dim must be a power of two", "not 12"]),
    ("[attn]\nmsb_bits = 10\n", ["attn.msb_bits + lsb_bits must be at most 12", "10 + 4"]),
    ("[attn]\nscore = \"u16f8\"\n", ["attn.score must be signed", "not u16f8"]),
    ("[attn]\nscore = \"bogus\"\n", ["attn.score", "'bogus'"]),
    ("[attn]\nprob = 11\n", ["attn.prob must be a QFormat", "not 11"]),
    ("[attn]\nrecip_bits = 11\n", ["attn.recip_bits must be in prob.frac + 1 (12)..24"]),
    ("[attn]\nq_bits = 12.0\n", ["attn.q_bits must be an integer", "not 12.0"]),
    ("[attn]\nq_bits = true\n", ["attn.q_bits must be an integer", "not True"]),
    ("[attn]\nwidth = 3\n", ["unknown config field attn.width"]),
    ("attn = 3\n", ["attn must be a table", "not 3"]),
])
def test_attn_toml_invalid(tmp_path, text, fragments):
    p = _write(tmp_path, "bad.toml", "base = \"paper\"\n" + text)
    with pytest.raises(ConfigError) as info:
        load_toml(p)
    for frag in fragments:
        assert frag in str(info.value), (frag, str(info.value))
