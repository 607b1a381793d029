"""What the core's components share: the constructor check and the end of a command."""

from __future__ import annotations

from generators.config import SpAttenConfig

__all__ = ["core_config", "status_state"]


def core_config(cfg) -> SpAttenConfig:
    """``cfg`` if it is a :class:`~generators.config.SpAttenConfig` whose head and core parts
    fit together; ``TypeError`` or ``ConfigError`` otherwise."""
    if not isinstance(cfg, SpAttenConfig):
        raise TypeError(f"cfg must be a SpAttenConfig, not {cfg!r}")
    return cfg.check_core()


def status_state(m, status, code, candidates, busy):
    """Inside an FSM's STATUS state: present one ``status`` beat (``code``, ``candidates``),
    then clear ``busy`` and return to IDLE."""
    m.d.comb += [status.valid.eq(1), status.payload.code.eq(code),
                 status.payload.candidates.eq(candidates)]
    with m.If(status.ready):
        m.d.sync += busy.eq(0)
        m.next = "IDLE"
