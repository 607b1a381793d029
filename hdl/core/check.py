"""What the core's components share: the constructor check, the base class and the end of a
command."""

from __future__ import annotations

from amaranth.lib import wiring

from generators.config import SpAttenConfig

__all__ = ["CoreComponent", "core_config", "status_state"]


def core_config(cfg) -> SpAttenConfig:
    """``cfg`` if it is a :class:`~generators.config.SpAttenConfig` whose head and core parts
    fit together; ``TypeError`` or ``ConfigError`` otherwise."""
    if not isinstance(cfg, SpAttenConfig):
        raise TypeError(f"cfg must be a SpAttenConfig, not {cfg!r}")
    return cfg.check_core()


class CoreComponent(wiring.Component):
    """A component of the core, built for one config: the config is checked first (as
    :func:`core_config`: ``TypeError`` or ``ConfigError``), then the ports are built from it by
    the subclass's ``_ports(cfg)``, which returns the signature members."""

    def __init__(self, cfg: SpAttenConfig):
        self._cfg = core_config(cfg)
        super().__init__(self._ports(self._cfg))

    @property
    def cfg(self) -> SpAttenConfig:
        return self._cfg

    def _ports(self, cfg: SpAttenConfig) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must define _ports(cfg)")


def status_state(m, status, code, candidates, busy):
    """Inside an FSM's STATUS state: present one ``status`` beat (``code``, ``candidates``),
    then clear ``busy`` and return to IDLE."""
    m.d.comb += [status.valid.eq(1), status.payload.code.eq(code),
                 status.payload.candidates.eq(candidates)]
    with m.If(status.ready):
        m.d.sync += busy.eq(0)
        m.next = "IDLE"
