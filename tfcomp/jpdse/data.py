"""JPD-SE data: Cityscapes frames at a working size with BPG-decoded versions cached per QP.

`prepare_frames` loads each frame once (tfcomp.jpdse.semantic.load_frame: photo, labels, instance
ids made consistent with the labels), computes the instance-edge map and, for every QP,
compresses the photo with the BPG op (4:2:0, default level, as the paper's bpgenc calls) and
keeps the decoded image and the file's size. Everything is cached as .npz under `cache_dir`
(keyed by frame, size and QP), so training and evaluation never re-encode. `frame_dataset`
turns the records into the ((semantics, decoded), target) batches JpdseModel trains on.
"""

import os

import numpy as np

from ..errors import InputError

__all__ = ["prepare_frames", "frame_dataset", "multi_size_dataset", "DEFAULT_QPS"]

#: The paper's BPG qualities.
DEFAULT_QPS = (33, 36, 39, 42)


def _cache_path(cache_dir, name, size, suffix):
    return os.path.join(cache_dir, f"{name}_{size[0]}x{size[1]}{suffix}.npz")


def _save(path, **arrays):
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def prepare_frames(frames, qps=DEFAULT_QPS, size=(512, 256), cache_dir=None, progress=None):
    """-> list of records {"name", "rgb", "labels", "instances", "decoded": {qp: uint8},
    "bpg_bytes": {qp: int}} at `size` = (W, H). `progress`: an optional wrapper (tqdm)."""
    from ..codecs import bpg
    from .semantic import load_frame

    if not frames:
        raise InputError("no frames to prepare")
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
    records = []
    for frame in (progress(frames) if progress else frames):
        name = frame["name"]
        base = _cache_path(cache_dir, name, size, "") if cache_dir else None
        if base and os.path.isfile(base):
            with np.load(base) as z:
                rgb, labels, instances = z["rgb"], z["labels"], z["instances"]
        else:
            rgb, labels, instances = load_frame(frame, size)
            if base:
                _save(base, rgb=rgb, labels=labels, instances=instances)
        record = {"name": name, "rgb": rgb, "labels": labels, "instances": instances,
                  "decoded": {}, "bpg_bytes": {}}
        for qp in qps:
            path = _cache_path(cache_dir, name, size, f"_qp{qp}") if cache_dir else None
            if path and os.path.isfile(path):
                with np.load(path) as z:
                    decoded, nbytes = z["decoded"], int(z["bpg_bytes"])
            else:
                data = bpg.encode(rgb, qp)
                decoded, nbytes = bpg.decode(data), len(data)
                if path:
                    _save(path, decoded=decoded, bpg_bytes=np.int64(nbytes))
            record["decoded"][qp] = decoded
            record["bpg_bytes"][qp] = nbytes
        records.append(record)
    return records


#: Random crops start at multiples of this, so the codec's block grid and the generator's
#: stride-8 grid line up as they do on a whole frame.
CROP_ALIGN = 16


def frame_dataset(records, qps=None, batch_size=1, flip=True, seed=0, repeat=True,
                  shuffle=True, label_scale=1, crop=None):
    """tf.data of ((semantics [H, W, 36], decoded [H, W, 3]), target [H, W, 3]) float32 batches.

    Each element takes one record at one QP (every (record, QP) pair once per pass, in a
    shuffled order); `flip` mirrors half of them horizontally (the paper's augmentation).
    The semantics are what the jpdse-bpg receiver decodes with side-information label scale
    `label_scale` (tfcomp.jpdse.semantic.receiver_semantics), computed on the whole frame. `crop`
    = (W, H): a random window of each frame (offsets multiples of CROP_ALIGN) instead of
    the whole frame - more distinct training content from few frames.
    """
    import tensorflow as tf
    from .semantic import receiver_semantics, semantic_input_tf

    frame_h, frame_w = records[0]["rgb"].shape[:2]
    if crop is not None:
        cw, ch = (int(v) for v in crop)
        if not (0 < cw <= frame_w and 0 < ch <= frame_h):
            raise InputError(f"crop {cw}x{ch} does not fit the {frame_w}x{frame_h} frames")
    qps = list(qps or sorted(records[0]["decoded"]))
    rx = [receiver_semantics(r["labels"], r["instances"], label_scale) for r in records]
    labels = np.stack([lab for lab, _ in rx for _ in qps])
    edges = np.stack([e for _, e in rx for _ in qps])
    decoded = np.stack([r["decoded"][q] for r in records for q in qps])
    target = np.stack([r["rgb"] for r in records for _ in qps])
    ds = tf.data.Dataset.from_tensor_slices((labels, edges, decoded, target))
    if shuffle:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()

    def to_inputs(i, item):
        lab, edge, dec, tgt = item
        sem = semantic_input_tf(lab, edges=edge)
        dec = tf.cast(dec, tf.float32) / 255.0
        tgt = tf.cast(tgt, tf.float32) / 255.0
        key = tf.stack([tf.cast(seed, tf.int64), i])
        if crop is not None:
            ky, kx = tf.unstack(tf.random.experimental.stateless_split(key, 2))
            y = CROP_ALIGN * tf.random.stateless_uniform(
                [], ky, 0, (frame_h - ch) // CROP_ALIGN + 1, dtype=tf.int32)
            x = CROP_ALIGN * tf.random.stateless_uniform(
                [], kx, 0, (frame_w - cw) // CROP_ALIGN + 1, dtype=tf.int32)
            sem, dec, tgt = [tf.ensure_shape(t[y:y + ch, x:x + cw], [ch, cw, t.shape[-1]])
                             for t in (sem, dec, tgt)]
        if flip:
            mirror = tf.random.stateless_uniform([], key) < 0.5
            sem, dec, tgt = [tf.cond(mirror, lambda t=t: tf.reverse(t, [1]), lambda t=t: t)
                             for t in (sem, dec, tgt)]
        return (sem, dec), tgt

    ds = ds.enumerate().map(to_inputs, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=repeat).prefetch(tf.data.AUTOTUNE)


def multi_size_dataset(records_by_size, crop, qps=None, batch_size=1, seed=0, label_scale=1):
    """Random `crop` windows of the same frames at several working sizes, mixed.

    `records_by_size`: one list of records (`prepare_frames`) per working size, e.g. the frames
    at 1024x512, 1536x768 and 2048x1024. Each batch comes from one size, drawn uniformly (a
    seeded draw), so every size is seen equally often whatever its area: a few frames give
    content at several scales instead of the same windows again and again.
    """
    import tensorflow as tf

    if not records_by_size:
        raise InputError("multi_size_dataset: no sizes")
    if crop is None:
        raise InputError("training at several sizes needs a crop (the batches must agree)")
    sets = [frame_dataset(recs, qps, batch_size, flip=True, seed=seed + 7919 * k, repeat=True,
                          shuffle=True, label_scale=label_scale, crop=crop)
            for k, recs in enumerate(records_by_size)]
    return tf.data.Dataset.sample_from_datasets(sets, seed=seed).prefetch(tf.data.AUTOTUNE)
