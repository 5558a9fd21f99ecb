"""Benchmarks: restorer throughput and FLOPs, codec encode/decode times (tables, not tests)."""

import argparse
import os
import statistics
import time

import numpy as np

__all__ = ["conv_flops_per_pixel", "time_call", "bench_codecs", "bench_restorer", "bench_cwic",
           "main"]


def conv_flops_per_pixel(model):
    """Multiply-adds x2 (+ bias and PReLU) per output pixel of a stride-1 conv model.

    A restorer's quality gate counts its block DCT (64 products per pixel and input channel,
    then squares and magnitudes) and the blend (3 per value); its dense layers run once per
    image and are left out.
    """
    import tensorflow as tf
    from .restorer.model import GATE_PREFIX, BlockDCTStats, GatedResidual
    flops = 0
    for layer in model.layers:
        if isinstance(layer, BlockDCTStats):
            flops += 2 * 64 * int(layer.input_shape[-1]) + 4
        elif isinstance(layer, GatedResidual):
            flops += 3 * int(layer.output.shape[-1])
        elif layer.name.startswith(GATE_PREFIX):
            continue
        elif isinstance(layer, tf.keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            flops += 2 * kh * kw * cin * cout + cout
        elif isinstance(layer, tf.keras.layers.PReLU):
            flops += 2 * layer.output.shape[-1]
    return flops


def time_call(fn, repeat=5, warmup=1):
    """Median wall time of fn() over `repeat` runs, after `warmup` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def test_image(width=768, height=512):
    """A natural photo (scikit-image's astronaut) resized to width x height."""
    from PIL import Image
    from skimage import data
    return np.asarray(Image.fromarray(data.astronaut()).resize((width, height), Image.BICUBIC))


def _codec_variants():
    """(label, codec) for every ready classical codec; BPG at encoder levels 1, 5 and 8."""
    from .codecs import codec_names, get_codec
    for name in codec_names():
        codec = get_codec(name)
        if codec.kind != "classical" or not codec.weights_present:
            continue
        if "level" in codec.options:
            for level in (1, 5, 8):
                yield f"{name} level {level}", get_codec(name, level=level)
        else:
            yield name, codec


def bench_codecs(image, repeat=5):
    """Rows (codec, quality, bytes, bpp, encode s, decode s) at each codec's default quality."""
    rows = []
    for label, codec in _codec_variants():
        q = codec.quality_default
        data = codec.encode(image, q)
        enc = time_call(lambda: codec.encode(image, q), repeat)
        dec = time_call(lambda: codec.decode(data), repeat)
        rows.append((label, q, len(data), 8 * len(data) / image[..., 0].size, enc, dec))
    return rows


def bench_restorer(model, sizes=((1, 512, 512), (8, 256, 256), (32, 128, 128)), repeat=3):
    """Rows (batch, HxW, seconds per call, megapixels/s) for the restorer in a tf.function."""
    import tensorflow as tf
    fn = tf.function(lambda x: model(x, training=False))
    rows = []
    for b, h, w in sizes:
        x = tf.random.uniform((b, h, w, model.input_shape[-1]))
        s = time_call(lambda: fn(x).numpy(), repeat)
        rows.append((b, f"{h}x{w}", s, b * h * w / s / 1e6))
    return rows


def bench_train_step(batch=8, patch=128, repeat=3, widths=None):
    """Rows (precision, seconds per step) of one restorer training step (MSE, Adam) per
    tfcomp.training.PRECISIONS, on random batches of `batch` x `patch`^2 RGB patches."""
    import tensorflow as tf
    from .restorer.model import DEFAULT_WIDTHS, build_restorer
    from .training import PRECISIONS, precision_policy
    x = tf.random.uniform((batch, patch, patch, 3))
    y = tf.random.uniform((batch, patch, patch, 3))
    rows = []
    for name in PRECISIONS:
        with precision_policy(name):
            model = build_restorer(widths=widths or DEFAULT_WIDTHS)
        opt = tf.keras.optimizers.Adam(1e-5)

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
            opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                    model.trainable_variables))
            return loss
        rows.append((name, time_call(lambda: step().numpy(), repeat, warmup=2)))
    return rows


def bench_cwic(image, repeat=3):
    """(label, stream bytes, rows) for cwic on `image`: the numpy reference's stages (encoder
    net, range coding, decoding, decoder net) and the model's in-graph `compress` /
    `decompress` (what the codec runs), timed in the same run.

    Uses the installed rate model closest to the middle; without one, a random-weight `narrow`
    network with tables fitted on the image itself (the timing is what matters; the label says so).
    """
    import tensorflow as tf
    from .codecs import get_codec
    from .cwic.codec import analyse, synthesise
    from .cwic.coding import ContextTables, decode_streams, encode_streams
    codec = get_codec("cwic")
    if codec.weights_present:
        rate = codec.quality_default
        model = codec._load(rate)
        label = f"cwic rate {rate}"
    else:
        from .cwic.model import build_cwic
        tf.random.set_seed(0)
        model = build_cwic("narrow")
        model.set_tables(ContextTables(model.n, model.levels))
        label = "cwic narrow, random weights (no rate model installed)"
    h, w = image.shape[:2]
    bits, q = analyse(model, image)
    tables = model.tables
    if not tables.bit_counts.any():
        tables.accumulate(bits, q)
        model.set_tables(tables, model.rate)
    streams = encode_streams(bits, q, tables)
    nbytes = sum(len(s) for s in streams)
    # The first calls in a process trace the graphs (a one-off cost, reported on its own).
    start = time.perf_counter()
    data = model.compress(image)["cwic_bytes"].numpy()
    first_compress = time.perf_counter() - start
    start = time.perf_counter()
    model.decompress(data).numpy()
    first_decompress = time.perf_counter() - start
    rows = [("numpy: encoder network", time_call(lambda: analyse(model, image), repeat)),
            ("numpy: range encoding (map + bits)",
             time_call(lambda: encode_streams(bits, q, tables), repeat)),
            ("numpy: range decoding (map + bits)",
             time_call(lambda: decode_streams(*streams, -(-h // 8), -(-w // 8), tables), repeat)),
            ("numpy: decoder network", time_call(lambda: synthesise(model, bits, q, h, w), repeat)),
            ("graph: compress (networks + coding)",
             time_call(lambda: model.compress(image)["cwic_bytes"].numpy(), repeat)),
            ("graph: decompress (coding + networks)",
             time_call(lambda: model.decompress(data).numpy(), repeat)),
            ("graph: first compress in a process (traces)", first_compress),
            ("graph: first decompress in a process (traces)", first_decompress)]
    return label, nbytes, rows


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    p = argparse.ArgumentParser(description="tfcomp benchmarks: prints tables (median of runs)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per measurement")
    p.add_argument("--model", default="restorer-blind", help="restorer to time")
    args = p.parse_args(argv)
    from .cli import format_table
    from .models import get_spec, load_model

    image = test_image()
    rows = bench_codecs(image, args.repeat)
    base = rows[0][4]
    print(f"Codecs on a 768x512 photo (median of {args.repeat}; ratio = time / JPEG encode time "
          "in this run)")
    print(format_table(["codec", "q", "bytes", "bpp", "encode s", "decode s", "enc ratio",
                        "dec ratio"], [r + (r[4] / base, r[5] / base) for r in rows]))
    label, nbytes, crows = bench_cwic(image, max(2, args.repeat // 2))
    print(f"\n{label}: {8 * nbytes / (image.shape[0] * image.shape[1]):.3f} bpp of streams; "
          "ratio = time / JPEG encode time in this run")
    enc = crows[0][1] + crows[1][1]
    dec = crows[2][1] + crows[3][1]
    print(format_table(["stage", "s", "ratio"], [r + (r[1] / base,) for r in crows[:4]] +
                       [("numpy: encode total", enc, enc / base),
                        ("numpy: decode total", dec, dec / base)] +
                       [r + (r[1] / base,) for r in crows[4:6]]))
    print(f"graph / numpy time: compress {crows[4][1] / enc:.2f}, "
          f"decompress {crows[5][1] / dec:.2f} (same run); first calls in a process, which "
          f"trace the graphs: compress {crows[6][1]:.2f} s, decompress {crows[7][1]:.2f} s")
    spec = get_spec(args.model)
    model = load_model(args.model) if spec.weights_present else spec.build()
    flops = conv_flops_per_pixel(model)
    print(f"\nRestorer {args.model}: {model.count_params():,} parameters, "
          f"{flops / 1e6:.3f} MFLOP per pixel ({flops / 2e3:.0f}k multiply-adds)")
    rrows = bench_restorer(model, repeat=max(2, args.repeat // 2))
    base = rrows[0][3]
    print(format_table(["batch", "size", "s/call", "MP/s", "vs batch 1"],
                       [r + (r[3] / base,) for r in rrows]))
    jpeg_dec = rows[0][5]
    print(f"\nRestoring the 768x512 photo takes about {0.393216 / base:.2f} s, "
          f"{0.393216 / base / jpeg_dec:.0f}x the JPEG decode time.")
    trows = bench_train_step(repeat=max(2, args.repeat // 2))
    print("\nRestorer training step (batch 8 of 128x128, MSE + Adam; train_restorer.py "
          "--precision); ratio = float32 time / this time")
    print(format_table(["precision", "s/step", "speed-up"],
                       [r + (trows[0][1] / r[1],) for r in trows]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
