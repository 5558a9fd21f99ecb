"""What the shape of CWIC's bit context costs and buys: the context families, measured.

The families (defined in tfcomp.cwic.coding, which codes .cwic files with "checkerboard"):

  group            channel group only (8 contexts): the bits' order statistics alone; n steps
  channel          channels < k only (2,160 contexts): a channel decodes in one step; n steps
  checkerboard     channel, then for the positions decoded second (i + j odd) also their 4
                   neighbours in channel k, decoded first (34,560 contexts); 2n steps
  channel+spatial  channel plus the bits above and to the left in channel k itself (19,440
                   contexts); those decode along anti-diagonals: n (h + w - 1) steps

Tables are counted on training images, the test images' bits are really range-coded, decoded
again (checked equal) and timed. The importance map's stream is the same in every family and
is left out. Used by training/cwic_context_report.py.
"""

import time

import numpy as np

from .coding import (FAMILIES, ContextTables, decode_bits, encode_bits, kept_counts,
                          num_contexts)

__all__ = ["FAMILIES", "compare_families"]


def compare_families(train, test, n, levels, families=FAMILIES):
    """Counts each family's tables on `train`, codes / decodes / times `test`.

    train: list of (bits, q); test: list of (bits, q, pixels) with pixels = the image's own
    pixel count. Returns one row per family: contexts, kept-bit bpp raw and coded, saving,
    mean sequential steps and mean encode / decode seconds per image.
    """
    rows = []
    raw = sum(int(kept_counts(q, n, levels).sum()) for _, q, _ in test)
    pixels = sum(p for _, _, p in test)
    for family in families:
        tables = ContextTables(n, levels, family=family)
        for bits, q in train:
            tables.accumulate(bits, q)
        cdf = tables.bit_cdf
        encode_bits(family, *test[0][:2], cdf, n, levels)  # warm-up: first calls load TF ops
        coded, steps, t_enc, t_dec = 0, [], [], []
        for bits, q, _ in test:
            t0 = time.perf_counter()
            stream = encode_bits(family, bits, q, cdf, n, levels)
            t1 = time.perf_counter()
            decoded, taken = decode_bits(family, stream, q, cdf, n, levels)
            t_dec.append(time.perf_counter() - t1)
            t_enc.append(t1 - t0)
            kept = kept_counts(q, n, levels)[:, :, None] > np.arange(n)
            if not np.array_equal(decoded * kept, bits * kept):
                raise AssertionError(f"context family {family}: decoded bits differ")
            coded += 8 * len(stream)
            steps.append(taken)
        rows.append({"family": family, "contexts": num_contexts(family),
                     "raw_bpp": raw / pixels, "coded_bpp": coded / pixels,
                     "saving": 1 - coded / raw, "steps": float(np.mean(steps)),
                     "encode_s": float(np.mean(t_enc)), "decode_s": float(np.mean(t_dec))})
    return rows
