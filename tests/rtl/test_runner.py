"""Runs that cannot lie: concurrent runs of one block and config each get their own
results; a testbench that raises is reported with its exception, not just a count."""

import subprocess
import sys

import pytest

from generators.presets import PRESETS
from sim.runner import ROOT, run_cocotb


@pytest.mark.rtl
def test_concurrent_runs_keep_their_own_results(tmp_path):
    """Two `spatten sim topk --config ci` at once, different seeds and packet counts, sharing
    one build folder: each reports its own packets."""
    build = tmp_path / "shared"
    runs = [subprocess.Popen([sys.executable, "-m", "generators.cli", "--quiet", "sim", "topk",
                              "--config", "ci", "--packets", str(p), "--seed", str(s),
                              "--build-dir", str(build)], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for p, s in ((6, 11), (9, 12))]
    outs = [r.communicate(timeout=600) for r in runs]
    for (out, err), r, packets, seed in zip(outs, runs, (6, 9), (11, 12)):
        assert r.returncode == 0, err
        assert f"seed {seed}: {packets} packets, all bit-exact" in out, out
    folders = {line.split("logs: ")[1].rstrip(")") for out, _ in outs
               for line in out.splitlines() if "logs: " in line}
    assert len(folders) == 2                       # a folder of its own per run


@pytest.mark.rtl
def test_testbench_exception_is_reported():
    """A testbench that raises (here: a malformed bench point) fails the run, and the
    reason names the exception, not only '1 of 1 tests failed'."""
    r = run_cocotb(PRESETS["ci"], "topk", simulator="icarus", packets=2, bench="8:x")
    assert not r.ok and r.failures
    assert "ValueError" in r.reason and "invalid literal" in r.reason, r.reason
    assert (r.build_dir / "sim.log").is_file()
