"""Fitting CWIC's context tables on training images, and measuring the coding gain."""

import numpy as np

__all__ = ["fit_tables", "coding_report", "ablation_rows"]


def fit_tables(weights, config, data, out, max_images=None, show_progress=True):
    """Counts (context, bit) and (context, level) statistics of a trained model; saves them."""
    from .codec import analyse
    from .coding import ContextTables
    from ..evaluate import progress
    from ..imageio import list_images, read_image
    from .model import build_cwic
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
    from .codec import analyse
    from .coding import encode_streams, kept_counts
    raw = coded_bits = coded_map = raw_map = pixels = 0
    for _, image in images:
        bits, q = analyse(model, image)
        kept = kept_counts(q, model.n, model.levels)
        map_stream, bit_stream = encode_streams(bits, q, tables)
        raw += int(kept.sum())
        raw_map += q.size * int(np.ceil(np.log2(model.levels)))
        coded_bits += 8 * len(bit_stream)
        coded_map += 8 * len(map_stream)
        pixels += image.shape[0] * image.shape[1]
    return {"raw_bits_bpp": raw / pixels, "coded_bits_bpp": coded_bits / pixels,
            "raw_map_bpp": raw_map / pixels, "coded_map_bpp": coded_map / pixels,
            "saving": 1 - (coded_bits + coded_map) / (raw + raw_map)}


def ablation_rows(variants, images, show_progress=True):
    """What each CWIC component adds: quality and rate of model variants over the images.

    variants: [(label, model, tables or None)]. A model without the binarizer has a
    continuous code (no rate: bpp None); with the binarizer but no importance map it stores
    all n bits per 8x8 block; with the map, the kept bits plus log2(L) bits per block for the
    map, raw. A variant given context tables adds a second row, "+ context coding", whose bpp
    is the .cwic file's bytes (same reconstruction). bpp counts the padded grid's bits over the
    image's own pixels. Returns [{"variant", "bpp", "psnr", "ms_ssim"}] (means over images).
    """
    import tensorflow as tf
    from .codec import compress_array
    from ..evaluate import progress
    from ..imageio import pad_to_multiple
    from ..metrics import ms_ssim, psnr
    rows = []
    for label, model, tables in variants:
        raw, coded, pixels, quality = 0, 0, 0, []
        for _, image in progress(images, len(images), label, show_progress):
            h, w = image.shape[:2]
            x = tf.convert_to_tensor(pad_to_multiple(image, 8)[None].astype(np.float32) / 255.0)
            codes, _, mask = model.analyse(x)
            y = model.decoder(codes * mask).numpy()[0]
            out = np.clip(np.round(y[:h, :w] * 255.0), 0, 255).astype(np.uint8)
            quality.append((psnr(image, out), ms_ssim(image, out)))
            raw += float(tf.reduce_sum(mask)) if model.use_binarizer else 0.0
            if model.use_importance:
                raw += mask.shape[1] * mask.shape[2] * np.ceil(np.log2(model.levels))
            if tables is not None:
                coded += 8 * len(compress_array(model, tables, 0, image))
            pixels += h * w
        p, m = (float(np.mean(v)) for v in zip(*quality))
        rows.append({"variant": label, "bpp": raw / pixels if model.use_binarizer else None,
                     "psnr": p, "ms_ssim": m})
        if tables is not None:
            rows.append({"variant": "+ context coding", "bpp": coded / pixels, "psnr": p,
                         "ms_ssim": m})
    return rows
