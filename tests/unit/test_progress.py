"""sim.progress: what a long step shows (the step, done/total, elapsed, an ETA)."""

import io

import sim.progress as progress_mod
from sim.progress import Progress


def test_lines_without_a_terminal(monkeypatch):
    monkeypatch.setattr(progress_mod, "LOG_INTERVAL_S", 0.0)   # a line per update
    out = io.StringIO()
    p = Progress(file=out)
    with p.task("simulation of topk", total=4) as t:
        t.say("stall 0:0")
        t.show(1, 4)
        t.show(2, 4)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("simulation of topk: started, 00:00 elapsed, 0/4")
    assert any("2/4" in ln and "left" in ln and "(stall 0:0)" in ln for ln in lines)
    assert lines[-1].startswith("simulation of topk: done")


def test_open_ended_task_shows_elapsed():
    out = io.StringIO()
    with Progress(file=out).task("verilator build"):
        pass
    assert out.getvalue().splitlines() == ["verilator build: started, 00:00 elapsed",
                                           "verilator build: done, 00:00 elapsed"]


def test_disabled_shows_nothing():
    out = io.StringIO()
    p = Progress(enabled=False, file=out)
    with p.task("x", total=2) as t:
        t.show(1, 2)
    p.note("hello")
    assert out.getvalue() == ""
