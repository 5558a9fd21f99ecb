"""Synthetic natural-looking test images shared by the codec tests."""

import numpy as np


def natural_rgb(h=48, w=64, seed=0):
    """Smooth colour gradients + a periodic texture + a little noise, uint8 HxWx3."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w, 1)
    img = np.stack([200 * x + 30, 180 * y + 40, 60 * (x + y) + 60 + 50 * np.sin(6 * x)], axis=-1)
    img += (20 * np.sin(40 * x) * np.cos(30 * y))[..., None]
    img += rng.normal(0.0, 4.0, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def natural_gray(h=48, w=64, seed=1):
    """A gray HxW uint8 image of the same kind."""
    rgb = natural_rgb(h, w, seed).astype(np.float64)
    return np.round(rgb @ [0.299, 0.587, 0.114]).astype(np.uint8)
