"""Named configurations.

- ``ci``: tiny, for fast tests (4 lanes, 64-element packets, 8-bit scores).
- ``paper``: SpAtten's full configuration (HPCA 2021, Table/Section V): 16 top-k lanes
  (16 comparators per comparator array), 1024-token capacity, 12-bit on-chip values.
- ``eighth``: SpAtten 1/8 (128 multipliers instead of 1024, 2 HBM channels). The top-k lanes
  are scaled with the multipliers (16 / 8 = 2): at D = 64 the 1/8 Q·K array (64 of the 128
  multipliers) produces one score per cycle, so 2 lanes keep the engine ahead of it; the
  other 64 multipliers form the prob·V array. Capacity stays 1024 tokens.

The attention datapath (``attn``): ``paper`` is SpAtten's 512 + 512 multipliers at D = 64
(8 keys and 8 (probability, V row) pairs per cycle, 8 softmax lanes), 12-bit Q, K and V as
8 MSB + 4 LSB planes, 11-bit probabilities, 12-bit outputs. ``ci`` shrinks everything
(D = 16, 2 keys per cycle, 4 + 4 planes) so Icarus runs fast.

Local-value top-k engines (``attn.topk_engines``): ``paper`` has 3. Its 16-lane engine spends
about ``2 * L / 16 + 17`` cycles on a query of ``L`` keys, more when prob·V's 8 pairs per
cycle throttle its filter pass, against the Q·K array's ``L / 8``; measured Q·K utilization
at L = 128, keep = 128 is 88.9 % with 2 engines and 98.2 % with 3 (``spatten bench head``).
``eighth`` and ``ci`` have 2.

The core (``core``): ``paper`` and ``eighth`` hold 16 heads (GPT-2 medium), 30-bit importance
accumulators and a 64-byte AXI4 data bus; ``ci`` has 4 heads, 16-bit accumulators (so tests
reach saturation) and an 8-byte bus (so rows span several beats).
"""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

from .config import AttentionConfig, ConfigError, CoreConfig, SpAttenConfig, TopKConfig
from .numerics import QFormat

__all__ = ["PRESETS", "get_config", "load_toml"]

_PAPER = SpAttenConfig(
    name="paper",
    topk=TopKConfig(lanes=16, capacity=1024, score=QFormat(12, 0), radix_bits=6, buffers=2),
    attn=AttentionConfig(
        head_dim=64, qk_multipliers=512, pv_multipliers=512, q_bits=12, msb_bits=8,
        lsb_bits=4, score=QFormat(16, 8), scale_bits=16, exp_bits=22, recip_bits=14,
        prob=QFormat(11, 11, signed=False), out=QFormat(12, 0), topk_engines=3),
    core=CoreConfig(heads=16, layers=24, imp_bits=30, head_imp_bits=30, age_frac_bits=16,
                    select_radix_bits=8, bus_bytes=64))

PRESETS: dict[str, SpAttenConfig] = {
    "ci": SpAttenConfig(
        name="ci",
        topk=TopKConfig(lanes=4, capacity=64, score=QFormat(8, 0), radix_bits=4, buffers=2),
        attn=AttentionConfig(
            head_dim=16, qk_multipliers=32, pv_multipliers=32, q_bits=8, msb_bits=4,
            lsb_bits=4, score=QFormat(12, 6), scale_bits=12, exp_bits=12, recip_bits=10,
            prob=QFormat(7, 7, signed=False), out=QFormat(10, 2)),
        core=CoreConfig(heads=4, layers=4, imp_bits=16, head_imp_bits=16, age_frac_bits=12,
                        select_radix_bits=6, bus_bytes=8)),
    "paper": _PAPER,
    # paper scaled to 1/8: 64 + 64 multipliers, 2 top-k lanes and engines; same formats.
    "eighth": replace(
        _PAPER, name="eighth", topk=replace(_PAPER.topk, lanes=2),
        attn=replace(_PAPER.attn, qk_multipliers=64, pv_multipliers=64, topk_engines=2)),
}

def load_toml(path) -> SpAttenConfig:
    """A config from a TOML file: ``base`` names the preset it starts from, each table
    (``[topk]``, ``[attn]``, ``[core]``) overrides fields of that preset's part, ``name``
    (default: the file's stem) names the result::

        base = "paper"
        name = "mine"
        [topk]
        radix_bits = 4

    A file without ``base`` is refused: there is no silent fallback to class defaults."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config {path} is a folder, not a .toml file")
    try:
        d = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} cannot be read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    base = d.pop("base", None)
    if base not in PRESETS:
        why = "does not name" if base is None else f"names an unknown base {base!r}, not"
        choices = " or ".join(f'"{p}"' for p in PRESETS)
        raise ConfigError(f"config file {path} {why} the preset it starts from: add "
                          f"base = {choices}")
    merged = PRESETS[base].to_dict()
    merged["name"] = d.pop("name", path.stem)
    for key, value in d.items():
        if isinstance(merged.get(key), dict) and isinstance(value, dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value   # unknown keys and non-tables: from_dict names them
    return SpAttenConfig.from_dict(merged)


def get_config(name_or_path) -> SpAttenConfig:
    """A preset by name, or a config loaded from a ``.toml`` file (:func:`load_toml`)."""
    if name_or_path in PRESETS:
        return PRESETS[name_or_path]
    text = str(name_or_path)
    if text.endswith(".toml") or (text and Path(text).is_dir()):
        return load_toml(name_or_path)
    raise ConfigError(f"config must be a preset ({', '.join(PRESETS)}) or a .toml file, "
                      f"not {text!r}")
