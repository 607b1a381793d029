"""Beat-level packing of top-k packets and an exact, in-order scoreboard (NumPy only).

Beats are plain dicts whose keys are the field names of ``hdl.topk.layouts``; the testbenches
turn them into bits with the same Amaranth layouts the hardware uses. Expected output beats
come from the golden model, so every output bit (including the zeroed unused lanes) is
compared, not just the kept elements.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from generators.config import TopKConfig
from sim.golden.topk import topk_engine

__all__ = ["input_beats", "expected_beats", "Scoreboard", "Mismatch", "StreamChecker",
           "first_difference"]


def input_beats(cfg: TopKConfig, scores, k: int) -> list[dict]:
    """The beats of one input packet: full beats, then a last beat with ``count`` lanes."""
    s = cfg.score.check(scores, "score")
    P = cfg.lanes
    beats = []
    nbeats = max(1, -(-len(s) // P))
    for b in range(nbeats):
        chunk = [int(v) for v in s[b * P:(b + 1) * P]]
        last = b == nbeats - 1
        beats.append({"data": chunk + [0] * (P - len(chunk)), "count": len(chunk) if last else P,
                      "k": int(k), "last": int(last)})
    return beats


def expected_beats(cfg: TopKConfig, scores, k: int) -> list[dict]:
    """The output beats ``hdl.topk.TopK(cfg)`` must produce for one packet, bit for bit."""
    r = topk_engine(scores, k, cfg)
    P, m = cfg.lanes, len(r.indices)
    beats = []
    for b in range(max(1, -(-m // P))):
        idx = [int(v) for v in r.indices[b * P:(b + 1) * P]]
        val = [int(v) for v in r.values[b * P:(b + 1) * P]]
        pad = [0] * (P - len(idx))
        beats.append({"data": val + pad, "index": idx + pad, "count": len(idx), "kth": r.kth,
                      "truncated": int(r.truncated), "last": int((b + 1) * P >= m)})
    return beats


@dataclass(frozen=True)
class Mismatch:
    packet: int
    beat: int
    field: str
    lane: int | None
    got: object
    expected: object

    def __str__(self) -> str:
        lane = "" if self.lane is None else f" lane {self.lane}"
        return (f"packet {self.packet} beat {self.beat} {self.field}{lane}: "
                f"got {self.got}, expected {self.expected}")


@dataclass
class Scoreboard:
    """Compares output beats, in order, with the golden beats of the packets sent.

    ``expect(...)`` queues a packet's expected beats; ``got(beat)`` checks one output beat.
    The first mismatch is kept (with ``context``: config tag and seed); later beats are still
    counted so that drops and duplicates show up in :meth:`finish`.
    """

    cfg: TopKConfig
    context: str = ""
    packets: int = 0
    beats: int = 0
    mismatches: int = 0
    first: Mismatch | None = None
    _queue: list = field(default_factory=list)

    def expect(self, scores, k: int):
        self._queue.append((self.packets + len(self._queue), expected_beats(self.cfg, scores, k)))

    def got(self, beat: dict):
        if not self._queue:
            self._fail(Mismatch(self.packets, 0, "beat", None, "an extra beat", "nothing"))
            return
        pkt, exp = self._queue[0]
        b = self.beats
        want = exp[b]
        for name, value in want.items():
            g = beat[name]
            if isinstance(value, list):
                for lane, (gv, ev) in enumerate(zip(g, value)):
                    if int(gv) != ev:
                        self._fail(Mismatch(pkt, b, name, lane, int(gv), ev))
                        break
            elif int(g) != value:
                self._fail(Mismatch(pkt, b, name, None, int(g), value))
        self.beats += 1
        if int(beat["last"]) or self.beats == len(exp):
            if self.beats != len(exp) or not int(beat["last"]):
                self._fail(Mismatch(pkt, b, "last", None, int(beat["last"]), want["last"]))
            self._queue.pop(0)
            self.beats = 0
            self.packets += 1

    @property
    def pending(self) -> int:
        """Packets sent whose output has not been fully seen."""
        return len(self._queue)

    def _fail(self, mm: Mismatch):
        self.mismatches += 1
        if self.first is None:
            self.first = mm

    def finish(self) -> str | None:
        """``None`` when every packet matched and none is missing, else a one-line report."""
        if self.first is None and not self._queue:
            return None
        where = f" [{self.context}]" if self.context else ""
        if self.first is not None:
            return f"{self.mismatches} mismatching beats{where}; first: {self.first}"
        return f"{len(self._queue)} packets never came out{where} (first: {self._queue[0][0]})"


def first_difference(got, expected, path: str = "") -> str | None:
    """The path of the first field where two unpacked beats differ (``None`` if equal):
    ``"data[3]"``, ``"meta.keep"``, ``"msb[1][7]"``."""
    if isinstance(expected, dict):
        for name, value in expected.items():
            d = first_difference(got[name], value, f"{path}.{name}" if path else name)
            if d:
                return d
        return None
    if isinstance(expected, list):
        for j, value in enumerate(expected):
            d = first_difference(got[j], value, f"{path}[{j}]")
            if d:
                return d
        return None
    return None if int(got) == int(expected) else f"{path} (got {int(got)}, expected {expected})"


@dataclass
class StreamChecker:
    """In-order comparison of the beats of several output streams with expected beats.

    ``expect(stream, beats)`` appends expected beats; ``got(stream, beat)`` checks one. A
    beat that arrives with nothing expected is a mismatch (a duplicate or an invented beat);
    :meth:`finish` reports expected beats that never came (drops).
    """

    context: str = ""
    mismatches: int = 0
    first: str | None = None
    checked: dict = field(default_factory=dict)
    _queue: dict = field(default_factory=dict)

    def expect(self, stream: str, beats):
        self._queue.setdefault(stream, []).extend(beats)

    def got(self, stream: str, beat: dict):
        q = self._queue.setdefault(stream, [])
        n = self.checked.get(stream, 0)
        self.checked[stream] = n + 1
        if not q:
            self._fail(f"{stream} beat {n}: an extra beat (nothing expected)")
            return
        want = q.pop(0)
        d = first_difference(beat, want)
        if d:
            self._fail(f"{stream} beat {n}: {d}")

    def pending(self, stream: str | None = None) -> int:
        if stream is not None:
            return len(self._queue.get(stream, []))
        return sum(len(q) for q in self._queue.values())

    def _fail(self, text: str):
        self.mismatches += 1
        if self.first is None:
            self.first = text

    def finish(self) -> str | None:
        """``None`` when everything matched and nothing is missing, else a one-line report."""
        where = f" [{self.context}]" if self.context else ""
        if self.first is not None:
            return f"{self.mismatches} mismatching beats{where}; first: {self.first}"
        missing = {s: len(q) for s, q in self._queue.items() if q}
        if missing:
            return f"beats never came out{where}: {missing}"
        return None
