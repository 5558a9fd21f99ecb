"""Content-weighted codec: binarizer, mask, rate loss, entropy coding, file format, codec."""

import numpy as np
import pytest
import tensorflow as tf

from tfcomp import models
from tfcomp import registry as registry_module
from tfcomp.cwic import codec as cwic_codec
from tfcomp.codecs import get_codec
from tfcomp.cwic.coding import ContextTables, decode_streams, encode_streams
from tfcomp.errors import BitstreamError
from tfcomp.cwic.model import binarize, build_cwic, importance_mask, kept_channels
from tfcomp.cwic import model as cwic_model


def photo(h=40, w=56, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([120 + 70 * np.sin(x / 5.0 + c) * np.cos(y / 7.0) for c in range(3)], -1)
    return np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny():
    tf.keras.utils.set_random_seed(1)
    return build_cwic("tiny")


@pytest.fixture(scope="module")
def tiny_tables(tiny):
    """Tables for the tiny model, one object for the module (attaching tables retraces)."""
    tables = ContextTables(tiny.n, tiny.levels)
    tables.accumulate(*cwic_codec.analyse(tiny, photo(64, 64, 3)))
    return tables


def test_binarizer_forward_and_identity_gradient():
    x = tf.constant([0.0, 0.2, 0.5, 0.5001, 0.9, 1.0])
    w = tf.constant([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = binarize(x)
        s = tf.reduce_sum(y * w)
    np.testing.assert_array_equal(y.numpy(), [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(tape.gradient(s, x).numpy(), w.numpy())


def test_mask_counts_and_gradient():
    n, levels = 64, 16
    p = tf.reshape(tf.constant([0.0, 0.05, 0.0625, 0.5, 0.999]), (1, 1, 5, 1))
    with tf.GradientTape() as tape:
        tape.watch(p)
        m = importance_mask(p, n, levels)
        s = tf.reduce_sum(m * tf.range(n, dtype=tf.float32))
    # kept = (floor(16 p) + 1) * 4
    np.testing.assert_array_equal(tf.reduce_sum(m, -1).numpy().ravel(), [4, 4, 8, 36, 64])
    assert np.all(m.numpy()[0, 0, 3, :36] == 1) and np.all(m.numpy()[0, 0, 3, 36:] == 0)
    np.testing.assert_allclose(tape.gradient(s, p).numpy().ravel(), [sum(range(n))] * 5)
    np.testing.assert_array_equal(kept_channels(p, n, levels).numpy().ravel(), [4, 4, 8, 36, 64])


def test_rate_loss_only_above_target():
    x = tf.random.stateless_uniform((2, 32, 32, 3), (1, 2))
    for target, active in ((1.01, 0.0), (0.0, 1.0)):
        tf.keras.utils.set_random_seed(0)
        m = build_cwic("tiny", target=target, gamma=0.5)
        loss, logs = m._objective(x, False)
        assert float(logs["rate_active"]) == active
        _, p = m.encoder(x)
        expected = float(logs["mse"]) + active * 0.5 * float(tf.reduce_mean(p))
        assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_ablation_switches(tiny):
    x = tf.random.stateless_uniform((1, 16, 16, 3), (3, 4))
    plain = build_cwic("tiny", use_binarizer=False, use_importance=False)
    codes, _, mask = plain.analyse(x)
    assert float(tf.reduce_min(mask)) == 1.0
    assert np.any((codes.numpy() > 0) & (codes.numpy() < 1))  # continuous codes
    codes, _, _ = tiny.analyse(x)
    assert set(np.unique(codes.numpy())) <= {0.0, 1.0}


def test_training_steps_reduce_distortion():
    tf.keras.utils.set_random_seed(5)
    m = build_cwic("tiny", target=1.01)
    m.compile(optimizer=tf.keras.optimizers.Adam(3e-3))
    x = tf.convert_to_tensor(np.stack([photo(32, 32, s) for s in range(4)]).astype(np.float32) / 255)
    first = m.train_on_batch(x, return_dict=True)["mse"]
    for _ in range(40):
        last = m.train_on_batch(x, return_dict=True)["mse"]
    assert np.isfinite(last) and last < 0.5 * first


def test_ms_ssim_distortion_is_the_loss_and_trains():
    x = tf.convert_to_tensor(np.stack([photo(96, 96, s) for s in range(2)]).astype(np.float32) / 255)
    tf.keras.utils.set_random_seed(6)
    m = build_cwic("tiny", target=1.01, distortion="ms-ssim")
    loss, logs = m._objective(x, False)
    assert float(loss) == pytest.approx(1.0 - float(logs["msssim"]), rel=1e-6)
    tf.keras.utils.set_random_seed(6)
    anchored = build_cwic("tiny", target=1.01, distortion="ms-ssim", mse_weight=20.0)
    loss, logs = anchored._objective(x, False)
    assert float(loss) == pytest.approx(1.0 - float(logs["msssim"]) + 20.0 * float(logs["mse"]),
                                        rel=1e-5)
    # The four-scale weights are MS-SSIM's first four, renormalised: identical images -> 1.
    ms4 = cwic_model.ms_ssim_4
    assert float(tf.reduce_mean(ms4(x, x))) == pytest.approx(1.0, abs=1e-5)
    # Same numbers as TensorFlow's implementation while every term is positive ...
    noisy = tf.clip_by_value(x + tf.random.stateless_normal(x.shape, (1, 1), 0, 0.05), 0, 1)
    want = tf.image.ssim_multiscale(x, noisy, 1.0, power_factors=cwic_model._MS4)
    np.testing.assert_allclose(ms4(x, noisy).numpy(), want.numpy(), rtol=1e-5)
    # ... but a negatively correlated pair (TF: NaN gradient) still gives a finite gradient.
    inverse = tf.Variable(1.0 - x)
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(ms4(x, inverse))
    assert np.all(np.isfinite(tape.gradient(value, inverse).numpy()))
    m.compile(optimizer=tf.keras.optimizers.Adam(3e-3))
    first = m.train_on_batch(x, return_dict=True)["msssim"]
    for _ in range(30):
        last = m.train_on_batch(x, return_dict=True)["msssim"]
    assert np.isfinite(last) and last > first
    with pytest.raises(ValueError, match="distortion"):
        build_cwic("tiny", distortion="l1")


def test_streams_round_trip_and_context_saves_bits():
    rng = np.random.default_rng(0)
    h, w, n, levels = 12, 20, 16, 4
    q = rng.integers(0, levels, (h, w))
    # Correlated bits: each channel copies the previous one with 10 % flips.
    bits = np.zeros((h, w, n), np.uint8)
    bits[:, :, 0] = rng.integers(0, 2, (h, w))
    for k in range(1, n):
        bits[:, :, k] = bits[:, :, k - 1] ^ (rng.random((h, w)) < 0.1)
    kept = (q + 1) * (n // levels)
    bits *= (np.arange(n) < kept[:, :, None]).astype(np.uint8)
    uniform = ContextTables(n, levels)
    fitted = ContextTables(n, levels)
    fitted.accumulate(bits, q)
    for tables in (uniform, fitted):
        ms, bs = encode_streams(bits, q, tables)
        b2, q2 = decode_streams(ms, bs, h, w, tables)
        np.testing.assert_array_equal(b2, bits)
        np.testing.assert_array_equal(q2, q)
    raw = int(kept.sum())
    assert 8 * len(encode_streams(bits, q, uniform)[1]) >= 0.95 * raw
    assert 8 * len(encode_streams(bits, q, fitted)[1]) < 0.75 * raw


def test_file_reproduces_unquantised_path_and_counts_bytes(tiny, tiny_tables):
    img = photo(37, 29)  # not a multiple of 8: padded, then cropped back
    tables = tiny_tables
    data = cwic_codec.compress_array(tiny, tables, 2, img)
    assert data == cwic_codec.compress_array(tiny, tables, 2, img)  # deterministic
    out = cwic_codec.decompress_array(tiny, tables, data)
    padded = np.pad(img, ((0, 3), (0, 3), (0, 0)), mode="edge")[None].astype(np.float32) / 255
    direct = tiny(tf.convert_to_tensor(padded)).numpy()[0, :37, :29]
    np.testing.assert_array_equal(out, np.clip(np.round(direct * 255), 0, 255).astype(np.uint8))
    parsed = cwic_codec.unpack(data)
    assert (parsed.version, parsed.rate, parsed.height, parsed.width) == (3, 2, 37, 29)
    assert parsed.model_id == tiny.model_id
    # 26-byte header (module docstring)
    assert len(data) == 26 + len(parsed.map_stream) + len(parsed.bit_stream)


@pytest.mark.parametrize("damage", ["truncate", "flip", "magic", "version", "size", "short", "empty"])
def test_corrupted_files_raise(tiny, tiny_tables, damage):
    tables = tiny_tables
    data = bytearray(cwic_codec.compress_array(tiny, tables, 2, photo(24, 24)))
    if damage == "truncate":
        data = data[: len(data) - 3]
    elif damage == "flip":
        data[len(data) // 2 + 8] ^= 0x10
    elif damage == "magic":
        data[0:4] = b"XWIC"
    elif damage == "version":
        data[4] = 9
    elif damage == "size":
        data[14:18] = b"\xff\xff\xff\xff"
    elif damage == "short":
        data = data[:10]
    else:
        data = bytearray()
    with pytest.raises(BitstreamError):
        cwic_codec.decompress_array(tiny, tables, bytes(data))


def test_registry_codec_and_cli(tiny, tmp_path, monkeypatch, capsys):
    """A cwic rate model registered with weights + tables works through the codec and the CLI."""
    from tfcomp.cli import main
    monkeypatch.setattr(models, "WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr(registry_module, "WEIGHTS_DIR", str(tmp_path))  # ModelSpec paths
    monkeypatch.setattr(models, "_LOADED", {})
    tiny.save_weights(str(tmp_path / "t.weights.h5"))
    tables = ContextTables(tiny.n, tiny.levels)
    tables.accumulate(*cwic_codec.analyse(tiny, photo(64, 64, 3)))
    tables.save(str(tmp_path / "t.ctx.npz"))
    for name in [n for n in models.model_names("learned") if n.startswith("cwic-")]:
        monkeypatch.delitem(models._REGISTRY, name)
    monkeypatch.setitem(models._REGISTRY, "cwic-7", models.ModelSpec(
        name="cwic-7", kind="learned", description="test", builder="tfcomp.cwic.model:build_cwic",
        builder_kwargs={"config": "tiny"}, weights="t.weights.h5", tables="t.ctx.npz",
        quality_min=7, quality_max=7, quality_default=7, codec="cwic"))
    codec = get_codec("cwic")
    assert codec.qualities == [7] and codec.weights_present
    img = photo(33, 41)
    data = codec.encode(img, 7)
    assert codec.decode(data).shape == (33, 41, 3)
    from PIL import Image
    Image.fromarray(img).save(tmp_path / "in.png")
    assert main(["compress", str(tmp_path / "in.png"), "-o", str(tmp_path / "x.cwic"),
                 "--codec", "cwic", "--quality", "7"]) == 0
    assert main(["decompress", str(tmp_path / "x.cwic"), "-o", str(tmp_path / "y.png")]) == 0
    assert np.asarray(Image.open(tmp_path / "y.png")).shape == (33, 41, 3)
    assert main(["compress", str(tmp_path / "in.png"), "-o", str(tmp_path / "z.cwic"),
                 "--codec", "cwic", "--quality", "3"]) == 1
    assert "quality 3 not in [7]" in capsys.readouterr().err


def test_bench_cwic_times_every_stage():
    # The benchmark's cwic section runs (random weights when no rate model is installed).
    from tfcomp.bench import bench_cwic
    from imagegen import natural_rgb
    label, nbytes, rows = bench_cwic(natural_rgb(40, 56, seed=4), repeat=1)
    assert label.startswith("cwic") and nbytes > 0
    assert [r[0].split()[1] for r in rows] == ["encoder", "range", "range", "decoder",
                                               "compress", "decompress", "first", "first"]
    assert all(r[1] > 0 for r in rows)


def test_ablation_rows_count_rates_per_variant(tiny):
    from tfcomp.cwic.training import ablation_rows
    from tfcomp.metrics import psnr
    img = photo(176, 176, 4)
    tables = ContextTables(tiny.n, tiny.levels)
    tables.accumulate(*cwic_codec.analyse(tiny, img))
    plain = build_cwic("tiny", use_binarizer=False, use_importance=False)
    binary = build_cwic("tiny", use_importance=False)
    rows = ablation_rows([("plain", plain, None), ("bin", binary, None), ("full", tiny, tables)],
                         [("a", img)], show_progress=False)
    assert [r["variant"] for r in rows] == ["plain", "bin", "full", "+ context coding"]
    assert rows[0]["bpp"] is None
    assert rows[1]["bpp"] == pytest.approx(tiny.n / 64)  # every bit of every 8x8 block
    bits, q = cwic_codec.analyse(tiny, img)
    kept = (q + 1) * (tiny.n // tiny.levels)
    assert rows[2]["bpp"] == pytest.approx((kept.sum() + q.size * 2) / img[..., 0].size)
    data = cwic_codec.compress_array(tiny, tables, 0, img)
    assert rows[3]["bpp"] == pytest.approx(8 * len(data) / img[..., 0].size)
    decoded = cwic_codec.decompress_array(tiny, tables, data)
    assert rows[3]["psnr"] == pytest.approx(psnr(img, decoded)) == rows[2]["psnr"]


def test_train_cwic_writes_slim_weights_that_load(tmp_path):
    # CWIC owns its metric trackers from __init__: the slim copy must skip them on both sides.
    from PIL import Image
    from tfcomp.training import train_cwic
    for i in range(2):
        Image.fromarray(photo(48, 48, i)).save(tmp_path / f"{i}.png")
    out = str(tmp_path / "w.weights.h5")
    tf.keras.utils.set_random_seed(9)
    train_cwic(data=str(tmp_path / "*.png"), run_dir=str(tmp_path / "run"), out=out,
               config="tiny", steps=2, steps_per_epoch=2, batch_size=2, patch_size=32,
               lr_schedule="1e-2", verbose=0)
    tf.keras.utils.set_random_seed(9)
    initial = build_cwic("tiny")  # the weights training started from
    trained = build_cwic("tiny")
    trained.load_weights(out)
    pairs = list(zip(initial.get_weights(), trained.get_weights()))
    assert all(np.all(np.isfinite(b)) for _, b in pairs)
    assert any(not np.array_equal(a, b) for a, b in pairs)  # the trained values were saved
    # Fine-tuning from the run's checkpoint (tracker values and all) under the strategy.
    checkpoint = str(tmp_path / "run" / "checkpoints" / "latest.weights.h5")
    out2 = str(tmp_path / "w2.weights.h5")
    history = train_cwic(data=str(tmp_path / "*.png"), run_dir=str(tmp_path / "run2"), out=out2,
                         config="tiny", steps=1, steps_per_epoch=1, batch_size=2, patch_size=32,
                         lr_schedule="1e-9", init_weights=checkpoint, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    tuned = build_cwic("tiny")
    tuned.load_weights(out2)
    for a, b in zip(trained.get_weights(), tuned.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)  # lr 1e-9: still the checkpoint's values


def test_context_families_round_trip_and_rank_as_expected():
    from tfcomp.cwic.coding import FAMILIES, decode_bits, encode_bits
    from tfcomp.cwic.contexts import compare_families
    rng = np.random.default_rng(1)
    h, w, n, levels = 10, 14, 8, 2

    def sample():
        # Bits constant over 2x2 blocks in space, independent across channels: only the
        # same-channel (spatial) context can predict them.
        coarse = rng.integers(0, 2, (h // 2, w // 2, n), dtype=np.uint8)
        bits = coarse.repeat(2, axis=0).repeat(2, axis=1)
        return bits, rng.integers(0, levels, (h, w))

    train, test = [sample() for _ in range(6)], [sample() for _ in range(2)]
    for family in FAMILIES:
        tables = ContextTables(n, levels, family=family)
        for b, q in train:
            tables.accumulate(b, q)
        cdf = tables.bit_cdf
        bits, q = test[0][0], np.full((h, w), levels - 1)  # every bit kept: every step taken
        decoded, steps = decode_bits(family, encode_bits(family, bits, q, cdf, n, levels), q, cdf,
                                     n, levels)
        kept = ((q + 1) * (n // levels))[:, :, None] > np.arange(n)
        np.testing.assert_array_equal(decoded * kept, bits * kept)
        assert steps == {"channel+spatial": n * (h + w - 1), "checkerboard": 2 * n}.get(family, n)
    rows = {r["family"]: r for r in compare_families(train, [(b, q, h * w) for b, q in test],
                                                     n, levels)}
    assert rows["channel+spatial"]["coded_bpp"] < 0.8 * rows["channel"]["coded_bpp"]
    assert rows["checkerboard"]["coded_bpp"] < 0.8 * rows["channel"]["coded_bpp"]
    assert rows["group"]["saving"] < 0.1  # random bits: nothing to gain without context
    with pytest.raises(ValueError, match="unknown context family"):
        ContextTables(n, levels, family="nope")


def test_shipped_rate_models_order_and_beat_jpeg_on_ms_ssim():
    """The shipped rate models on a photo they never saw: rate grows with the index, and each
    beats JPEG given at least the same bytes on MS-SSIM (the issue's target metric)."""
    from skimage import data as skdata
    from tfcomp.metrics import ms_ssim
    codec, jpeg = get_codec("cwic"), get_codec("jpeg")
    assert codec.installed_rates == [1, 2, 3], "cwic rate models are not installed"
    img = np.ascontiguousarray(skdata.astronaut()[:256, 128:384])
    sizes = []
    for rate in codec.installed_rates:
        data = codec.encode(img, rate)
        sizes.append(len(data))
        out = codec.decode(data)
        q = next(q for q in range(1, 101) if len(jpeg.encode(img, q)) >= len(data))
        ref = jpeg.decode(jpeg.encode(img, q))
        assert ms_ssim(img, out) > ms_ssim(img, ref), (rate, q)
    assert sizes == sorted(sizes) and len(set(sizes)) == 3
