"""Classical codecs through Pillow: JPEG (libjpeg-turbo), WebP (libwebp), JPEG 2000 (OpenJPEG).

Each is set up as its reference encoder is by default (README "Classical codecs" lists the
settings and where they differ).
"""

import io

import numpy as np
from PIL import Image

from .. import limits
from ..errors import BitstreamError
from ..imageio import DECODE_ERRORS, pillow_allows_budget
from .base import Codec

__all__ = ["JpegCodec", "WebpCodec", "Jpeg2000Codec", "pillow_decode", "check_jpeg_header"]


def check_jpeg_header(data, codec_name):
    """BitstreamError when a JPEG's frame header claims more than the budget or than the
    file's bytes can fill (read from the SOF segment, before any decoding)."""
    frame = limits.jpeg_frame(data)
    if frame is None:
        return
    what = f"{codec_name}: the file's image is too large"
    limits.check_pixels(frame["width"], frame["height"], what, BitstreamError)
    limits.check_fill(len(data), frame["offset"] + limits.jpeg_min_bytes(frame), codec_name,
                      frame["width"], frame["height"])


def pillow_decode(data, codec_name, formats):
    """Decodes `data` with Pillow, accepting only `formats`; HxW x1 or x3 uint8.

    The size in the header is checked against the pixel budget before decoding.
    """
    if "JPEG" in formats:
        check_jpeg_header(data, codec_name)
    pillow_allows_budget()
    try:
        with Image.open(io.BytesIO(data), formats=formats) as img:
            limits.check_pixels(img.width, img.height,
                                f"{codec_name}: the file's image is too large", BitstreamError)
            img.load()
            mode = img.mode
            if mode in ("L", "1", "I;16", "I"):
                arr = np.asarray(img.convert("L"))[:, :, None]
            else:
                arr = np.asarray(img.convert("RGB"))
    except BitstreamError:
        raise
    except Image.DecompressionBombError:
        raise BitstreamError(f"{codec_name}: the file's image is over the pixel budget of "
                             f"{limits.max_pixels()} (raise it with --max-pixels)") from None
    except MemoryError:
        raise BitstreamError(f"{codec_name}: not enough memory to decode the file") from None
    except DECODE_ERRORS as e:
        raise BitstreamError(f"{codec_name}: corrupted or truncated file ({e})") from None
    return np.ascontiguousarray(arr)


def _to_pil(image):
    return Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)


class JpegCodec(Codec):
    """Baseline JPEG via Pillow/libjpeg-turbo; chroma 4:2:0 by default or 4:4:4."""

    name = "jpeg"
    description = "JPEG (libjpeg-turbo via Pillow), quality 1..100, chroma 420 (default) or 444"
    extension = ".jpg"
    quality_min, quality_max, quality_default = 1, 100, 75
    options = {"chroma": ("420", "444")}

    def _encode(self, image, quality):
        return self.jpeg_bytes(image, quality)

    def jpeg_bytes(self, image, quality, comment=None):
        """The JPEG file of `image` (HxWxC uint8), with an optional COM segment (bytes)."""
        buf = io.BytesIO()
        extra = {"comment": comment} if comment else {}
        subsampling = 0 if self.settings.get("chroma") == "444" else 2
        _to_pil(image).save(buf, format="JPEG", quality=int(quality), subsampling=subsampling, **extra)
        return buf.getvalue()

    def _decode(self, data):
        return pillow_decode(data, self.name, ["JPEG"])

    def sniff(self, data):
        return data[:3] == b"\xff\xd8\xff"


class WebpCodec(Codec):
    """Lossy WebP via Pillow/libwebp (method 6, the slowest and best)."""

    name = "webp"
    description = "WebP (libwebp via Pillow), quality 0..100"
    extension = ".webp"
    quality_min, quality_max, quality_default = 0, 100, 75

    def _encode(self, image, quality):
        buf = io.BytesIO()
        img = _to_pil(image).convert("RGB")
        img.save(buf, format="WEBP", quality=int(quality), method=6)
        return buf.getvalue()

    def _decode(self, data):
        return pillow_decode(data, self.name, ["WEBP"])

    def sniff(self, data):
        return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


class Jpeg2000Codec(Codec):
    """JPEG 2000 (JP2 container) via Pillow/OpenJPEG, set up as OpenJPEG's own encoder
    (opj_compress) is by default for a colour image: the multi-component transform on
    (RGB -> YCbCr, here the irreversible ICT that goes with the 9/7 wavelet, as with
    opj_compress -I), 6 resolution levels (fewer for images under 32 pixels a side, as Pillow
    picks), 64x64 code blocks, one quality layer.

    The knob is opj_compress's ``-r``: the compression ratio against the raw 8-bit samples
    (24 bits per pixel for RGB, 8 for gray), so a file has about 24 / ratio bpp for RGB;
    OpenJPEG's rate control truncates the code blocks to that size (PCRD-opt). A higher
    ratio means a smaller file (`higher_is_better` is False).
    """

    name = "jpeg2000"
    description = ("JPEG 2000 (OpenJPEG via Pillow, colour transform on), quality = "
                   "compression ratio (opj_compress -r; ~24/ratio bpp for RGB), 2..500")
    extension = ".jp2"
    quality_min, quality_max, quality_default = 2, 500, 24
    higher_is_better = False
    #: 2 .. 0.1 bpp for RGB
    sweep = (12, 16, 24, 32, 48, 64, 96, 128, 192, 240)

    def _encode(self, image, quality):
        buf = io.BytesIO()
        _to_pil(image).save(buf, format="JPEG2000", quality_mode="rates",
                            quality_layers=[float(quality)], irreversible=True,
                            mct=1 if image.shape[2] == 3 else 0, no_jp2=False)
        return buf.getvalue()

    def _decode(self, data):
        return pillow_decode(data, self.name, ["JPEG2000"])

    def sniff(self, data):
        return (data[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n"
                or data[:4] == b"\xff\x4f\xff\x51")
