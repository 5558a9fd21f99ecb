"""The content-weighted learned codec `cwic`: networks + context-coded bits in a .cwic file.

File layout (big-endian), version 3:
  magic  b"CWIC" | version u8 (3) | rate index u8 | model id (8 bytes) | height u16 |
  width u16 | map_len u32 | crc32 u32 of everything after it | map stream (map_len bytes) |
  bit stream
The model id is the first 8 bytes of SHA-256 over the architecture, the networks' weights and
the context tables (CWIC.model_id), so a file decodes only with the model that made it; the
rate index says which registry model that is (0: none). Version 2 is the same without the
model id (18-byte header): such files still decode, with the registry model of their rate
index. The image is edge-padded to a multiple of 8 for the networks and cropped back after
decoding. Files are written and read by the model's in-graph `compress` / `decompress`
(tfcomp.cwic.model, tfcomp.cwic.graph); `pack` / `unpack` are the same layout in Python
(the header checks below run before the graph is called).

Limits: sizes up to 65535 a side as the format allows, and at most the pixel budget
(tfcomp.limits) checked from the header before anything is decoded; the streams must be the
encoder's canonical output for the size (tfcomp.cwic.coding.decode_streams), which refuses a
small image's streams under a forged large size (a crafted stream can still code a large flat
region in a few bytes: the budget bounds it). Both networks run in tiles of :data:`TILE`
pixels with margins over their receptive fields, so memory stays a small multiple of the
image (uint8 image, one byte per pixel of bits, one tile of activations) and time is linear
in it.
"""

import collections
import os
import struct
import zlib

import numpy as np

from .. import limits
from ..errors import BitstreamError, InputError
from ..imageio import pad_to_multiple
from ..codecs.base import Codec

__all__ = ["CwicCodec", "MAGIC", "VERSION", "VERSIONS", "HEADERS", "CwicFile", "MAX_SIDE",
           "TILE", "CwicMseCodec", "pack", "unpack", "compress_array", "decompress_array", "analyse",
           "synthesise", "load_user_model"]

MAGIC = b"CWIC"
VERSION = 3  # 3: + model id; 2: checkerboard bit contexts (1 was channel-only)
#: Versions this tfcomp decodes.
VERSIONS = (2, 3)
#: The header of each version: magic, version, rate, [model id,] height, width, map_len, crc.
HEADERS = {2: struct.Struct(">4sBBHHII"), 3: struct.Struct(">4sBB8sHHII")}
#: A parsed file; model_id is None in version 2.
CwicFile = collections.namedtuple(
    "CwicFile", "version rate model_id height width map_stream bit_stream")
#: Largest side the format holds (16-bit fields); the pixel budget is usually lower.
MAX_SIDE = 65535
#: Side of the tiles the networks run on (pixels, a multiple of 8).
TILE = 512
# Overlaps, at least each network's receptive radius: the encoder's in pixels (a multiple of
# 8, about 70 for conv8x8/4 + three residual blocks + conv3x3), the decoder's in latent
# positions (about 7: five 3x3 convolutions at 1/8, three at 1/4, one at full size).
_ENCODER_MARGIN = 96
_DECODER_MARGIN = 8


def pack(rate, height, width, map_stream, bit_stream, model_id=None):
    """Header + streams -> file bytes: version 3 with a model id, version 2 without."""
    body = map_stream + bit_stream
    ids = () if model_id is None else (model_id,)
    return HEADERS[3 if ids else 2].pack(MAGIC, 3 if ids else 2, rate, *ids, height, width,
                                         len(map_stream), zlib.crc32(body)) + body


def unpack(data):
    """File bytes -> CwicFile; BitstreamError if invalid (nothing is decoded)."""
    if len(data) < HEADERS[2].size:
        raise BitstreamError(f"cwic: file too short ({len(data)} bytes) for its header")
    if data[:4] != MAGIC:
        raise BitstreamError("cwic: not a CWIC file (bad magic)")
    version = data[4]
    if version not in VERSIONS:
        raise BitstreamError(f"cwic: unsupported format version {version} (this tfcomp reads "
                             f"{', '.join(map(str, VERSIONS))})")
    header = HEADERS[version]
    if len(data) < header.size:
        raise BitstreamError(f"cwic: file too short ({len(data)} bytes) for its header")
    fields = header.unpack_from(data)
    rate, model_id = fields[2], fields[3] if version == 3 else None
    h, w, map_len, crc = fields[-4:]
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise BitstreamError(f"cwic: image size {w}x{h} outside 1..{MAX_SIDE}")
    limits.check_pixels(w, h, "cwic: the file's image is too large", BitstreamError)
    body = data[header.size:]
    if map_len > len(body):
        raise BitstreamError("cwic: truncated file (map stream longer than the file)")
    if zlib.crc32(body) != crc:
        raise BitstreamError("cwic: corrupted or truncated file (checksum mismatch)")
    return CwicFile(version, rate, model_id, h, w, body[:map_len], body[map_len:])


def _tiles(size, tile, margin):
    """(start, end, crop start, crop end) of the tiles covering 0..size with their overlaps."""
    return [(a, min(size, a + tile), max(0, a - margin), min(size, a + tile + margin))
            for a in range(0, size, tile)]


def analyse(model, image, tile=TILE):
    """Runs the encoder: uint8 HxWx3 -> (bits uint8 [h, w, n], levels q int64 [h, w]).

    Images larger than ``tile`` run in overlapping tiles (the same result up to float
    rounding); each tile is converted to float on its own.
    """
    import tensorflow as tf
    from .model import kept_channels
    padded = pad_to_multiple(image, 8)
    ph, pw = padded.shape[:2]
    bits = np.empty((ph // 8, pw // 8, model.n), np.uint8)
    p = np.empty((1, ph // 8, pw // 8, 1), np.float32)
    margin = 0 if ph <= tile and pw <= tile else _ENCODER_MARGIN
    for y, y1, cy, cy1 in _tiles(ph, max(ph, pw) if margin == 0 else tile, margin):
        for x, x1, cx, cx1 in _tiles(pw, max(ph, pw) if margin == 0 else tile, margin):
            crop = tf.convert_to_tensor(padded[None, cy:cy1, cx:cx1].astype(np.float32) / 255.0)
            codes, imp = model.encoder(crop)
            oy, ox = (y - cy) // 8, (x - cx) // 8
            rows, cols = slice(y // 8, y1 // 8), slice(x // 8, x1 // 8)
            inner = (slice(oy, oy + (y1 - y) // 8), slice(ox, ox + (x1 - x) // 8))
            bits[rows, cols] = codes[0].numpy()[inner] > 0.5
            p[0, rows, cols] = imp[0].numpy()[inner]
    kept = kept_channels(p, model.n, model.levels)[0, :, :, 0].numpy()
    q = (kept // (model.n // model.levels)).astype(np.int64) - 1
    return bits, q


def synthesise(model, bits, q, height, width, tile=TILE):
    """Runs the decoder on the masked bits and crops: -> uint8 HxWx3.

    Outputs larger than ``tile`` run in overlapping tiles of latent positions, each masked
    and converted on its own, written straight into the uint8 image.
    """
    from .coding import masked_bits
    lh, lw = q.shape
    out = np.empty((height, width, 3), np.uint8)
    step = max(lh, lw) if height <= tile and width <= tile else tile // 8
    margin = 0 if step == max(lh, lw) else _DECODER_MARGIN
    for y, y1, cy, cy1 in _tiles(lh, step, margin):
        for x, x1, cx, cx1 in _tiles(lw, step, margin):
            z = masked_bits(bits[cy:cy1, cx:cx1], q[cy:cy1, cx:cx1], model.n, model.levels)
            r = model.decoder(z[None]).numpy()[0]
            r = r[8 * (y - cy):8 * (y1 - cy), 8 * (x - cx):8 * (x1 - cx)]
            oh, ow = min(height, 8 * y1) - 8 * y, min(width, 8 * x1) - 8 * x
            out[8 * y:8 * y + oh, 8 * x:8 * x + ow] = np.clip(
                np.round(r[:oh, :ow] * 255.0), 0, 255)
    return out


def _attach(model, tables, rate):
    """Gives `model` these tables and rate index unless it has them already."""
    if getattr(model, "tables", None) is not tables or model.rate != rate:
        model.set_tables(tables, rate)


def _graph_errors():
    import tensorflow as tf
    return (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError,
            tf.errors.ResourceExhaustedError)


def _first_line(error):
    """The reason a graph assertion gives: its "cwic: ..." line (TF puts "Graph execution
    error:" and the node's traceback before it), else a generic one for a broken stream."""
    lines = [ln.strip() for ln in getattr(error, "message", str(error)).splitlines()]
    for ln in lines:
        if "cwic: " in ln:
            return ln.split("cwic: ", 1)[1].rstrip("]'\" ")  # TF quotes assertion data
    first = next((ln for ln in lines if ln and not ln.startswith(("Graph execution error",
                                                                    "Detected at node"))), "")
    return f"corrupted or truncated stream ({first})" if first else "corrupted or truncated stream"


def compress_array(model, tables, rate, image):
    """uint8 HxWx3 -> .cwic file bytes (the model's in-graph `compress`)."""
    h, w = image.shape[:2]
    if h > MAX_SIDE or w > MAX_SIDE:
        raise InputError(f"cwic: image {w}x{h} larger than {MAX_SIDE} on a side")
    limits.check_pixels(w, h, "cwic: the image to encode is too large")
    _attach(model, tables, rate)
    return model.compress(np.ascontiguousarray(image, np.uint8))["cwic_bytes"].numpy()


def decompress_array(model, tables, data):
    """.cwic file bytes -> uint8 HxWx3 (the model's in-graph `decompress`).

    Version 3 files must come from this model and tables (model id), version 2 files from the
    registry model of their rate index; BitstreamError otherwise or for a damaged file."""
    parsed = unpack(data)
    _attach(model, tables, parsed.rate if parsed.version == 2 else model_rate(model))
    if parsed.version == 3 and parsed.model_id != model.model_id:
        raise BitstreamError(
            f"cwic: the file was made by model {parsed.model_id.hex()} (rate index "
            f"{parsed.rate}), not by this one ({model.model_id.hex()}); decode it with the "
            "weights and tables that made it (--weights / --tables)")
    try:
        return model.decompress(data).numpy()
    except _graph_errors() as e:
        raise BitstreamError(f"cwic: {_first_line(e)}") from None


def model_rate(model):
    """The rate index a model's files carry (0 before any tables are attached)."""
    return getattr(model, "rate", 0)


def load_user_model(spec_name, weights, tables=None, rate=0):
    """A CWIC model of `spec_name`'s architecture with another weights file and its tables.

    `weights`: a .weights.h5 file (then `tables` is its .ctx.npz), or a directory holding one
    of each. InputError when a file is missing or does not fit."""
    from .. import models
    from .coding import ContextTables
    if weights and os.path.isdir(weights):
        found = {ext: sorted(f for f in os.listdir(weights) if f.endswith(ext))
                 for ext in (".weights.h5", ".ctx.npz")}
        if any(len(v) != 1 for v in found.values()):
            raise InputError(f"cwic: {weights} must hold one .weights.h5 and one .ctx.npz "
                             f"(it has {found['.weights.h5'] + found['.ctx.npz']})")
        tables = tables or os.path.join(weights, found[".ctx.npz"][0])
        weights = os.path.join(weights, found[".weights.h5"][0])
    if not tables:
        raise InputError("cwic: --weights needs the model's context tables (--tables FILE, "
                         "from training/train_cwic.py --stage tables) or a directory with both")
    if not os.path.isfile(tables):
        raise InputError(f"cwic: no such tables file: {tables}")
    model = models.load_model(spec_name, weights=weights)
    try:
        loaded = ContextTables.load(tables)
        return model.set_tables(loaded, rate)
    except (OSError, KeyError, ValueError) as e:
        raise InputError(f"cwic: {tables} does not fit {spec_name} ({e})") from None


class CwicCodec(Codec):
    """Content-weighted image compression; quality = rate index of a shipped model of this
    codec's set (`cwic`: the MS-SSIM-trained models cwic-1..3).

    Any .cwic file decodes with either codec of the format: its header's rate id names the
    registry model, whichever set it belongs to (tfcomp.cwic.specs.RATE_BASE).

    Options `weights` (a .weights.h5 file or a directory with it and its tables) and `tables`
    (the .ctx.npz): code with a model of your own, of the rate model's architecture, instead
    of the shipped one; its files carry its model id and decode only with it.
    """

    name = "cwic"
    kind = "learned"
    description = "content-weighted learned codec (Li et al. 2018), MS-SSIM-trained rate models, " \
                  "quality = rate model index"
    extension = ".cwic"

    @classmethod
    def _specs(cls):
        """Rate index -> registry spec of this codec's set."""
        return {s.quality_min: s for s in _cwic_specs() if s.codec == cls.name}

    @classmethod
    def rate_id(cls, quality):
        """The rate id this set's model of rate index `quality` writes into its files."""
        from .specs import RATE_BASE
        spec = cls._specs().get(quality)
        if spec is not None:
            return _rate_id(spec)
        return RATE_BASE.get(cls.name, 0) + quality

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

    def __init__(self, weights=None, tables=None, **options):
        super().__init__(**options)
        if tables and not weights:
            raise InputError("cwic: --tables goes with --weights (the shipped models have "
                             "their own)")
        self.weights, self.tables = weights, tables
        self._user = {}

    def _user_model(self, rate_id, quality):
        """The user's --weights model with the architecture of this set's rate model."""
        specs = self._specs()
        spec = specs.get(quality) or specs.get(self.quality_default)
        if spec is None:
            raise InputError("cwic: no rate model registered to take the architecture from")
        if rate_id not in self._user:
            self._user[rate_id] = load_user_model(spec.name, self.weights, self.tables, rate_id)
        return self._user[rate_id]

    def _load(self, quality):
        """The model (tables attached) of this set's rate index `quality`: the user's
        --weights model or the shipped one."""
        from .. import models
        if self.weights:
            return self._user_model(self.rate_id(quality), quality)
        specs = self._specs()
        if quality not in specs:
            raise InputError(f"cwic: no rate model {quality} in {self.name} (known: {sorted(specs)})")
        return models.load_model(specs[quality].name)

    def _encode(self, image, quality):
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        model = self._load(quality)
        return compress_array(model, model.tables, self.rate_id(quality), image)

    def _decode(self, data):
        from .. import models
        parsed = unpack(data)
        if self.weights:
            from .specs import RATE_SPAN
            model = self._user_model(parsed.rate, parsed.rate % RATE_SPAN)
        else:
            by_id = {_rate_id(s): s for s in _cwic_specs()}
            if parsed.rate not in by_id:
                raise BitstreamError(
                    f"cwic: file needs the rate model with id {parsed.rate}, which this tfcomp "
                    f"does not have (known: {', '.join(f'{i} ({s.name})' for i, s in sorted(by_id.items()))})")
            model = models.load_model(by_id[parsed.rate].name)
        return decompress_array(model, model.tables, data)

    def sniff(self, data):
        return data[:4] == MAGIC


class CwicMseCodec(CwicCodec):
    """The same codec and file format with the MSE-trained rate models cwic-mse-1..3."""

    name = "cwic-mse"
    description = "content-weighted learned codec (Li et al. 2018), MSE-trained rate models, " \
                  "quality = rate model index"


def _rate_id(spec):
    """The rate id a registry cwic model writes into its files' header."""
    return spec.codec_settings.get("rate_id", spec.quality_min)


def _cwic_specs():
    """Every registry model of the .cwic format (both sets)."""
    from .. import models
    from .specs import CODECS
    return [s for s in (models.get_spec(n) for n in models.model_names("learned"))
            if s.codec in CODECS]
