"""Fitting CWIC's context tables on training images, and measuring the coding gain."""

import numpy as np

__all__ = ["fit_tables", "coding_report"]


def fit_tables(weights, config, data, out, max_images=None, show_progress=True):
    """Counts (context, bit) and (context, level) statistics of a trained model; saves them."""
    from .codecs.cwic import analyse
    from .cwic_coding import ContextTables
    from .evaluate import progress
    from .imageio import list_images, read_image
    from .models.cwic import build_cwic
    model = build_cwic(config)
    model.load_weights(weights)
    tables = ContextTables(model.n, model.levels)
    paths = list_images(data)[:max_images]
    for path in progress(paths, len(paths), "context tables", show_progress):
        bits, q = analyse(model, read_image(path, "rgb"))
        tables.accumulate(bits, q)
    tables.save(out)
    return tables


def coding_report(model, tables, images):
    """Bits per pixel of the kept bits stored raw vs context-coded, over (name, array) items."""
    from .codecs.cwic import analyse
    from .cwic_coding import encode_streams
    raw = coded_bits = coded_map = raw_map = pixels = 0
    for _, image in images:
        bits, q = analyse(model, image)
        kept = (q + 1) * (model.n // model.levels)
        map_stream, bit_stream = encode_streams(bits, q, tables)
        raw += int(kept.sum())
        raw_map += q.size * int(np.ceil(np.log2(model.levels)))
        coded_bits += 8 * len(bit_stream)
        coded_map += 8 * len(map_stream)
        pixels += image.shape[0] * image.shape[1]
    return {"raw_bits_bpp": raw / pixels, "coded_bits_bpp": coded_bits / pixels,
            "raw_map_bpp": raw_map / pixels, "coded_map_bpp": coded_map / pixels,
            "saving": 1 - (coded_bits + coded_map) / (raw + raw_map)}
