"""Frozen, validated configuration objects.

One config object drives the hardware (``hdl``), the golden model (``sim.golden``), the
testbench stimulus and the synthesis run. Invalid values are rejected at construction with a
message naming the field, the rule and the value (``lanes must be a power of two, not 6``).
Variants are made with :func:`dataclasses.replace`, never by mutation.

Configs round-trip through JSON (to carry them into a cocotb process and into reports) and can
be loaded from TOML files::

    [topk]
    lanes = 16
    capacity = 1024
    score = "s12f0"
    radix_bits = 6
    buffers = 2
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .numerics import QFormat, bits_for, ceil_log2

__all__ = ["TopKConfig", "SpAttenConfig", "ConfigError"]


class ConfigError(ValueError):
    """A configuration value breaks a rule (subclass of ``ValueError``)."""


def _is_pow2(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


def _require_int(name: str, value: Any):
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer, not {value!r}")


@dataclass(frozen=True, kw_only=True)
class TopKConfig:
    """Parallel top-k engine (SpAtten's top-k, here a radix select; see ``hdl.topk``).

    Fields
    ------
    lanes : elements per stream beat, in and out (a power of two, 1..64).
    capacity : largest packet, in elements (a multiple of ``lanes``, at most 65536).
    score : the signed score format (only the raw integer order matters).
    radix_bits : bits of the score resolved per selection level (1..8); the engine resolves
        the first level while the packet arrives and each further level with one pass over the
        buffered packet, so ``levels = ceil(score.width / radix_bits)`` trades area
        (``2**radix_bits`` counters per histogram) against latency.
    buffers : packet buffers (1 or 2); with 2, a packet arrives while the previous one is
        being selected.
    """

    lanes: int = 16
    capacity: int = 1024
    score: QFormat = QFormat(12, 0)
    radix_bits: int = 6
    buffers: int = 2

    def __post_init__(self):
        for name in ("lanes", "capacity", "radix_bits", "buffers"):
            _require_int(name, getattr(self, name))
        if not isinstance(self.score, QFormat):
            raise ConfigError(f"score must be a QFormat, not {self.score!r}")
        if not _is_pow2(self.lanes) or self.lanes > 64:
            raise ConfigError(f"lanes must be a power of two in 1..64, not {self.lanes}")
        if self.capacity < self.lanes or self.capacity % self.lanes:
            raise ConfigError(
                f"capacity must be a positive multiple of lanes ({self.lanes}), "
                f"not {self.capacity}")
        if self.capacity > 65536:
            raise ConfigError(f"capacity must be at most 65536, not {self.capacity}")
        if not self.score.signed or not 2 <= self.score.width <= 32:
            raise ConfigError(f"score must be a signed format of 2..32 bits, not {self.score}")
        if not 1 <= self.radix_bits <= 8:
            raise ConfigError(f"radix_bits must be in 1..8, not {self.radix_bits}")
        if self.buffers not in (1, 2):
            raise ConfigError(f"buffers must be 1 or 2, not {self.buffers}")

    # Derived quantities: computed here only.
    @property
    def levels(self) -> int:
        """Selection levels (digits of the score key, most significant first)."""
        return -(-self.score.width // self.radix_bits)

    @property
    def key_pad(self) -> int:
        """Zero bits appended below the score key so that every digit is ``radix_bits`` wide."""
        return self.radix_bits * self.levels - self.score.width

    @property
    def rows(self) -> int:
        """Buffer rows (beats) per packet at full capacity."""
        return self.capacity // self.lanes

    @property
    def index_bits(self) -> int:
        return max(1, ceil_log2(self.capacity))

    @property
    def count_bits(self) -> int:
        """Width of element counts in ``0..capacity`` (also the width of ``k``)."""
        return bits_for(self.capacity)

    @property
    def lane_count_bits(self) -> int:
        """Width of a per-beat element count in ``0..lanes``."""
        return bits_for(self.lanes)

    @property
    def tag(self) -> str:
        return (f"p{self.lanes}-n{self.capacity}-{self.score}-r{self.radix_bits}"
                f"-b{self.buffers}")


@dataclass(frozen=True, kw_only=True)
class SpAttenConfig:
    """The whole accelerator: one sub-config per block."""

    name: str = "custom"
    topk: TopKConfig = field(default_factory=TopKConfig)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name must be a non-empty string, not {self.name!r}")
        if not isinstance(self.topk, TopKConfig):
            raise ConfigError(f"topk must be a TopKConfig, not {self.topk!r}")

    @property
    def tag(self) -> str:
        return f"{self.name}-{self.topk.tag}"

    # Serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict:
        return _to_dict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "SpAttenConfig":
        return _from_dict(cls, d, "")

    @classmethod
    def from_json(cls, text: str) -> "SpAttenConfig":
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_toml(cls, path: str | Path) -> "SpAttenConfig":
        path = Path(path)
        try:
            d = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
        d.setdefault("name", path.stem)
        return cls.from_dict(d)


def _to_dict(obj) -> dict:
    out = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v) and not isinstance(v, QFormat):
            v = _to_dict(v)
        elif isinstance(v, QFormat):
            v = str(v)
        out[f.name] = v
    return out


_NESTED = {"topk": TopKConfig}


def _from_dict(cls, d: dict, prefix: str):
    if not isinstance(d, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a table, not {d!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ConfigError(f"unknown config field {prefix}{unknown[0]!s} "
                          f"(known: {', '.join(sorted(known))})")
    kwargs = {}
    try:
        for name, value in d.items():
            if name in _NESTED and cls is SpAttenConfig:
                kwargs[name] = _from_dict(_NESTED[name], value, f"{name}.")
            elif known[name].type in ("QFormat", QFormat) and isinstance(value, str):
                try:
                    kwargs[name] = QFormat.parse(value)
                except ValueError as e:
                    raise ConfigError(f"{name}: {e}") from None
            else:
                kwargs[name] = value
        return cls(**kwargs)
    except ConfigError as e:
        if str(e).startswith(prefix):
            raise
        raise ConfigError(f"{prefix}{e}") from None
