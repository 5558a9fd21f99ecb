"""Image quality metrics (PSNR, Y-PSNR, SSIM, MS-SSIM, PSNR-B) and bit-rate helpers.

Numpy throughout, except :func:`batch_psnr`, the same PSNR on TensorFlow batches for training
metrics and graphs (every model's `psnr` log is it; one definition of PSNR in the project).
"""

import os

import numpy as np
from scipy import ndimage

from .errors import InputError

__all__ = [
    "mse",
    "psnr",
    "batch_psnr",
    "rgb_to_y",
    "y_psnr",
    "ssim",
    "ms_ssim",
    "ms_ssim_db",
    "psnr_b",
    "bpp",
    "file_bpp",
]

_WINDOW = 11
_SIGMA = 1.5
_K1, _K2 = 0.01, 0.03
_MS_SSIM_WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
# Smallest side whose last MS-SSIM scale (4 halvings, rounded up) still fits the window.
_MS_SSIM_MIN_SIDE = (_WINDOW - 1) * 2 ** (len(_MS_SSIM_WEIGHTS) - 1) + 1
_BLOCK = 8


def _as_image(img):
    """Return img as a float64 HxW or HxWxC array."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim not in (2, 3) or img.size == 0:
        raise InputError(f"expected a non-empty HxW or HxWxC image, got shape {img.shape}")
    return img


def _pair(a, b):
    """Return a and b as float64 images of the same shape."""
    a, b = _as_image(a), _as_image(b)
    if a.shape != b.shape:
        raise InputError(f"image shapes differ: {a.shape} vs {b.shape}")
    return a, b


def _channels(img):
    """View an HxW image as HxWx1 (HxWxC images are returned as they are)."""
    return img[..., None] if img.ndim == 2 else img


def _require_side(img, min_side, what):
    """Raise InputError if the image is smaller than min_side x min_side."""
    h, w = img.shape[:2]
    if min(h, w) < min_side:
        raise InputError(f"{what} needs images of at least {min_side}x{min_side} pixels, got {h}x{w}")


def _psnr_from_mse(err, peak):
    """PSNR in dB for a mean squared error (inf when the error is zero)."""
    return float("inf") if err == 0 else float(10.0 * np.log10(peak**2 / err))


def mse(a, b):
    """Mean squared error between two images of the same shape (float64)."""
    a, b = _pair(a, b)
    return float(np.mean((a - b) ** 2))


def psnr(a, b, peak=255.0):
    """PSNR in dB between two images of the same shape; identical images give inf."""
    return _psnr_from_mse(mse(a, b), peak)


#: batch_psnr's floor on the MSE, relative to peak**2: identical images give 100 dB, not inf,
#: so a training log's mean stays finite.
BATCH_PSNR_FLOOR = 1e-10


def batch_psnr(a, b, peak=1.0):
    """Per-image PSNR in dB of two TensorFlow batches [B, H, W, C] (float, peak `peak`):
    10 log10(peak^2 / MSE) with the MSE over each image's pixels and channels, as
    :func:`psnr`, floored at BATCH_PSNR_FLOOR * peak^2. Returns float32 [B]."""
    import tensorflow as tf
    a = tf.cast(a, tf.float32)
    b = tf.cast(b, tf.float32)
    err = tf.reduce_mean(tf.square(a - b), axis=[1, 2, 3])
    peak2 = float(peak) ** 2
    return 10.0 * tf.math.log(peak2 / tf.maximum(err, BATCH_PSNR_FLOOR * peak2)) / tf.math.log(10.0)


def rgb_to_y(img, rounded=False):
    """BT.601 studio-range luma of an RGB image in 0..255, as MATLAB rgb2ycbcr.

    Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, in 16..235 (float64). With
    rounded=True the result is rounded half up (as MATLAB) to uint8. Gray input
    (HxW or HxWx1) is returned unchanged as float64, whatever rounded says.
    """
    img = _as_image(img)
    if img.ndim == 2 or img.shape[2] == 1:
        return img
    if img.shape[2] != 3:
        raise InputError(f"rgb_to_y needs 1 or 3 channels, got {img.shape[2]}")
    y = 16.0 + img @ np.array([65.481, 128.553, 24.966]) / 255.0
    return np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8) if rounded else y


def y_psnr(a, b):
    """PSNR in dB on the (unrounded) rgb_to_y luma of both images."""
    a, b = _pair(a, b)
    return psnr(rgb_to_y(a), rgb_to_y(b))


def _gaussian_window():
    """Normalised 1-D Gaussian taps; their outer product is MATLAB's fspecial window."""
    x = np.arange(_WINDOW) - (_WINDOW - 1) / 2.0
    g = np.exp(-(x**2) / (2.0 * _SIGMA**2))
    return g / g.sum()


def _filter_valid(img):
    """Gaussian-weighted local means over the first two axes, 'valid' (no padding) output."""
    g = _gaussian_window()
    r = _WINDOW // 2
    out = ndimage.correlate1d(img, g, axis=0)[r:-r]
    return ndimage.correlate1d(out, g, axis=1)[:, r:-r]


def _ssim_terms(x, y, data_range):
    """Per-pixel luminance and contrast-structure maps of HxWxC images ('valid' window)."""
    c1 = (_K1 * data_range) ** 2
    c2 = (_K2 * data_range) ** 2
    mu_x, mu_y = _filter_valid(x), _filter_valid(y)
    mu_xy = mu_x * mu_y
    mu_sq = mu_x**2 + mu_y**2
    luminance = (2.0 * mu_xy + c1) / (mu_sq + c1)
    cs = (2.0 * (_filter_valid(x * y) - mu_xy) + c2) / (_filter_valid(x * x + y * y) - mu_sq + c2)
    return luminance, cs


def ssim(a, b, data_range=255.0):
    """MATLAB-style SSIM (as BasicSR calculate_ssim), averaged over channels.

    11x11 Gaussian window (sigma 1.5), K1=0.01, K2=0.03, 'valid' filtering so the
    SSIM map covers (H-10)x(W-10), no downsampling. Images need sides of 11 or more.
    """
    x, y = (_channels(v) for v in _pair(a, b))
    _require_side(x, _WINDOW, "ssim")
    luminance, cs = _ssim_terms(x, y, data_range)
    return float(np.mean(luminance * cs))


def _downsample(img):
    """2x2 average pooling; an odd last row/column is first mirrored (TF's SYMMETRIC pad)."""
    h, w = img.shape[:2]
    img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="symmetric")
    return 0.25 * (img[0::2, 0::2] + img[1::2, 0::2] + img[0::2, 1::2] + img[1::2, 1::2])


def ms_ssim(a, b, data_range=255.0):
    """5-scale MS-SSIM, behaving like tf.image.ssim_multiscale (TF 2.14, default arguments).

    Weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333); 'valid' 11x11 Gaussian window
    (sigma 1.5) at every scale; odd sizes are padded symmetrically before 2x2 average
    pooling; per-scale values are clipped at 0 (relu) and the product over scales is
    averaged over channels. Like TF, images need sides of at least 161 pixels.
    """
    x, y = (_channels(v) for v in _pair(a, b))
    _require_side(x, _MS_SSIM_MIN_SIDE, "ms_ssim")
    factors = []
    for scale in range(len(_MS_SSIM_WEIGHTS)):
        if scale:
            x, y = _downsample(x), _downsample(y)
        luminance, cs = _ssim_terms(x, y, data_range)
        factors.append(cs.mean(axis=(0, 1)))
    factors[-1] = (luminance * cs).mean(axis=(0, 1))
    per_channel = np.prod(np.maximum(np.stack(factors), 0.0) ** _MS_SSIM_WEIGHTS[:, None], axis=0)
    return float(per_channel.mean())


def ms_ssim_db(value):
    """MS-SSIM on a dB scale: -10 log10(1 - value) (inf for value 1)."""
    return float("inf") if value >= 1 else float(-10.0 * np.log10(1.0 - value))


def _blocking_effect_factor(img):
    """Per-channel blocking effect factor of an HxWxC image on the 8x8 grid (counts as BasicSR)."""
    h, w = img.shape[:2]
    d_horiz = np.diff(img, axis=1) ** 2  # pair (column j, j+1) at index j
    d_vert = np.diff(img, axis=0) ** 2
    col_edge = np.zeros(w - 1, dtype=bool)
    col_edge[_BLOCK - 1 :: _BLOCK] = True
    row_edge = np.zeros(h - 1, dtype=bool)
    row_edge[_BLOCK - 1 :: _BLOCK] = True
    boundary = d_horiz[:, col_edge].sum(axis=(0, 1)) + d_vert[row_edge].sum(axis=(0, 1))
    nonboundary = d_horiz[:, ~col_edge].sum(axis=(0, 1)) + d_vert[~row_edge].sum(axis=(0, 1))
    n_boundary_horiz = h * (w // _BLOCK - 1)
    n_boundary_vert = w * (h // _BLOCK - 1)
    n_nonboundary = h * (w - 1) - n_boundary_horiz + w * (h - 1) - n_boundary_vert
    excess = boundary / (n_boundary_horiz + n_boundary_vert) - nonboundary / n_nonboundary
    return np.log2(_BLOCK) / np.log2(min(h, w)) * np.maximum(excess, 0.0)


def psnr_b(reference, test):
    """PSNR-B in dB (Yim & Bovik 2011): 10 log10(255^2 / (MSE + BEF(test))), values in 0..255.

    The blocking effect factor is measured on the 8x8 grid of the test image, as in
    BasicSR's calculate_psnrb. For multi-channel images MSE and BEF are computed per
    channel and both averaged over channels before the log (BasicSR instead averages
    per-channel PSNR-B values). Images need sides of at least 16 pixels.
    """
    ref, tst = (_channels(v) for v in _pair(reference, test))
    _require_side(ref, 2 * _BLOCK, "psnr_b")
    err = np.mean((ref - tst) ** 2, axis=(0, 1))
    return _psnr_from_mse(float(np.mean(err + _blocking_effect_factor(tst))), 255.0)


def bpp(num_bytes, height, width):
    """Bits per pixel of num_bytes spent on a height x width image."""
    if height <= 0 or width <= 0 or num_bytes < 0:
        raise InputError(f"bpp needs num_bytes >= 0 and a positive size, got {num_bytes}, {height}x{width}")
    return 8.0 * num_bytes / (height * width)


def file_bpp(path, height, width):
    """Bits per pixel of the file at path for a height x width image."""
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise InputError(f"cannot read the size of {path}: {exc.strerror}") from exc
    return bpp(size, height, width)
