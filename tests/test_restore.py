"""Applying restorers to whole images: tiling, channel handling, evaluation, shipped weights."""

import numpy as np
import pytest
import tensorflow as tf

from tfcomp import metrics, models
from tfcomp.codecs import get_codec
from tfcomp.evaluate import evaluate_restorer
from tfcomp.restorer.model import build_restorer, receptive_radius
from tfcomp.restorer.restore import restore_array


def photo(h=96, w=80, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([120 + 70 * np.sin(x / 5.0 + c) * np.cos(y / 8.0 + c) for c in range(3)], -1)
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny_model():
    tf.keras.utils.set_random_seed(3)
    return build_restorer(widths=(8, 8, 8, 8))


def test_tiled_equals_whole_image(tiny_model):
    img = photo(70, 53)
    whole = restore_array(tiny_model, img, tile=4096)
    tiled = restore_array(tiny_model, img, tile=16, margin=receptive_radius())
    np.testing.assert_array_equal(whole, tiled)


def test_too_small_margin_shows_seams(tiny_model):
    img = photo(70, 53)
    assert not np.array_equal(restore_array(tiny_model, img, tile=16, margin=0),
                              restore_array(tiny_model, img, tile=4096))


def test_gray_and_shapes(tiny_model):
    gray = photo()[:, :, 0]
    out = restore_array(tiny_model, gray)
    assert out.shape == gray.shape and out.dtype == np.uint8
    gray_model = build_restorer(channels=1, widths=(4, 4, 4, 4))
    assert restore_array(gray_model, photo()).shape == (96, 80, 3)


def test_evaluate_restorer_json(tiny_model, tmp_path):
    items = [("a", photo(seed=1)), ("b", photo(seed=2))]
    result = evaluate_restorer("tiny", items, qualities=(10, 40), model=tiny_model,
                               out_dir=str(tmp_path), show_progress=False)
    assert [p["quality"] for p in result["points"]] == [10, 40]
    p10, p40 = result["points"]
    assert p40["bpp"] > p10["bpp"] > 0 and p40["jpeg"]["psnr"] > p10["jpeg"]["psnr"]
    for p in result["points"]:
        assert set(p["jpeg"]) == set(p["restored"]) == {"psnr", "ssim", "psnr_b"}
        assert p["psnr_gain"] == pytest.approx(p["restored"]["psnr"] - p["jpeg"]["psnr"])
        assert len(p["images"]) == 2
    assert (tmp_path / "a_q10.jpg").exists() and (tmp_path / "a_q10_restored.png").exists()
    gray = evaluate_restorer("tiny", items, qualities=(20,), gray=True, model=tiny_model,
                             show_progress=False)
    assert gray["protocol"] == "gray-Y"


@pytest.mark.parametrize("name", models.model_names("restorer"))
def test_shipped_restorer_removes_artifacts(name):
    """The shipped weights load by name and improve a real photo at the quality they target."""
    from skimage import data
    spec = models.get_spec(name)
    assert spec.weights_present, f"{name}: shipped weights missing at {spec.weights_path}"
    img = data.astronaut()[100:356, 150:406]  # a photo that ships inside scikit-image
    jpeg = get_codec("jpeg")
    decoded = jpeg.decode(jpeg.encode(img, spec.quality_min))
    restored = restore_array(models.load_model(name), decoded)
    gain = metrics.psnr(img, restored) - metrics.psnr(img, decoded)
    assert gain > 0.3, f"{name}: PSNR gain {gain:.2f} dB at q{spec.quality_min}"


def test_tiled_gated_model_equals_whole_image():
    """A quality-gated restorer computes its gate on the whole image, so tiles stay exact."""
    tf.keras.utils.set_random_seed(5)
    model = build_restorer(widths=(8, 8, 8, 8), quality_gate=True)
    dense = model.get_layer("gate_dense2")  # a gate that really depends on the image
    dense.set_weights([np.random.default_rng(0).normal(0, 1, dense.kernel.shape).astype(np.float32),
                       np.zeros(3, np.float32)])
    img = photo(70, 53)
    whole = restore_array(model, img, tile=4096)
    tiled = restore_array(model, img, tile=16, margin=receptive_radius())
    assert np.abs(whole.astype(int) - tiled).max() <= 1  # float rounding at .5 only
    assert np.mean(whole != tiled) < 0.01


def test_gate_statistics_per_quality(tiny_model):
    from tfcomp.errors import InputError
    from tfcomp.evaluate import gate_statistics
    model = build_restorer(widths=(4, 4, 4, 4), quality_gate=True)
    stats = gate_statistics(model, [("a", photo(40, 48)), ("b", photo(32, 32, seed=1))],
                            qualities=(10, 90), show_progress=False)
    assert sorted(stats) == [10, 90]
    for s in stats.values():  # the initial gate: sigmoid(4) for every image and channel
        np.testing.assert_allclose(s["mean"], [1 / (1 + np.exp(-4.0))] * 3, rtol=1e-5)
        assert len(s["min"]) == len(s["max"]) == 3
    with pytest.raises(InputError, match="no quality gate"):
        gate_statistics(tiny_model, [("a", photo())], show_progress=False)


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_shipped_blind_restorer_helps_at_high_quality_too(name):
    """Issue #2 item 9(b): the quality-blind model must not hurt lightly compressed images
    (the ungated release lost 0.3-0.7 dB at q90; the gate fixes that)."""
    from skimage import data
    img = getattr(data, name)()[:256, :256]
    model = models.load_model("restorer-blind")
    jpeg = get_codec("jpeg")
    for q in (50, 90):
        decoded = jpeg.decode(jpeg.encode(img, q))
        gain = metrics.psnr(img, restore_array(model, decoded)) - metrics.psnr(img, decoded)
        assert gain > 0.1, f"{name} q{q}: PSNR gain {gain:.2f} dB"


def test_restore_command_with_own_weights(tmp_path, capsys):
    """`tfcomp restore --weights`: a checkpoint of the model's architecture replaces the
    shipped file; a file of another architecture is a one-line error."""
    from PIL import Image
    from tfcomp.cli import main
    tf.keras.utils.set_random_seed(5)
    own = build_restorer(channels=3)  # restorer-q10's architecture, random weights
    weights = str(tmp_path / "own.weights.h5")
    own.save_weights(weights)
    jpg = tmp_path / "x.jpg"
    jpg.write_bytes(get_codec("jpeg").encode(photo(48, 40, seed=2), 20))
    out = tmp_path / "y.png"
    assert main(["restore", str(jpg), "-o", str(out), "--model", "restorer-q10",
                 "--weights", weights]) == 0
    decoded = get_codec("jpeg").decode(jpg.read_bytes())
    np.testing.assert_array_equal(np.asarray(Image.open(out)), restore_array(own, decoded))
    capsys.readouterr()
    tiny = str(tmp_path / "tiny.weights.h5")
    build_restorer(widths=(8, 8, 8, 8)).save_weights(tiny)
    assert main(["restore", str(jpg), "-o", str(tmp_path / "z.png"), "--model", "restorer-q10",
                 "--weights", tiny]) == 1
    err = capsys.readouterr().err
    assert "does not fit" in err and "Traceback" not in err
    assert not (tmp_path / "z.png").exists()


def test_jpeg_quality_estimate_from_tables():
    """Pillow's (IJG) tables give their quality back exactly; other tables the nearest one."""
    import io
    from PIL import Image
    from tfcomp.restorer.quality import estimate_quality, ijg_luma_tables
    for q in (1, 7, 10, 50, 90, 95, 100):
        buf = io.BytesIO()
        Image.fromarray(photo(24, 24)).save(buf, "JPEG", quality=q)
        buf.seek(0)
        assert estimate_quality(Image.open(buf).quantization[0]) == (q, True)
    near = [v + 1 for v in ijg_luma_tables()[50]]
    q, exact = estimate_quality(near)
    assert not exact and 45 <= q <= 50
    assert estimate_quality([1] * 10) is None


def test_restore_notes_a_jpeg_outside_the_trained_range(tmp_path, capsys):
    """`tfcomp restore` reads a JPEG input's tables and says when the restorer was not trained
    for that quality (and which one was); it still restores. PNG inputs get no note."""
    from PIL import Image
    from tfcomp.cli import main
    jpeg = get_codec("jpeg")
    for q, expect in ((10, None), (50, "quality 50; restorer-q10 was trained for q10")):
        src = tmp_path / f"q{q}.jpg"
        src.write_bytes(jpeg.encode(photo(48, 40, seed=4), q))
        out = tmp_path / f"q{q}.png"
        assert main(["restore", str(src), "-o", str(out), "--model", "restorer-q10"]) == 0
        err = capsys.readouterr().err
        assert out.exists()
        if expect is None:
            assert "note:" not in err
        else:
            assert expect in err and "try restorer-blind" in err
    png = tmp_path / "p.png"
    Image.fromarray(jpeg.decode(jpeg.encode(photo(48, 40), 50))).save(png)
    assert main(["restore", str(png), "-o", str(tmp_path / "p2.png"), "--model", "restorer-q10"]) == 0
    assert "note:" not in capsys.readouterr().err
