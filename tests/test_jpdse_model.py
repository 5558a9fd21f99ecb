"""JPD-SE networks, losses and the three-phase training model (tiny config, 32x32 scenes).

The MirroredStrategy check runs in a subprocess: logical CPU devices must be configured
before TensorFlow initialises (as in test_training.py).
"""

import json
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tfcomp.jpdse import model as jpdse
from tfcomp.jpdse.model import (CONFIGS, INPUT_CHANNELS, NUM_LABELS, SEMANTIC_CHANNELS,
                                 AvgPoolExcludePad, InstanceNorm, JpdseModel, ReflectionPad2D,
                                 VGGPerceptual, build_discriminator, build_generator,
                                 build_jpdse, distortion_loss, feature_matching_loss,
                                 lsgan_d_loss, lsgan_g_loss, size_multiple)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def edges_of(instances):
    """pix2pixHD's instance-edge map: 1 where a 4-neighbour has another instance id."""
    t = np.asarray(instances)
    e = np.zeros(t.shape, bool)
    e[:, 1:] |= t[:, 1:] != t[:, :-1]
    e[:, :-1] |= t[:, 1:] != t[:, :-1]
    e[1:, :] |= t[1:, :] != t[:-1, :]
    e[:-1, :] |= t[1:, :] != t[:-1, :]
    return e.astype(np.float32)


def scene(batch=2, size=32, seed=0):
    """Tiny synthetic street-like scenes: (semantics [B,H,W,36], decoded, target)."""
    rng = np.random.default_rng(seed)
    sems, targets = [], []
    colours = {7: (0.5, 0.25, 0.5), 11: (0.3, 0.3, 0.3), 23: (0.3, 0.5, 0.7), 26: (0.0, 0.0, 0.6)}
    for _ in range(batch):
        labels = np.full((size, size), 23)                     # sky
        labels[size // 2:] = 7                                 # road
        labels[size // 4: size // 2, : size // 3] = 11        # building
        instances = labels * 1000
        for k in range(2):                                     # two cars (instances)
            y, x = rng.integers(size // 2, size - 6), rng.integers(0, size - 8)
            labels[y:y + 5, x:x + 8] = 26
            instances[y:y + 5, x:x + 8] = 26000 + k + 1
        onehot = np.eye(NUM_LABELS, dtype=np.float32)[labels]
        sems.append(np.concatenate([onehot, edges_of(instances)[..., None]], -1))
        yy, xx = np.mgrid[0:size, 0:size] / size
        img = np.stack([np.vectorize(lambda l, c=c: colours[l][c])(labels) for c in range(3)], -1)
        img = img + 0.1 * np.sin(9 * xx + 5 * yy)[..., None]
        targets.append(np.clip(img, 0, 1))
    target = np.asarray(targets, np.float32)
    decoded = np.clip(target + 0.08 * rng.standard_normal(target.shape), 0, 1).astype(np.float32)
    return np.asarray(sems, np.float32), decoded, target


@pytest.fixture(scope="module")
def vgg():
    tf.keras.utils.set_random_seed(7)
    return VGGPerceptual(weights=None)


def tiny_model(phase, vgg=None, **kw):
    tf.keras.utils.set_random_seed(1)
    return build_jpdse("tiny", phase=phase, vgg_weights=vgg, **kw)


def as_dataset(batch):
    sem, dec, tgt = batch
    return tf.data.Dataset.from_tensor_slices(
        {"semantics": sem, "decoded": dec, "target": tgt}).batch(len(sem))


def snapshot(net):
    return [w.numpy().copy() for w in net.trainable_variables]


def max_change(before, net):
    return max(float(np.abs(a - b.numpy()).max()) for a, b in zip(before, net.trainable_variables))


# Contract and layers --------------------------------------------------------------------

def test_constants_and_configs():
    assert NUM_LABELS == 35 and SEMANTIC_CHANNELS == 36 and INPUT_CHANNELS == 39
    assert CONFIGS["full"] == {"g_filters": 64, "g_down": 4, "g_blocks": 9,
                               "d_filters": 64, "d_layers": 3, "d_scales": 2}
    assert set(CONFIGS) >= {"full", "narrow", "tiny"}
    assert size_multiple("full") == 16 and size_multiple("narrow") == 8 and size_multiple("tiny") == 4
    with pytest.raises(ValueError, match="unknown JPD-SE config"):
        build_generator("huge")


def test_instance_norm_matches_numpy_and_round_trips():
    x = np.random.default_rng(0).normal(3.0, 2.0, (2, 5, 6, 4)).astype(np.float32)
    y = InstanceNorm()(x).numpy()
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)  # biased, as PyTorch
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), atol=1e-5)
    layer = tf.keras.layers.deserialize(tf.keras.layers.serialize(InstanceNorm(epsilon=1e-3)))
    assert isinstance(layer, InstanceNorm) and layer.epsilon == 1e-3
    norm = InstanceNorm()
    norm(x)
    assert norm.weights == []  # no affine parameters


def test_reflection_pad_matches_numpy_and_round_trips():
    x = np.arange(2 * 4 * 5 * 3, dtype=np.float32).reshape(2, 4, 5, 3)
    y = ReflectionPad2D(2)(x).numpy()
    np.testing.assert_array_equal(y, np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect"))
    layer = tf.keras.layers.deserialize(tf.keras.layers.serialize(ReflectionPad2D(3)))
    assert isinstance(layer, ReflectionPad2D) and layer.padding == 3


def test_avgpool_excludes_padding_like_pytorch():
    x = np.random.default_rng(1).random((1, 6, 7, 2)).astype(np.float32)
    y = AvgPoolExcludePad()(x).numpy()
    assert y.shape == (1, 3, 4, 2)  # floor((n + 2 - 3) / 2) + 1
    for i in range(3):
        for j in range(4):
            rows = slice(max(2 * i - 1, 0), min(2 * i + 2, 6))
            cols = slice(max(2 * j - 1, 0), min(2 * j + 2, 7))
            np.testing.assert_allclose(y[0, i, j], x[0, rows, cols].mean(axis=(0, 1)), rtol=1e-5)


def test_upsampling_is_pytorch_transposed_conv_padding1_output_padding1():
    # One channel: PyTorch ConvTranspose2d(3, stride 2, padding 1, output_padding 1) scatters
    # x[i, j] * w[a, b] to (2i + a - 1, 2j + b - 1), keeping 0..2n-1.
    g = build_generator("tiny")
    tconv = g.get_layer("up1_tconv")
    x = np.random.default_rng(2).random((1, 3, 4, tconv.input.shape[-1])).astype(np.float32)
    crop = g.get_layer("up1_crop")
    y = crop(tconv(x)).numpy()
    k, b = tconv.kernel.numpy(), tconv.bias.numpy()  # [3, 3, out, in]
    want = np.zeros((1, 8, 10, k.shape[2]), np.float32)
    for i in range(3):
        for j in range(4):
            for a in range(3):
                for c in range(3):
                    r, s = 2 * i + a - 1, 2 * j + c - 1
                    if 0 <= r < 6 and 0 <= s < 8:
                        want[0, r, s] += k[a, c] @ x[0, i, j]
    np.testing.assert_allclose(y, want[:, :6, :8] + b, atol=1e-5)


# Networks -------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(32, 32), (64, 48)])
def test_generator_shapes_and_range(size):
    tf.keras.utils.set_random_seed(0)
    g = build_generator("tiny")
    assert g.input_shape == (None, None, None, INPUT_CHANNELS)
    assert g.inputs[0].name.startswith("semantics_and_image")
    x = tf.random.uniform((2, *size, INPUT_CHANNELS))
    y = g(x).numpy()
    assert y.shape == (2, *size, 3)
    assert y.min() >= 0.0 and y.max() <= 1.0 and y.std() > 0


def test_residual_generator_starts_as_identity_and_learns():
    tf.keras.utils.set_random_seed(0)
    cfg = dict(CONFIGS["tiny"], g_residual=True)
    g = build_generator(cfg)
    x = tf.random.uniform((1, 32, 32, INPUT_CHANNELS))
    np.testing.assert_array_equal(g(x).numpy(), x[..., SEMANTIC_CHANNELS:].numpy())
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(g(x) - 0.5))
    grads = tape.gradient(loss, g.trainable_variables)
    assert float(tf.linalg.global_norm(grads)) > 0  # the zero last conv still gets gradient
    assert CONFIGS["narrow_residual"]["g_residual"] and "g_residual" not in CONFIGS["narrow"]


def test_local_branch_starts_as_identity_and_needs_the_residual_form():
    tf.keras.utils.set_random_seed(0)
    g = build_generator(dict(CONFIGS["tiny"], g_residual=True, g_local=(2, 8)))
    x = tf.random.uniform((1, 32, 32, INPUT_CHANNELS))
    np.testing.assert_array_equal(g(x).numpy(), x[..., SEMANTIC_CHANNELS:].numpy())
    assert g.get_layer("local1_conv").kernel.shape == (3, 3, INPUT_CHANNELS, 8)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(g(x) - 0.5))
    grad = tape.gradient(loss, g.get_layer("local_out_conv").kernel)
    assert float(tf.norm(grad)) > 0
    with pytest.raises(ValueError, match="g_residual"):
        build_generator(dict(CONFIGS["tiny"], g_local=(2, 8)))


def test_generator_topology_follows_config():
    g = build_generator("narrow")
    convs = [l for l in g.layers if isinstance(l, tf.keras.layers.Conv2D)
             and not isinstance(l, tf.keras.layers.Conv2DTranspose)]
    tconvs = [l for l in g.layers if isinstance(l, tf.keras.layers.Conv2DTranspose)]
    cfg = CONFIGS["narrow"]
    assert len(convs) == 2 + cfg["g_down"] + 2 * cfg["g_blocks"]
    assert len(tconvs) == cfg["g_down"]
    assert g.get_layer("in_conv").kernel.shape == (7, 7, INPUT_CHANNELS, 16)
    assert g.get_layer("res1_conv1").kernel.shape == (3, 3, 128, 128)
    assert g.get_layer("out_conv").kernel.shape == (7, 7, 16, 3)
    assert sum(isinstance(l, InstanceNorm) for l in g.layers) == 1 + 2 * cfg["g_down"] + 2 * cfg["g_blocks"]


def test_discriminator_scales_and_features():
    tf.keras.utils.set_random_seed(0)
    d = build_discriminator("tiny")
    assert d.input_shape == (None, None, None, SEMANTIC_CHANNELS + 3)
    outs = d(tf.random.uniform((2, 32, 32, SEMANTIC_CHANNELS + 3)))
    assert len(outs) == 2
    # n_layers 3 -> 5 outputs: strides 2, 2, 2, 1, 1 with 4x4 kernels and zero padding 2.
    assert [tuple(f.shape) for f in outs[0]] == [(2, 17, 17, 4), (2, 9, 9, 8), (2, 5, 5, 16),
                                                 (2, 6, 6, 32), (2, 7, 7, 1)]
    assert [tuple(f.shape) for f in outs[1]] == [(2, 9, 9, 4), (2, 5, 5, 8), (2, 3, 3, 16),
                                                 (2, 4, 4, 32), (2, 5, 5, 1)]
    # InstanceNorm on all but the first conv; the patch output is not normalised.
    assert sum(isinstance(l, InstanceNorm) for l in d.layers) == 2 * 3


# Losses ---------------------------------------------------------------------------------

def _scales(*values, shape=(2, 3, 3, 1)):
    """Discriminator-like outputs: one scale per value, [feature, patch] both filled."""
    return [[tf.fill((2, 4, 4, 2), float(v)), tf.fill(shape, float(v))] for v in values]


def test_lsgan_losses_closed_form():
    assert float(lsgan_d_loss(_scales(1, 1), _scales(0, 0))) == pytest.approx(0.0)
    assert float(lsgan_d_loss(_scales(0, 0), _scales(1, 1))) == pytest.approx(1.0)
    # scale 0: 0.5 * ((3-1)^2 + 2^2) = 4; scale 1: 0 -> mean 2.
    assert float(lsgan_d_loss(_scales(3, 1), _scales(2, 0))) == pytest.approx(2.0)
    assert float(lsgan_g_loss(_scales(1, 1))) == pytest.approx(0.0)
    assert float(lsgan_g_loss(_scales(0, 0))) == pytest.approx(1.0)
    assert float(lsgan_g_loss(_scales(3, 1))) == pytest.approx(2.0)
    # Bare patch maps work too.
    assert float(lsgan_g_loss([tf.fill((1, 2, 2, 1), 0.5)])) == pytest.approx(0.25)


def test_feature_matching_closed_form_and_gradient():
    shapes = [(1, 8, 8, 2), (1, 4, 4, 4), (1, 2, 2, 8), (1, 3, 3, 8), (1, 4, 4, 1)]
    real = [[tf.zeros(s) for s in shapes] for _ in range(2)]
    assert float(feature_matching_loss(real, real)) == pytest.approx(0.0)
    # Layer j differs by j + 1 (patch output by 100: ignored): per scale
    # 4 / (3 + 1) * 1 / 2 * (1 + 2 + 3 + 4) = 5; two scales -> 10.
    fake = [[tf.fill(s, float(j + 1)) for j, s in enumerate(shapes[:-1])] + [tf.fill(shapes[-1], 100.0)]
            for _ in range(2)]
    assert float(feature_matching_loss(real, fake)) == pytest.approx(10.0)
    # n_layers = 2 (4 outputs): weight 4/3 * 1/2; unit differences in 3 layers x 2 scales -> 4.
    real2 = [[tf.zeros((1, 2, 2, 1))] * 4] * 2
    fake2 = [[tf.ones((1, 2, 2, 1))] * 4] * 2
    assert float(feature_matching_loss(real2, fake2)) == pytest.approx(4.0)
    r = tf.Variable(tf.zeros((1, 2, 2, 1)))
    f = tf.Variable(tf.ones((1, 2, 2, 1)))
    with tf.GradientTape(persistent=True) as tape:
        loss = feature_matching_loss([[r, r, r, r]], [[f, f, f, f]])
    assert tape.gradient(loss, r) is None            # real features: stop-gradient
    assert float(tf.reduce_sum(tape.gradient(loss, f))) == pytest.approx(4.0)


def test_distortion_loss():
    a = tf.constant([[0.0, 0.5], [1.0, 0.25]])
    b = tf.constant([[0.5, 0.5], [0.0, 0.25]])
    assert float(distortion_loss(a, b)) == pytest.approx((0.5 + 1.0) / 4)
    assert float(distortion_loss(a, b, "mse")) == pytest.approx((0.25 + 1.0) / 4)
    with pytest.raises(ValueError, match="l1"):
        distortion_loss(a, b, "l2")


def test_vgg_perceptual_zero_for_identical_positive_otherwise(vgg):
    x = tf.constant(scene(1)[2])
    assert float(vgg(x, x)) == pytest.approx(0.0, abs=1e-7)
    assert float(vgg(x, tf.clip_by_value(x + 0.1, 0, 1))) > 0
    assert [o.name.split("/")[0] for o in vgg.model.outputs] == list(jpdse.VGG_LAYERS)
    assert not vgg.model.trainable_weights
    # Real features are not differentiated.
    y = tf.Variable(x)
    z = tf.Variable(tf.clip_by_value(x + 0.1, 0, 1))
    with tf.GradientTape(persistent=True) as tape:
        loss = vgg(z, y)
    assert tape.gradient(loss, y) is None and tape.gradient(loss, z) is not None


def test_vgg_from_file(tmp_path, caplog, vgg):
    with caplog.at_level(logging.WARNING, logger="tfcomp.jpdse.model"):
        assert VGGPerceptual.from_file(None) is None
    assert "perceptual loss is off" in caplog.text
    with pytest.raises(ValueError, match="not found"):
        VGGPerceptual.from_file(tmp_path / "missing.h5")
    with pytest.raises(ValueError, match="imagenet"):
        VGGPerceptual("imagenet")
    (tmp_path / "junk.h5").write_bytes(b"not an hdf5 file")
    with pytest.raises(ValueError, match="does not fit"):
        VGGPerceptual.from_file(tmp_path / "junk.h5")
    small = tf.keras.Sequential([tf.keras.Input((None, None, 3)), tf.keras.layers.Conv2D(2, 3)])
    small.save_weights(str(tmp_path / "small.h5"))
    with pytest.raises(ValueError, match="does not fit"):
        VGGPerceptual.from_file(tmp_path / "small.h5")
    # A fitting file (VGG19 notop, Keras h5 layout) loads and reproduces the features.
    base = tf.keras.applications.VGG19(include_top=False, weights=None)
    base.set_weights(vgg.base.get_weights())
    base.save_weights(str(tmp_path / "vgg19_notop.h5"))
    loaded = VGGPerceptual.from_file(tmp_path / "vgg19_notop.h5")
    x = tf.constant(scene(1)[2])
    for a, b in zip(loaded.features(x), vgg.features(x)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-3)


# Training model -------------------------------------------------------------------------

def test_build_jpdse_creates_variables_and_validates():
    model = tiny_model(2)
    assert model.built and model.generator.weights and model.discriminator.weights
    assert model.vgg is None
    assert (model.lambda_fm, model.lambda_vgg, model.lambda_dist) == (10.0, 10.0, 10.0)
    assert model.lambda_gan == 1.0 and model.dist_kind == "l1"
    # Only the two networks are tracked (no VGG, no metric variables before compile).
    assert len(model.weights) == len(model.generator.weights) + len(model.discriminator.weights)
    with pytest.raises(ValueError, match="unknown loss weights"):
        build_jpdse("tiny", lambda_typo=1.0)
    with pytest.raises(ValueError, match="phase"):
        build_jpdse("tiny", phase=4)
    with pytest.raises(ValueError, match="phase"):
        model.phase = 0


def test_compile_defaults_to_adam_2e4_beta05():
    model = tiny_model(2)
    model.compile()
    for opt in (model.g_optimizer, model.d_optimizer):
        assert float(opt.learning_rate) == pytest.approx(2e-4)
        assert float(opt.beta_1) == pytest.approx(0.5)
    assert model.g_optimizer is not model.d_optimizer


@pytest.mark.parametrize("phase", [1, 2, 3])
def test_one_train_step_per_phase(phase, vgg):
    batch = scene()
    model = tiny_model(phase, vgg=vgg)
    model.compile()
    g0, d0 = snapshot(model.generator), snapshot(model.discriminator)
    history = model.fit(as_dataset(batch), epochs=1, verbose=0).history
    logs = {k: v[-1] for k, v in history.items()}
    assert set(logs) == {"g_loss", "d_loss", "g_gan", "g_fm", "g_vgg", "dist", "psnr", "psnr_in"}
    assert all(np.isfinite(v) for v in logs.values()), logs
    assert max_change(g0, model.generator) > 0
    if phase == 3:
        assert max_change(d0, model.discriminator) == 0.0
        assert logs["d_loss"] == logs["g_gan"] == logs["g_fm"] == logs["g_vgg"] == 0.0
        assert logs["g_loss"] == pytest.approx(10.0 * logs["dist"], rel=1e-5)
    else:
        assert max_change(d0, model.discriminator) > 0
        assert logs["d_loss"] > 0 and logs["g_gan"] > 0 and logs["g_fm"] > 0 and logs["g_vgg"] > 0
        extra = 10.0 * logs["dist"] if phase == 2 else 0.0
        want = logs["g_gan"] + 10.0 * logs["g_fm"] + 10.0 * logs["g_vgg"] + extra
        assert logs["g_loss"] == pytest.approx(want, rel=1e-4)
    sem, dec, tgt = batch
    psnr_in = 10 * np.log10(1.0 / np.mean((dec - tgt) ** 2, axis=(1, 2, 3)))
    assert logs["psnr_in"] == pytest.approx(psnr_in.mean(), rel=1e-4)
    if phase == 1:
        # Phase 1 zeroes the image where the network sees it: no gradient reaches the first
        # conv's image weights.
        kernel0 = g0[[v.name for v in model.generator.trainable_variables].index("in_conv/kernel:0")]
        np.testing.assert_array_equal(model.generator.get_layer("in_conv").kernel.numpy()[:, :, 36:],
                                      kernel0[:, :, 36:])


def test_phase1_ignores_decoded_image_and_phase2_does_not():
    sem, dec, _ = scene()
    other = np.clip(dec[::-1] * 0.3 + 0.6, 0, 1)
    model = tiny_model(1)
    np.testing.assert_array_equal(model((sem, dec)).numpy(), model((sem, other)).numpy())
    model.phase = 2
    assert np.abs(model((sem, dec)).numpy() - model((sem, other)).numpy()).max() > 1e-4


def test_batch_layouts_and_evaluate():
    sem, dec, tgt = scene()
    model = tiny_model(2)
    model.compile()
    ref = model.evaluate(as_dataset((sem, dec, tgt)), verbose=0, return_dict=True)
    assert set(ref) == {"psnr", "psnr_in", "dist"}
    out = model((sem, dec)).numpy()
    assert ref["dist"] == pytest.approx(np.abs(out - tgt).mean(), rel=1e-4)
    for layout in ((sem, dec, tgt), ((sem, dec), tgt)):
        ds = tf.data.Dataset.from_tensor_slices(layout).batch(2)
        got = model.evaluate(ds, verbose=0, return_dict=True)
        assert got == pytest.approx(ref, rel=1e-5)
    with pytest.raises(ValueError, match="batch"):
        JpdseModel.unpack((sem, dec))


def test_switching_phase_retraces_the_step(vgg):
    model = tiny_model(2, vgg=vgg)
    model.compile()
    ds = as_dataset(scene())
    model.fit(ds, epochs=1, verbose=0)
    d0 = snapshot(model.discriminator)
    model.phase = 3
    logs = model.fit(ds, epochs=1, verbose=0).history
    assert max_change(d0, model.discriminator) == 0.0 and logs["d_loss"][-1] == 0.0


def test_generator_weights_alone_restore_inference(tmp_path):
    sem, dec, tgt = scene()
    model = tiny_model(2)
    rng = np.random.default_rng(0)  # weights unlike a fresh build's
    model.generator.set_weights([w + 0.05 * rng.standard_normal(w.shape)
                                 for w in model.generator.get_weights()])
    path = str(tmp_path / "gen.weights.h5")
    model.generator.save_weights(path)
    fresh = build_generator("tiny")
    fresh.load_weights(path)
    x = np.concatenate([sem, dec], -1)
    np.testing.assert_allclose(fresh(x).numpy(), model((sem, dec)).numpy(), atol=1e-6)


def test_init_weights_take_a_whole_model_or_a_generator_alone(tmp_path, caplog):
    trained = tiny_model(2)
    rng = np.random.default_rng(1)
    for net in (trained.generator, trained.discriminator):
        net.set_weights([w + 0.05 * rng.standard_normal(w.shape) for w in net.get_weights()])
    whole, gen = str(tmp_path / "m.weights.h5"), str(tmp_path / "g.weights.h5")
    trained.save_weights(whole)
    trained.generator.save_weights(gen)

    def same(a, b):  # two networks, or a network and a list of weights
        b = b if isinstance(b, list) else b.get_weights()
        return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b))

    model = tiny_model(2)
    assert jpdse.load_init_weights(model, whole) == "model"
    assert same(model.generator, trained.generator) and same(model.discriminator, trained.discriminator)
    model = tiny_model(2)
    fresh_d = model.discriminator.get_weights()
    with caplog.at_level(logging.WARNING, logger="tfcomp.jpdse.model"):
        assert jpdse.load_init_weights(model, gen) == "generator"
    assert "generator alone" in caplog.text
    assert same(model.generator, trained.generator) and same(model.discriminator, fresh_d)
    # Another configuration's file is refused whole, not half-loaded.
    other = str(tmp_path / "narrow.weights.h5")
    build_generator("narrow").save_weights(other)
    model = tiny_model(2)
    before = model.generator.get_weights()
    with pytest.raises(ValueError):
        jpdse.load_init_weights(model, other)
    assert same(model.generator, before)


# MirroredStrategy -----------------------------------------------------------------------

MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    from tfcomp.training import make_strategy
    mirrored = make_strategy(cpu_devices=2)  # before any other TF op
    import numpy as np
    import tensorflow as tf
    from tfcomp.jpdse.model import VGGPerceptual, build_jpdse
    from test_jpdse_model import scene

    sem, dec, tgt = scene(batch=4)
    ds = tf.data.Dataset.from_tensor_slices(
        {{"semantics": sem, "decoded": dec, "target": tgt}}).batch(4)
    tf.keras.utils.set_random_seed(0)
    vgg = VGGPerceptual(None)
    init = build_jpdse("tiny", vgg_weights=vgg)
    g_init, d_init = init.generator.get_weights(), init.discriminator.get_weights()

    def one_step(strategy):
        with strategy.scope():
            model = build_jpdse("tiny", phase=2, vgg_weights=vgg)
            model.generator.set_weights(g_init)
            model.discriminator.set_weights(d_init)
            model.compile(tf.keras.optimizers.SGD(0.5), tf.keras.optimizers.SGD(0.5))
        logs = model.fit(ds, epochs=1, verbose=0).history
        return (model.generator.get_weights() + model.discriminator.get_weights(),
                {{k: float(v[-1]) for k, v in logs.items()}})

    multi, multi_logs = one_step(mirrored)
    single, single_logs = one_step(tf.distribute.OneDeviceStrategy("/cpu:0"))
    print(json.dumps({{
        "replicas": mirrored.num_replicas_in_sync,
        "max_diff": max(float(np.abs(a - b).max()) for a, b in zip(multi, single)),
        "max_update": max(float(np.abs(a - b).max()) for a, b in zip(single, g_init + d_init)),
        "multi": multi_logs, "single": single_logs,
    }}))
""")


def test_mirrored_two_cpus_matches_single_device_step():
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    script = MIRRORED_SCRIPT.format(tests=os.path.join(ROOT, "tests"))
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, "\n".join(proc.stderr.strip().splitlines()[-25:])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2, result
    assert result["max_update"] > 1e-4, result
    assert result["max_diff"] < 1e-5, result
    for k, v in result["single"].items():
        assert np.isfinite(v) and result["multi"][k] == pytest.approx(v, rel=1e-4, abs=1e-6), k
