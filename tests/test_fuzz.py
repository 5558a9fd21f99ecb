"""The Python-side fuzz harness (tfcomp.fuzz): a short seeded run of every target finds
nothing, the kept regression inputs stay fixed, and the supervised command runs bounded."""

import glob
import os
import subprocess
import sys

import pytest

from tfcomp import fuzz

HERE = os.path.dirname(os.path.abspath(__file__))
REGRESSIONS = os.path.join(HERE, "data", "py_fuzz_regressions")


def describe(findings):
    return "\n".join(f"{f['kind']}: {f['detail']}" for f in findings)


def test_mutations_are_seeded_and_bounded():
    import random
    data = bytes(range(200))
    ra, rb = random.Random(7), random.Random(7)
    a = [fuzz.mutate(data, ra, [data]) for _ in range(50)]
    b = [fuzz.mutate(data, rb, [data]) for _ in range(50)]
    assert a == b and len(set(a)) > 40
    assert all(len(m) <= 100 for m in (fuzz.mutate(data, random.Random(i), max_len=100)
                                       for i in range(50)))


@pytest.mark.parametrize("target", sorted(fuzz.TARGETS))
def test_short_seeded_run_finds_nothing(target):
    findings, count = fuzz.fuzz(target, seconds=1.0, seed=0, time_limit=20.0)
    assert count > 0
    assert not findings, describe(findings)


@pytest.mark.parametrize("target", sorted(fuzz.TARGETS))
def test_regressions_stay_fixed(target):
    paths = sorted(glob.glob(os.path.join(REGRESSIONS, target, "*")))
    assert paths, f"no regression inputs for {target}"
    findings = fuzz.replay(target, paths, time_limit=20.0)
    assert not findings, describe(findings)


def test_a_crash_is_reported(monkeypatch):
    seeds, _, fixup = fuzz.TARGETS["image"]

    def buggy(data):
        if len(data) % 3 == 0:
            raise IndexError("boom")

    monkeypatch.setitem(fuzz.TARGETS, "image", (seeds, buggy, fixup))
    findings, _ = fuzz.fuzz("image", iterations=30, seed=1)
    assert findings and {f["kind"] for f in findings} == {"crash"}
    assert "IndexError: boom" in findings[0]["detail"]
    assert findings[0].name.startswith("crash-image-")


def test_supervised_command_writes_no_findings(tmp_path):
    out = tmp_path / "findings"
    proc = subprocess.run([sys.executable, "-m", "tfcomp.fuzz", "--targets", "image", "jpeg",
                           "--seconds", "3", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "image: " in proc.stdout and "0 finding(s)" in proc.stdout
    assert os.listdir(out) == []
