"""Frozen, validated configuration objects.

One config object drives the hardware (``hdl``), the golden model (``sim.golden``), the
testbench stimulus and the synthesis run. Invalid values are rejected at construction with a
message naming the field, the rule and the value (``lanes must be a power of two, not 6``).
Variants are made with :func:`dataclasses.replace`, never by mutation.

Configs round-trip through JSON (to carry them into a cocotb process and into reports). A
TOML file names a preset it starts from and overrides fields of it
(:func:`generators.presets.load_toml`).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field, fields
from typing import Any

from .numerics import QFormat, bits_for, ceil_log2

__all__ = ["TopKConfig", "AttentionConfig", "CoreConfig", "SpAttenConfig", "ConfigError"]


class ConfigError(ValueError):
    """A configuration value breaks a rule (subclass of ``ValueError``)."""


# A config name: it becomes part of folder names, so no separators and no leading dot.
_NAME = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9_.+-]{0,63}")


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
class AttentionConfig:
    """The per-head attention datapath: Q·K array, softmax, prob·V array (``hdl.attn``).

    The numeric specification these fields parameterise is ``docs/numerics.md``; the golden
    model is :mod:`sim.golden.attention`.

    Fields
    ------
    head_dim : D, elements of a Q, K or V row (a power of two, 8..256).
    qk_multipliers : multipliers of the Q·K array (a power-of-two multiple of ``head_dim``);
        the array takes ``qk_multipliers / head_dim`` keys per cycle, which is also the
        softmax's ``lanes``.
    pv_multipliers : multipliers of the prob·V array (a power-of-two multiple of
        ``head_dim``); it takes ``pv_multipliers / head_dim`` kept (probability, V row) pairs
        per cycle.
    q_bits : width of the signed, symmetrically quantized query elements (2..12).
    msb_bits, lsb_bits : K and V are stored as a signed MSB plane and an unsigned LSB plane;
        a full value has ``msb_bits + lsb_bits`` (at most 12) bits. ``msb_bits`` 2..12,
        ``lsb_bits`` 1..8.
    score : the attention score format (signed; base-2 logits, ``frac`` 1..10 bits, which sets
        the exponent table to ``2**frac`` entries).
    scale_bits : width of the runtime dequantization multiplier (4..24).
    exp_bits : fraction bits E of the softmax exponentials ``2**-(max - score)`` (8..24).
    recip_bits : significant bits of the per-row reciprocal of the exponential sum (at least
        ``prob.frac + 1``, at most 24).
    prob : the probability format (unsigned, all fraction bits: ``u11f11`` is 0..2047/2048).
        Probabilities are the local-value top-k's scores, so ``prob.width`` must be less than
        the top-k score width.
    out : the attention output format (signed; in units of V's least significant bit,
        ``frac`` extra fraction bits, at most ``prob.frac``).
    topk_engines : local-value top-k engines in the head (1..8), used in turn, one query per
        engine: each spends about ``2 * L / topk.lanes`` cycles per query of ``L`` keys
        against the Q·K array's ``L / keys_per_cycle``, so one engine limits the head's
        throughput once ``topk.lanes < 2 * keys_per_cycle`` (``docs/head.md``).
    """

    head_dim: int = 64
    qk_multipliers: int = 512
    pv_multipliers: int = 512
    q_bits: int = 12
    msb_bits: int = 8
    lsb_bits: int = 4
    score: QFormat = QFormat(16, 8)
    scale_bits: int = 16
    exp_bits: int = 20
    recip_bits: int = 14
    prob: QFormat = QFormat(11, 11, signed=False)
    out: QFormat = QFormat(12, 0)
    topk_engines: int = 2

    def __post_init__(self):
        for name in ("head_dim", "qk_multipliers", "pv_multipliers", "q_bits", "msb_bits",
                     "lsb_bits", "scale_bits", "exp_bits", "recip_bits", "topk_engines"):
            _require_int(name, getattr(self, name))
        for name in ("score", "prob", "out"):
            if not isinstance(getattr(self, name), QFormat):
                raise ConfigError(f"{name} must be a QFormat, not {getattr(self, name)!r}")
        if not _is_pow2(self.head_dim) or not 8 <= self.head_dim <= 256:
            raise ConfigError(f"head_dim must be a power of two in 8..256, not {self.head_dim}")
        for name in ("qk_multipliers", "pv_multipliers"):
            v = getattr(self, name)
            if not _is_pow2(v) or v < self.head_dim or v > 64 * self.head_dim:
                raise ConfigError(
                    f"{name} must be a power of two from head_dim ({self.head_dim}) to "
                    f"64 * head_dim ({64 * self.head_dim}), not {v}")
        if not 2 <= self.q_bits <= 12:
            raise ConfigError(f"q_bits must be in 2..12, not {self.q_bits}")
        if not 2 <= self.msb_bits <= 12:
            raise ConfigError(f"msb_bits must be in 2..12, not {self.msb_bits}")
        if not 1 <= self.lsb_bits <= 8:
            raise ConfigError(f"lsb_bits must be in 1..8, not {self.lsb_bits}")
        if self.msb_bits + self.lsb_bits > 12:
            raise ConfigError(f"msb_bits + lsb_bits must be at most 12 (the on-chip value "
                              f"width), not {self.msb_bits} + {self.lsb_bits}")
        if not self.score.signed or not 4 <= self.score.width <= 24 \
                or not 1 <= self.score.frac <= 10 or self.score.frac >= self.score.width - 1:
            raise ConfigError(f"score must be signed, 4..24 bits wide with 1..10 fraction "
                              f"bits and at least one integer bit, not {self.score}")
        if not 4 <= self.scale_bits <= 24:
            raise ConfigError(f"scale_bits must be in 4..24, not {self.scale_bits}")
        if not 8 <= self.exp_bits <= 24:
            raise ConfigError(f"exp_bits must be in 8..24, not {self.exp_bits}")
        if self.prob.signed or self.prob.width != self.prob.frac or not 4 <= self.prob.width <= 16:
            raise ConfigError(f"prob must be unsigned with only fraction bits, 4..16 wide "
                              f"(like u11f11), not {self.prob}")
        if not self.prob.frac + 1 <= self.recip_bits <= 24:
            raise ConfigError(f"recip_bits must be in prob.frac + 1 ({self.prob.frac + 1})"
                              f"..24, not {self.recip_bits}")
        if not self.out.signed or not 4 <= self.out.width <= 24 \
                or not 0 <= self.out.frac <= self.prob.frac:
            raise ConfigError(f"out must be signed, 4..24 bits wide with 0..prob.frac "
                              f"({self.prob.frac}) fraction bits, not {self.out}")
        if not 1 <= self.topk_engines <= 8:
            raise ConfigError(f"topk_engines must be in 1..8, not {self.topk_engines}")

    # Derived quantities: computed here only.
    @property
    def keys_per_cycle(self) -> int:
        """Keys the Q·K array takes per cycle (also the softmax lanes)."""
        return self.qk_multipliers // self.head_dim

    @property
    def lanes(self) -> int:
        """Softmax lanes: scores per beat from the Q·K array to the top-k."""
        return self.keys_per_cycle

    @property
    def pv_rows(self) -> int:
        """(probability, V row) pairs the prob·V array takes per cycle."""
        return self.pv_multipliers // self.head_dim

    @property
    def value_bits(self) -> int:
        """Width of a full K or V value (MSB and LSB planes together), signed."""
        return self.msb_bits + self.lsb_bits

    @property
    def acc_bits(self) -> int:
        """Q·K accumulator width: ``|q·k| <= D * 2**(q_bits-1) * 2**(value_bits-1)`` needs
        ``q_bits + value_bits + log2(D)`` signed bits, so the sum cannot overflow."""
        return self.q_bits + self.value_bits + ceil_log2(self.head_dim)

    @property
    def shift_bits(self) -> int:
        """Width of the runtime score shift (0..63)."""
        return 6

    @property
    def exp_width(self) -> int:
        """Width of an exponential ``e`` in ``0..2**exp_bits``."""
        return self.exp_bits + 1

    @property
    def tag(self) -> str:
        return (f"d{self.head_dim}-m{self.qk_multipliers}-v{self.pv_multipliers}"
                f"-q{self.q_bits}-k{self.msb_bits}+{self.lsb_bits}-{self.score}"
                f"-x{self.scale_bits}-e{self.exp_bits}-r{self.recip_bits}-{self.prob}-{self.out}"
                f"-t{self.topk_engines}")


@dataclass(frozen=True, kw_only=True)
class CoreConfig:
    """The SpAtten core around the head pipeline: importance accumulators, cascade token and
    head pruning, generation policies and the DRAM layout (``docs/core.md``; golden model
    :mod:`sim.golden.core`).

    Fields
    ------
    heads : heads per layer the core holds state for (1..64).
    layers : layers the core holds kept-token masks for (1..128; generation keeps one per
        layer from step to step).
    imp_bits : width of a token's importance accumulator (unsigned, saturating), in units of
        one probability LSB (``2**-attn.prob.frac``); 8..30, so that the token/head top-k
        engine's signed 32-bit scores hold it and a "always keep" value above it.
    head_imp_bits : width of a head's importance accumulator (unsigned, saturating), in units
        of one output LSB (``2**-attn.out.frac``); 8..30.
    age_frac_bits : fraction bits B of the age reciprocal table used by age-normalised
        generation (``round(2**B / age)``), 8..24.
    select_radix_bits : radix bits of the token/head top-k engine (its scores are
        ``imp_bits + 1`` bits wide, so it has more levels than the local-value engines).
    bus_bytes : AXI4 data width in bytes (a power of two, 4..128); DRAM rows are padded to
        whole bus beats.
    addr_bits : AXI4 address width (32..64).
    """

    heads: int = 16
    layers: int = 24
    imp_bits: int = 30
    head_imp_bits: int = 30
    age_frac_bits: int = 16
    select_radix_bits: int = 8
    bus_bytes: int = 32
    addr_bits: int = 32

    def __post_init__(self):
        for name in ("heads", "layers", "imp_bits", "head_imp_bits", "age_frac_bits",
                     "select_radix_bits", "bus_bytes", "addr_bits"):
            _require_int(name, getattr(self, name))
        if not 1 <= self.heads <= 64:
            raise ConfigError(f"heads must be in 1..64, not {self.heads}")
        if not 1 <= self.layers <= 128:
            raise ConfigError(f"layers must be in 1..128, not {self.layers}")
        for name in ("imp_bits", "head_imp_bits"):
            if not 8 <= getattr(self, name) <= 30:
                raise ConfigError(f"{name} must be in 8..30, not {getattr(self, name)}")
        if not 8 <= self.age_frac_bits <= 24:
            raise ConfigError(f"age_frac_bits must be in 8..24, not {self.age_frac_bits}")
        if not 1 <= self.select_radix_bits <= 8:
            raise ConfigError(f"select_radix_bits must be in 1..8, not {self.select_radix_bits}")
        if not _is_pow2(self.bus_bytes) or not 4 <= self.bus_bytes <= 128:
            raise ConfigError(f"bus_bytes must be a power of two in 4..128, not {self.bus_bytes}")
        if not 32 <= self.addr_bits <= 64:
            raise ConfigError(f"addr_bits must be in 32..64, not {self.addr_bits}")

    @property
    def tag(self) -> str:
        return (f"h{self.heads}-l{self.layers}-i{self.imp_bits}-j{self.head_imp_bits}-a{self.age_frac_bits}"
                f"-s{self.select_radix_bits}-b{self.bus_bytes}-ad{self.addr_bits}")


@dataclass(frozen=True, kw_only=True)
class SpAttenConfig:
    """The whole accelerator: one sub-config per block."""

    name: str = "custom"
    topk: TopKConfig = field(default_factory=TopKConfig)
    attn: AttentionConfig = field(default_factory=AttentionConfig)
    core: CoreConfig = field(default_factory=CoreConfig)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name must be a non-empty string, not {self.name!r}")
        if not _NAME.fullmatch(self.name):
            raise ConfigError(f"name must be letters, digits, '_', '-', '+' or '.' (not "
                              f"starting with '.' or '-'; it names build folders), not "
                              f"{self.name!r}")
        if not isinstance(self.topk, TopKConfig):
            raise ConfigError(f"topk must be a TopKConfig, not {self.topk!r}")
        if not isinstance(self.attn, AttentionConfig):
            raise ConfigError(f"attn must be an AttentionConfig, not {self.attn!r}")
        if not isinstance(self.core, CoreConfig):
            raise ConfigError(f"core must be a CoreConfig, not {self.core!r}")

    def check_head(self) -> "SpAttenConfig":
        """Raise :class:`ConfigError` unless the top-k and attention configs fit together in
        one head pipeline (checked by every block that joins them, not here, so that a config
        for the top-k engine alone need not describe a matching datapath)."""
        a, t = self.attn, self.topk
        if a.prob.width >= t.score.width:
            raise ConfigError(f"attn.prob ({a.prob}) must be narrower than topk.score "
                              f"({t.score}): probabilities are the top-k's scores")
        if t.lanes % a.lanes:
            raise ConfigError(f"topk.lanes ({t.lanes}) must be a multiple of attn.lanes "
                              f"(qk_multipliers / head_dim = {a.lanes})")
        if t.lanes % a.pv_rows:
            raise ConfigError(f"topk.lanes ({t.lanes}) must be a multiple of attn.pv_rows "
                              f"(pv_multipliers / head_dim = {a.pv_rows})")
        return self

    def check_core(self) -> "SpAttenConfig":
        """Raise :class:`ConfigError` unless the core's accumulators fit the datapath's formats
        (on top of :meth:`check_head`)."""
        self.check_head()
        a, c = self.attn, self.core
        if c.imp_bits <= a.prob.width:
            raise ConfigError(f"core.imp_bits ({c.imp_bits}) must be wider than attn.prob "
                              f"({a.prob}): it sums probabilities")
        need = a.out.width + ceil_log2(a.head_dim)
        if c.head_imp_bits < need:
            raise ConfigError(f"core.head_imp_bits ({c.head_imp_bits}) must be at least "
                              f"{need}: one output vector's sum of |out| (attn.out = {a.out}, "
                              f"D = {a.head_dim})")
        return self

    @property
    def protected_score(self) -> int:
        """The token selection score of a protected token (a sink or in the recent window):
        ``2**core.imp_bits``, above every importance, so one top-k pass keeps every protected
        token and the best of the rest (``docs/core.md``, Selection)."""
        return 1 << self.core.imp_bits

    @property
    def select_topk(self) -> TopKConfig:
        """The token/head top-k engine of the core: the local-value engine's lanes and
        capacity, one buffer (it runs once per layer), signed scores two bits wider than the
        wider importance accumulator (a sign bit, and one bit for :attr:`protected_score`)."""
        c = self.core
        return TopKConfig(lanes=self.topk.lanes, capacity=self.topk.capacity,
                          score=QFormat(max(c.imp_bits, c.head_imp_bits) + 2, 0),
                          radix_bits=c.select_radix_bits, buffers=1)

    @property
    def tag(self) -> str:
        """A short, stable id of the whole config (build folders, report rows)."""
        return f"{self.name}-{self.topk.tag}-{self.attn.tag}-{self.core.tag}"

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


_NESTED = {"topk": TopKConfig, "attn": AttentionConfig, "core": CoreConfig}


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
