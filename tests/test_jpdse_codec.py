"""The jpdse-bpg codec: container with BPG + side information, generator at the receiver."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from imagegen import natural_rgb
from tfcomp import models
from tfcomp.codecs import codec_for_bytes, get_codec
from tfcomp.errors import BitstreamError, InputError
from tfcomp.jpdse.model import build_generator
from tfcomp.jpdse.semantic import decode_side_info, instance_edges, semantic_input, unpack_jpdse


def scene(h=40, w=56):
    labels = np.full((h, w), 23, np.uint8)          # sky
    labels[h // 2:] = 7                             # road
    labels[h // 3:h - 5, 5:20] = 26                 # a car
    instances = labels.astype(np.int32)
    instances[h // 3:h - 5, 5:12] = 26000
    instances[h // 3:h - 5, 12:20] = 26001          # two cars side by side
    return natural_rgb(h, w, seed=4), labels, instances


@pytest.fixture
def generator(monkeypatch):
    tf.keras.utils.set_random_seed(5)
    g = build_generator("tiny")
    monkeypatch.setitem(models._LOADED, "jpdse-bpg-p3", g)
    # Lossless side information unless a test says otherwise (the shipped model's may differ).
    import dataclasses
    spec = dataclasses.replace(models.get_spec("jpdse-bpg-p3"), codec_settings={})
    monkeypatch.setitem(models._REGISTRY, "jpdse-bpg-p3", spec)
    return g


def test_round_trip_counts_every_byte(generator):
    rgb, labels, instances = scene()
    codec = get_codec("jpdse-bpg", labels=labels, instances=instances)
    data = codec.encode(rgb, 36)
    parts = unpack_jpdse(data)
    assert data[:4] == b"JPDS" and parts["qp"] == 36 and parts["model_id"] == 1
    assert len(data) == 27 + len(parts["side_info"]) + len(parts["base_stream"])
    from tfcomp.jpdse.codec import weights_id
    assert parts["version"] == 2 and parts["weights_id"] == weights_id(generator)
    lab, edges = decode_side_info(parts["side_info"], 40, 56)
    np.testing.assert_array_equal(lab, labels)
    np.testing.assert_array_equal(edges, instance_edges(instances))
    out = codec_for_bytes(data).decode(data)   # the header names the codec
    assert out.shape == rgb.shape and out.dtype == np.uint8
    # The receiver = generator on [semantics, decoded BPG], padded to its multiple and cropped.
    from tfcomp.codecs import bpg
    decoded = bpg.decode(parts["base_stream"]).astype(np.float32) / 255.0
    x = np.concatenate([semantic_input(labels, instances), decoded], -1)
    y = generator(x[None]).numpy()[0]  # 40x56 is a multiple of 8: no padding
    np.testing.assert_array_equal(out, np.clip(np.round(y * 255), 0, 255).astype(np.uint8))


def test_coarse_labels_from_the_model_spec(generator, monkeypatch):
    # A model trained on coarse labels makes the codec send them; the receiver decodes the
    # same semantics the training data used (receiver_semantics).
    import dataclasses
    from tfcomp.jpdse.semantic import receiver_semantics
    rgb, labels, instances = scene(48, 64)
    full = get_codec("jpdse-bpg", labels=labels, instances=instances).encode(rgb, 36)
    spec = dataclasses.replace(models.get_spec("jpdse-bpg-p3"), codec_settings={"label_scale": 4})
    monkeypatch.setitem(models._REGISTRY, "jpdse-bpg-p3", spec)
    coarse = get_codec("jpdse-bpg", labels=labels, instances=instances).encode(rgb, 36)
    side = unpack_jpdse(coarse)["side_info"]
    assert len(side) < len(unpack_jpdse(full)["side_info"])
    lab, edges = decode_side_info(side, 48, 64)
    want = receiver_semantics(labels, instances, 4)
    np.testing.assert_array_equal(lab, want[0])
    np.testing.assert_array_equal(edges, want[1])
    assert get_codec("jpdse-bpg").decode(coarse).shape == rgb.shape
    with pytest.raises(InputError, match="label scale"):
        get_codec("jpdse-bpg", labels=labels, label_scale=3).encode(rgb, 36)


def test_odd_sizes_are_padded_and_cropped(generator):
    rgb, labels, _ = scene(37, 45)
    data = get_codec("jpdse-bpg", labels=labels).encode(rgb, 40)
    assert get_codec("jpdse-bpg").decode(data).shape == (37, 45, 3)


def test_bad_inputs_and_files(generator, tmp_path):
    rgb, labels, _ = scene()
    with pytest.raises(InputError, match="label map"):
        get_codec("jpdse-bpg").encode(rgb, 36)
    with pytest.raises(InputError, match="labels are"):
        get_codec("jpdse-bpg", labels=labels[:-1]).encode(rgb, 36)
    with pytest.raises(InputError, match="no such file"):
        get_codec("jpdse-bpg", labels=str(tmp_path / "none.png")).encode(rgb, 36)
    data = get_codec("jpdse-bpg", labels=labels).encode(rgb, 36)
    for bad in (data[:30], data[:-3], data[:25] + bytes([data[25] ^ 1]) + data[26:]):
        with pytest.raises(BitstreamError):
            get_codec("jpdse-bpg").decode(bad)


def test_own_weights_are_named_in_the_file(generator, tmp_path, monkeypatch, capsys):
    """`--weights`: the file carries the generator's weights id; it decodes with those
    weights and is refused (clear error, exit 1, no output) with others; a version 1 file
    (no weights id) decodes with any weights of its model."""
    import dataclasses
    from tfcomp.cli import main
    from tfcomp.jpdse.codec import weights_id
    from tfcomp.jpdse.semantic import pack_jpdse
    spec = dataclasses.replace(models.get_spec("jpdse-bpg-p3"), codec_settings={},
                               builder_kwargs={"config": "tiny"})
    monkeypatch.setitem(models._REGISTRY, "jpdse-bpg-p3", spec)
    tf.keras.utils.set_random_seed(6)
    mine = build_generator("tiny")
    path = str(tmp_path / "mine.weights.h5")
    mine.save_weights(path)
    rgb, labels, _ = scene()
    data = get_codec("jpdse-bpg", labels=labels, weights=path).encode(rgb, 36)
    parts = unpack_jpdse(data)
    assert parts["weights_id"] == weights_id(mine) != weights_id(generator)
    (tmp_path / "x.jpdse").write_bytes(data)
    assert main(["decompress", str(tmp_path / "x.jpdse"), "-o", str(tmp_path / "y.png"),
                 "--weights", path]) == 0
    from tfcomp.codecs import bpg
    x = np.concatenate([semantic_input(labels, labels),
                        bpg.decode(parts["base_stream"]).astype(np.float32) / 255.0], -1)
    want = np.clip(np.round(mine(x[None]).numpy()[0] * 255), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "y.png")), want)
    capsys.readouterr()
    assert main(["decompress", str(tmp_path / "x.jpdse"), "-o", str(tmp_path / "z.png")]) == 1
    err = capsys.readouterr().err
    assert "other jpdse-bpg-p3 weights" in err and "--weights" in err and "Traceback" not in err
    assert not (tmp_path / "z.png").exists()
    old = pack_jpdse(parts["base_stream"], parts["side_info"], 40, 56, 36, 1)
    np.testing.assert_array_equal(get_codec("jpdse-bpg", weights=path).decode(old), want)
    assert get_codec("jpdse-bpg").decode(old).shape == rgb.shape


def test_cli_compress_decompress(generator, tmp_path, capsys):
    from tfcomp.cli import main
    rgb, labels, instances = scene()
    Image.fromarray(rgb).save(tmp_path / "x.png")
    Image.fromarray(labels).save(tmp_path / "labels.png")
    Image.fromarray(instances.astype(np.uint16)).save(tmp_path / "inst.png")
    assert main(["compress", str(tmp_path / "x.png"), "-o", str(tmp_path / "x.jpdse"), "--codec",
                 "jpdse-bpg", "--quality", "39", "--labels", str(tmp_path / "labels.png"),
                 "--instances", str(tmp_path / "inst.png")]) == 0
    assert main(["decompress", str(tmp_path / "x.jpdse"), "-o", str(tmp_path / "y.png")]) == 0
    assert Image.open(tmp_path / "y.png").size == (56, 40)
    capsys.readouterr()
    code = main(["compress", str(tmp_path / "x.png"), "-o", str(tmp_path / "z.jpdse"), "--codec",
                 "jpdse-bpg", "--quality", "39"])
    err = capsys.readouterr().err
    assert code != 0 and "--labels" in err and "Traceback" not in err
    assert not (tmp_path / "z.jpdse").exists()


def test_evaluate_jpdse_counts_side_info(generator):
    from tfcomp.evaluate import evaluate_jpdse
    rgb, labels, instances = scene()
    records = [{"name": "s", "rgb": rgb, "labels": labels, "instances": instances}]
    results, outputs = evaluate_jpdse(records, [36, 42], ["jpdse-bpg-p3"], show_progress=False)
    bpg_r, ours = results
    assert bpg_r["codec"] == "bpg" and ours["codec"] == "jpdse-bpg-p3"
    for pb, po in zip(bpg_r["points"], ours["points"]):
        # The same BPG stream plus header and side information: strictly more bits.
        assert po["bpp"] > pb["bpp"] + 8 * 19 / rgb[..., 0].size
    assert outputs[("jpdse-bpg-p3", "s", 36)].shape == rgb.shape


def test_evaluate_jpdse_with_a_candidates_weights(generator, tmp_path):
    """`weights={model: file}` evaluates that generator instead of the shipped one (the path
    training/eval_jpdse.py --weights takes), and the result says which file it was."""
    import dataclasses
    from tfcomp.evaluate import evaluate_jpdse
    spec = dataclasses.replace(models.get_spec("jpdse-bpg-p3"), codec_settings={},
                               builder_kwargs={"config": "tiny"})
    models._REGISTRY["jpdse-bpg-p3"] = spec  # restored by the fixture's monkeypatch
    tf.keras.utils.set_random_seed(7)
    mine = build_generator("tiny")
    path = str(tmp_path / "cand.weights.h5")
    mine.save_weights(path)
    rgb, labels, instances = scene()
    records = [{"name": "s", "rgb": rgb, "labels": labels, "instances": instances}]
    shipped, out_shipped = evaluate_jpdse(records, [36], ["jpdse-bpg-p3"], show_progress=False)
    cand, out_cand = evaluate_jpdse(records, [36], ["jpdse-bpg-p3"], show_progress=False,
                                    weights={"jpdse-bpg-p3": path})
    assert cand[1]["options"]["weights"] == path and "weights" not in shipped[1]["options"]
    want = get_codec("jpdse-bpg", labels=labels, instances=instances, weights=path)
    np.testing.assert_array_equal(out_cand[("jpdse-bpg-p3", "s", 36)],
                                  want.decode(want.encode(rgb, 36)))
    assert not np.array_equal(out_cand[("jpdse-bpg-p3", "s", 36)],
                              out_shipped[("jpdse-bpg-p3", "s", 36)])
    with pytest.raises(InputError, match="not evaluated"):
        evaluate_jpdse(records, [36], ["jpdse-bpg-p3"], weights={"jpdse-bpg-p2": path})
    with pytest.raises(InputError, match="existing .weights.h5"):
        evaluate_jpdse(records, [36], ["jpdse-bpg-p3"], weights={"jpdse-bpg-p3": "none.h5"})


@pytest.mark.parametrize("flags, message", [
    (["--weights", "jpdse-bpg-p3"], "MODEL=FILE"),
    (["--weights", "jpdse-bpg-p9=W", "--out", "o"], "not in --models"),
    (["--weights", "jpdse-bpg-p3=missing.weights.h5", "--out", "o"], "existing .weights.h5"),
    (["--weights", "jpdse-bpg-p3=W"], "needs --out"),
])
def test_eval_script_weights_flag_errors(flags, message, tmp_path, capsys):
    import importlib.util
    path = os.path.join(os.path.dirname(__file__), "..", "training", "eval_jpdse.py")
    spec = importlib.util.spec_from_file_location("eval_jpdse", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    weights = tmp_path / "g.weights.h5"
    weights.write_bytes(b"")
    flags = [str(weights) if f == "W" else f.replace("=W", f"={weights}") for f in flags]
    with pytest.raises(SystemExit) as e:
        script.main(["--data", str(tmp_path), "--models", "jpdse-bpg-p3"] + flags)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and "Traceback" not in err
    assert not os.path.exists("o")


SHARED_CITYSCAPES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                                 "cityscapes_sample")


@pytest.mark.parametrize("model", ["jpdse-bpg-p3", "jpdse-bpg-p2"])
def test_shipped_generators_beat_bpg_on_a_held_out_frame(model):
    """The shipped weights on the first held-out (lindau) frame at QP 39, side info counted."""
    if not os.path.isdir(SHARED_CITYSCAPES):
        pytest.skip("../shared/data/cityscapes_sample is not beside the checkout")
    from tfcomp.codecs import bpg
    from tfcomp.metrics import psnr
    from tfcomp.jpdse.semantic import cityscapes_frames, load_frame, split_frames
    assert models.is_available(model), f"{model} weights are not installed"
    _, held = split_frames(cityscapes_frames(SHARED_CITYSCAPES))
    rgb, labels, instances = load_frame(held[0], (1024, 512))
    plain = bpg.encode(rgb, 39)
    data = get_codec("jpdse-bpg", labels=labels, instances=instances, model=model).encode(rgb, 39)
    assert unpack_jpdse(data)["base_stream"] == plain
    assert len(data) < 1.06 * len(plain)          # labels at 1/16: a few per cent
    gain = psnr(rgb, codec_for_bytes(data).decode(data)) - psnr(rgb, bpg.decode(plain))
    assert gain > 0.15, gain
