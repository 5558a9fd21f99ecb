"""Issue 17 items 5-6: every precision trains every model (loss scaling under mixed_float16),
--jit, one `tfcomp train MODEL` entry point sharing the scripts' flags, TensorBoard strips.

The precision x model matrix runs one step of tiny models on a batch of 2 16x16 images
(the smallest size every model accepts: hiding's stride is 16),
eagerly (the same train_step code without minutes of graph tracing on 2 shared cores);
the end-to-end run goes through `tfcomp train` in graph mode with XLA.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
MODELS = ("restorer", "cwic", "hiding", "jpdse")


def _images(n=2, size=16, seed=0):
    from imagegen import natural_rgb
    return np.stack([natural_rgb(size, size, seed=seed + i) for i in range(n)]
                    ).astype(np.float32) / 255.0


def _tiny(name):
    """(built model, compile kwargs, fit inputs) of a tiny `name` model, built under the
    current global policy."""
    import tensorflow as tf
    x = _images()
    if name == "restorer":
        from tfcomp.restorer.model import build_restorer
        noisy = np.clip(x + 0.05 * np.random.default_rng(1).standard_normal(x.shape), 0, 1)
        return (build_restorer(widths=(8, 8, 8, 8)), dict(loss="mse"),
                (noisy.astype(np.float32), x))
    if name == "cwic":
        from tfcomp.cwic.model import build_cwic
        return build_cwic("tiny", target=0.1, gamma=1.0), {}, (x,)
    if name == "hiding":
        from tfcomp.hiding.model import build_hiding
        return (build_hiding(width=8, depth=2, decoder_widths=(8, 8, 8, 4), quality=30), {},
                (x,))
    from tfcomp.jpdse.model import NUM_LABELS, VGGPerceptual, build_jpdse
    labels = np.random.default_rng(2).integers(0, NUM_LABELS, x.shape[:3])
    semantics = np.concatenate([np.eye(NUM_LABELS, dtype=np.float32)[labels],
                                np.zeros(x.shape[:3] + (1,), np.float32)], -1)
    decoded = np.clip(x + 0.05, 0, 1).astype(np.float32)
    model = build_jpdse("tiny", phase=2, vgg_weights=VGGPerceptual(None))
    return model, {"d_optimizer": _sgd()}, (
        {"semantics": semantics, "decoded": decoded, "target": x},)


def _sgd():
    """SGD(0.1); under mixed_float16 loss-scaled from 2**8, not Keras' 2**15: at that scale
    tiny random nets' float16 gradients overflow and the first steps are (rightly) skipped."""
    import tensorflow as tf
    sgd = tf.keras.optimizers.SGD(0.1)
    if tf.keras.mixed_precision.global_policy().name != "mixed_float16":
        return sgd
    return tf.keras.mixed_precision.LossScaleOptimizer(sgd, initial_scale=2.0 ** 8)


@pytest.fixture
def eager():
    import tensorflow as tf
    before = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(before)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_precision_trains_every_model_one_step(eager, precision, name):
    import tensorflow as tf
    from tfcomp.precision import is_loss_scaled
    from tfcomp.training import precision_policy

    tf.keras.utils.set_random_seed(0)
    with precision_policy(precision):
        model, options, inputs = _tiny(name)
        model.compile(_sgd(), **options)
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(tf.data.Dataset.from_tensor_slices(inputs).batch(2), verbose=0)
    assert tf.keras.mixed_precision.global_policy().name == "float32"
    assert all(np.all(np.isfinite(v)) for v in history.history.values())
    optimizers = [model.optimizer] + ([model.d_optimizer] if name == "jpdse" else [])
    assert all(is_loss_scaled(o) == (precision == "mixed_float16") for o in optimizers)
    assert all(w.dtype == tf.float32 for w in model.weights)  # variables stay float32
    after = [w.numpy() for w in model.trainable_weights]
    assert all(np.all(np.isfinite(a)) for a in after)
    assert any(not np.array_equal(a, b) for a, b in zip(after, before))  # a step was taken
    output = model(inputs[0] if name != "jpdse" else (inputs[0]["semantics"], inputs[0]["decoded"]))
    assert output.dtype == tf.float32  # the image (and so every loss) stays float32
    if name == "cwic":
        codes, p, _ = model.analyse(inputs[0])
        assert codes.dtype == p.dtype == tf.float32  # binarizer input and importance map


def test_loss_scaling_gives_the_plain_gradients():
    import tensorflow as tf
    from tfcomp.precision import loss_scale_optimizer, replica_loss, unscaled_gradients

    v = tf.Variable([1.0, -2.0])
    plain = tf.keras.optimizers.SGD(1.0)
    scaled = tf.keras.mixed_precision.LossScaleOptimizer(tf.keras.optimizers.SGD(1.0))
    grads = {}
    for name, opt in (("plain", plain), ("scaled", scaled)):
        with tf.GradientTape() as tape:
            loss = replica_loss(tf.reduce_sum(v * v), opt)
        grads[name] = unscaled_gradients(tape.gradient(loss, [v]), opt)[0].numpy()
        if name == "scaled":
            assert float(loss) == pytest.approx(5.0 * float(opt.loss_scale))
    np.testing.assert_allclose(grads["scaled"], grads["plain"])
    np.testing.assert_allclose(grads["plain"], [2.0, -4.0])
    model = type("M", (), {"dtype_policy": tf.keras.mixed_precision.Policy("mixed_float16")})
    assert loss_scale_optimizer(plain, model) is not plain
    assert loss_scale_optimizer(scaled, model) is scaled


def test_mixed_float16_compile_wraps_every_optimizer():
    import tensorflow as tf
    from tfcomp.cwic.model import build_cwic
    from tfcomp.jpdse.model import build_jpdse
    from tfcomp.precision import is_loss_scaled
    from tfcomp.training import precision_policy

    with precision_policy("mixed_float16"):
        cwic, jpdse = build_cwic("tiny"), build_jpdse("tiny")
        cwic.compile(tf.keras.optimizers.SGD(0.1))
        jpdse.compile(tf.keras.optimizers.SGD(0.1), tf.keras.optimizers.SGD(0.1))
    assert is_loss_scaled(cwic.optimizer)
    assert is_loss_scaled(jpdse.optimizer) and is_loss_scaled(jpdse.d_optimizer)


def test_image_logger_strips_for_cwic_and_hiding(tmp_path, eager):
    import tensorflow as tf
    from tfcomp.cwic.model import build_cwic
    from tfcomp.hiding.model import build_hiding
    from tfcomp.training import ImageLogger, _cwic_importance, _hiding_sent

    x = tf.constant(_images())
    cases = {"cwic": (build_cwic("tiny"), _cwic_importance),
             "hiding": (build_hiding(width=8, depth=2, decoder_widths=(8, 8, 8, 4)), _hiding_sent)}
    for name, (model, shown) in cases.items():
        logger = ImageLogger(str(tmp_path / name), (x, shown, x), name=f"{name}_strip")
        logger.set_model(model)
        logger.on_epoch_end(0)
        strip = tf.clip_by_value(tf.cast(shown(model, x), tf.float32), 0, 1)
        assert strip.shape == x.shape, name
    events = [os.path.join(d, f) for d, _, files in os.walk(tmp_path) for f in files]
    tags = {v.tag for e in events for r in tf.compat.v1.train.summary_iterator(e)
            for v in r.summary.value}
    assert {"cwic_strip", "hiding_strip"} <= tags


def _tfcomp(args, timeout, **env):
    environ = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", **env)
    environ.pop("TF_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "tfcomp"] + args, cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=timeout)


def test_train_help_is_fast_and_imports_no_tensorflow():
    probe = ("import sys\nfrom tfcomp.cli import main\nfor argv in (['train', '--help'], "
             "['train', 'restorer', '--help'], ['train', 'jpdse', '--help']):\n"
             "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
             "print('TF', 'tensorflow' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr
    assert "TF False" in proc.stdout
    for word in ("restorer", "cwic", "hiding", "jpdse", "--precision", "--jit",
                 "--quality-gate", "--phase"):
        assert word in proc.stdout


def _options(parser):
    import argparse
    return {(s, repr(a.default), tuple(a.choices or ())) for a in parser._actions
            if not isinstance(a, argparse._HelpAction) for s in a.option_strings}


@pytest.mark.parametrize("name", MODELS)
def test_script_and_subcommand_share_one_flag_definition(name):
    import importlib.util
    from tfcomp.cli import build_parser
    from tfcomp.train_cli import model_parser

    train = next(a for a in build_parser()._actions if hasattr(a, "choices")
                 and isinstance(a.choices, dict) and "train" in a.choices).choices["train"]
    sub = next(a for a in train._actions if isinstance(getattr(a, "choices", None), dict))
    path = os.path.join(ROOT, "training", f"train_{name}.py")
    spec = importlib.util.spec_from_file_location(f"train_{name}", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert _options(sub.choices[name]) == _options(model_parser(name))
    assert "--precision" in {o for o, _, _ in _options(model_parser(name))}
    with pytest.raises(SystemExit) as e:
        script.main(["--help"])
    assert e.value.code == 0


def test_jpdse_label_scales_match_the_semantic_module():
    from tfcomp.jpdse.semantic import LABEL_SCALES
    from tfcomp.precision import PRECISIONS as P
    from tfcomp.train_cli import JPDSE_LABEL_SCALES
    assert tuple(JPDSE_LABEL_SCALES) == tuple(LABEL_SCALES)
    assert P == PRECISIONS


def test_hiding_refuses_jit_with_one_line(tmp_path):
    from tfcomp.cli import main
    with pytest.raises(SystemExit) as e:
        main(["train", "hiding", "--data", str(tmp_path), "--run-dir", str(tmp_path / "r"),
              "--decoder-init", "", "--jit"])
    assert e.value.code == 2


def test_tfcomp_train_restorer_mixed_float16_with_xla(tmp_path):
    from PIL import Image
    data = tmp_path / "data"
    data.mkdir()
    for i, image in enumerate(_images(3, 48, seed=5)):
        Image.fromarray((image * 255).astype(np.uint8)).save(data / f"{i}.png")
    out, run = tmp_path / "r.weights.h5", tmp_path / "run"
    proc = _tfcomp(["train", "restorer", "--data", str(data), "--run-dir", str(run), "--out",
                    str(out), "--quality", "20", "--widths", "8", "8", "8", "8", "--patch",
                    "32", "--batch", "2", "--steps", "1", "--precision", "mixed_float16",
                    "--jit", "--quiet"], timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.is_file()
    images = run / "tensorboard" / "images"
    assert images.is_dir() and os.listdir(images)  # the jpeg|restored|original strips
