"""Semantic side information for the JPD-SE codec ``jpdse-bpg`` (methods.md section 4).

The receiver's generator sees [one-hot label map (35 Cityscapes labelIds), instance-edge
map (1 channel), decoded BPG image (3 channels)].  The label map and the edge map are
*sent* (losslessly) next to the BPG stream and their bytes count in the bpp.

Data (Cityscapes layout ``root/leftImg8bit/<split>/<city>/*`` and ``root/gtFine/...``):

* :func:`cityscapes_frames` finds the frames, :func:`split_frames` splits them,
  :func:`load_frame` loads one at a working size (default 512x256).
* Split: every frame of the city :data:`HELDOUT_CITY` (``"lindau"``) is held out (the
  evaluation set); all other cities train.  On the shared 30-frame sample that is
  20 training frames (frankfurt, munster) and 10 held-out frames (lindau).  Holding out
  a whole city keeps scenes, streets and lighting of the evaluation frames out of
  training; the split depends on nothing but the city names.
* Labels come from ``labelIds_fullres`` (2048x1024, rendered from the polygons, same grid
  as the photo) when present, else from ``labelIds``; instance ids from ``instanceIds``
  (1024x512).  Both are resized nearest-neighbour (pixel centres).  The two annotations
  disagree on ~2% of the pixels at 512x256, so by default :func:`load_frame` makes the
  instance map consistent with the label map: a pixel keeps its thing-instance id
  (``label * 1000 + k``) only when that id's class equals the pixel's label, otherwise it
  gets the label id (the Cityscapes convention for stuff and crowd regions).  Then every
  label boundary is also an instance edge, which is what makes the edge map cheap to send
  (below).

Generator input: :func:`one_hot`, :func:`instance_edges` (pix2pixHD ``get_edges``: a pixel
is 1 where it differs from its right/left/bottom/top neighbour, both sides of a boundary
marked), :func:`semantic_input` ([H, W, 36] float32) in numpy, and the same in TensorFlow
for ``tf.data`` (:func:`one_hot_tf`, :func:`instance_edges_tf`, :func:`semantic_input_tf`).

Side information (:func:`encode_side_info` / :func:`decode_side_info`)
----------------------------------------------------------------------------------------
The generator needs the labels and the *edge map*, not the instance ids, so the edge map
is what is sent.  Edges are coded as a residual against the edges of the label map
(which the receiver can compute): ``residual = edges XOR instance_edges(labels)``; with a
consistent instance map (see above) the residual holds only boundaries between two
instances of the same class (~520 of 131072 pixels per frame at 512x256).

Measured with :func:`side_info_report` on the 30 shared Cityscapes frames (mean bytes per
frame, bpp = bits / pixels of the working size; "lzma" = raw LZMA2, preset 9e, no xz
container; "xz" = the same with the xz container; PNG = Pillow ``optimize=True``)::

  coder                                   512x256: bytes    bpp   1024x512: bytes    bpp
  labels    png (8-bit gray)                       3402   0.2077            7107   0.1084
  labels    zlib -9                                2952   0.1802            6630   0.1012
  labels    bz2 -9                                 3585   0.2188            7140   0.1089
  labels    xz -9e                                 2165   0.1321            4337   0.0662
  labels    lzma raw (lc0 lp0 pb0)      *          2064   0.1260            4190   0.0639
  labels    run-length + lzma raw                  2372   0.1448            4473   0.0683
  edges     png 1-bit                              3140   0.1917            6946   0.1060
  edges     packbits + zlib -9                     2847   0.1737            6429   0.0981
  edges     packbits + bz2 -9                      3170   0.1935            6874   0.1049
  edges     packbits + lzma raw                    2260   0.1379            4629   0.0706
  inst. ids uint16 png                             4760   0.2905            9697   0.1480
  inst. ids uint16 lzma raw                        2689   0.1641            5272   0.0804
  residual  packbits + lzma raw                     394   0.0241             610   0.0093
  residual  gap varints + zlib -9                   385   0.0235             603   0.0092
  residual  gap varints + lzma raw      *           350   0.0214             546   0.0083
  side info (chosen: both *, as stored)            2420   0.1477            4741   0.0723

(instance-id rows are for comparison: ids per pixel cost more than the edge map, and the
edge residual is 6-8x smaller still.  Residual rows use the consistent instance map of
:func:`load_frame`; with the raw, inconsistent one the residual costs 2201 bytes and the
stored side info 4271 bytes per frame at 512x256.)  A context model of the labels conditioned on the
row above (empirical entropy, table cost ignored) would reach ~1830 bytes at 512x256,
only ~11% below lzma, so the general-purpose coder was kept.

Side-info layout: ``method u8 (1) | label_len u32 | labels: raw LZMA2 of the H*W label
bytes | edges: raw LZMA2 of the varint gaps between the set pixels of the edge residual
in raster order``.  H and W come from the container.  Decoding is bounded (at most H*W
bytes are ever inflated per stream) and every inconsistency raises
:class:`~tfcomp.errors.BitstreamError`.

Container (:func:`pack_jpdse` / :func:`unpack_jpdse`), big-endian::

  magic b"JPDS" | version u8 (1) | model id u8 | qp u8 | height u16 | width u16 |
  side-info length u32 | crc32 u32 | side info | BPG stream

The crc32 covers the 15 header bytes before it *and* the body (side info + BPG stream),
so a change of any single byte of the file (including model id, qp or the size) is
detected.  Sizes 1..:data:`MAX_SIDE` per side, qp 0..:data:`MAX_QP`.
"""

import glob
import io
import lzma
import os
import struct
import zlib

import numpy as np
from PIL import Image

from ..errors import BitstreamError, InputError

__all__ = [
    "NUM_LABELS", "SEMANTIC_CHANNELS", "HELDOUT_CITY", "DEFAULT_SIZE",
    "cityscapes_frames", "split_frames", "load_frame", "consistent_instances",
    "one_hot", "instance_edges", "semantic_input",
    "one_hot_tf", "instance_edges_tf", "semantic_input_tf",
    "LABEL_SCALES", "coarse_labels", "receiver_semantics",
    "encode_side_info", "decode_side_info", "side_info_report",
    "MAGIC", "VERSION", "MAX_SIDE", "MAX_QP", "pack_jpdse", "unpack_jpdse",
]

#: Cityscapes labelIds 0..33 plus license plate -> 35 one-hot channels (pix2pixHD label_nc).
NUM_LABELS = 35
#: one-hot labels + instance-edge channel.
SEMANTIC_CHANNELS = NUM_LABELS + 1
#: The city whose frames form the held-out (evaluation) set.
HELDOUT_CITY = "lindau"
#: Default working size (width, height).
DEFAULT_SIZE = (512, 256)

# --------------------------------------------------------------------------- data


def _frame_files(root, kind):
    return sorted(glob.glob(os.path.join(root, kind, "*", "*", "*.png")))


def cityscapes_frames(root):
    """Frames under ``root/leftImg8bit/*/*`` with their ``root/gtFine/*/*`` annotations.

    Returns a list sorted by name of dicts ``{"name", "city", "split", "image", "label",
    "label_fullres", "instance"}`` (paths; ``label_fullres`` is None when there is no
    ``*_gtFine_labelIds_fullres.png``).  Photos without both ``labelIds`` and
    ``instanceIds`` are skipped.  :class:`InputError` if no complete frame is found.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise InputError(f"{root}: no such directory (expected a Cityscapes tree)")
    frames = []
    for image in _frame_files(root, "leftImg8bit"):
        base = os.path.basename(image)
        if not base.endswith("_leftImg8bit.png"):
            continue
        name = base[: -len("_leftImg8bit.png")]
        city_dir = os.path.dirname(image)
        city = os.path.basename(city_dir)
        split = os.path.basename(os.path.dirname(city_dir))
        gt = os.path.join(root, "gtFine", split, city, name + "_gtFine_")
        label, instance = gt + "labelIds.png", gt + "instanceIds.png"
        if not (os.path.isfile(label) and os.path.isfile(instance)):
            continue
        fullres = gt + "labelIds_fullres.png"
        frames.append({"name": name, "city": city, "split": split, "image": image,
                       "label": label,
                       "label_fullres": fullres if os.path.isfile(fullres) else None,
                       "instance": instance})
    if not frames:
        raise InputError(f"{root}: no Cityscapes frames (leftImg8bit/*/*/*_leftImg8bit.png "
                         "with gtFine labelIds and instanceIds)")
    frames.sort(key=lambda f: (f["name"], f["split"], f["city"]))
    return frames


def split_frames(frames, heldout_city=HELDOUT_CITY):
    """Deterministic split -> ``(train, heldout)``: the frames of ``heldout_city`` are held out.

    Both lists keep the (sorted) input order.  :class:`InputError` if either side would be
    empty.
    """
    frames = list(frames)

    def city(f):
        return f.get("city") or f["name"].split("_", 1)[0]

    heldout = [f for f in frames if city(f) == heldout_city]
    train = [f for f in frames if city(f) != heldout_city]
    if not heldout or not train:
        raise InputError(f"split: need frames of city {heldout_city!r} (held out) and of "
                         f"other cities (training); got {len(heldout)} and {len(train)}")
    return train, heldout


def _read_array(path):
    try:
        with Image.open(path) as img:
            img.load()
            return np.array(img)
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{os.path.basename(path)}: cannot read annotation: {exc}") from None


def _resize_nearest(arr, size):
    """Nearest-neighbour resize of a 2-D array to ``size=(W, H)`` (pixel centres, any dtype).

    Source index ``floor((i + 0.5) * in / out)``: identical to Pillow NEAREST for integer
    scale factors (e.g. 2048 -> 512, 1024 -> 512).
    """
    w, h = size
    ih, iw = arr.shape[:2]
    if (iw, ih) == (w, h):
        return arr
    ys = np.minimum(((np.arange(h) + 0.5) * ih / h).astype(np.int64), ih - 1)
    xs = np.minimum(((np.arange(w) + 0.5) * iw / w).astype(np.int64), iw - 1)
    return arr[ys[:, None], xs[None, :]]


def consistent_instances(labels, instances):
    """Instance ids agreeing with ``labels``: thing ids (``>= 1000``) of another class -> label.

    A pixel keeps its instance id only if it is ``>= 1000`` and ``id // 1000`` equals its
    label; every other pixel gets its label id.  Afterwards
    ``instance_edges(result) >= instance_edges(labels)`` everywhere.
    """
    labels = np.asarray(labels).astype(np.int32)
    instances = np.asarray(instances).astype(np.int32)
    keep = (instances >= 1000) & (instances // 1000 == labels)
    return np.where(keep, instances, labels).astype(np.int32)


def _load_annotations(frame, size, consistent=True):
    """(labels uint8 [H, W], instances int32 [H, W]) at ``size=(W, H)``."""
    path = frame.get("label_fullres") or frame["label"]
    labels = _read_array(path)
    if labels.ndim != 2:
        raise InputError(f"{os.path.basename(path)}: label map must be single-channel")
    if labels.dtype != np.uint8:
        if labels.min() < 0 or labels.max() > 255:
            raise InputError(f"{os.path.basename(path)}: label ids outside 0..255")
        labels = labels.astype(np.uint8)
    instances = _read_array(frame["instance"])
    if instances.ndim != 2:
        raise InputError(f"{os.path.basename(frame['instance'])}: instance map must be "
                         "single-channel")
    instances = instances.astype(np.int32)
    labels = _resize_nearest(labels, size)
    instances = _resize_nearest(instances, size)
    if consistent:
        instances = consistent_instances(labels, instances)
    return np.ascontiguousarray(labels), np.ascontiguousarray(instances)


def load_frame(frame, size=DEFAULT_SIZE, consistent=True):
    """One frame at ``size=(W, H)`` (None: the photo's own size).

    Returns ``(rgb uint8 [H, W, 3], labels uint8 [H, W], instances int32 [H, W])``: the
    photo resized with Pillow BICUBIC (as pix2pixHD), labels (``label_fullres`` if present,
    else ``label``) and instance ids resized nearest-neighbour.  ``consistent=True`` passes
    the instances through :func:`consistent_instances` (see the module docstring).
    """
    from ..imageio import read_image

    rgb = read_image(frame["image"], "rgb")
    if size is None:
        size = (rgb.shape[1], rgb.shape[0])
    size = (int(size[0]), int(size[1]))
    if size[0] < 1 or size[1] < 1:
        raise InputError(f"load_frame: bad size {size}")
    if (rgb.shape[1], rgb.shape[0]) != size:
        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BICUBIC))
    labels, instances = _load_annotations(frame, size, consistent)
    return np.ascontiguousarray(rgb, dtype=np.uint8), labels, instances


# --------------------------------------------------------------------------- generator input


def one_hot(labels, num_labels=NUM_LABELS):
    """Integer labels [..., H, W] -> float32 [..., H, W, num_labels]; ids outside 0..num_labels-1 -> 0."""
    lab = np.asarray(labels).astype(np.int64)
    lab = np.where((lab < 0) | (lab >= num_labels), 0, lab)
    return np.eye(num_labels, dtype=np.float32)[lab]


def _edges_bool(t):
    t = np.asarray(t)
    e = np.zeros(t.shape, dtype=bool)
    dx = t[..., :, 1:] != t[..., :, :-1]
    dy = t[..., 1:, :] != t[..., :-1, :]
    e[..., :, 1:] |= dx
    e[..., :, :-1] |= dx
    e[..., 1:, :] |= dy
    e[..., :-1, :] |= dy
    return e


def instance_edges(instances):
    """Instance ids [..., H, W] -> float32 edge map: 1 where a 4-neighbour has another id."""
    return _edges_bool(instances).astype(np.float32)


def semantic_input(labels, instances=None, *, edges=None, num_labels=NUM_LABELS):
    """[..., H, W, num_labels + 1] float32: one-hot labels + instance edges.

    Pass ``instances`` (edges are computed) or ``edges=`` (e.g. from
    :func:`decode_side_info`).
    """
    if (instances is None) == (edges is None):
        raise ValueError("semantic_input: pass exactly one of instances or edges")
    e = instance_edges(instances) if edges is None else np.asarray(edges, np.float32)
    return np.concatenate([one_hot(labels, num_labels), e[..., None]], axis=-1)


def one_hot_tf(labels, num_labels=NUM_LABELS):
    """TensorFlow :func:`one_hot` (graph-safe, for tf.data)."""
    import tensorflow as tf

    lab = tf.cast(labels, tf.int32)
    lab = tf.where((lab < 0) | (lab >= num_labels), tf.zeros_like(lab), lab)
    return tf.one_hot(lab, num_labels, dtype=tf.float32)


def instance_edges_tf(instances):
    """TensorFlow :func:`instance_edges` for [..., H, W] tensors (graph-safe)."""
    import tensorflow as tf

    t = tf.convert_to_tensor(instances)
    dx = tf.not_equal(t[..., :, 1:], t[..., :, :-1])
    dy = tf.not_equal(t[..., 1:, :], t[..., :-1, :])
    fx = tf.zeros_like(dx[..., :, :1])
    fy = tf.zeros_like(dy[..., :1, :])
    e = (tf.concat([fx, dx], axis=-1) | tf.concat([dx, fx], axis=-1)
         | tf.concat([fy, dy], axis=-2) | tf.concat([dy, fy], axis=-2))
    return tf.cast(e, tf.float32)


def semantic_input_tf(labels, instances=None, *, edges=None, num_labels=NUM_LABELS):
    """TensorFlow :func:`semantic_input`: float32 [..., H, W, num_labels + 1]."""
    import tensorflow as tf

    if (instances is None) == (edges is None):
        raise ValueError("semantic_input_tf: pass exactly one of instances or edges")
    e = instance_edges_tf(instances) if edges is None else tf.cast(edges, tf.float32)
    return tf.concat([one_hot_tf(labels, num_labels), e[..., None]], axis=-1)


# --------------------------------------------------------------------------- side information

SIDE_METHOD = 1
_SIDE_HEADER = struct.Struct(">BI")
_VARINT_MAX_BYTES = 5  # values < 2**35 (gaps are < 8192 * 8192 = 2**26)


def _filters(n):
    # Raw LZMA2, preset 9e; lc0 lp0 pb0 measured best on label maps.  The dictionary size
    # follows from the plane size so encoder and decoder agree without storing it.
    return [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME,
             "dict_size": max(4096, min(int(n), 1 << 26)), "lc": 0, "lp": 0, "pb": 0}]


def _lzma_encode(data, n):
    return lzma.compress(bytes(data), format=lzma.FORMAT_RAW, filters=_filters(n))


def _lzma_decode(stream, n, max_out, what):
    """Inflate a raw LZMA2 stream to at most ``max_out`` bytes; the stream must end exactly."""
    dec = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_filters(n))
    try:
        out = dec.decompress(stream, max_length=max_out)
        if not dec.eof and len(out) >= max_out:
            # Output stopped at the limit: the stream must end right here.
            if dec.decompress(b"", max_length=1):
                raise BitstreamError(f"jpdse: corrupted side information ({what} longer "
                                     "than the image)")
    except lzma.LZMAError as exc:
        raise BitstreamError(f"jpdse: corrupted side information ({what}: {exc})") from None
    if not dec.eof:
        raise BitstreamError(f"jpdse: truncated side information ({what})")
    if dec.unused_data:
        raise BitstreamError(f"jpdse: corrupted side information (bytes after the {what})")
    return out


def _varint_encode(values):
    v = np.asarray(values, dtype=np.int64)
    if v.size == 0:
        return b""
    nbytes = 1 + sum((v >= (1 << (7 * k))).astype(np.int64) for k in range(1, _VARINT_MAX_BYTES))
    owner = np.repeat(np.arange(v.size), nbytes)
    starts = np.cumsum(nbytes) - nbytes
    k = np.arange(owner.size) - starts[owner]
    out = (v[owner] >> (7 * k)) & 0x7F
    out |= np.where(k < nbytes[owner] - 1, 0x80, 0)
    return out.astype(np.uint8).tobytes()


def _varint_decode(data):
    b = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    if b.size == 0:
        return np.zeros(0, np.int64)
    if b[-1] & 0x80:
        raise BitstreamError("jpdse: corrupted side information (unterminated edge varint)")
    ends = np.flatnonzero(b < 0x80)
    lengths = np.diff(np.concatenate([[-1], ends]))
    if lengths.max() > _VARINT_MAX_BYTES:
        raise BitstreamError("jpdse: corrupted side information (edge varint too long)")
    starts = ends - lengths + 1
    owner = np.repeat(np.arange(ends.size), lengths)
    k = np.arange(b.size) - starts[owner]
    return np.add.reduceat((b & 0x7F) << (7 * k), starts)


def _check_size(height, width, error):
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise error(f"jpdse: image size {width}x{height} outside 1..{MAX_SIDE}")


def _as_labels(labels):
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise InputError(f"side info: labels must be [H, W], got shape {lab.shape}")
    if lab.dtype != np.uint8:
        if not np.issubdtype(lab.dtype, np.integer):
            raise InputError(f"side info: labels must be integers, got {lab.dtype}")
        if lab.size and (lab.min() < 0 or lab.max() > 255):
            raise InputError("side info: label ids must be in 0..255")
        lab = lab.astype(np.uint8)
    return np.ascontiguousarray(lab)


def _as_edges(instances_or_edges, shape):
    a = np.asarray(instances_or_edges)
    if a.shape != shape:
        raise InputError(f"side info: instances/edges shape {a.shape} != labels shape {shape}")
    if a.dtype == bool:
        return a
    if np.issubdtype(a.dtype, np.floating):
        e = a != 0
        if not np.all(a[e] == 1):
            raise InputError("side info: a float edge map must hold only 0 and 1")
        return e
    if np.issubdtype(a.dtype, np.integer):
        return _edges_bool(a)
    raise InputError(f"side info: unsupported instances/edges dtype {a.dtype}")


#: Label-map subsampling factors of side-information method 2 (1 = method 1, lossless).
LABEL_SCALES = (1, 2, 4, 8, 16)
COARSE_METHOD = 2


def _check_scale(scale, error=InputError):
    if scale not in LABEL_SCALES:
        raise error(f"jpdse: label scale {scale} not one of {LABEL_SCALES}")


def coarse_labels(labels, scale):
    """The label map at 1/scale resolution: the most frequent label of each scale x scale block.

    Blocks on the right/bottom border are cut by the image edge (only their pixels count);
    ties go to the smaller label id. uint8 [ceil(H/scale), ceil(W/scale)].
    """
    lab = _as_labels(labels)
    h, w = lab.shape
    hs, ws = -(-h // scale), -(-w // scale)
    best = np.zeros((hs, ws), np.uint8)
    best_count = np.full((hs, ws), -1, np.int32)
    for v in np.unique(lab):  # ascending: a later label must beat, not tie
        m = np.zeros((hs * scale, ws * scale), np.int32)
        m[:h, :w] = lab == v
        count = m.reshape(hs, scale, ws, scale).sum(axis=(1, 3))
        better = count > best_count
        best[better], best_count[better] = v, count[better]
    return best


def _upsample_labels(small, height, width, scale):
    return np.repeat(np.repeat(small, scale, axis=0), scale, axis=1)[:height, :width].copy()


def receiver_semantics(labels, instances_or_edges=None, scale=1):
    """(labels uint8 [H, W], edges float32 [H, W]) exactly as the receiver decodes them.

    scale 1: the labels and the instance edges (or the label edges without instances), sent
    losslessly. scale > 1: the block-mode labels at 1/scale, upsampled by repetition, and the
    edges of that map (no instance information). Training on this makes the generator see
    what the decoder will give it.
    """
    _check_scale(scale)
    lab = _as_labels(labels)
    if scale == 1:
        edges = _edges_bool(lab) if instances_or_edges is None else _as_edges(instances_or_edges,
                                                                                lab.shape)
        return lab, edges.astype(np.float32)
    up = _upsample_labels(coarse_labels(lab, scale), *lab.shape, scale)
    return up, _edges_bool(up).astype(np.float32)


def encode_side_info(labels, instances_or_edges=None, scale=1):
    """Label map + edge information -> side-info bytes (see the module docstring).

    ``labels``: integer [H, W] in 0..255.  scale 1 (method 1, lossless): ``instances_or_edges``
    is integer instance ids [H, W] (their :func:`instance_edges` are coded), a bool / float
    0-1 edge map [H, W] (coded as is) or None (the label map's own edges).  scale 2..16
    (method 2): only :func:`coarse_labels` are coded (1 scale byte + raw LZMA2); the
    receiver upsamples them and takes their edges (:func:`receiver_semantics`).
    """
    lab = _as_labels(labels)
    h, w = lab.shape
    _check_size(h, w, InputError)
    _check_scale(scale)
    if scale > 1:
        small = coarse_labels(lab, scale)
        stream = _lzma_encode(small.tobytes(), small.size)
        return _SIDE_HEADER.pack(COARSE_METHOD, len(stream)) + bytes([scale]) + stream
    if instances_or_edges is None:
        instances_or_edges = lab
    edges = _as_edges(instances_or_edges, lab.shape)
    residual = (edges ^ _edges_bool(lab)).ravel()
    pos = np.flatnonzero(residual)
    gaps = np.diff(np.concatenate([[-1], pos])) - 1
    n = h * w
    label_stream = _lzma_encode(lab.tobytes(), n)
    edge_stream = _lzma_encode(_varint_encode(gaps), n)
    return _SIDE_HEADER.pack(SIDE_METHOD, len(label_stream)) + label_stream + edge_stream


def decode_side_info(data, height, width):
    """Side-info bytes -> ``(labels uint8 [H, W], edges float32 [H, W])``; BitstreamError if invalid."""
    data = bytes(data)
    height, width = int(height), int(width)
    _check_size(height, width, BitstreamError)
    if len(data) < _SIDE_HEADER.size:
        raise BitstreamError(f"jpdse: side information too short ({len(data)} bytes)")
    method, label_len = _SIDE_HEADER.unpack_from(data)
    if method == COARSE_METHOD:
        return _decode_coarse(data[_SIDE_HEADER.size:], label_len, height, width)
    if method != SIDE_METHOD:
        raise BitstreamError(f"jpdse: unknown side-information method {method} (this tfcomp "
                             f"reads {SIDE_METHOD} and {COARSE_METHOD})")
    body = data[_SIDE_HEADER.size:]
    if label_len > len(body):
        raise BitstreamError("jpdse: truncated side information (label stream longer than "
                             "the data)")
    n = height * width
    raw = _lzma_decode(body[:label_len], n, n, "label map")
    if len(raw) != n:
        raise BitstreamError(f"jpdse: label map has {len(raw)} pixels, expected {n}")
    labels = np.frombuffer(raw, dtype=np.uint8).reshape(height, width).copy()
    gaps = _varint_decode(_lzma_decode(body[label_len:], n, n, "edge stream"))
    residual = np.zeros(n, dtype=bool)
    if gaps.size:
        pos = np.cumsum(gaps + 1) - 1
        if pos[-1] >= n:
            raise BitstreamError("jpdse: corrupted side information (edge position outside "
                                 "the image)")
        residual[pos] = True
    edges = _edges_bool(labels) ^ residual.reshape(height, width)
    return labels, edges.astype(np.float32)


def _decode_coarse(body, label_len, height, width):
    """Method 2: scale byte + the LZMA2 coarse label map -> the receiver's semantics."""
    if not body:
        raise BitstreamError("jpdse: truncated side information (no label scale)")
    scale = body[0]
    _check_scale(scale, BitstreamError)
    if scale == 1 or label_len != len(body) - 1:
        raise BitstreamError("jpdse: corrupted side information (coarse label stream)")
    hs, ws = -(-height // scale), -(-width // scale)
    raw = _lzma_decode(body[1:], hs * ws, hs * ws, "coarse label map")
    if len(raw) != hs * ws:
        raise BitstreamError(f"jpdse: coarse label map has {len(raw)} labels, expected {hs * ws}")
    up = _upsample_labels(np.frombuffer(raw, np.uint8).reshape(hs, ws), height, width, scale)
    return up, _edges_bool(up).astype(np.float32)


def _png_size(array, mode=None):
    buf = io.BytesIO()
    img = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    img.save(buf, "PNG", optimize=True)
    return len(buf.getvalue())


def _rle(flat):
    """Raster run-length transform: run values (uint8) + run lengths (varints)."""
    starts = np.concatenate([[0], np.flatnonzero(np.diff(flat.astype(np.int16))) + 1])
    lengths = np.diff(np.concatenate([starts, [flat.size]]))
    return flat[starts].astype(np.uint8).tobytes() + _varint_encode(lengths)


def _side_info_coders(labels, instances):
    """{coder name: bytes} for one frame (instances: ids; edges are derived from them)."""
    import bz2

    n = labels.size
    lab = labels.tobytes()
    edges = _edges_bool(instances)
    packed = np.packbits(edges).tobytes()
    residual = edges ^ _edges_bool(labels)
    rpacked = np.packbits(residual).tobytes()
    pos = np.flatnonzero(residual.ravel())
    gaps = _varint_encode(np.diff(np.concatenate([[-1], pos])) - 1)
    ids16 = np.clip(instances, 0, 65535).astype(np.uint16)
    return {
        "labels png": _png_size(labels),
        "labels zlib-9": len(zlib.compress(lab, 9)),
        "labels bz2-9": len(bz2.compress(lab, 9)),
        "labels xz-9e": len(lzma.compress(lab, preset=9 | lzma.PRESET_EXTREME)),
        "labels lzma-raw": len(_lzma_encode(lab, n)),
        "labels rle+lzma-raw": len(_lzma_encode(_rle(labels.ravel()), n)),
        "edges png-1bit": _png_size(edges.astype(np.uint8) * 255, "1"),
        "edges packbits+zlib-9": len(zlib.compress(packed, 9)),
        "edges packbits+bz2-9": len(bz2.compress(packed, 9)),
        "edges packbits+lzma-raw": len(_lzma_encode(packed, n)),
        "instance-ids png16": _png_size(ids16),
        "instance-ids lzma-raw": len(_lzma_encode(ids16.tobytes(), n)),
        "edge-residual packbits+lzma-raw": len(_lzma_encode(rpacked, n)),
        "edge-residual gaps+zlib-9": len(zlib.compress(gaps, 9)),
        "edge-residual gaps+lzma-raw": len(_lzma_encode(gaps, n)),
        "side-info (chosen)": len(encode_side_info(labels, instances)),
    }


def side_info_report(frames, size=DEFAULT_SIZE, consistent=True):
    """Measure the lossless side-information coders on ``frames`` at ``size=(W, H)``.

    Returns ``{coder: {"bytes_per_frame": mean, "bpp": mean bits per pixel, "bytes":
    [per frame]}}``; ``"side-info (chosen)"`` is what :func:`encode_side_info` stores.
    Every chosen stream is also decoded and checked against the input.
    """
    size = (int(size[0]), int(size[1]))
    per = {}
    for frame in frames:
        labels, instances = _load_annotations(frame, size, consistent)
        for name, nbytes in _side_info_coders(labels, instances).items():
            per.setdefault(name, []).append(nbytes)
        lab2, e2 = decode_side_info(encode_side_info(labels, instances), size[1], size[0])
        if not (np.array_equal(lab2, labels) and np.array_equal(e2, instance_edges(instances))):
            raise AssertionError(f"side info does not round-trip on {frame['name']}")
    pixels = size[0] * size[1]
    return {name: {"bytes_per_frame": float(np.mean(v)), "bpp": float(np.mean(v)) * 8 / pixels,
                   "bytes": v} for name, v in per.items()}


# --------------------------------------------------------------------------- container

MAGIC = b"JPDS"
#: Version written: 2 adds an 8-byte weights id after the model id (the generator's
#: weights, tfcomp.registry.arrays_digest); version 1 files (no weights id) still read.
VERSION = 2
VERSIONS = (1, 2)
#: Bytes of the weights id (version 2).
WEIGHTS_ID_BYTES = 8
#: Largest side accepted in a jpdse file.
MAX_SIDE = 8192
#: Largest BPG / HEVC quantiser.
MAX_QP = 51
# magic, version, model id, qp, height, width, side-info length (+ weights id) + CRC-32.
_HEADERS = {1: struct.Struct(">4sBBBHHII"),    # 19 bytes
            2: struct.Struct(">4sBBBHHI8sI")}  # 27 bytes


def _crc(header_prefix, body):
    return zlib.crc32(body, zlib.crc32(header_prefix)) & 0xFFFFFFFF


def pack_jpdse(base_stream, side_info, height, width, qp, model_id, weights_id=None):
    """Header + side info + BPG stream -> ``jpdse-bpg`` file bytes: version 2 with the
    8-byte ``weights_id`` of the generator that is to decode it, or version 1 without one
    (``weights_id=None``: any weights of the model named by ``model_id``)."""
    base_stream, side_info = bytes(base_stream), bytes(side_info)
    height, width, qp, model_id = int(height), int(width), int(qp), int(model_id)
    _check_size(height, width, InputError)
    if not 0 <= qp <= MAX_QP:
        raise InputError(f"jpdse: qp {qp} outside 0..{MAX_QP}")
    if not 0 <= model_id <= 255:
        raise InputError(f"jpdse: model id {model_id} outside 0..255")
    if not base_stream:
        raise InputError("jpdse: empty BPG stream")
    if len(side_info) > 0xFFFFFFFF:
        raise InputError("jpdse: side information too large")
    body = side_info + base_stream
    if weights_id is None:
        fields = (MAGIC, 1, model_id, qp, height, width, len(side_info), 0)
    else:
        weights_id = bytes(weights_id)
        if len(weights_id) != WEIGHTS_ID_BYTES:
            raise InputError(f"jpdse: the weights id must be {WEIGHTS_ID_BYTES} bytes, got "
                             f"{len(weights_id)}")
        fields = (MAGIC, 2, model_id, qp, height, width, len(side_info), weights_id, 0)
    prefix = _HEADERS[fields[1]].pack(*fields)[:-4]
    return prefix + struct.pack(">I", _crc(prefix, body)) + body


def unpack_jpdse(data):
    """``jpdse-bpg`` file bytes -> dict(base_stream, side_info, height, width, qp, model_id,
    weights_id (8 bytes; None in a version 1 file), version).

    :class:`BitstreamError` for a truncated file, bad magic, unknown version, sizes or qp
    out of range, lengths beyond the data or a checksum mismatch.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"jpdse data must be bytes-like, not {type(data).__name__}")
    data = bytes(data)
    if data[:len(MAGIC)] != MAGIC[:len(data)]:
        raise BitstreamError("jpdse: not a JPDS file (bad magic)")
    if len(data) <= len(MAGIC):
        raise BitstreamError(f"jpdse: file too short ({len(data)} bytes) for its header")
    version = data[len(MAGIC)]
    if version not in VERSIONS:
        raise BitstreamError(f"jpdse: unsupported format version {version} (this tfcomp "
                             f"reads {', '.join(map(str, VERSIONS))})")
    header = _HEADERS[version]
    if len(data) < header.size:
        raise BitstreamError(f"jpdse: file too short ({len(data)} bytes) for its "
                             f"{header.size}-byte header")
    fields = header.unpack_from(data)
    _, _, model_id, qp, h, w, side_len = fields[:7]
    weights_id, crc = (fields[7], fields[8]) if version == 2 else (None, fields[7])
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise BitstreamError(f"jpdse: image size {w}x{h} outside 1..{MAX_SIDE}")
    if qp > MAX_QP:
        raise BitstreamError(f"jpdse: qp {qp} outside 0..{MAX_QP}")
    body = data[header.size:]
    if side_len >= len(body):
        raise BitstreamError("jpdse: truncated file (side information reaches past the end; "
                             "no BPG stream left)")
    if _crc(data[:header.size - 4], body) != crc:
        raise BitstreamError("jpdse: corrupted or truncated file (checksum mismatch)")
    return {"base_stream": body[side_len:], "side_info": body[:side_len], "height": h,
            "width": w, "qp": qp, "model_id": model_id, "weights_id": weights_id,
            "version": version}
