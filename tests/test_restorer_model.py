"""Tests for the artifact-removal CNN (tfcomp.restorer.model) and the model registry."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tfcomp import models, registry
from tfcomp.errors import InputError
from tfcomp.imageio import write_image
from tfcomp.restorer.model import DEFAULT_WIDTHS, build_restorer, receptive_radius, to_gray

TINY = (4, 4, 4, 4)


@pytest.fixture(scope="module")
def full_model():
    return build_restorer()


def _prelus(model):
    return [layer for layer in model.layers if isinstance(layer, tf.keras.layers.PReLU)]


def test_parameter_count(full_model):
    assert DEFAULT_WIDTHS == (128, 64, 32, 16)
    assert full_model.count_params() == 313_066
    assert sum(int(np.prod(w.shape)) for w in full_model.trainable_weights) == 313_066
    assert not full_model.non_trainable_weights


def test_prelu_has_one_parameter_each(full_model):
    prelus = _prelus(full_model)
    assert len(prelus) == 7
    for layer in prelus:
        assert layer.count_params() == 1, layer.name


def test_gray_parameter_count():
    # Only the first conv (3x3x1 instead of 3x3x3 input) and the output conv (5x5x16x1) shrink.
    model = build_restorer(channels=1)
    assert model.count_params() == 313_066 - 2 * 9 * 128 - (2 * 25 * 16 + 2)


@pytest.mark.parametrize("shape", [(1, 17, 23, 3), (2, 8, 8, 3), (1, 1, 1, 3), (1, 5, 40, 3)])
def test_output_shape_equals_input_shape(full_model, shape):
    x = tf.random.stateless_uniform(shape, seed=(1, 2))
    y = full_model(x)
    assert y.shape == shape
    assert y.dtype == tf.float32
    assert np.all(np.isfinite(y.numpy()))


def test_gray_variant():
    model = build_restorer(channels=1, widths=TINY)
    assert model.input_shape == (None, None, None, 1)
    x = tf.random.stateless_uniform((1, 17, 23, 1), seed=(3, 4))
    assert model(x).shape == (1, 17, 23, 1)


@pytest.mark.parametrize("channels", [0, 2, 4])
def test_bad_channels(channels):
    with pytest.raises(ValueError):
        build_restorer(channels=channels)


@pytest.mark.parametrize("widths", [(4, 4, 4), (4, 4, 4, 4, 4), (4, 0, 4, 4), (4, 4, -1, 4), ()])
def test_bad_widths(widths):
    with pytest.raises(ValueError):
        build_restorer(widths=widths)


def test_receptive_radius():
    """An impulse in the input changes outputs only within receptive_radius() pixels."""
    r = receptive_radius()
    assert r == 8
    model = build_restorer(widths=TINY)
    # Fixed weights with leaky slopes, so no path is dead and the footprint reaches r exactly.
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.PReLU):
            layer.set_weights([np.full(layer.get_weights()[0].shape, 0.25, np.float32)])
        elif layer.weights:
            layer.set_weights([rng.normal(0.0, 0.3, w.shape).astype(np.float32)
                               for w in layer.get_weights()])
    size = 2 * r + 9
    c = size // 2
    base = tf.random.stateless_uniform((1, size, size, 3), seed=(5, 6))
    bumped = tf.tensor_scatter_nd_add(base, [[0, c, c, 0]], [1.0])
    diff = np.abs((model(bumped) - model(base)).numpy()).max(axis=(0, 3))
    ys, xs = np.nonzero(diff > 0)
    assert len(ys) > 0
    assert np.abs(ys - c).max() == r and np.abs(xs - c).max() == r


def test_save_load_weights_round_trip(tmp_path):
    model = build_restorer(widths=TINY)
    # Non-default PReLU slopes so that they are checked too.
    for layer in _prelus(model):
        layer.set_weights([np.full(layer.get_weights()[0].shape, 0.25, np.float32)])
    x = tf.random.stateless_uniform((1, 17, 23, 3), seed=(7, 8))
    expected = model(x).numpy()
    path = os.fspath(tmp_path / "tiny.weights.h5")
    model.save_weights(path)
    assert os.path.isfile(path)
    fresh = build_restorer(widths=TINY)
    assert not np.array_equal(fresh(x).numpy(), expected)
    fresh.load_weights(path)
    np.testing.assert_array_equal(fresh(x).numpy(), expected)


# -- registry ----------------------------------------------------------------------------

def test_registry_specs():
    assert "restorer-blind" in models.model_names()
    assert "restorer-blind" in models.model_names(kind="restorer")
    spec = models.get_spec("restorer-blind")
    assert spec.kind == "restorer"
    assert spec.weights.endswith(".weights.h5")
    assert spec.quality_min <= spec.quality_default <= spec.quality_max
    d = spec.describe()
    assert {"name", "kind", "quality", "qualities", "weights"} <= set(d)
    assert d["name"] == "restorer-blind"
    assert set(d["quality"]) == {"min", "max", "default"}
    assert d["qualities"] == list(range(spec.quality_min, spec.quality_max + 1))
    assert isinstance(d["weights"], bool)


def test_registry_spec_builds_the_full_network():
    assert models.get_spec("restorer-q10").build().count_params() == 313_066
    # The blind model is the same network plus its quality gate.
    assert models.get_spec("restorer-blind").build().count_params() == 313_066 + 4_259


def test_unknown_model():
    with pytest.raises(InputError):
        models.get_spec("no-such-model")
    with pytest.raises(InputError):
        models.load_model("no-such-model")


def test_register_duplicate_name():
    with pytest.raises(ValueError):
        models.register(models.get_spec("restorer-blind"))


def test_load_model_missing_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "WEIGHTS_DIR", os.fspath(tmp_path))  # ModelSpec paths
    monkeypatch.setattr(models, "_LOADED", {})
    spec = models.get_spec("restorer-blind")
    assert not spec.weights_present
    with pytest.raises(InputError) as info:
        models.load_model("restorer-blind")
    message = str(info.value)
    assert spec.trained_with in message
    assert "train" in message
    assert os.fspath(tmp_path / spec.weights) in message


def test_load_model_missing_weights_custom_spec(monkeypatch):
    spec = models.ModelSpec(
        name="test-tiny-restorer", kind="restorer", description="test",
        builder="tfcomp.restorer.model:build_restorer", builder_kwargs={"widths": TINY},
        weights="does-not-exist.weights.h5", trained_with="python train_tiny.py")
    monkeypatch.setitem(models._REGISTRY, spec.name, spec)
    with pytest.raises(InputError, match="train_tiny.py"):
        models.load_model(spec.name)


def test_load_model_loads_installed_weights(tmp_path, monkeypatch):
    spec = models.ModelSpec(
        name="test-tiny-restorer", kind="restorer", description="test",
        builder="tfcomp.restorer.model:build_restorer", builder_kwargs={"widths": TINY},
        weights="tiny.weights.h5", trained_with="python train_tiny.py")
    monkeypatch.setitem(models._REGISTRY, spec.name, spec)
    monkeypatch.setattr(registry, "WEIGHTS_DIR", os.fspath(tmp_path))  # ModelSpec paths
    monkeypatch.setattr(models, "_LOADED", {})
    trained = spec.build()
    x = tf.random.stateless_uniform((1, 9, 11, 3), seed=(9, 10))
    trained.save_weights(spec.weights_path)
    assert spec.weights_present
    loaded = models.load_model(spec.name)
    np.testing.assert_array_equal(loaded(x).numpy(), trained(x).numpy())
    assert models.load_model(spec.name) is loaded  # cached per process


def test_identity_init_starts_as_identity_and_keeps_param_count():
    from tfcomp.restorer.model import identity_init
    tf.keras.utils.set_random_seed(0)
    for channels in (3, 1):
        model = identity_init(build_restorer(channels=channels))
        assert model.count_params() == (313066 if channels == 3 else model.count_params())
        x = tf.random.stateless_uniform((1, 19, 23, channels), (1, 2))
        np.testing.assert_allclose(model(x).numpy(), x.numpy(), atol=1e-6)
        # The random features are still there (not a degenerate network).
        assert np.std(model.get_layer("unit1_conv3a").kernel.numpy()[..., 3:]) > 0.01


# -- quality gate --------------------------------------------------------------------------

def test_gated_parameter_count_and_ungated_default_unchanged():
    gated = build_restorer(quality_gate=True)
    assert gated.count_params() == 313_066 + (128 * 32 + 32) + 32 + (32 * 3 + 3)
    assert build_restorer().count_params() == 313_066
    assert build_restorer(channels=1, quality_gate=True).count_params() == \
        build_restorer(channels=1).count_params() + 128 * 32 + 32 + 32 + 33


def test_block_dct_stats_match_an_independent_dct():
    from scipy.fft import dctn

    from tfcomp.restorer.model import BlockDCTStats
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, (1, 21, 30, 3)).astype(np.float32)  # 2 x 3 whole blocks + edges
    got = BlockDCTStats()(img).numpy()[0]
    luma = 255.0 * (img[0] @ np.array([0.299, 0.587, 0.114]))
    blocks = [dctn(luma[y:y + 8, x:x + 8], norm="ortho").ravel()
              for y in (0, 8) for x in (0, 8, 16)]
    c = np.array(blocks)
    want = 0.25 * np.concatenate([np.log(np.mean(c ** 2, 0) + 0.01),
                                  np.log(np.mean(np.abs(c), 0) + 0.1)])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # Tiny images are padded to one block instead of producing NaN.
    assert np.isfinite(BlockDCTStats()(img[:, :3, :5]).numpy()).all()


def test_gate_blends_network_output_with_input(tmp_path):
    from tfcomp.restorer.model import load_core_weights, split_gate
    plain = build_restorer(widths=TINY)
    path = os.fspath(tmp_path / "plain.weights.h5")
    plain.save_weights(path)
    gated = load_core_weights(build_restorer(widths=TINY, quality_gate=True), path)
    x = tf.random.stateless_uniform((2, 19, 26, 3), seed=(1, 2)).numpy()
    gate, network = split_gate(gated)
    g = gate(x).numpy()
    assert g.shape == (2, 3) and np.allclose(g, 1 / (1 + np.exp(-4.0)))  # initial gate
    np.testing.assert_allclose(network(x).numpy(), plain(x).numpy(), atol=1e-6)
    want = x + g[:, None, None, :] * (plain(x).numpy() - x)
    np.testing.assert_allclose(gated(x).numpy(), want, atol=1e-5)
    assert split_gate(plain) is None
    # A gated file loads into a gated model as usual.
    gpath = os.fspath(tmp_path / "gated.weights.h5")
    gated.save_weights(gpath)
    again = load_core_weights(build_restorer(widths=TINY, quality_gate=True), gpath)
    np.testing.assert_array_equal(again(x).numpy(), gated(x).numpy())
    with pytest.raises(ValueError, match="quality-gated"):
        load_core_weights(build_restorer(widths=TINY), gpath)
    # ... unless the gate is dropped on purpose: the network part alone.
    core = load_core_weights(build_restorer(widths=TINY), gpath, drop_gate=True)
    np.testing.assert_array_equal(core(x).numpy(), network(x).numpy())


def test_gate_depends_on_the_whole_image_not_only_locally():
    model = build_restorer(widths=TINY, quality_gate=True)
    dense = model.get_layer("gate_dense2")
    dense.set_weights([np.full(dense.kernel.shape, 0.5, np.float32), np.zeros(3, np.float32)])
    x = tf.random.stateless_uniform((1, 64, 64, 3), seed=(3, 4)).numpy()
    far = x.copy()
    far[:, 40:, 40:] = 0.5  # changes only pixels far from the top-left corner
    # The output at the corner changes: the gate reads global statistics.
    assert not np.allclose(model(x).numpy()[0, :4, :4], model(far).numpy()[0, :4, :4])


def test_flops_per_pixel_count_the_gate_per_pixel_only():
    from tfcomp.bench import conv_flops_per_pixel
    plain = conv_flops_per_pixel(build_restorer())
    assert plain == 626_355  # the README's 0.626 MFLOP per pixel
    gated = conv_flops_per_pixel(build_restorer(quality_gate=True))
    assert gated - plain == 2 * 64 * 3 + 4 + 3 * 3  # block DCT + blend; the MLP is per image


def test_weights_of_the_other_architecture_are_refused(tmp_path):
    """Keras alone would load an ungated file into the gated model and keep the initial gate."""
    plain_path = os.fspath(tmp_path / "plain.weights.h5")
    build_restorer(widths=TINY).save_weights(plain_path)
    gated = build_restorer(widths=TINY, quality_gate=True)
    with pytest.raises(ValueError, match="file lacks .*gated_residual"):
        models.load_weights_checked(gated, plain_path)
    gated_path = os.fspath(tmp_path / "gated.weights.h5")
    gated.save_weights(gated_path)
    with pytest.raises(ValueError, match="extra .*gated_residual"):
        models.load_weights_checked(build_restorer(widths=TINY), gated_path)
    models.load_weights_checked(build_restorer(widths=TINY, quality_gate=True), gated_path)


def test_cli_evaluate_refuses_weights_of_the_other_architecture(tmp_path, capsys):
    from tfcomp.cli import main
    path = os.fspath(tmp_path / "plain.weights.h5")
    build_restorer().save_weights(path)  # the ungated network: not restorer-blind's layout
    data = tmp_path / "data"  # one image: an empty folder would be refused first
    data.mkdir()
    write_image(os.fspath(data / "a.png"), np.zeros((8, 8, 3), np.uint8))
    code = main(["evaluate", "--restorer", "restorer-blind", "--weights", path,
                 "--data", os.fspath(data), "--quality", "10",
                 "--json", os.fspath(tmp_path / "r.json")])
    assert code != 0
    assert "does not fit restorer-blind" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_gated_model_config_round_trips():
    """The gate's layers are registered Keras serializables: from_config rebuilds the model."""
    model = build_restorer(widths=TINY, quality_gate=True)
    again = tf.keras.Model.from_config(model.get_config())
    again.set_weights(model.get_weights())
    x = tf.random.stateless_uniform((1, 24, 40, 3), seed=(5, 6))
    np.testing.assert_array_equal(again(x).numpy(), model(x).numpy())


def test_load_model_with_another_weights_file(tmp_path):
    """load_model(name, weights=FILE): the one path for `evaluate --weights`, export and
    training/gate_stats.py; a fresh model, refused when the file is missing or does not fit."""
    with pytest.raises(InputError, match="no such weights file"):
        models.load_model("restorer-blind", weights=os.fspath(tmp_path / "none.weights.h5"))
    plain = os.fspath(tmp_path / "plain.weights.h5")
    build_restorer().save_weights(plain)
    with pytest.raises(InputError, match="does not fit restorer-blind"):
        models.load_model("restorer-blind", weights=plain)
    model = models.load_model("restorer-q10", weights=plain)
    assert model is not models.load_model("restorer-q10")


def test_to_gray_computes_the_rgb_model_on_replicated_gray():
    rgb = build_restorer(channels=3, widths=(8, 6, 6, 4))
    rng = np.random.default_rng(0)
    for layer in rgb.layers:  # random weights, not the identity: every path counts
        layer.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in layer.get_weights()])
    gray = to_gray(rgb)
    assert gray.input_shape[-1] == 1 and gray.count_params() < rgb.count_params()
    g = rng.uniform(0, 1, (2, 20, 24, 1)).astype(np.float32)
    want = rgb(np.repeat(g, 3, axis=-1)).numpy().mean(axis=-1, keepdims=True)
    np.testing.assert_allclose(gray(g).numpy(), want, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="ungated"):
        to_gray(build_restorer(channels=3, widths=(8, 6, 6, 4), quality_gate=True))
