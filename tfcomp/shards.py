"""TFRecord shards of training images: `tfcomp data pack` writes them, tfcomp.data reads them.

A shard folder holds ``shard-NNNNN-of-MMMMM.tfrecord`` files, each a sequence of
``tf.train.Example`` records with the features ``image`` (encoded bytes), ``height`` and
``width``, plus ``shards.json``: the number of images, decoded pixels and smallest side of
every shard, which `patch_dataset` uses to refuse images smaller than the patch size and to
decide whether the decoded set fits its cache budget. JPEG and PNG files are stored as they
are; every other format `list_images` accepts (WebP, TIFF, BMP, PPM/PGM) is decoded by
Pillow (as tfcomp.imageio reads it) and stored as a lossless PNG, so the shards decode with
TensorFlow's own ops.
"""

import glob
import io
import json
import os

import numpy as np
from PIL import Image

from .errors import InputError
from .imageio import image_from_bytes, list_images, write_json

__all__ = ["SHARD_SUFFIX", "INDEX_NAME", "TF_MAGIC", "is_tf_decodable", "pack_shards",
           "find_shards", "shard_stats"]

#: File name ending of a shard.
SHARD_SUFFIX = ".tfrecord"
#: The per-folder index written next to the shards.
INDEX_NAME = "shards.json"
#: Leading bytes of the formats TensorFlow's decode_image reads in training (JPEG, PNG);
#: everything else goes through Pillow.
TF_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")

_FORMAT = "tfcomp-shards"


def is_tf_decodable(data):
    """Whether encoded image bytes are a format TensorFlow decodes itself (JPEG, PNG)."""
    return bytes(data[:8]).startswith(TF_MAGIC)


def _encoded(path):
    """(bytes TF decodes, height, width, re-encoded?) for one image file."""
    with open(path, "rb") as f:
        data = f.read()
    if is_tf_decodable(data):
        try:
            with Image.open(io.BytesIO(data)) as im:
                return data, im.height, im.width, False
        except (OSError, SyntaxError, ValueError) as e:
            raise InputError(f"{path}: not an image Pillow can read ({e})") from None
    pixels = image_from_bytes(data, "any", name=path)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG")
    return buf.getvalue(), pixels.shape[0], pixels.shape[1], True


def _example(data, height, width):
    import tensorflow as tf
    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
        "height": tf.train.Feature(int64_list=tf.train.Int64List(value=[height])),
        "width": tf.train.Feature(int64_list=tf.train.Int64List(value=[width])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def pack_shards(sources, out_dir, shard_size=1000, progress=None):
    """Writes the images under `sources` (folders, globs, paths) as TFRecord shards.

    Images go in `list_images` order, `shard_size` per shard; `out_dir` is created and
    must not hold shards already. `progress(iterable, total)` wraps the image loop (e.g. a
    progress bar). Each shard is written under a temporary name and renamed when complete;
    the index comes last. Returns the index (a dict, also saved as ``shards.json``).
    """
    import tensorflow as tf

    if shard_size < 1:
        raise InputError(f"--shard-size must be >= 1, got {shard_size}")
    paths = list_images(sources)
    os.makedirs(out_dir, exist_ok=True)
    if glob.glob(os.path.join(out_dir, "*" + SHARD_SUFFIX)):
        raise InputError(f"{out_dir} already holds shards: pack into an empty folder")
    count = -(-len(paths) // shard_size)
    entries, reencoded = [], 0
    items = enumerate(paths)
    items = progress(items, len(paths)) if progress else items
    writer = entry = None
    for i, path in items:
        if i % shard_size == 0:
            name = f"shard-{i // shard_size:05d}-of-{count:05d}{SHARD_SUFFIX}"
            entry = {"file": name, "images": 0, "pixels": 0, "min_side": None}
            entries.append(entry)
            writer = tf.io.TFRecordWriter(os.path.join(out_dir, name + ".part"))
        data, h, w, converted = _encoded(path)
        reencoded += converted
        writer.write(_example(data, h, w))
        entry["images"] += 1
        entry["pixels"] += h * w
        entry["min_side"] = min(h, w) if entry["min_side"] is None else min(entry["min_side"], h, w)
        if i % shard_size == shard_size - 1 or i == len(paths) - 1:
            writer.close()
            final = os.path.join(out_dir, entry["file"])
            os.replace(final + ".part", final)
    index = {"format": _FORMAT, "version": 1, "images": len(paths), "reencoded_png": reencoded,
             "shards": entries}
    write_json(os.path.join(out_dir, INDEX_NAME), index)
    return index


def _is_shard_spec(src):
    src = os.fspath(src)
    if os.path.isdir(src):
        return bool(glob.glob(os.path.join(src, "*" + SHARD_SUFFIX)))
    return src.endswith(SHARD_SUFFIX)


def find_shards(source):
    """The shard files of a source, or None when it names images instead.

    A source is shards when each of its items is a folder holding ``*.tfrecord`` files or a
    path/glob ending in ``.tfrecord``; mixing shards and image folders is an InputError.
    """
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    kinds = [_is_shard_spec(s) for s in sources]
    if not any(kinds):
        return None
    if not all(kinds):
        raise InputError("give either image folders/globs or shard folders/globs, not both")
    files = []
    for src in map(os.fspath, sources):
        pattern = os.path.join(src, "*" + SHARD_SUFFIX) if os.path.isdir(src) else src
        matches = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        if not matches:
            raise InputError(f"no shards found at {src!r}")
        files += matches
    return sorted(set(files))


def shard_stats(files):
    """(images, decoded pixels, smallest side) of shard files from their folders' index,
    or None when a file is not listed there (e.g. shards written by another tool)."""
    indexes, images, pixels, sides = {}, 0, 0, []
    for path in files:
        folder, name = os.path.split(os.path.abspath(path))
        if folder not in indexes:
            try:
                with open(os.path.join(folder, INDEX_NAME), encoding="utf-8") as f:
                    index = json.load(f)
                indexes[folder] = {e["file"]: e for e in index["shards"]}
            except (OSError, ValueError, KeyError, TypeError):
                indexes[folder] = {}
        entry = indexes[folder].get(name)
        if entry is None:
            return None
        images += entry["images"]
        pixels += entry["pixels"]
        sides.append(entry["min_side"])
    return images, pixels, min(sides)
