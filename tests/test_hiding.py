"""Learning to hide residual: codec in the loop, gradients, training steps, the hiding codecs."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from imagegen import natural_gray, natural_rgb
from tfcomp import models
from tfcomp.codecs import get_codec
from tfcomp.hiding.codec import COMMENT_PREFIX, weights_id
from tfcomp.errors import BitstreamError, InputError
from tfcomp.hiding.model import (HidingModel, build_hiding, build_hiding_encoder, codec_in_loop,
                                  real_codec, st_quantize)
from tfcomp.restorer.model import build_restorer


def batch(n=2, h=32, w=48):
    return tf.constant(np.stack([natural_rgb(h, w, seed=i) for i in range(n)]), tf.float32) / 255.0


def tiny_hiding(**kwargs):
    tf.keras.utils.set_random_seed(3)
    return build_hiding(width=8, depth=3, decoder_widths=(8, 8, 8, 4), **kwargs)


def test_st_quantize_rounds_and_clips_with_identity_gradient():
    x = tf.constant([-0.2, 0.1001, 0.5, 1.3])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = st_quantize(x)
    np.testing.assert_allclose(y.numpy() * 255.0, [0, 26, 128, 255], atol=1e-4)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), [1, 1, 1, 1])


def test_real_codec_is_the_graph_jpeg_and_counts_bytes():
    from tfcomp.codecs.graph_jpeg import jpeg_encode, jpeg_roundtrip
    x = batch()
    decoded, nbytes = real_codec(x, 40)
    u8 = tf.cast(tf.round(x * 255.0), tf.uint8)
    for i in range(2):
        np.testing.assert_array_equal(np.round(decoded[i].numpy() * 255), jpeg_roundtrip(u8[i], 40).numpy())
        assert int(nbytes[i]) == len(jpeg_encode(u8[i], 40).numpy())


@pytest.mark.parametrize("codec,strategy,quality", [("jpeg", 2, 50), ("jpeg", 1, 50), ("bpg", 2, 30)])
def test_gradients_through_the_real_codec_exist_and_are_finite(codec, strategy, quality):
    x = st_quantize(batch())
    w = tf.Variable(tf.ones_like(x))
    with tf.GradientTape() as tape:
        y, nbytes = codec_in_loop(x * w, quality, codec, strategy)
        loss = tf.reduce_mean(tf.square(y - 0.5))
    g = tape.gradient(loss, w).numpy()
    assert np.isfinite(g).all() and np.abs(g).max() > 0
    # Forward values are the real codec's, whatever the gradient path.
    real, real_bytes = real_codec(x, quality, codec)
    np.testing.assert_allclose(y.numpy(), real.numpy(), atol=1e-5)
    np.testing.assert_array_equal(nbytes.numpy(), real_bytes.numpy())
    if strategy == 2:  # identity gradient: d loss / d x = d loss / d y
        np.testing.assert_allclose(g, (2 * (real.numpy() - 0.5) / real.numpy().size) * x.numpy(),
                                   rtol=1e-4, atol=1e-9)


def test_strategy_1_gradient_differs_from_identity():
    x = st_quantize(batch())
    grads = []
    for strategy in (1, 2):
        xv = tf.Variable(x)
        with tf.GradientTape() as tape:
            y, _ = codec_in_loop(xv, 20, "jpeg", strategy)
            loss = tf.reduce_sum(y * tf.random.stateless_normal(y.shape, [1, 2]))
        grads.append(tape.gradient(loss, xv).numpy())
    assert not np.allclose(grads[0], grads[1])


def test_bad_settings_are_refused():
    enc, dec = build_hiding_encoder(width=4, depth=2), build_restorer(widths=(4, 4, 4, 4))
    with pytest.raises(ValueError, match="JPEG only"):
        HidingModel(enc, dec, codec="bpg", strategy=1)
    with pytest.raises(ValueError, match="strategy"):
        HidingModel(enc, dec, strategy=3)
    with pytest.raises(ValueError, match="codec"):
        HidingModel(enc, dec, codec="webp")


def test_encoder_starts_as_identity():
    model = tiny_hiding()
    x = batch()
    hidden = model.hide(x, x * 0.9)
    np.testing.assert_allclose(hidden.numpy(), x.numpy(), atol=1e-7)


@pytest.mark.parametrize("codec,strategy,rate_weight", [("jpeg", 2, 0.0), ("jpeg", 1, 1e-3),
                                                         ("bpg", 2, 1e-3)])
def test_a_few_steps_reduce_the_loss(codec, strategy, rate_weight):
    model = tiny_hiding(codec=codec, quality=30, strategy=strategy, rate_weight=rate_weight)
    model.compile(optimizer=tf.keras.optimizers.Adam(3e-3))
    x = batch(4, 32, 32)
    before = model.evaluate(x, batch_size=4, verbose=0, return_dict=True)
    model.fit(x, epochs=25, batch_size=4, verbose=0)
    after = model.evaluate(x, batch_size=4, verbose=0, return_dict=True)
    assert after["loss"] < 0.7 * before["loss"]
    assert np.isfinite(list(after.values())).all()
    assert after["bpp"] > 0 and after["bpp_plain"] > 0
    if rate_weight:
        assert "rate_proxy_extra" in after


def test_bpg_rate_proxy_grows_with_the_real_files_and_has_a_gradient():
    """The BPG bits proxy rises with the real BPG file as noise is added, falls with a coarser
    QP as the real file does, and is differentiable (the hiding model's rate term)."""
    from tfcomp.codecs import bpg
    from tfcomp.hiding.bpg_rate import bpg_rate_proxy
    clean = natural_rgb(64, 96, seed=5).astype(np.float64)
    noise = np.random.default_rng(0).normal(0.0, 1.0, clean.shape)
    real, proxy = {}, {}
    for qp in (26, 34):
        for amp in (0, 3, 6, 12):
            img = np.clip(np.round(clean + amp * noise), 0, 255).astype(np.uint8)
            real[qp, amp] = len(bpg.encode(img, qp=qp))
            proxy[qp, amp] = float(bpg_rate_proxy(tf.constant(img[None], tf.float32) / 255.0, qp)[0])
    for table in (real, proxy):
        for qp in (26, 34):
            sizes = [table[qp, a] for a in (0, 3, 6, 12)]
            assert sizes == sorted(sizes) and sizes[0] < sizes[-1], (table, qp)
        assert all(table[34, a] < table[26, a] for a in (0, 3, 6, 12))
    x = tf.Variable(tf.constant(clean[None] / 255.0, tf.float32))
    with tf.GradientTape() as tape:
        r = bpg_rate_proxy(x, tf.constant([30]))
    g = tape.gradient(r, x).numpy()
    assert r.shape == (1,) and np.isfinite(g).all() and np.abs(g).max() > 0
    with pytest.raises(ValueError, match="B, H, W, 3"):
        bpg_rate_proxy(tf.zeros([1, 8, 8, 1]), 30)


@pytest.mark.parametrize("sampling", ["uniform", "log"])
def test_quality_range_model_trains(sampling):
    model = tiny_hiding(quality=50, quality_range=(20, 80), quality_sampling=sampling)
    assert model.get_config()["quality_sampling"] == sampling
    q = model._qualities(2000, training=True).numpy()
    assert q.min() >= 20 and q.max() <= 80
    low = np.mean(q <= 35)       # uniform: 16/61 = 0.26; log: log(36/20)/log(81/20) = 0.42
    assert (low > 0.36) == (sampling == "log"), low
    np.testing.assert_array_equal(model._qualities(3, training=False), [50, 50, 50])
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
    history = model.fit(batch(2, 32, 32), epochs=2, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_unknown_quality_sampling_is_refused():
    with pytest.raises(ValueError, match="quality_sampling"):
        tiny_hiding(quality_range=(20, 80), quality_sampling="beta")


def test_gated_decoder_starts_from_a_gated_restorer_with_its_gate(tmp_path):
    """decoder_gate=True: D is the quality-gated restorer, loaded gate and all, so the untrained
    system is "codec + that restorer"; the default drops a gated file's gate."""
    from tfcomp.restorer.model import split_gate
    tf.keras.utils.set_random_seed(5)
    gated = build_restorer(widths=(8, 8, 8, 4), quality_gate=True)
    for v in gated.trainable_variables:
        v.assign(v + tf.random.normal(v.shape, stddev=0.05))
    path = str(tmp_path / "g.weights.h5")
    gated.save_weights(path)
    model = tiny_hiding(quality=30, quality_range=(20, 60), strategy=1, decoder_gate=True,
                        decoder_init=path)
    assert split_gate(model.decoder) is not None
    x = batch(1, 32, 40)
    np.testing.assert_allclose(model.reveal(x).numpy(), gated(x).numpy(), atol=1e-6)
    assert split_gate(tiny_hiding(decoder_init=path).decoder) is None
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
    history = model.fit(batch(2, 32, 32), epochs=2, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_weights_round_trip(tmp_path):
    model = tiny_hiding()
    model.decoder.layers[1].kernel.assign_add(tf.ones_like(model.decoder.layers[1].kernel))
    path = str(tmp_path / "h.weights.h5")
    model.save_weights(path)
    again = tiny_hiding()
    again.load_weights(path)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- the registry codecs -------------------------------------------------------------------
@pytest.fixture
def loaded(monkeypatch):
    """A tiny trained-looking hiding model installed as hiding-jpeg-q50-s2 for this test."""
    model = tiny_hiding()
    # A visible encoder so the sent image differs from the input.
    model.encoder.get_layer("enc_out").bias.assign([0.02, -0.02, 0.01])
    monkeypatch.setitem(models._LOADED, "hiding-jpeg-q50-s2", model)
    return model


def test_hiding_jpeg_writes_a_standard_jpeg_and_decodes(loaded):
    img = natural_rgb(40, 56, seed=5)
    codec = get_codec("hiding-jpeg", model="hiding-jpeg-q50-s2")
    data = codec.encode(img, 50)
    with Image.open(io.BytesIO(data)) as f:  # any JPEG reader opens it
        assert f.format == "JPEG" and f.size == (56, 40)
        assert f.info["comment"] == (COMMENT_PREFIX + b"hiding-jpeg-q50-s2:"
                                     + weights_id(loaded).encode())
        viewer = np.asarray(f.convert("RGB"))
    plain = get_codec("jpeg").encode(img, 50)
    assert data != plain
    # Decoding picks the model from the file's marker, without --model.
    out = get_codec("hiding-jpeg").decode(data)
    assert out.shape == img.shape and out.dtype == np.uint8
    from tfcomp.restorer.restore import restore_array
    np.testing.assert_array_equal(out, restore_array(loaded.decoder, viewer))


def test_plain_jpeg_decodes_with_a_notice(loaded):
    img = natural_rgb(40, 56, seed=6)
    data = get_codec("jpeg").encode(img, 50)
    codec = get_codec("hiding-jpeg")
    out = codec.decode(data)
    assert out.shape == img.shape
    assert "no hidden-residual marker" in codec.notice


def test_hiding_codec_errors(loaded):
    codec = get_codec("hiding-jpeg", model="hiding-jpeg-q50-s2")
    with pytest.raises(InputError, match="RGB"):
        codec.encode(natural_gray(32, 32), 50)
    with pytest.raises(InputError, match="trained for quality"):
        codec.encode(natural_rgb(32, 32), 70)
    with pytest.raises(InputError, match="not in"):
        get_codec("hiding-jpeg", model="restorer-blind")
    from tfcomp.errors import BitstreamError
    with pytest.raises(BitstreamError):
        get_codec("hiding-jpeg").decode(b"\xff\xd8\xff\xe0 truncated")


def test_own_weights_files_decode_only_with_those_weights(loaded, tmp_path, capsys,
                                                           monkeypatch):
    """--weights: a training run's file; its JPEGs name those weights and other weights refuse
    them; files with the earlier marker (no weights id) still decode."""
    import dataclasses
    from tfcomp.cli import main
    from tfcomp.errors import BitstreamError
    spec = models.get_spec("hiding-jpeg-q50-s2")  # --weights files have the tiny architecture
    monkeypatch.setitem(models._REGISTRY, spec.name, dataclasses.replace(
        spec, builder="test_hiding:tiny_hiding", builder_kwargs={}))
    own = tiny_hiding()
    own.decoder.layers[1].bias.assign_add(tf.fill(own.decoder.layers[1].bias.shape, 0.01))
    weights = str(tmp_path / "own.weights.h5")
    own.save_weights(weights)
    img = natural_rgb(40, 48, seed=3)
    mine = get_codec("hiding-jpeg", model="hiding-jpeg-q50-s2", weights=weights)
    data = mine.encode(img, 50)
    assert weights_id(own).encode() in data and weights_id(own) != weights_id(loaded)
    np.testing.assert_array_equal(mine.decode(data), get_codec(
        "hiding-jpeg", weights=weights).decode(data))
    with pytest.raises(BitstreamError, match="other hiding-jpeg-q50-s2 weights"):
        get_codec("hiding-jpeg").decode(data)  # the shipped (here: loaded) weights
    old = data.replace(b":" + weights_id(own).encode(), b"")  # a marker without the id
    old = old.replace(old[old.index(b"\xff\xfe"):old.index(b"\xff\xfe") + 4],
                      b"\xff\xfe" + (len(COMMENT_PREFIX + b"hiding-jpeg-q50-s2") + 2).to_bytes(2, "big"))
    assert get_codec("hiding-jpeg").decode(old).shape == img.shape
    # the CLI: --weights on compress and decompress, a clear error without it
    src, jpg = tmp_path / "x.png", tmp_path / "x.jpg"
    Image.fromarray(img).save(src)
    assert main(["compress", str(src), "-o", str(jpg), "--codec", "hiding-jpeg", "--quality",
                 "50", "--model", "hiding-jpeg-q50-s2", "--weights", weights]) == 0
    assert main(["decompress", str(jpg), "-o", str(tmp_path / "a.png"), "--codec",
                 "hiding-jpeg", "--weights", weights]) == 0
    capsys.readouterr()
    assert main(["decompress", str(jpg), "-o", str(tmp_path / "b.png"), "--codec",
                 "hiding-jpeg"]) == 1
    err = capsys.readouterr().err
    assert "--weights" in err and "Traceback" not in err and not (tmp_path / "b.png").exists()
    # evaluation of a candidate: its own weights, named in the result
    from tfcomp.evaluate import evaluate_hiding
    mine_r = evaluate_hiding("hiding-jpeg-q50-s2", [("im0", img)], 50, show_progress=False,
                             weights=weights)
    shipped_r = evaluate_hiding("hiding-jpeg-q50-s2", [("im0", img)], 50, show_progress=False)
    assert mine_r["weights"] == weights and shipped_r["weights"] is None
    assert mine_r["summary"]["hiding"]["psnr"] != shipped_r["summary"]["hiding"]["psnr"]


def test_cli_round_trip_and_clear_errors(loaded, tmp_path, capsys):
    from tfcomp.cli import main
    src = tmp_path / "x.png"
    Image.fromarray(natural_rgb(40, 48, seed=2)).save(src)
    assert main(["compress", str(src), "-o", str(tmp_path / "x.jpg"), "--codec", "hiding-jpeg",
                 "--quality", "50"]) == 0
    assert main(["decompress", str(tmp_path / "x.jpg"), "-o", str(tmp_path / "y.png"),
                 "--codec", "hiding-jpeg"]) == 0
    assert Image.open(tmp_path / "y.png").size == (48, 40)
    capsys.readouterr()
    # A quality no installed model covers, and a model that does not exist.
    code = main(["compress", str(src), "-o", str(tmp_path / "z.jpg"), "--codec", "hiding-jpeg",
                 "--quality", "50", "--model", "nope"])
    err = capsys.readouterr().err
    assert code != 0 and "nope" in err and "Traceback" not in err
    assert not (tmp_path / "z.jpg").exists()


def test_evaluate_hiding_and_report(loaded, tmp_path, capsys):
    from tfcomp.cli import main
    from tfcomp.evaluate import evaluate_hiding
    images = [(f"im{i}", natural_rgb(40, 48, seed=10 + i)) for i in range(2)]
    fig = tmp_path / "fig.png"
    r = evaluate_hiding("hiding-jpeg-q50-s2", images, 50, show_progress=False,
                        figure=("im1", str(fig)))
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    s = r["summary"]
    assert r["plain_codec"] == "jpeg" and r["quality"] == 50
    for row in r["images"]:
        # bpp is the file's; the equal-bpp plain file is at least as large as the hiding file.
        assert row["plain_eq"]["bpp"] >= row["hiding"]["bpp"]
        assert row["plain_eq"]["quality"] >= 50
        assert row["plain"]["quality"] == 50
    assert set(s) == {"hiding", "hiding_view", "plain", "plain_restored", "plain_eq",
                      "plain_eq_restored", "plain_at_bpp", "plain_at_bpp_restored"}
    for row in r["images"]:
        # interpolated baselines: the step below the equal-bpp quality and that quality
        # bracket the hiding file, and the metrics lie between theirs
        at, eq = row["plain_at_bpp"], row["plain_eq"]
        assert at["quality"] == eq["quality"] and at["quality_lo"] in (eq["quality"] - 1, 50)
        assert at["bpp"] <= eq["bpp"] + 1e-12
        if at["quality_lo"] < eq["quality"]:
            assert at["bpp"] == pytest.approx(row["hiding"]["bpp"])
    path = tmp_path / "h.json"
    import json
    path.write_text(json.dumps(r))
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert "hiding-jpeg-q50-s2" in out and "jpeg + restorer-blind" in out
    header = next(line for line in out.splitlines() if line.startswith("| method"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    row = next(line for line in out.splitlines() if line.startswith("| hiding-jpeg-q50-s2"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[columns.index("dB vs codec at equal bpp")] == \
        f"{s['hiding']['psnr'] - s['plain_eq']['psnr']:+.2f}"


def test_slim_weights_after_training(tmp_path):
    from tfcomp.training import save_slim_weights
    model = tiny_hiding()
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
    model.fit(batch(2, 32, 32), epochs=1, batch_size=2, verbose=0)
    path = str(tmp_path / "slim.weights.h5")
    save_slim_weights(model, tiny_hiding, path)  # metric variables are left out
    again = tiny_hiding()
    again.load_weights(path)
    for a, b in zip(model.encoder.get_weights() + model.decoder.get_weights(),
                    again.encoder.get_weights() + again.decoder.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_hiding_bpg_writes_a_standard_bpg(monkeypatch):
    model = tiny_hiding(codec="bpg", quality=30)
    model.encoder.get_layer("enc_out").bias.assign([0.02, -0.02, 0.01])
    default = get_codec("hiding-bpg").model_for(30)
    assert default == "hiding-bpg-qp30-rate"
    monkeypatch.setitem(models._LOADED, default, model)
    img = natural_rgb(40, 56, seed=7)
    data = get_codec("hiding-bpg").encode(img, 30)
    plain = get_codec("bpg")
    assert plain.sniff(data)                      # a .bpg any BPG decoder reads
    viewer = plain.decode(data)
    assert viewer.shape == img.shape
    codec = get_codec("hiding-bpg")
    out = codec.decode(data)
    from tfcomp.restorer.restore import restore_array
    np.testing.assert_array_equal(out, restore_array(model.decoder, viewer))
    assert codec.notice == ""
    # the model and its weights are named in an extension record, which viewers skip
    from tfcomp.codecs.bpg import extensions
    from tfcomp.hiding.codec import BPG_MARKER_TAG
    assert extensions(data) == [(BPG_MARKER_TAG, COMMENT_PREFIX + default.encode() + b":"
                                 + weights_id(model).encode())]
    other = tiny_hiding(codec="bpg", quality=30)
    monkeypatch.setitem(models._LOADED, default, other)
    with pytest.raises(BitstreamError, match=f"other {default} weights"):
        get_codec("hiding-bpg").decode(data)
    # a BPG without the record (earlier versions' files) decodes with the default model
    codec = get_codec("hiding-bpg")
    assert codec.decode(plain.encode(img, 30)).shape == img.shape
    assert "no hidden-residual marker in this BPG file" in codec.notice
    with pytest.raises(InputError, match=r"no trained model for quality 35; installed: "
                                         r"hiding-bpg-qp30-rate \(quality 30..30\), hiding-bpg-qp30-s2"):
        get_codec("hiding-bpg").encode(img, 35)


@pytest.mark.parametrize("model,quality", [("hiding-jpeg-q50-s1", 50), ("hiding-jpeg-q50-s2", 50),
                                           ("hiding-jpeg-q50-s1b", 50),
                                           ("hiding-jpeg-blind", 20), ("hiding-jpeg-blind", 80),
                                           ("hiding-jpeg-range-s1", 20), ("hiding-jpeg-range-s1", 80),
                                           ("hiding-jpeg-range-s1-log", 20),
                                           ("hiding-jpeg-range-s1-log", 80),
                                           ("hiding-bpg-qp30-s2", 30), ("hiding-bpg-qp30-rate", 30)])
def test_shipped_hiding_models_beat_their_plain_codec(model, quality):
    """Each shipped model on a photo crop it never saw: better than its plain codec."""
    from skimage import data as skdata
    from tfcomp.metrics import psnr
    assert models.is_available(model), f"{model} weights are not installed"
    img = np.ascontiguousarray(skdata.astronaut()[64:256, 160:352])
    codec = get_codec(models.get_spec(model).codec, model=model)
    hidden = codec.encode(img, quality)
    out = get_codec(codec.name).decode(hidden)  # the model from the file / the codec's default
    plain = codec.plain
    gain = psnr(img, out) - psnr(img, plain.decode(plain.encode(img, quality)))
    assert gain > 0.5, gain


def test_default_models_are_the_strategy_1_ones_and_the_rate_trained_bpg():
    assert get_codec("hiding-jpeg").model_for(50) == "hiding-jpeg-q50-s1b"
    assert get_codec("hiding-jpeg").model_for(30) == "hiding-jpeg-range-s1-log"
    assert get_codec("hiding-jpeg", model="hiding-jpeg-blind").model_for(30) == "hiding-jpeg-blind"
    assert get_codec("hiding-bpg").model_for(30) == "hiding-bpg-qp30-rate"


def test_at_bpp_interpolates_between_two_qualities():
    from tfcomp.evaluate import at_bpp
    lo, hi = (20, 0.5, {"psnr": 30.0, "ssim": 0.80}), (21, 0.6, {"psnr": 31.0, "ssim": 0.90})
    r = at_bpp(0.525, lo, hi)
    assert r["quality_lo"] == 20 and r["quality"] == 21
    assert r["bpp"] == pytest.approx(0.525)
    assert r["psnr"] == pytest.approx(30.25) and r["ssim"] == pytest.approx(0.825)
    # outside the two points: the nearer one, no extrapolation
    assert at_bpp(0.7, lo, hi)["psnr"] == pytest.approx(31.0)
    assert at_bpp(0.7, lo, hi)["bpp"] == pytest.approx(0.6)
    assert at_bpp(0.4, lo, hi)["psnr"] == pytest.approx(30.0)
    # one point (no quality below): itself
    assert at_bpp(0.55, hi, hi)["psnr"] == pytest.approx(31.0)


def test_evaluate_hiding_figure_needs_a_known_image(loaded, tmp_path):
    from tfcomp.errors import InputError
    from tfcomp.evaluate import evaluate_hiding
    images = [("im0", natural_rgb(24, 24, seed=3))]
    with pytest.raises(InputError, match="nope"):
        evaluate_hiding("hiding-jpeg-q50-s2", images, 50, show_progress=False,
                        figure=("nope", str(tmp_path / "f.png")))


def test_worst_crop_finds_the_damaged_window():
    from tfcomp.plot import worst_crop
    ref = np.zeros((60, 80, 3), np.uint8)
    dec = ref.copy()
    dec[30:40, 50:60] = 200           # the only error
    top, left, h, w = worst_crop(ref, dec, 16)
    assert (h, w) == (16, 16)
    assert top <= 30 and top + h >= 40 and left <= 50 and left + w >= 60
    assert worst_crop(ref, dec, 500)[2:] == (60, 80)  # clipped to the image


def test_decoder_starts_from_a_gated_restorer_file_without_its_gate(tmp_path):
    """--decoder-init may be the (quality-gated) restorer-blind file: D gets its network."""
    from tfcomp.restorer.model import split_gate
    gated = build_restorer(widths=(4, 4, 4, 4), quality_gate=True)
    path = str(tmp_path / "gated.weights.h5")
    gated.save_weights(path)
    model = build_hiding(width=4, depth=2, decoder_widths=(4, 4, 4, 4), decoder_init=path)
    x = batch(1)
    np.testing.assert_array_equal(model.decoder(x).numpy(), split_gate(gated)[1](x).numpy())
