"""generators.config / generators.presets: validation, JSON and TOML round trips, presets."""

import dataclasses
import json
import textwrap
from dataclasses import replace

import pytest

from generators.config import ConfigError, SpAttenConfig, TopKConfig
from generators.numerics import QFormat
from generators.presets import PRESETS, get_config, load_toml

# Presets ---------------------------------------------------------------------------------


def test_presets_exist():
    assert {"ci", "paper", "eighth"} <= set(PRESETS)


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_constructs_and_round_trips(name):
    cfg = PRESETS[name]
    assert isinstance(cfg, SpAttenConfig) and isinstance(cfg.topk, TopKConfig)
    assert cfg.name == name
    text = cfg.to_json()
    d = json.loads(text)
    assert d["topk"]["score"] == str(cfg.topk.score)
    assert SpAttenConfig.from_json(text) == cfg
    assert SpAttenConfig.from_dict(cfg.to_dict()) == cfg
    assert SpAttenConfig.from_json(text).tag == cfg.tag
    # Re-validation: rebuilding from the fields gives the same object.
    assert TopKConfig(**{f.name: getattr(cfg.topk, f.name)
                         for f in dataclasses.fields(TopKConfig)}) == cfg.topk


def test_preset_tags_unique():
    tags = [p.tag for p in PRESETS.values()]
    assert len(set(tags)) == len(tags)
    topk_tags = [p.topk.tag for p in PRESETS.values()]
    assert len(set(topk_tags)) == len(topk_tags)


def test_paper_preset_values():
    t = PRESETS["paper"].topk
    assert (t.lanes, t.capacity, t.score) == (16, 1024, QFormat(12, 0))
    assert PRESETS["paper"].tag.startswith("paper-p16-n1024-s12f0-r6-b2-d64-m512-v512")
    a = PRESETS["paper"].attn
    assert (a.head_dim, a.keys_per_cycle, a.pv_rows, a.value_bits) == (64, 8, 8, 12)
    assert a.acc_bits == 12 + 12 + 6


@pytest.mark.parametrize("name", list(PRESETS))
def test_derived_quantities(name):
    t = PRESETS[name].topk
    levels = 0
    while levels * t.radix_bits < t.score.width:
        levels += 1
    assert t.levels == levels
    assert t.key_pad == levels * t.radix_bits - t.score.width
    assert 0 <= t.key_pad < t.radix_bits
    assert t.rows * t.lanes == t.capacity
    assert 2 ** t.index_bits >= t.capacity > 2 ** (t.index_bits - 1)
    assert 2 ** t.count_bits > t.capacity >= 2 ** (t.count_bits - 1)
    assert 2 ** t.lane_count_bits > t.lanes >= 2 ** (t.lane_count_bits - 1)


def test_derived_quantities_small():
    t = TopKConfig(lanes=1, capacity=1, score=QFormat(2), radix_bits=8, buffers=1)
    assert (t.levels, t.key_pad, t.rows, t.index_bits, t.count_bits, t.lane_count_bits) == \
        (1, 6, 1, 1, 1, 1)


def test_custom_configs_round_trip():
    for lanes in (1, 2, 64):
        for cap in (lanes, 64 * lanes):
            for width in (2, 13, 32):
                for rb in (1, 3, 8):
                    for buffers in (1, 2):
                        cfg = SpAttenConfig(name=f"x{lanes}", topk=TopKConfig(
                            lanes=lanes, capacity=cap, score=QFormat(width, 2),
                            radix_bits=rb, buffers=buffers))
                        assert SpAttenConfig.from_json(cfg.to_json()) == cfg


# Validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,fragments", [
    ({"lanes": 6}, ["lanes must be a power of two", "not 6"]),
    ({"lanes": 0}, ["lanes must be a power of two", "not 0"]),
    ({"lanes": -4}, ["lanes must be a power of two", "not -4"]),
    ({"lanes": 128, "capacity": 1024}, ["lanes must be a power of two in 1..64", "not 128"]),
    ({"capacity": 100}, ["capacity must be a positive multiple of lanes (16)", "not 100"]),
    ({"capacity": 8}, ["capacity must be a positive multiple of lanes", "not 8"]),
    ({"capacity": 0}, ["capacity", "not 0"]),
    ({"capacity": 65536 * 2}, ["capacity must be at most 65536", "not 131072"]),
    ({"radix_bits": 0}, ["radix_bits must be in 1..8", "not 0"]),
    ({"radix_bits": 9}, ["radix_bits must be in 1..8", "not 9"]),
    ({"buffers": 0}, ["buffers must be 1 or 2", "not 0"]),
    ({"buffers": 3}, ["buffers must be 1 or 2", "not 3"]),
    ({"score": QFormat(8, 0, False)}, ["score must be a signed format", "not u8f0"]),
    ({"score": QFormat(33)}, ["score must be a signed format of 2..32 bits", "not s33f0"]),
    ({"score": "s12f0"}, ["score must be a QFormat", "'s12f0'"]),
    ({"lanes": True}, ["lanes must be an integer", "not True"]),
    ({"capacity": 1024.0}, ["capacity must be an integer", "not 1024.0"]),
    ({"radix_bits": "6"}, ["radix_bits must be an integer", "not '6'"]),
])
def test_topk_validation_messages(kwargs, fragments):
    with pytest.raises(ConfigError) as info:
        TopKConfig(**kwargs)
    assert isinstance(info.value, ValueError)
    msg = str(info.value)
    for frag in fragments:
        assert frag in msg, (frag, msg)


def test_topk_validation_boundaries_accepted():
    TopKConfig(lanes=64, capacity=65536, score=QFormat(32), radix_bits=8, buffers=1)
    TopKConfig(lanes=1, capacity=1, score=QFormat(2), radix_bits=1, buffers=2)


def test_replace_revalidates():
    cfg = PRESETS["ci"].topk
    with pytest.raises(ConfigError, match="not 6"):
        dataclasses.replace(cfg, lanes=6)
    assert dataclasses.replace(cfg, buffers=1).buffers == 1
    assert cfg.buffers == 2


def test_configs_are_frozen():
    cfg = PRESETS["ci"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.name = "x"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.topk.lanes = 8


@pytest.mark.parametrize("kwargs,fragment", [
    ({"name": ""}, "name must be a non-empty string"),
    ({"name": 3}, "name must be a non-empty string"),
    ({"topk": 5}, "topk must be a TopKConfig"),
    ({"topk": {"lanes": 4}}, "topk must be a TopKConfig"),
])
def test_spatten_validation(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        SpAttenConfig(**kwargs)


def test_from_dict_errors():
    with pytest.raises(ConfigError, match="unknown config field topk.lane"):
        SpAttenConfig.from_dict({"topk": {"lane": 4}})
    with pytest.raises(ConfigError, match="topk.lanes must be a power of two"):
        SpAttenConfig.from_dict({"topk": {"lanes": 3}})
    with pytest.raises(ConfigError):
        SpAttenConfig.from_dict({"topk": 5})
    with pytest.raises(ConfigError):
        SpAttenConfig.from_dict([1, 2])


# TOML ------------------------------------------------------------------------------------

def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_toml_valid(tmp_path):
    p = _write(tmp_path, "mine.toml", """
        base = "paper"
        [topk]
        lanes = 8
        capacity = 256
        score = "s10f2"
        radix_bits = 5
        buffers = 1
        """)
    cfg = load_toml(p)
    assert cfg == replace(PRESETS["paper"], name="mine", topk=TopKConfig(
        lanes=8, capacity=256, score=QFormat(10, 2), radix_bits=5, buffers=1))
    assert load_toml(str(p)) == cfg
    assert SpAttenConfig.from_json(cfg.to_json()) == cfg


def test_toml_explicit_name_and_base_fields(tmp_path):
    p = _write(tmp_path, "file.toml", """
        base = "ci"
        name = "given"
        [topk]
        radix_bits = 3
        """)
    cfg = load_toml(p)
    assert cfg == replace(PRESETS["ci"], name="given",
                          topk=replace(PRESETS["ci"].topk, radix_bits=3))


@pytest.mark.parametrize("text,fragment", [
    ("", "does not name the preset it starts from: add base = \"ci\" or"),
    ("[topk]\nlanes = 4\n", "does not name the preset"),
    ("base = \"papr\"\n", "names an unknown base 'papr'"),
])
def test_toml_without_a_base_is_refused(tmp_path, text, fragment):
    """No silent fallback to the class defaults, which match no preset."""
    p = _write(tmp_path, "nobase.toml", text)
    with pytest.raises(ConfigError) as info:
        load_toml(p)
    assert fragment in str(info.value) and str(p) in str(info.value)


@pytest.mark.parametrize("text,fragment", [
    ("bogus = 1\n", "bogus"),
    ("[topk]\nfrobnicate = 3\n", "topk.frobnicate"),
    ("[extra]\nx = 1\n", "extra"),
])
def test_toml_unknown_field(tmp_path, text, fragment):
    p = _write(tmp_path, "u.toml", "base = \"ci\"\n" + text)
    with pytest.raises(ConfigError, match="unknown config field") as info:
        load_toml(p)
    assert fragment in str(info.value)


@pytest.mark.parametrize("text,fragments", [
    ("[topk]\nlanes = 6\n", ["topk.lanes", "power of two", "not 6"]),
    ("[topk]\ncapacity = 100\n", ["topk.capacity", "not 100"]),
    ("[topk]\nradix_bits = 12\n", ["topk.radix_bits", "not 12"]),
    ("[topk]\nbuffers = 4\n", ["topk.buffers", "not 4"]),
    ("[topk]\nscore = \"u8f0\"\n", ["topk.score", "u8f0"]),
    ("[topk]\nscore = 12\n", ["topk.score", "12"]),
    ("[topk]\nlanes = true\n", ["topk.lanes", "integer"]),
    ("[topk]\nlanes = 4.0\n", ["topk.lanes", "integer"]),
    ("name = \"\"\n", ["name", "non-empty"]),
    ("name = \"../up\"\n", ["name must be letters", "'../up'"]),
    ("name = \"a/b\"\n", ["name must be letters", "'a/b'"]),
    ("name = \".hidden\"\n", ["name must be letters", "'.hidden'"]),
])
def test_toml_invalid_value(tmp_path, text, fragments):
    p = _write(tmp_path, "bad.toml", "base = \"paper\"\n" + text)
    with pytest.raises(ConfigError) as info:
        load_toml(p)
    for frag in fragments:
        assert frag in str(info.value), (frag, str(info.value))


def test_toml_unparsable_score(tmp_path):
    p = _write(tmp_path, "bad.toml", "base = \"ci\"\n[topk]\nscore = \"bogus\"\n")
    with pytest.raises(ConfigError, match="score"):
        load_toml(p)


def test_toml_missing_file(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_toml(missing)
    assert str(missing) in str(info.value)


def test_toml_syntax_error(tmp_path):
    p = _write(tmp_path, "broken.toml", "[topk\nlanes = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(p)


def test_config_naming_a_folder(tmp_path):
    (tmp_path / "cfg.toml").mkdir()
    for arg in (tmp_path, tmp_path / "cfg.toml"):
        with pytest.raises(ConfigError, match="is a folder, not a .toml file"):
            get_config(str(arg))


def test_tags_differ_when_any_part_differs():
    """The tag names build folders: two configs that differ anywhere get two folders."""
    ci = PRESETS["ci"]
    variants = [ci, replace(ci, core=replace(ci.core, bus_bytes=16)),
                replace(ci, core=replace(ci.core, addr_bits=40)),
                replace(ci, topk=replace(ci.topk, radix_bits=3)),
                replace(ci, attn=replace(ci.attn, exp_bits=13))]
    assert len({v.tag for v in variants}) == len(variants)


# get_config ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PRESETS))
def test_get_config_preset(name):
    assert get_config(name) is PRESETS[name]


def test_get_config_toml_path(tmp_path):
    p = _write(tmp_path, "small.toml", """
        base = "ci"
        [topk]
        lanes = 2
        capacity = 32
        score = "s8f0"
        radix_bits = 4
        """)
    want = replace(PRESETS["ci"], name="small", topk=TopKConfig(
        lanes=2, capacity=32, score=QFormat(8), radix_bits=4))
    assert get_config(str(p)) == want
    assert get_config(p) == want


def test_get_config_missing_toml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        get_config(str(tmp_path / "absent.toml"))


@pytest.mark.parametrize("bad", ["papr", "", "ci.json", "PAPER"])
def test_get_config_bad_name(bad):
    with pytest.raises(ConfigError) as info:
        get_config(bad)
    msg = str(info.value)
    for name in PRESETS:
        assert name in msg
    assert repr(bad) in msg
