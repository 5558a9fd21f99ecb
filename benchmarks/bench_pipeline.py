#!/usr/bin/env python3
"""Training-pipeline benchmark (`make bench-pipeline`): patches/s and peak RSS of the old
in-memory pipeline and of tfcomp.data.patch_dataset, on the training images and on a
generated folder of many small JPEGs.

Each configuration runs in a fresh subprocess (TensorFlow imported there), which builds
its dataset, takes a first batch (the startup column: listing, header scan, and for a
cached pipeline the decoding of every image), then counts batches for --seconds. Its peak
resident memory is the child's ru_maxrss (os.wait4), its CPU time per patch the
process's user + system time over the window. Ratios are against the old cached pipeline
on the training images, measured first and again last in the same run (the mean of the
two; their spread shows how much the machine's load drifted).

The generated folder (--images JPEGs of 256x256, random crops of the training images at
quality 90) and its TFRecord shards are written under a temporary folder in /tmp and
removed at the end.
"""

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = [os.path.join(HERE, "..", "..", "shared", "data", "train", d)
                for d in ("wikipedia49", "bsd100")]

__all__ = ["old_patch_dataset", "generate_images", "main"]


def old_patch_dataset(source, config, batch_size, seed=0):
    """`patch_dataset` as it was before streaming (commit 429dfcc): every image decoded
    into memory (`.cache()`), shuffled with a buffer of all images, one random crop per
    image visit, all of it in one map per patch. Built from tfcomp.data's window,
    degradation and conversion steps, which are the old `_augment`'s code, with its
    rotation and flip (tf.image.rot90 and a tf.cond; tfcomp.data has one switch_case)."""
    import tensorflow as tf
    from tfcomp.data import _degrade, _orientation, _to_float, _window, image_sizes, list_images

    paths = list_images(source)
    image_sizes(paths)  # the old smaller-than-the-patch check read every header too

    def decode(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=config.channels,
                                   dtype=tf.uint8, expand_animations=False)
        return tf.ensure_shape(image, [None, None, config.channels])

    def augment(i, image):
        s = tf.random.experimental.stateless_split(tf.stack([tf.cast(seed, tf.int64), i]), num=8)
        turns, flip = _orientation(s, config)
        patch = tf.image.rot90(_window(image, s, config), turns)
        patch = tf.cond(flip > 0, lambda: tf.image.flip_left_right(patch), lambda: patch)
        patch = tf.ensure_shape(patch, [config.patch_size, config.patch_size, config.channels])
        return _to_float(_degrade(patch, s[7], config), patch)

    ds = tf.data.Dataset.from_tensor_slices(paths).map(
        decode, num_parallel_calls=tf.data.AUTOTUNE).cache()
    ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True).repeat().enumerate()
    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _crop_jpegs(path, out_dir, first, count, size, quality, seed):
    """Writes `count` random size x size crops of one image as JPEGs numbered from `first`."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng([seed, first])
    with Image.open(path) as im:
        image = np.asarray(im.convert("RGB"))
    h, w = image.shape[:2]
    for n in range(first, first + count):
        y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        Image.fromarray(image[y:y + size, x:x + size]).save(
            os.path.join(out_dir, f"{n:06d}.jpg"), quality=quality)


def generate_images(sources, out_dir, count, size=256, quality=90, seed=0):
    """Writes `count` JPEGs of size x size, random crops of the images under `sources`
    (the same number from each), on every core."""
    from concurrent.futures import ProcessPoolExecutor
    from tfcomp.imageio import list_images

    paths = list_images(sources)
    per_image = -(-count // len(paths))
    jobs = [(p, out_dir, i * per_image, min(per_image, count - i * per_image), size, quality,
             seed) for i, p in enumerate(paths) if i * per_image < count]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        for future in [pool.submit(_crop_jpegs, *job) for job in jobs]:
            future.result()
    return count


def _cpu_seconds():
    """User + system CPU time of this process (all its threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _worker(spec):
    """Runs one configuration; prints one JSON line."""
    t0 = time.perf_counter()
    import tensorflow as tf
    from tfcomp.data import PatchConfig, patch_dataset, pipeline_plan

    cfg = PatchConfig(patch_size=spec["patch"], quality_range=spec["quality_range"],
                      crops_per_image=spec.get("crops"))
    t_import = time.perf_counter()
    if spec["pipeline"] == "old":
        ds, plan = old_patch_dataset(spec["source"], cfg, spec["batch"], seed=0), None
    else:
        kw = {} if spec.get("cache") is None else {"cache": spec["cache"]}
        plan = pipeline_plan(spec["source"], cfg, **kw)
        ds = patch_dataset(spec["source"], cfg, spec["batch"], seed=0, **kw)
    it = iter(ds)
    for _ in range(3):
        next(it)
    t_first, cpu_first = time.perf_counter(), _cpu_seconds()
    batches = 0
    while time.perf_counter() - t_first < spec["seconds"]:
        next(it)
        batches += 1
    elapsed, cpu = time.perf_counter() - t_first, _cpu_seconds() - cpu_first
    del tf
    patches = batches * spec["batch"]
    print(json.dumps({
        "startup_s": t_first - t_import, "import_s": t_import - t0,
        "patches_per_s": patches / elapsed, "cpu_ms_per_patch": 1000 * cpu / patches,
        "cache": True if plan is None else plan.cache,
        "crops": 1 if plan is None else plan.crops_per_image}))


def _run_measured(spec):
    """The worker's result for one configuration, with its peak RSS in MiB (ru_maxrss of
    exactly that child, from os.wait4)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: run the worker with stdout on the pipe
        os.close(r)
        os.dup2(w, 1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), "--worker",
                                   json.dumps(spec)], env)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    _, status, usage = os.wait4(pid, 0)
    if status:
        raise SystemExit(f"worker failed (status {status}) for {spec}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mib"] = usage.ru_maxrss / 1024.0  # Linux: KiB
    return result


def _table(rows):
    headers = ["images", "pipeline", "cached", "crops/img", "startup s", "patches/s",
               "vs old", "CPU ms/patch", "vs old", "peak RSS MiB"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        lines.append("| " + " | ".join([
            r["set"], r["name"], "yes" if r["cache"] else "no", str(r["crops"]),
            f"{r['startup_s']:.1f}", f"{r['patches_per_s']:.0f}", f"{r['ratio']:.2f}",
            f"{r['cpu_ms_per_patch']:.2f}", f"{r['cpu_ratio']:.2f}",
            f"{r['peak_rss_mib']:.0f}"]) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", default=DEFAULT_DATA, help="training image folders "
                   "(default: ../shared/data/train/wikipedia49 and bsd100)")
    p.add_argument("--images", type=int, default=20000, help="generated JPEGs (default %(default)s)")
    p.add_argument("--seconds", type=float, default=20.0, help="measuring time per configuration")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patch", type=int, default=128)
    p.add_argument("--quality-range", type=int, nargs=2, default=(10, 90), metavar=("LO", "HI"),
                   help="JPEG degradation of the patches (default 10 90, restorer-blind's)")
    p.add_argument("--skip-old-large", action="store_true",
                   help="do not run the old pipeline on the generated folder (it decodes all)")
    p.add_argument("--json", help="also write the rows as JSON")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        _worker(json.loads(args.worker))
        return 0

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tfcomp.imageio import list_images
    from tfcomp.shards import pack_shards

    data = [os.path.abspath(d) for d in args.data]
    base = dict(patch=args.patch, batch=args.batch, seconds=args.seconds,
                quality_range=list(args.quality_range))
    tmp = tempfile.mkdtemp(prefix="tfcomp-bench-pipeline-")
    try:
        big = os.path.join(tmp, "images")
        os.makedirs(big)
        t = time.perf_counter()
        generate_images(data, big, args.images, seed=0)
        print(f"generated {args.images} JPEGs in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        t = time.perf_counter()
        shards = os.path.join(tmp, "shards")
        pack_shards(big, shards)
        print(f"packed them into shards in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        small = f"{len(list_images(data))}"
        configs = [
            (small, "old", dict(pipeline="old", source=data)),
            (small, "new (default)", dict(pipeline="new", source=data)),
            (small, "new, cache=False", dict(pipeline="new", source=data, cache=False)),
            (f"{args.images:,}", "old", dict(pipeline="old", source=big)),
            (f"{args.images:,}", "new (default)", dict(pipeline="new", source=big)),
            (f"{args.images:,}", "new, crops 1", dict(pipeline="new", source=big, crops=1)),
            (f"{args.images:,} shards", "new (default)", dict(pipeline="new", source=shards)),
        ]
        if args.skip_old_large:
            configs.pop(3)
        # The reference again at the end: the spread of its two rows is the run's drift.
        configs.append((small, "old (again)", dict(pipeline="old", source=data)))
        rows = []
        for set_name, name, spec in configs:
            result = _run_measured({**base, **spec})
            result.update(set=set_name, name=name)
            rows.append(result)
            print(f"{set_name:>16} {name:<18} {result['patches_per_s']:7.0f} patches/s  "
                  f"{result['peak_rss_mib']:6.0f} MiB", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    first, last = rows[0], rows[-1]
    speed = (first["patches_per_s"] + last["patches_per_s"]) / 2
    cost = (first["cpu_ms_per_patch"] + last["cpu_ms_per_patch"]) / 2
    for r in rows:
        r["ratio"] = r["patches_per_s"] / speed
        r["cpu_ratio"] = r["cpu_ms_per_patch"] / cost
    print(f"batch {args.batch} of {args.patch}x{args.patch} patches, JPEG q"
          f"{args.quality_range[0]}..{args.quality_range[1]}, {args.seconds:g} s per row")
    print(_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
