"""The content-weighted learned codec `cwic`: networks + context-coded bits in a .cwic file.

File layout (big-endian):
  magic  b"CWIC" | version u8 (2) | rate index u8 | height u16 | width u16 |
  map_len u32 | crc32 u32 of everything after it | map stream (map_len bytes) | bit stream
The image is edge-padded to a multiple of 8 for the networks and cropped back after decoding.
"""

import struct
import zlib

import numpy as np

from ..errors import BitstreamError, InputError
from ..imageio import pad_to_multiple
from ..codecs.base import Codec

__all__ = ["CwicCodec", "MAGIC", "VERSION", "MAX_SIDE", "pack", "unpack", "compress_array",
           "decompress_array"]

MAGIC = b"CWIC"
VERSION = 2  # 2: checkerboard bit contexts (1 was channel-only)
#: Largest side accepted by encoder and decoder (memory of the untiled networks).
MAX_SIDE = 4096
_HEADER = struct.Struct(">4sBBHHII")


def pack(rate, height, width, map_stream, bit_stream):
    """Header + streams -> file bytes."""
    body = map_stream + bit_stream
    return _HEADER.pack(MAGIC, VERSION, rate, height, width, len(map_stream),
                        zlib.crc32(body)) + body


def unpack(data):
    """File bytes -> (rate, height, width, map_stream, bit_stream); BitstreamError if invalid."""
    if len(data) < _HEADER.size:
        raise BitstreamError(f"cwic: file too short ({len(data)} bytes) for its header")
    magic, version, rate, h, w, map_len, crc = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise BitstreamError("cwic: not a CWIC file (bad magic)")
    if version != VERSION:
        raise BitstreamError(f"cwic: unsupported format version {version} (this tfcomp reads {VERSION})")
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise BitstreamError(f"cwic: image size {w}x{h} outside 1..{MAX_SIDE}")
    body = data[_HEADER.size:]
    if map_len > len(body):
        raise BitstreamError("cwic: truncated file (map stream longer than the file)")
    if zlib.crc32(body) != crc:
        raise BitstreamError("cwic: corrupted or truncated file (checksum mismatch)")
    return rate, h, w, body[:map_len], body[map_len:]


def analyse(model, image):
    """Runs the encoder: uint8 HxWx3 -> (bits uint8 [h, w, n], levels q int64 [h, w])."""
    import tensorflow as tf
    from .model import kept_channels
    x = tf.convert_to_tensor(pad_to_multiple(image, 8)[None].astype(np.float32) / 255.0)
    codes, p = model.encoder(x)
    bits = (codes[0].numpy() > 0.5).astype(np.uint8)
    kept = kept_channels(p, model.n, model.levels)[0, :, :, 0].numpy()
    q = (kept // (model.n // model.levels)).astype(np.int64) - 1
    return bits, q


def synthesise(model, bits, q, height, width):
    """Runs the decoder on the masked bits and crops: -> uint8 HxWx3."""
    from .coding import masked_bits
    y = model.decoder(masked_bits(bits, q, model.n, model.levels)[None]).numpy()[0]
    return np.clip(np.round(y[:height, :width] * 255.0), 0, 255).astype(np.uint8)


def compress_array(model, tables, rate, image):
    """uint8 HxWx3 -> .cwic file bytes."""
    from .coding import encode_streams
    h, w = image.shape[:2]
    if h > MAX_SIDE or w > MAX_SIDE:
        raise InputError(f"cwic: image {w}x{h} larger than {MAX_SIDE} on a side")
    bits, q = analyse(model, image)
    return pack(rate, h, w, *encode_streams(bits, q, tables))


def decompress_array(model, tables, data):
    """.cwic file bytes -> uint8 HxWx3 (model/tables must match the file's rate index)."""
    from .coding import decode_streams
    _, h, w, map_stream, bit_stream = unpack(data)
    try:
        bits, q = decode_streams(map_stream, bit_stream, -(-h // 8), -(-w // 8), tables)
    except ValueError as e:
        raise BitstreamError(f"cwic: {e}") from None
    return synthesise(model, bits, q, h, w)


class CwicCodec(Codec):
    """Content-weighted image compression; quality = rate index of a shipped model."""

    name = "cwic"
    kind = "learned"
    description = "content-weighted learned codec (Li et al. 2018), quality = rate model index"
    extension = ".cwic"

    @staticmethod
    def _specs():
        from .. import models
        return {s.quality_min: s for s in (models.get_spec(n) for n in models.model_names("learned"))
                if s.name.startswith("cwic-")}

    @property
    def qualities(self):
        return sorted(self._specs())

    @property
    def quality_min(self):
        return min(self.qualities, default=1)

    @property
    def quality_max(self):
        return max(self.qualities, default=1)

    @property
    def quality_default(self):
        q = self.qualities
        return q[len(q) // 2] if q else 1

    @property
    def sweep(self):
        return tuple(self.qualities)

    @property
    def installed_rates(self):
        """Rate indices whose weights and tables are installed."""
        return sorted(r for r, s in self._specs().items() if s.weights_present)

    @property
    def weights_present(self):
        specs = self._specs()
        return bool(specs) and all(s.weights_present for s in specs.values())

    def _load(self, rate):
        from .. import models
        specs = self._specs()
        if rate not in specs:
            raise BitstreamError(f"cwic: file needs rate model {rate}, which this tfcomp does "
                                 f"not have (known: {sorted(specs)})")
        return models.load_model(specs[rate].name), models.load_extra(specs[rate].name)

    def _encode(self, image, quality):
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        model, tables = self._load(quality)
        return compress_array(model, tables, quality, image)

    def _decode(self, data):
        rate = unpack(data)[0]
        model, tables = self._load(rate)
        return decompress_array(model, tables, data)

    def sniff(self, data):
        return data[:4] == MAGIC
