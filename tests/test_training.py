"""Training plumbing: convergence, LR schedules, MirroredStrategy / MultiWorker parity, resume, CLI.

The distributed and CLI tests run in subprocesses: logical CPU devices and TF_CONFIG must be
in place before TensorFlow initialises. Everything is tiny (widths 8 8 8 8, 32x32 patches).
"""

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import types

import numpy as np
import pytest

from subprocs import free_ports

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(ROOT, "training", "train_restorer.py")
TINY = ["--quality", "20", "--widths", "8", "8", "8", "8", "--patch", "32", "--batch", "4", "--quiet"]


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _run(args, timeout, **env):
    return subprocess.run(args, cwd=ROOT, env=_env(**env), capture_output=True, text=True,
                          timeout=timeout)


def _natural(rng, h, w, c=3, noise=8.0):
    """Smooth colour patterns plus Gaussian noise, uint8."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    f = rng.uniform(2, 6, 2)
    base = np.stack([80 + 120 * np.sin(f[0] * xx + k) * np.cos(f[1] * yy - k) for k in range(c)], -1)
    return np.clip(base + 60 + noise * rng.standard_normal((h, w, c)), 0, 255).astype(np.uint8)


def _write_images(folder, n=6, size=64):
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(_natural(rng, size, size)).save(folder / f"img{i}.png")
    return folder


def _epochs(log_path):
    with open(log_path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _load_weights(path):
    from tfcomp.restorer.model import build_restorer
    model = build_restorer(widths=(8, 8, 8, 8))
    model.load_weights(str(path))
    return model.get_weights()


def _last_lines(text, n=25):
    return "\n".join(text.strip().splitlines()[-n:])


# 1. -------------------------------------------------------------------------------------

def test_few_steps_reduce_loss_on_fixed_batch():
    import tensorflow as tf
    from tfcomp.restorer.model import build_restorer
    from tfcomp.training import psnr_metric

    rng = np.random.default_rng(1)
    clean = np.stack([_natural(rng, 32, 32) for _ in range(4)]).astype(np.float32) / 255
    noisy = np.clip(clean + 0.05 * rng.standard_normal(clean.shape), 0, 1).astype(np.float32)
    tf.keras.utils.set_random_seed(0)
    model = build_restorer(widths=(8, 8, 8, 8))
    model.compile(optimizer=tf.keras.optimizers.Adam(3e-3), loss="mse", metrics=[psnr_metric])
    losses = [float(model.train_on_batch(noisy, clean)[0]) for _ in range(30)]
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0], losses


# 2. -------------------------------------------------------------------------------------

def test_parse_lr_schedule_constant():
    from tfcomp.training import parse_lr_schedule
    lr = parse_lr_schedule("1e-3")
    assert isinstance(lr, float) and lr == pytest.approx(1e-3)


def test_parse_lr_schedule_piecewise():
    from tfcomp.training import parse_lr_schedule
    sched = parse_lr_schedule("1e-3,5e-4@10,1e-4@20")
    got = {step: float(sched(step)) for step in (0, 9, 10, 19, 20, 25)}
    assert got[0] == pytest.approx(1e-3) and got[9] == pytest.approx(1e-3)
    assert got[10] == pytest.approx(5e-4) and got[19] == pytest.approx(5e-4)
    assert got[20] == pytest.approx(1e-4) and got[25] == pytest.approx(1e-4)


@pytest.mark.parametrize("text", ["abc", "1e-3@5", "1e-3,5e-4@10,1e-4@5", "1e-3,5e-4",
                                  "1e-3,5e-4@0", "1e-3,5e-4@x", ""])
def test_parse_lr_schedule_rejects_malformed(text):
    from tfcomp.training import parse_lr_schedule
    with pytest.raises(ValueError):
        parse_lr_schedule(text)


# 3. -------------------------------------------------------------------------------------

MIRRORED_SCRIPT = textwrap.dedent("""
    import json
    from tfcomp.training import make_strategy
    mirrored = make_strategy(cpu_devices=2)  # before any other TF op
    import numpy as np
    import tensorflow as tf
    from tfcomp.restorer.model import build_restorer

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32] / 32
    clean = np.stack([np.stack([0.5 + 0.4 * np.sin((3 + i) * xx + k) * np.cos((2 + i) * yy - k)
                                for k in range(3)], -1) for i in range(8)]).astype("float32")
    noisy = (clean + 0.1 * rng.standard_normal(clean.shape)).astype("float32")
    tf.keras.utils.set_random_seed(0)
    init = build_restorer(widths=(8, 8, 8, 8)).get_weights()

    def one_step(strategy):
        with strategy.scope():
            model = build_restorer(widths=(8, 8, 8, 8))
            model.set_weights(init)
            model.compile(optimizer=tf.keras.optimizers.SGD(0.05), loss="mse")
        model.fit(noisy, clean, batch_size=8, epochs=1, shuffle=False, verbose=0)
        return model.get_weights()

    multi = one_step(mirrored)
    single = one_step(tf.distribute.OneDeviceStrategy("/cpu:0"))
    print(json.dumps({
        "replicas": mirrored.num_replicas_in_sync,
        "devices": list(mirrored.extended.worker_devices),
        "max_diff": max(float(np.abs(a - b).max()) for a, b in zip(multi, single)),
        "max_update": max(float(np.abs(a - b).max()) for a, b in zip(single, init)),
    }))
""")


def test_mirrored_two_cpus_matches_single_device_step():
    proc = _run([sys.executable, "-c", MIRRORED_SCRIPT], timeout=300)
    assert proc.returncode == 0, _last_lines(proc.stderr)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2, result
    assert len(set(result["devices"])) == 2, result
    assert result["max_update"] > 1e-3, result  # the step moved the weights measurably
    assert result["max_diff"] < 1e-5, result


# 4. -------------------------------------------------------------------------------------

def test_multiworker_two_processes_agree(tmp_path, monkeypatch):
    from tfcomp.training import worker_dir

    data = _write_images(tmp_path / "data")
    run_dir, out = tmp_path / "run", tmp_path / "out" / "final.weights.h5"
    worker_tmp = tmp_path / "tmp"  # TMPDIR of the workers: where the non-chief writes
    worker_tmp.mkdir()
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    cmd = [sys.executable, CLI, "--data", str(data), *TINY, "--steps", "6", "--steps-per-epoch", "3",
           "--run-dir", str(run_dir), "--out", str(out)]
    procs, logs = [], []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        log = open(tmp_path / f"worker{index}.log", "w+")
        logs.append(log)
        procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                      env=_env(TF_CONFIG=tf_config, TMPDIR=str(worker_tmp))))
    try:
        codes = [p.wait(timeout=420) for p in procs]
    except subprocess.TimeoutExpired:
        codes = None
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        outputs = []
        for log in logs:
            log.seek(0)
            outputs.append(_last_lines(log.read()))
            log.close()
    assert codes is not None, "multi-worker run timed out (hang?):\n" + "\n----\n".join(outputs)
    assert codes == [0, 0], "\n----\n".join(outputs)

    # The non-chief's output path, computed by the library itself under the workers' TMPDIR.
    monkeypatch.setattr(tempfile, "tempdir", str(worker_tmp))
    non_chief = types.SimpleNamespace(cluster_resolver=types.SimpleNamespace(task_type="worker", task_id=1))
    other_out = worker_dir(str(out), non_chief)
    other_run = worker_dir(str(run_dir), non_chief)
    assert os.path.abspath(other_out) != os.path.abspath(out)

    assert out.is_file(), "chief did not write --out"
    assert os.path.isfile(other_out), "non-chief did not save to its temp path"
    chief_w, other_w = _load_weights(out), _load_weights(other_out)
    assert len(chief_w) == len(other_w)
    for a, b in zip(chief_w, other_w):
        np.testing.assert_array_equal(a, b)

    # Both workers trained the same 2 epochs and saw the same (all-reduced) losses.
    chief_log, other_log = _epochs(run_dir / "log.jsonl"), _epochs(os.path.join(other_run, "log.jsonl"))
    assert [e["epoch"] for e in chief_log] == [1, 2]
    assert [e["epoch"] for e in other_log] == [1, 2]
    for a, b in zip(chief_log, other_log):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)


# 5. -------------------------------------------------------------------------------------

KILLER_WRAPPER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, os.path.join({root!r}, "training"))
    import tensorflow as tf
    import tfcomp.training as training

    class _DieAfterEpoch2(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == 2:
                sys.stdout.flush()
                os._exit(1)

    _standard = training.standard_callbacks
    training.standard_callbacks = lambda *a, **k: _standard(*a, **k) + [_DieAfterEpoch2()]
    import train_restorer
    sys.exit(train_restorer.main(sys.argv[1:]))
""")


def test_backup_and_restore_resumes_after_crash(tmp_path):
    data = _write_images(tmp_path / "data")
    run_dir, out = tmp_path / "run", tmp_path / "final.weights.h5"
    args = ["--data", str(data), *TINY, "--steps", "6", "--steps-per-epoch", "2",
            "--run-dir", str(run_dir), "--out", str(out)]

    crashed = _run([sys.executable, "-c", KILLER_WRAPPER.format(root=ROOT), *args], timeout=300)
    assert crashed.returncode == 1, _last_lines(crashed.stderr)
    assert [e["epoch"] for e in _epochs(run_dir / "log.jsonl")] == [1, 2]
    assert not out.exists()

    resumed = _run([sys.executable, CLI, *args], timeout=300)
    assert resumed.returncode == 0, _last_lines(resumed.stderr)
    # The rerun appended only epoch 3: it resumed after epoch 2 instead of starting over.
    assert [e["epoch"] for e in _epochs(run_dir / "log.jsonl")] == [1, 2, 3]
    assert out.is_file()


def test_init_weights_start_a_run_from_a_checkpoint(tmp_path):
    data = _write_images(tmp_path / "data")
    first = _run([sys.executable, CLI, "--data", str(data), *TINY, "--steps", "2",
                  "--steps-per-epoch", "2", "--run-dir", str(tmp_path / "a"),
                  "--out", str(tmp_path / "a.weights.h5")], timeout=300)
    assert first.returncode == 0, _last_lines(first.stderr)
    checkpoint = tmp_path / "a" / "checkpoints" / "latest.weights.h5"
    tuned = _run([sys.executable, CLI, "--data", str(data), *TINY, "--steps", "1",
                  "--steps-per-epoch", "1", "--lr", "1e-9", "--init-weights", str(checkpoint),
                  "--run-dir", str(tmp_path / "b"), "--out", str(tmp_path / "b.weights.h5")],
                 timeout=300)
    assert tuned.returncode == 0, _last_lines(tuned.stderr)
    for a, b in zip(_load_weights(tmp_path / "a.weights.h5"), _load_weights(tmp_path / "b.weights.h5")):
        np.testing.assert_allclose(a, b, atol=1e-6)  # lr 1e-9: the run started from a's values


def test_precision_policy_is_scoped_and_keeps_the_output_float32():
    import tensorflow as tf
    from tfcomp.restorer.model import build_restorer
    from tfcomp.training import precision_policy

    with precision_policy("mixed_bfloat16"):
        model = build_restorer(widths=(8, 8, 8, 8))
    assert tf.keras.mixed_precision.global_policy().name == "float32"
    assert model.get_layer("unit1_conv3a").compute_dtype == "bfloat16"
    assert model.output.dtype == tf.float32  # the loss and the image stay float32
    assert all(w.dtype == tf.float32 for w in model.weights)
    with pytest.raises(ValueError, match="precision"):
        with precision_policy("float16"):
            pass


def test_mixed_bfloat16_run_writes_float32_weights(tmp_path):
    import tensorflow as tf
    from tfcomp.training import train_restorer

    data = _write_images(tmp_path / "data")
    out = tmp_path / "bf16.weights.h5"
    history = train_restorer(data=str(data), run_dir=str(tmp_path / "run"), out=str(out),
                             widths=(8, 8, 8, 8), quality=20, steps=4, steps_per_epoch=2,
                             batch_size=4, patch_size=32, lr_schedule="1e-3",
                             precision="mixed_bfloat16", keep_epochs=True, verbose=0)
    assert tf.keras.mixed_precision.global_policy().name == "float32"
    kept = sorted(os.listdir(tmp_path / "run" / "checkpoints"))
    assert kept == ["epoch-001.weights.h5", "epoch-002.weights.h5", "latest.weights.h5"], kept
    assert np.all(np.isfinite(history.history["loss"]))
    weights = _load_weights(out)  # a float32 model reads them
    assert all(w.dtype == np.float32 and np.all(np.isfinite(w)) for w in weights)


def test_gate_only_run_starts_from_an_ungated_file_and_trains_only_the_gate(tmp_path):
    from tfcomp.restorer.model import build_restorer, split_gate
    from tfcomp.training import train_restorer

    data = _write_images(tmp_path / "data")
    plain = build_restorer(widths=(8, 8, 8, 8))
    init = tmp_path / "plain.weights.h5"
    plain.save_weights(str(init))
    out = tmp_path / "gated.weights.h5"
    train_restorer(data=str(data), run_dir=str(tmp_path / "run"), out=str(out),
                   widths=(8, 8, 8, 8), quality_range=(10, 90), steps=4, steps_per_epoch=2,
                   batch_size=4, patch_size=32, lr_schedule="1e-2", init_weights=str(init),
                   quality_gate=True, gate_only=True, loss_power=1.0, verbose=0)
    gated = build_restorer(widths=(8, 8, 8, 8), quality_gate=True)
    gated.load_weights(str(out))
    gate, network = split_gate(gated)
    x = np.random.default_rng(0).uniform(0, 1, (1, 24, 24, 3)).astype(np.float32)
    np.testing.assert_array_equal(network(x).numpy(), plain(x).numpy())  # frozen
    assert not np.allclose(gated.get_layer("gate_dense2").get_weights()[0], 0.0)  # trained
    with pytest.raises(ValueError, match="gate_only"):
        train_restorer(data=str(data), run_dir=str(tmp_path / "run2"), gate_only=True)


# 6. -------------------------------------------------------------------------------------

def test_cli_help():
    proc = _run([sys.executable, CLI, "--help"], timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--quality-range" in proc.stdout
    # The script lists these choices itself (no TF import for --help): keep them in sync.
    from tfcomp.data import QUALITY_SAMPLING
    from tfcomp.training import PRECISIONS
    assert "{" + ",".join(QUALITY_SAMPLING) + "}" in proc.stdout
    assert "{" + ",".join(PRECISIONS) + "}" in proc.stdout
    assert "--quality-gate" in proc.stdout and "--gate-only" in proc.stdout
    bad = _run([sys.executable, CLI, "--data", "x", "--run-dir", "r", "--quality", "10",
                "--gate-only"], timeout=60)
    assert bad.returncode == 2 and "--gate-only needs --quality-gate" in bad.stderr
    assert "--scales" in proc.stdout and "--rescale-prob" in proc.stdout
    for flags, message in ((["--scales", "0"], "a scale must be in [0.1, 8]"),
                           (["--scales", "x"], "not a number"),
                           (["--rescale-prob", "2"], "a probability must be in [0, 1]")):
        bad = _run([sys.executable, CLI, "--data", "x", "--run-dir", "r", "--quality", "10",
                    *flags], timeout=60)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr


def test_cli_rejects_quality_and_quality_range(tmp_path):
    proc = _run([sys.executable, CLI, "--data", str(tmp_path), "--run-dir", str(tmp_path / "run"),
                 "--quality", "10", "--quality-range", "10", "90"], timeout=60)
    assert proc.returncode != 0
    assert "not allowed with" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_halve_weights_file_loads_as_float32_and_halves_bytes(tmp_path):
    import tensorflow as tf
    from tfcomp.cwic.model import build_cwic
    from tfcomp.training import halve_weights_file
    model = build_cwic("tiny")
    model(tf.zeros((1, 16, 16, 3)))
    src, dst = str(tmp_path / "a.weights.h5"), str(tmp_path / "b.weights.h5")
    model.save_weights(src)
    halve_weights_file(src, dst)
    half = build_cwic("tiny")
    half.load_weights(dst)
    assert len(half.weights) == len(model.weights)
    for a, b in zip(model.weights, half.weights):
        assert b.dtype == tf.float32
        np.testing.assert_allclose(b.numpy(), a.numpy().astype(np.float16).astype(np.float32))
    assert os.path.getsize(dst) < 0.75 * os.path.getsize(src)
    assert not [p for p in os.listdir(tmp_path) if "tmp" in p]


def test_average_weights_files_is_the_elementwise_mean(tmp_path):
    from tfcomp.restorer.model import build_restorer
    from tfcomp.training import average_weights_files
    paths, values = [], []
    for i in range(3):
        model = build_restorer(widths=(8, 8, 8, 8))  # a fresh random init each time
        paths.append(str(tmp_path / f"e{i}.weights.h5"))
        model.save_weights(paths[-1])
        values.append(model.get_weights())
    out = str(tmp_path / "mean.weights.h5")
    average_weights_files(paths, out)
    mean = build_restorer(widths=(8, 8, 8, 8))
    mean.load_weights(out)
    for got, *each in zip(mean.get_weights(), *values):
        np.testing.assert_allclose(got, np.mean(each, axis=0), rtol=1e-6, atol=1e-7)
    # Different models cannot be averaged; nothing is written then.
    build_restorer(widths=(8, 8, 8, 4)).save_weights(str(tmp_path / "other.weights.h5"))
    with pytest.raises(ValueError, match="differ"):
        average_weights_files([paths[0], str(tmp_path / "other.weights.h5")],
                              str(tmp_path / "bad.weights.h5"))
    assert not [p for p in os.listdir(tmp_path) if "tmp" in p or p.startswith("bad")]


def test_training_script_reports_a_data_error_in_one_line(tmp_path):
    """Images smaller than --patch: the script says so (exit 1, no traceback, no weights)."""
    data = _write_images(tmp_path / "data", n=2, size=24)
    out = tmp_path / "o.weights.h5"
    proc = _run([sys.executable, CLI, "--data", str(data), *TINY, "--steps", "1",
                 "--run-dir", str(tmp_path / "run"), "--out", str(out)], timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "train_restorer.py: error:" in proc.stderr and "smaller than the patch size" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


def test_average_weights_cli_missing_file(tmp_path):
    proc = _run([sys.executable, os.path.join(ROOT, "training", "average_weights.py"),
                 str(tmp_path / "nope.weights.h5"), "--out", str(tmp_path / "o.weights.h5")],
                timeout=60)
    assert proc.returncode == 2 and "no such weights file" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o.weights.h5").exists()


def test_bench_train_step_times_each_precision():
    from tfcomp.bench import bench_train_step
    from tfcomp.training import PRECISIONS
    rows = bench_train_step(batch=1, patch=16, repeat=1, widths=(8, 8, 8, 8))
    assert [name for name, _ in rows] == list(PRECISIONS)
    assert all(s > 0 for _, s in rows)


def test_gate_stats_cli(tmp_path):
    """The shipped blind model's gate opens wider for a heavily compressed image."""
    script = os.path.join(ROOT, "training", "gate_stats.py")
    data = _write_images(tmp_path / "data", n=2, size=96)
    proc = _run([sys.executable, script, "--data", str(data), "--quality", "10", "95",
                 "--json", str(tmp_path / "gate.json")], timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()[1:]]
    means = {int(r[0]): [float(v) for v in r[1].split("/")] for r in rows}
    assert sorted(means) == [10, 95] and min(means[10]) > max(means[95])
    import json
    saved = json.loads((tmp_path / "gate.json").read_text())
    assert saved["model"] == "restorer-blind" and sorted(saved["gate"]) == ["10", "95"]
    for q, mean in means.items():  # the table prints the saved numbers rounded
        assert np.allclose(saved["gate"][str(q)]["mean"], mean, atol=0.005)
    bad = _run([sys.executable, script, "--model", "restorer-q10", "--data", str(data)], timeout=120)
    assert bad.returncode == 2 and "no quality gate" in bad.stderr and "Traceback" not in bad.stderr
