"""JPD-SE semantic side information: data helpers, generator input, lossless side info,
the jpdse-bpg container.  Synthetic inputs only (no shared data)."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tfcomp.jpdse import semantic as sem
from tfcomp.errors import BitstreamError, InputError


# --------------------------------------------------------------------------- helpers


def blocky_labels(h, w, seed, block=5, high=34):
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, high, (h // block + 1, w // block + 1))
    return np.kron(coarse, np.ones((block, block), np.int64))[:h, :w].astype(np.uint8)


def blocky_instances(labels, seed, block=7):
    rng = np.random.default_rng(seed + 100)
    h, w = labels.shape
    k = np.kron(rng.integers(0, 3, (h // block + 1, w // block + 1)),
                np.ones((block, block), np.int64))[:h, :w]
    thing = labels >= 24
    return np.where(thing, labels.astype(np.int32) * 1000 + k, labels).astype(np.int32)


def two_rectangles():
    inst = np.zeros((8, 10), np.int32)
    inst[1:4, 1:5] = 26001   # rows 1..3, cols 1..4
    inst[4:7, 5:9] = 26002   # rows 4..6, cols 5..8 (touches the first one diagonally)
    return inst


def expected_two_rectangles_edges():
    e = np.zeros((8, 10), np.float32)
    # first rectangle: its border and the ring of background pixels around its sides
    e[1:4, 1] = e[1:4, 4] = 1
    e[1, 1:5] = e[3, 1:5] = 1
    e[1:4, 0] = e[1:4, 5] = 1
    e[0, 1:5] = e[4, 1:5] = 1
    # second rectangle
    e[4:7, 5] = e[4:7, 8] = 1
    e[4, 5:9] = e[6, 5:9] = 1
    e[4:7, 4] = e[4:7, 9] = 1
    e[3, 5:9] = e[7, 5:9] = 1
    return e


def assert_damage_is_caught(data, h, w):
    """Every truncation is a BitstreamError; every byte flip is one or decodes to [h, w]."""
    for cut in range(len(data)):
        with pytest.raises(BitstreamError):
            sem.decode_side_info(data[:cut], h, w)
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x5A
        try:
            lab2, e2 = sem.decode_side_info(bytes(bad), h, w)
        except BitstreamError:
            continue
        assert lab2.shape == (h, w) and e2.shape == (h, w)  # never a crash


# --------------------------------------------------------------------------- generator input


def test_one_hot_shape_values_and_out_of_range():
    labels = np.array([[0, 1, 34], [35, 200, 7]], np.uint8)
    oh = sem.one_hot(labels)
    assert oh.shape == (2, 3, 35) and oh.dtype == np.float32
    assert np.array_equal(oh.sum(-1), np.ones((2, 3)))
    assert np.array_equal(oh.argmax(-1), [[0, 1, 34], [0, 0, 7]])
    assert set(np.unique(oh)) == {0.0, 1.0}
    assert sem.one_hot(np.array([[-3, 2]]), num_labels=4).argmax(-1).tolist() == [[0, 2]]


def test_instance_edges_two_rectangles_exact():
    e = sem.instance_edges(two_rectangles())
    assert e.dtype == np.float32 and e.shape == (8, 10)
    np.testing.assert_array_equal(e, expected_two_rectangles_edges())
    assert not sem.instance_edges(np.full((4, 5), 7)).any()
    np.testing.assert_array_equal(sem.instance_edges(np.array([[1, 2]])), [[1, 1]])


def test_semantic_input_numpy():
    labels = blocky_labels(12, 17, 0, high=40)
    inst = blocky_instances(labels, 0)
    x = sem.semantic_input(labels, inst)
    assert x.shape == (12, 17, sem.SEMANTIC_CHANNELS) and x.dtype == np.float32
    np.testing.assert_array_equal(x[..., :35], sem.one_hot(labels))
    np.testing.assert_array_equal(x[..., 35], sem.instance_edges(inst))
    np.testing.assert_array_equal(sem.semantic_input(labels, edges=sem.instance_edges(inst)), x)
    with pytest.raises(ValueError):
        sem.semantic_input(labels)


def test_tf_matches_numpy():
    import tensorflow as tf

    labels = blocky_labels(13, 19, 1, high=60)
    inst = blocky_instances(labels, 1)
    np.testing.assert_array_equal(sem.one_hot_tf(tf.constant(labels)).numpy(),
                                  sem.one_hot(labels))
    np.testing.assert_array_equal(sem.instance_edges_tf(tf.constant(two_rectangles())).numpy(),
                                  expected_two_rectangles_edges())
    np.testing.assert_array_equal(sem.semantic_input_tf(labels, inst).numpy(),
                                  sem.semantic_input(labels, inst))
    # batched and inside tf.data (graph mode)
    ds = tf.data.Dataset.from_tensor_slices((labels[None], inst[None])).map(
        lambda lab, ins: sem.semantic_input_tf(lab, ins))
    (x,) = list(ds.as_numpy_iterator())
    np.testing.assert_array_equal(x, sem.semantic_input(labels, inst))
    batch = np.stack([inst, inst[::-1]])
    np.testing.assert_array_equal(sem.instance_edges_tf(batch).numpy(),
                                  sem.instance_edges(batch))


# --------------------------------------------------------------------------- side information


@pytest.mark.parametrize("h,w", [(1, 1), (1, 9), (5, 1), (7, 13), (33, 65), (64, 128)])
def test_side_info_roundtrip_exact(h, w):
    for seed in range(3):
        labels = blocky_labels(h, w, seed + h * w, high=40 if seed else 255)
        inst = blocky_instances(labels, seed)
        data = sem.encode_side_info(labels, inst)
        lab2, edges2 = sem.decode_side_info(data, h, w)
        assert lab2.dtype == np.uint8 and edges2.dtype == np.float32
        np.testing.assert_array_equal(lab2, labels)
        np.testing.assert_array_equal(edges2, sem.instance_edges(inst))


def test_side_info_accepts_edge_maps_even_inconsistent_ones():
    rng = np.random.default_rng(5)
    labels = blocky_labels(21, 30, 5)
    edges = (rng.random((21, 30)) < 0.3)  # unrelated to the labels
    for e in (edges, edges.astype(np.float32)):
        lab2, e2 = sem.decode_side_info(sem.encode_side_info(labels, e), 21, 30)
        np.testing.assert_array_equal(lab2, labels)
        np.testing.assert_array_equal(e2, edges.astype(np.float32))
    with pytest.raises(InputError):
        sem.encode_side_info(labels, edges.astype(np.float32) * 0.5)
    with pytest.raises(InputError):
        sem.encode_side_info(labels, edges[:, :-1])
    with pytest.raises(InputError):
        sem.encode_side_info(labels.astype(np.int32) + 250, edges)


def test_side_info_consistent_instances_are_cheap():
    labels = blocky_labels(64, 128, 3, block=16)
    inst = blocky_instances(labels, 3, block=16)
    with_inst = len(sem.encode_side_info(labels, inst))
    no_inst = len(sem.encode_side_info(labels, labels.astype(np.int32)))
    assert no_inst <= with_inst < 2 * no_inst + 200


def test_side_info_corruption_is_bitstream_error():
    labels = blocky_labels(20, 24, 9)
    inst = blocky_instances(labels, 9)
    data = sem.encode_side_info(labels, inst)
    with pytest.raises(BitstreamError):
        sem.decode_side_info(data, 20, 25)       # wrong size -> label stream too short/long
    with pytest.raises(BitstreamError):
        sem.decode_side_info(data, 0, 24)
    with pytest.raises(BitstreamError):
        sem.decode_side_info(b"\x07" + data[1:], 20, 24)   # unknown method
    assert_damage_is_caught(data, 20, 24)


def test_coarse_labels_block_mode_ties_and_borders():
    lab = np.array([[1, 1, 2, 2, 9],
                    [1, 3, 2, 5, 9],
                    [4, 4, 6, 7, 8]], np.uint8)
    # 2x2 blocks: {1,1,1,3} -> 1; {2,2,2,5} -> 2; border {9,9} -> 9; bottom row cut:
    # {4,4} -> 4; {6,7} tie -> 6 (smaller id); {8} -> 8.
    np.testing.assert_array_equal(sem.coarse_labels(lab, 2), [[1, 2, 9], [4, 6, 8]])
    assert sem.coarse_labels(lab, 16).shape == (1, 1)
    assert sem.coarse_labels(lab, 16)[0, 0] == 1  # 1 occurs most often (3 times; 2 too: tie)


@pytest.mark.parametrize("scale", [2, 4, 8, 16])
@pytest.mark.parametrize("h,w", [(1, 1), (7, 13), (33, 65), (64, 128)])
def test_coarse_side_info_decodes_to_receiver_semantics(scale, h, w):
    labels = blocky_labels(h, w, h + w + scale, block=6)
    inst = blocky_instances(labels, scale)
    data = sem.encode_side_info(labels, inst, scale=scale)
    lab2, e2 = sem.decode_side_info(data, h, w)
    want_lab, want_e = sem.receiver_semantics(labels, inst, scale)
    np.testing.assert_array_equal(lab2, want_lab)
    np.testing.assert_array_equal(e2, want_e)
    assert e2.dtype == np.float32 and lab2.dtype == np.uint8
    # the receiver's labels are the block modes, repeated
    small = sem.coarse_labels(labels, scale)
    np.testing.assert_array_equal(lab2[::scale, ::scale], small)
    np.testing.assert_array_equal(e2, sem.instance_edges(lab2.astype(np.int32)))


def test_coarse_side_info_is_smaller_and_scale_1_is_lossless():
    y, x = np.mgrid[0:128, 0:256]  # smooth regions with curved borders, like a street scene
    field = np.sin(x / 9) + np.cos(y / 13) + np.sin((x + y) / 17)
    labels = (np.digitize(field, [-1.5, -0.5, 0.5, 1.5]) * 5).astype(np.uint8)
    inst = blocky_instances(labels, 1, block=16)
    sizes = [len(sem.encode_side_info(labels, inst, scale=s)) for s in (1, 2, 4, 8)]
    assert sizes == sorted(sizes, reverse=True) and sizes[2] < sizes[0] / 3
    lab, e = sem.receiver_semantics(labels, inst, 1)
    np.testing.assert_array_equal(lab, labels)
    np.testing.assert_array_equal(e, sem.instance_edges(inst))
    with pytest.raises(InputError, match="label scale"):
        sem.encode_side_info(labels, inst, scale=3)
    with pytest.raises(InputError, match="label scale"):
        sem.receiver_semantics(labels, inst, 5)


def test_coarse_side_info_corruption_is_bitstream_error():
    labels = blocky_labels(40, 48, 2)
    data = sem.encode_side_info(labels, None, scale=4)
    with pytest.raises(BitstreamError, match="label scale"):
        sem.decode_side_info(data[:5] + b"\x03" + data[6:], 40, 48)
    with pytest.raises(BitstreamError):
        sem.decode_side_info(data, 40, 49)  # the coarse map is 12 wide, not 13
    assert_damage_is_caught(data, 40, 48)


def test_varint_roundtrip_and_limits():
    vals = np.array([0, 1, 127, 128, 16383, 16384, 2 ** 26, 2 ** 34], np.int64)
    np.testing.assert_array_equal(sem._varint_decode(sem._varint_encode(vals)), vals)
    with pytest.raises(BitstreamError):
        sem._varint_decode(b"\x80")
    with pytest.raises(BitstreamError):
        sem._varint_decode(b"\x80" * 6 + b"\x01")


# --------------------------------------------------------------------------- container


def small_file(side=b"side-info!", base=b"BPG\xfb-stream-bytes", weights_id=None):
    return sem.pack_jpdse(base, side, 37, 53, 36, 3, weights_id)


def test_container_roundtrip():
    labels = blocky_labels(37, 53, 2)
    side = sem.encode_side_info(labels, blocky_instances(labels, 2))
    base = b"\x42\x50\x47\xfb" + bytes(range(40))
    data = sem.pack_jpdse(base, side, 37, 53, 42, 7, b"8 bytes!")
    assert data[:4] == sem.MAGIC and data[4] == sem.VERSION == 2
    got = sem.unpack_jpdse(data)
    assert got == {"base_stream": base, "side_info": side, "height": 37, "width": 53, "qp": 42,
                   "model_id": 7, "weights_id": b"8 bytes!", "version": 2}
    assert sem.unpack_jpdse(bytearray(data)) == got
    # Version 1 (no weights id, 8 bytes shorter) is still written on request and read.
    old = sem.pack_jpdse(base, side, 37, 53, 42, 7)
    assert old[4] == 1 and len(old) == len(data) - 8
    assert sem.unpack_jpdse(old) == dict(got, weights_id=None, version=1)
    with pytest.raises(InputError, match="8 bytes"):
        sem.pack_jpdse(base, side, 37, 53, 42, 7, b"short")
    lab2, _ = sem.decode_side_info(got["side_info"], got["height"], got["width"])
    np.testing.assert_array_equal(lab2, labels)
    for h, w in [(1, 1), (sem.MAX_SIDE, sem.MAX_SIDE)]:
        assert sem.unpack_jpdse(sem.pack_jpdse(b"x", b"", h, w, 0, 255))["height"] == h


def test_container_pack_rejects_bad_arguments():
    for args in [(0, 5, 30, 0), (5, sem.MAX_SIDE + 1, 30, 0), (5, 5, 52, 0), (5, 5, 30, 256),
                 (5, 5, -1, 0)]:
        with pytest.raises(InputError):
            sem.pack_jpdse(b"bpg", b"side", *args)
    with pytest.raises(InputError):
        sem.pack_jpdse(b"", b"side", 5, 5, 30, 0)


@pytest.mark.parametrize("weights_id", [None, b"weights!"])
def test_container_truncation_at_every_prefix(weights_id):
    data = small_file(weights_id=weights_id)
    for cut in range(len(data)):
        with pytest.raises(BitstreamError):
            sem.unpack_jpdse(data[:cut])


@pytest.mark.parametrize("weights_id", [None, b"weights!"])
def test_container_any_single_byte_flip(weights_id):
    data = small_file(weights_id=weights_id)
    for i in range(len(data)):
        for mask in (0x01, 0x80, 0xFF):
            bad = bytearray(data)
            bad[i] ^= mask
            with pytest.raises(BitstreamError):
                sem.unpack_jpdse(bytes(bad))


def _forge(height=37, width=53, qp=36, side_len=None, version=1, body=b"side-info!BPG"):
    side_len = 10 if side_len is None else side_len
    prefix = struct.pack(">4sBBBHHI", b"JPDS", version, 3, qp, height, width, side_len)
    crc = zlib.crc32(body, zlib.crc32(prefix))
    return prefix + struct.pack(">I", crc) + body


def test_container_forged_headers():
    assert sem.unpack_jpdse(_forge())["side_info"] == b"side-info!"
    cases = {
        "size": _forge(height=60000),
        "size2": _forge(width=sem.MAX_SIDE + 1),
        "zero": _forge(height=0),
        "qp": _forge(qp=200),
        "version": _forge(version=3),
        "side_len": _forge(side_len=0xFFFFFFF0),
        "no bpg": _forge(side_len=13),
    }
    messages = {}
    for name, data in cases.items():
        with pytest.raises(BitstreamError) as exc:
            sem.unpack_jpdse(data)
        messages[name] = str(exc.value)
    assert "8192" in messages["size"] and "version 3" in messages["version"]
    assert "truncated" in messages["side_len"]
    with pytest.raises(BitstreamError, match="magic"):
        sem.unpack_jpdse(b"CWIC" + _forge()[4:])
    with pytest.raises(BitstreamError):
        sem.unpack_jpdse(b"")
    with pytest.raises(TypeError):
        sem.unpack_jpdse("JPDS")


# --------------------------------------------------------------------------- data


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def fake_cityscapes(root, cities=("frankfurt", "lindau", "munster"), per_city=3):
    rng = np.random.default_rng(0)
    for city in cities:
        for i in range(per_city):
            name = f"{city}_{i:06d}_000019"
            _png(root / "leftImg8bit" / "val" / city / f"{name}_leftImg8bit.png",
                 rng.integers(0, 256, (8, 16, 3), dtype=np.uint8))
            gt = root / "gtFine" / "val" / city
            lab = blocky_labels(4, 8, i, block=2)
            _png(gt / f"{name}_gtFine_labelIds.png", lab)
            _png(gt / f"{name}_gtFine_instanceIds.png",
                 blocky_instances(lab, i, block=2).astype(np.uint16))
            if i == 0:
                _png(gt / f"{name}_gtFine_labelIds_fullres.png",
                     np.kron(lab, np.ones((2, 2), np.uint8)))
    # a photo without annotations is skipped
    _png(root / "leftImg8bit" / "val" / "lindau" / "lindau_999999_000019_leftImg8bit.png",
         np.zeros((8, 16, 3), np.uint8))


def test_frames_and_split_deterministic_disjoint(tmp_path):
    fake_cityscapes(tmp_path)
    frames = sem.cityscapes_frames(tmp_path)
    assert len(frames) == 9
    assert [f["name"] for f in frames] == sorted(f["name"] for f in frames)
    assert {"name", "image", "label", "label_fullres", "instance"} <= set(frames[0])
    assert sum(f["label_fullres"] is not None for f in frames) == 3
    train, held = sem.split_frames(frames)
    assert [f["name"] for f in held] == [f"lindau_{i:06d}_000019" for i in range(3)]
    assert len(train) == 6 and not {f["name"] for f in train} & {f["name"] for f in held}
    train2, held2 = sem.split_frames(list(reversed(sem.cityscapes_frames(tmp_path))))
    assert sorted(f["name"] for f in train2) == sorted(f["name"] for f in train)
    assert sorted(f["name"] for f in held2) == sorted(f["name"] for f in held)
    with pytest.raises(InputError):
        sem.split_frames(train)
    with pytest.raises(InputError):
        sem.cityscapes_frames(tmp_path / "leftImg8bit")
    with pytest.raises(InputError):
        sem.cityscapes_frames(tmp_path / "missing")


def test_load_frame(tmp_path):
    fake_cityscapes(tmp_path, cities=("lindau",), per_city=2)
    frames = sem.cityscapes_frames(tmp_path)
    f0, f1 = frames
    assert f0["label_fullres"] is not None and f1["label_fullres"] is None
    rgb, lab, inst = sem.load_frame(f1, size=(8, 4))
    assert rgb.shape == (4, 8, 3) and rgb.dtype == np.uint8
    assert lab.shape == (4, 8) and lab.dtype == np.uint8
    assert inst.shape == (4, 8) and inst.dtype == np.int32
    src_lab = np.array(Image.open(f1["label"]))
    np.testing.assert_array_equal(lab, src_lab)                 # same size: untouched
    np.testing.assert_array_equal(inst, sem.consistent_instances(
        src_lab, np.array(Image.open(f1["instance"])).astype(np.int32)))
    # full size: labels from labelIds_fullres, instances upsampled nearest
    rgb, lab, inst = sem.load_frame(f0, size=None)
    assert rgb.shape == (8, 16, 3)
    np.testing.assert_array_equal(lab, np.array(Image.open(f0["label_fullres"])))
    # every label boundary is an instance edge, so the side info's edge residual is sparse
    le, ie = sem.instance_edges(lab), sem.instance_edges(inst)
    assert np.all(ie >= le)
    rgb, lab, inst = sem.load_frame(f0, size=(4, 2))
    np.testing.assert_array_equal(lab, np.array(Image.open(f0["label_fullres"]))[2::4, 2::4])


def test_consistent_instances():
    labels = np.array([[26, 26, 7], [26, 24, 7]], np.uint8)
    inst = np.array([[26001, 24000, 7], [7, 24003, 26001]], np.int32)
    np.testing.assert_array_equal(sem.consistent_instances(labels, inst),
                                  [[26001, 26, 7], [26, 24003, 7]])


def test_side_info_report_on_fake_frames(tmp_path):
    fake_cityscapes(tmp_path, cities=("lindau",), per_city=2)
    rep = sem.side_info_report(sem.cityscapes_frames(tmp_path), size=(8, 4))
    chosen = rep["side-info (chosen)"]
    assert len(chosen["bytes"]) == 2
    assert chosen["bpp"] == pytest.approx(chosen["bytes_per_frame"] * 8 / 32)
    assert {"labels png", "labels lzma-raw", "edges packbits+lzma-raw",
            "instance-ids png16", "edge-residual gaps+lzma-raw"} <= set(rep)
