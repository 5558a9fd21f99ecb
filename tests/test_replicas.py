"""Replica correctness of every model's training step: N replicas on a global batch B take
the step one replica takes on B.

The steps run in subprocesses of tests/replica_step.py (logical CPU devices and TF_CONFIG
must be set before TensorFlow starts): MirroredStrategy over 2 logical CPUs for the
restorer, CWIC, hiding and JPD-SE; two MultiWorkerMirroredStrategy workers on 127.0.0.1
for CWIC, bounded by a timeout (workers out of step would hang). Plain SGD: Adam would
hide a gradient scaled by N.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from subprocs import run_cluster

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEP = os.path.join(ROOT, "tests", "replica_step.py")
MODELS = ("restorer", "cwic", "hiding", "jpdse")
WORKER_TIMEOUT = 240  # seconds for the two workers together (about 30 on an idle 2-core box)


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _tail(text, n=30):
    return "\n".join(text.strip().splitlines()[-n:])


def _weights(folder, name):
    """(replicas, {"init"|"single"|"multi": [arrays]}) written by replica_step.py."""
    err = folder / f"{name}.err"
    if err.exists():
        pytest.fail(f"{name} failed in the subprocess:\n{err.read_text()}")
    arrays = np.load(folder / f"{name}.npz")
    count = sum(k.startswith("init_") for k in arrays.files)
    return int(arrays["replicas"]), {key: [arrays[f"{key}_{i}"] for i in range(count)]
                                     for key in ("init", "single", "multi")}


def _max_diff(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def _assert_same_step(weights):
    """The step moved the weights, and both runs moved them alike (relative to the step)."""
    update = _max_diff(weights["single"], weights["init"])
    assert update > 1e-3, f"the step barely moved the weights ({update})"
    diff = _max_diff(weights["multi"], weights["single"])
    assert diff <= 1e-4 * update, f"replicated step differs by {diff} (step size {update})"


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    """One subprocess steps all models (TensorFlow starts once)."""
    out = tmp_path_factory.mktemp("mirrored")
    proc = subprocess.run([sys.executable, STEP, "--eager", "mirrored", str(out), *MODELS],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, _tail(proc.stderr)
    return out


@pytest.mark.parametrize("name", MODELS)
def test_two_replicas_take_the_single_device_step(mirrored, name):
    replicas, weights = _weights(mirrored, name)
    assert replicas == 2
    _assert_same_step(weights)


def test_two_workers_take_the_single_process_step_cwic(tmp_path):
    folders = [tmp_path / f"worker{i}" for i in range(2)]
    for folder in folders:
        folder.mkdir()
    codes, outputs = run_cluster(
        lambda index: [sys.executable, STEP, "worker", str(folders[index]), "cwic"],
        [folder / "log.txt" for folder in folders], WORKER_TIMEOUT,
        lambda tf_config: _env(TF_CONFIG=tf_config), cwd=ROOT)
    output = "\n----\n".join(_tail(text) for text in outputs)
    assert codes is not None, f"workers timed out after {WORKER_TIMEOUT} s (hang?):\n{output}"
    assert codes == [0, 0], output
    (r0, chief), (r1, other) = (_weights(folder, "cwic") for folder in folders)
    assert r0 == r1 == 2
    for a, b in zip(chief["multi"], other["multi"]):
        np.testing.assert_array_equal(a, b)  # the workers agree
    _assert_same_step(chief)                  # and match one process on the whole batch
