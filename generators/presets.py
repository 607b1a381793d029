"""Named configurations.

- ``ci``: tiny, for fast tests (4 lanes, 64-element packets, 8-bit scores).
- ``paper``: SpAtten's full configuration (HPCA 2021, Table/Section V): 16 top-k lanes
  (16 comparators per comparator array), 1024-token capacity, 12-bit on-chip values.
- ``eighth``: SpAtten 1/8 (128 multipliers instead of 1024, 2 HBM channels). The top-k lanes
  are scaled with the multipliers (16 / 8 = 2): at D = 64 the 1/8 Q·K array produces one
  score per cycle, so 2 lanes keep the engine ahead of it. Capacity stays 1024 tokens.
"""

from __future__ import annotations

from .config import ConfigError, SpAttenConfig, TopKConfig
from .numerics import QFormat

__all__ = ["PRESETS", "get_config"]

PRESETS: dict[str, SpAttenConfig] = {
    "ci": SpAttenConfig(name="ci", topk=TopKConfig(
        lanes=4, capacity=64, score=QFormat(8, 0), radix_bits=4, buffers=2)),
    "paper": SpAttenConfig(name="paper", topk=TopKConfig(
        lanes=16, capacity=1024, score=QFormat(12, 0), radix_bits=6, buffers=2)),
    "eighth": SpAttenConfig(name="eighth", topk=TopKConfig(
        lanes=2, capacity=1024, score=QFormat(12, 0), radix_bits=6, buffers=2)),
}


def get_config(name_or_path: str) -> SpAttenConfig:
    """A preset by name, or a config loaded from a ``.toml`` file."""
    if name_or_path in PRESETS:
        return PRESETS[name_or_path]
    if str(name_or_path).endswith(".toml"):
        return SpAttenConfig.from_toml(name_or_path)
    raise ConfigError(f"config must be a preset ({', '.join(PRESETS)}) or a .toml file, "
                      f"not {name_or_path!r}")
