"""fit_and_save's run control: exact --steps, step-level backups and resume, clean stops on
SIGINT / SIGTERM (tfcomp.run_control). Tiny restorers (widths 8 8 8 8) on 16x16 patches;
the Ctrl-C test runs the real training script in a subprocess, bounded by timeouts.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import tensorflow as tf

from tfcomp.restorer.model import build_restorer
from tfcomp.run_control import TrainingInterrupted, optimizer_step
from tfcomp.training import fit_and_save

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "training", "train_restorer.py")


def _fit(run_dir, steps, steps_per_epoch, **kwargs):
    """fit_and_save of a tiny restorer on random patches; returns the model."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (8, 16, 16, 3)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((x, x)).repeat().batch(2)

    def compile_fn(model):  # eagerly: the run control is Python, tracing would only cost time
        model.compile(optimizer=tf.keras.optimizers.SGD(1e-3), loss="mse", run_eagerly=True)
    return fit_and_save(lambda: build_restorer(widths=(8, 8, 8, 8)), compile_fn, dataset,
                        run_dir=str(run_dir), out=None, steps=steps,
                        steps_per_epoch=steps_per_epoch, strategy=tf.distribute.get_strategy(),
                        verbose=0, **kwargs)[0]


class _Crash(Exception):
    pass


class _CrashAt(tf.keras.callbacks.Callback):
    """Raises at the end of optimizer step `step`, as a killed process would stop there."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations) == self.step:
            raise _Crash


class _SignalAt(_CrashAt):
    """Sends `signum` to this process at the end of optimizer step `step`."""

    def __init__(self, step, signum):
        super().__init__(step)
        self.signum = signum

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations) == self.step:
            os.kill(os.getpid(), self.signum)


def _epochs(run_dir):
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        return [line for line in f if line.strip()]


def test_steps_are_exact_with_a_short_last_epoch(tmp_path, capsys):
    model = _fit(tmp_path, steps=7, steps_per_epoch=5)
    assert optimizer_step(model) == 7
    assert [json.loads(e)["step"] for e in _epochs(tmp_path)] == [5, 7]  # a short last epoch
    assert not (tmp_path / "backup" / "chief").exists()        # a finished run drops it
    model = _fit(tmp_path, steps=3, steps_per_epoch=250)       # the same run_dir, afresh
    assert optimizer_step(model) == 3                          # not one 250-step epoch
    assert "resuming" not in capsys.readouterr().out


def test_a_crashed_run_resumes_mid_epoch_from_its_last_backup(tmp_path, capsys):
    with pytest.raises(_Crash):
        _fit(tmp_path, steps=9, steps_per_epoch=5, backup_every=3, callbacks=[_CrashAt(4)])
    assert (tmp_path / "backup" / "chief").is_dir()            # kept: the run did not finish
    capsys.readouterr()
    model = _fit(tmp_path, steps=9, steps_per_epoch=5, backup_every=3)
    out = capsys.readouterr().out
    assert out.count("resuming from step") == 1 and "resuming from step 3\n" in out
    assert optimizer_step(model) == 9                          # 3 restored + 6 more


def test_sigterm_saves_a_backup_and_raises_a_status_143_exit(tmp_path, capsys):
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted) as stop:
        _fit(tmp_path, steps=50, steps_per_epoch=5, backup_every=100,
             callbacks=[_SignalAt(2, signal.SIGTERM)])
    assert stop.value.code == 143 and stop.value.step == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"interrupted by SIGTERM after step 2: backup in {tmp_path / 'backup'}; "
                   "run the same command again to continue"]
    assert signal.getsignal(signal.SIGTERM) is handler          # restored
    model = _fit(tmp_path, steps=4, steps_per_epoch=5)
    assert "resuming from step 2" in capsys.readouterr().out
    assert optimizer_step(model) == 4


def test_ctrl_c_on_the_training_script_saves_exits_130_and_resumes(tmp_path, capsys):
    from PIL import Image
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(2)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(data / f"{i}.png")
    run_dir = tmp_path / "run"
    args = ["--data", str(data), "--run-dir", str(run_dir), "--quality", "30", "--widths", "8",
            "8", "8", "8", "--patch", "16", "--batch", "2", "--steps-per-epoch", "2",
            "--backup-every", "1000", "--quiet"]
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    proc = subprocess.Popen([sys.executable, SCRIPT, *args, "--steps", "100000"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (run_dir / "log.jsonl").exists():            # epoch 1 done: training
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "interrupted" in line]
    assert len(lines) == 1, err[-3000:]
    match = re.fullmatch(r"interrupted by SIGINT after step (\d+): backup in (.+); run the same "
                         r"command again to continue", lines[0])
    assert match and match.group(2) == str(run_dir / "backup"), lines
    step = int(match.group(1))
    assert step >= 2 and (run_dir / "backup" / "chief").is_dir()

    # The same script, resumed (in this process) with 2 more steps in all.
    sys.path.insert(0, os.path.join(ROOT, "training"))
    try:
        import train_restorer as script
    finally:
        sys.path.pop(0)
    capsys.readouterr()
    assert script.main([*args, "--steps", str(step + 2), "--out",
                        str(tmp_path / "final.weights.h5")]) == 0
    assert f"resuming from step {step}\n" in capsys.readouterr().out
    assert json.loads(_epochs(run_dir)[-1])["step"] == step + 2
    assert (tmp_path / "final.weights.h5").is_file()


def test_a_global_batch_that_does_not_split_over_the_replicas_is_refused(tmp_path):
    two = types.SimpleNamespace(num_replicas_in_sync=2)
    with pytest.raises(ValueError, match="does not split over 2 replicas"):
        fit_and_save(None, None, None, run_dir=str(tmp_path), out=None, steps=1,
                     steps_per_epoch=1, strategy=two, batch_size=3)
    from tfcomp.training import train_jpdse
    with pytest.raises(ValueError, match="does not split over 2 replicas"):
        train_jpdse(data=str(tmp_path), run_dir=str(tmp_path), strategy=two, batch_size=1)
