"""The constructor check shared by the core's components."""

from __future__ import annotations

from generators.config import SpAttenConfig

__all__ = ["core_config"]


def core_config(cfg) -> SpAttenConfig:
    """``cfg`` if it is a :class:`~generators.config.SpAttenConfig` whose head and core parts
    fit together; ``TypeError`` or ``ConfigError`` otherwise."""
    if not isinstance(cfg, SpAttenConfig):
        raise TypeError(f"cfg must be a SpAttenConfig, not {cfg!r}")
    return cfg.check_core()
