"""Apply an artifact-removal network to whole images (tiled, exact at tile seams)."""

import numpy as np

__all__ = ["restore_array", "run_tiled", "run_tiled_uint8"]


def _run(model, batch):
    import tensorflow as tf
    return model(tf.convert_to_tensor(batch), training=False).numpy()


def run_tiled(model, planes, tile=512, margin=16):
    """Runs a fully convolutional `model` on float32 [N, H, W, C] in overlapping tiles.

    Equal to one whole-image pass when `margin` >= the model's receptive radius. A
    quality-gated restorer (tfcomp.restorer.model.split_gate) computes its gate once on the whole
    image and runs only its local network in tiles, so it is exact too.
    """
    n, h, w, _ = planes.shape
    if h <= tile and w <= tile:
        return _run(model, planes)
    from .model import split_gate
    parts = split_gate(model) if hasattr(model, "layers") else None
    if parts is not None:
        gate, network = parts
        g = _run(gate, planes)[:, None, None, :]
        return planes + g * (run_tiled(network, planes, tile, margin) - planes)
    out = None
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            y0, x0 = max(0, y - margin), max(0, x - margin)
            y1, x1 = min(h, y + tile + margin), min(w, x + tile + margin)
            res = _run(model, planes[:, y0:y1, x0:x1])
            if out is None:
                out = np.empty((n, h, w, res.shape[-1]), np.float32)
            th, tw = min(tile, h - y), min(tile, w - x)
            out[:, y:y + th, x:x + tw] = res[:, y - y0:y - y0 + th, x - x0:x - x0 + tw]
    return out


def _to_uint8(y):
    return np.clip(np.round(y * 255.0), 0, 255).astype(np.uint8)


def run_tiled_uint8(model, make_input, height, width, tile=512, margin=16, combine=None):
    """Like :func:`run_tiled`, for large images: the input of each tile is built on demand and
    the output goes straight to uint8 (round(255 y), clipped).

    ``make_input(y0, y1, x0, x1)`` returns the float32 [1, y1 - y0, x1 - x0, C] input of that
    crop. Memory is the uint8 output plus one tile, instead of float copies of the whole image;
    the numbers are those of run_tiled followed by the same rounding. ``combine(output,
    input)``, if given, maps each tile's model output before rounding (e.g. a gate's blend).
    """
    out = None
    for y in range(0, height, tile):
        for x in range(0, width, tile):
            y0, x0 = max(0, y - margin), max(0, x - margin)
            y1, x1 = min(height, y + tile + margin), min(width, x + tile + margin)
            if height <= tile and width <= tile:
                y0, x0, y1, x1 = 0, 0, height, width
            inputs = make_input(y0, y1, x0, x1)
            res = _run(model, inputs)[0]
            if combine is not None:
                res = combine(res, inputs[0])
            if out is None:
                out = np.empty((height, width, res.shape[-1]), np.uint8)
            th, tw = min(tile, height - y), min(tile, width - x)
            out[y:y + th, x:x + tw] = _to_uint8(res[y - y0:y - y0 + th, x - x0:x - x0 + tw])
    return out


def _restore_tiles(model, img, tile, margin):
    """restore_array when the model's channels match the image's: tile by tile to uint8. A
    quality-gated model's gate reads the whole image once; its network runs in tiles."""
    from .model import split_gate

    def crop(y0, y1, x0, x1):
        return img[None, y0:y1, x0:x1].astype(np.float32) / np.float32(255.0)

    parts = split_gate(model) if hasattr(model, "layers") else None
    if parts is None:
        return run_tiled_uint8(model, crop, img.shape[0], img.shape[1], tile, margin)
    gate, network = parts
    g = _run(gate, crop(0, img.shape[0], 0, img.shape[1]))[0]
    return run_tiled_uint8(network, crop, img.shape[0], img.shape[1], tile, margin,
                           combine=lambda f, x: x + g * (f - x))


def restore_array(model, image, tile=512, margin=16):
    """Restores a decoded uint8 image (HxW, HxWx1 or HxWx3) with `model`; uint8 out, same shape.

    Large images are processed in `tile`-sized pieces with `margin` pixels of overlap,
    which must be at least the network's receptive radius (8 for the restorer) so the
    result equals a single whole-image pass. A 3-channel model restores a gray image
    replicated to RGB (output: the channel mean); a 1-channel model restores each
    channel of a colour image separately.
    """
    image = np.asarray(image)
    gray2d = image.ndim == 2
    img = image[:, :, None] if gray2d else image
    c_model = model.input_shape[-1]
    if c_model == img.shape[2]:
        out = _restore_tiles(model, img, tile, margin)
        return out[:, :, 0] if gray2d else out
    x = img.astype(np.float32) / 255.0
    if c_model == 3 and img.shape[2] == 1:
        y = run_tiled(model, np.repeat(x, 3, axis=2)[None], tile, margin)[0]
        y = y.mean(axis=2, keepdims=True)
    elif c_model == 1 and img.shape[2] == 3:
        y = run_tiled(model, np.transpose(x, (2, 0, 1))[..., None], tile, margin)
        y = np.transpose(y[..., 0], (1, 2, 0))
    else:
        y = run_tiled(model, x[None], tile, margin)[0]
    out = _to_uint8(y)
    return out[:, :, 0] if gray2d else out
