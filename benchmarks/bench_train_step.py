#!/usr/bin/env python3
"""Seconds per training step of every model at its narrow and paper configs, per precision
(`make bench-train`), all measured in one run, with the ratio to the restorer's float32 step.

Each cell builds the model under the precision's Keras policy, compiles it as
tfcomp.training does (Adam; two for JPD-SE), traces the step on a fixed random batch, then
times --steps more steps and reports the median. Bounds: a cell whose first timed step
takes longer than --cap seconds reports that one step (marked "1 step"); the slower
precisions run only where the float32 step is below --slow-limit seconds (on CPUs without
bf16/fp16 units they are emulated, several times slower) and say "skipped" otherwise.
  python benchmarks/bench_train_step.py [--precisions float32 mixed_bfloat16 mixed_float16]
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: (model, config label, batch, height, width, builder name, builder options). Small batches
#: (4 patches of 64x64; JPD-SE one 128x128 frame crop) keep a run of the table to minutes on
#: a 2-core CPU; per-pixel costs scale about linearly to the training sizes.
CELLS = [
    ("restorer", "narrow (64 32 16 16)", 4, 64, 64, "restorer", {"widths": (64, 32, 16, 16)}),
    ("restorer", "paper (128 64 32 16)", 4, 64, 64, "restorer", {}),
    ("cwic", "narrow", 4, 64, 64, "cwic", {"config": "narrow"}),
    ("cwic", "paper", 4, 64, 64, "cwic", {"config": "paper"}),
    ("hiding", "shipped (48 x 5 + restorer)", 4, 64, 64, "hiding", {}),
    ("jpdse", "narrow", 1, 128, 128, "jpdse", {"config": "narrow"}),
    ("jpdse", "full (pix2pixHD)", 1, 128, 128, "jpdse", {"config": "full"}),
]


def _build(kind, options):
    """(model, f(images) -> train_on_batch arguments) for one cell; the model is compiled as
    tfcomp.training does."""
    import tensorflow as tf
    if kind == "restorer":
        from tfcomp.restorer.model import build_restorer
        model = build_restorer(**options)
        model.compile(tf.keras.optimizers.Adam(1e-5), loss="mse")
        return model, lambda x: (x, x)
    if kind == "cwic":
        from tfcomp.cwic.model import build_cwic
        model = build_cwic(**options)
    elif kind == "hiding":
        from tfcomp.hiding.model import build_hiding
        model = build_hiding(**options)
    else:
        from tfcomp.jpdse.model import SEMANTIC_CHANNELS, build_jpdse
        model = build_jpdse(vgg_weights=None, **options)
        model.compile(tf.keras.optimizers.Adam(1e-5), tf.keras.optimizers.Adam(1e-5))

        def frames(x):
            semantics = tf.one_hot(tf.zeros(tf.shape(x)[:3], tf.int32), SEMANTIC_CHANNELS)
            return ({"semantics": semantics, "decoded": x, "target": x},)
        return model, frames
    model.compile(tf.keras.optimizers.Adam(1e-5))
    return model, lambda x: (x,)


def time_cell(kind, options, batch, height, width, precision, steps, cap):
    """(median seconds per step, steps timed) of one cell."""
    import tensorflow as tf
    from tfcomp.training import precision_policy
    tf.keras.utils.set_random_seed(0)
    with precision_policy(precision):
        model, make = _build(kind, options)
    data = make(tf.random.uniform((batch, height, width, 3)))
    model.train_on_batch(*data)  # traces the step
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(*data)
        times.append(time.perf_counter() - start)
        if times[0] > cap:
            break
    return statistics.median(times), len(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3, help="timed steps per cell (median)")
    p.add_argument("--cap", type=float, default=20.0,
                   help="a first step slower than this many seconds is the cell's only one")
    p.add_argument("--slow-limit", type=float, default=4.0,
                   help="time mixed_bfloat16 / mixed_float16 only where float32 takes less "
                        "than this many seconds per step")
    p.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"],
                   help="default float32 mixed_bfloat16; add mixed_float16 where it is cheap "
                        "(GPUs: on a CPU it is emulated, 10-60x float32 here)")
    p.add_argument("--models", nargs="+", default=sorted({c[0] for c in CELLS}),
                   help="models to time (the restorer's paper float32 step is the ratios' base)")
    args = p.parse_args(argv)

    from tfcomp.cli import format_table
    print(f"{os.cpu_count()} CPU cores; TF {__import__('tensorflow').__version__}; "
          f"{args.steps} timed steps per cell after one traced step (median)", flush=True)
    rows = []
    for model, label, batch, height, width, kind, options in CELLS:
        if model not in args.models:
            continue
        float32 = None
        for precision in args.precisions:
            if precision != "float32" and (float32 is None or float32 > args.slow_limit):
                rows.append((model, label, f"{batch}x{height}x{width}", precision, None, None,
                             f"skipped (float32 step > {args.slow_limit:g} s)"))
                continue
            seconds, n = time_cell(kind, options, batch, height, width, precision,
                                   args.steps, args.cap)
            if precision == "float32":
                float32 = seconds
            note = "1 step (capped)" if n == 1 and args.steps > 1 else ""
            rows.append((model, label, f"{batch}x{height}x{width}", precision, seconds, None,
                         note))
            print(f"  {model} {label} {precision}: {seconds:.3f} s/step", flush=True)
    base = next((r[4] for r in rows if r[0] == "restorer" and r[1].startswith("paper")
                 and r[3] == "float32"), None)
    rows = [r[:5] + (r[4] / base if base and r[4] else None,) + r[6:] for r in rows]
    print()
    print(format_table(["model", "config", "batch", "precision", "s/step",
                        "x restorer f32", "note"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
