"""One SGD step of each custom-trained model on one replica and on several, from the same weights.

Run by test_replicas.py in a subprocess: logical CPU devices and TF_CONFIG must be in place
before TensorFlow starts.

  replica_step.py mirrored OUT MODEL...   2 logical CPUs: MirroredStrategy vs one device
  replica_step.py worker OUT MODEL...     one MultiWorkerMirroredStrategy worker (TF_CONFIG)
  --eager (first argument)                 run the steps eagerly: the same train_step code,
                                           without minutes of graph tracing on 2 cores

A worker steps under the strategy in graph mode (the path `fit` takes in training) and
computes the one-device reference eagerly.

For each MODEL (restorer, cwic, hiding, jpdse) it writes OUT/MODEL.npz with the initial
weights (init_*), the weights after one step on one device (single_*) and after the same
step with the global batch split over the replicas (multi_*), plus `replicas`; or
OUT/MODEL.err with the traceback when the model fails. Everything is deterministic: fixed
images, fixed qualities, weights drawn once and copied into every build.
"""

import contextlib
import os
import sys
import traceback

import numpy as np

SEED = 0    # of the initial weights
BATCH = 4   # global batch: 2 images per replica
SIZE = 32   # a multiple of every model's stride (16 for hiding)


def _images(seed, flat=False):
    """BATCH smooth, textured (or flat grey) float images in [0, 1]."""
    from imagegen import natural_rgb
    if flat:
        return np.full((BATCH, SIZE, SIZE, 3), 0.5, np.float32)
    return np.stack([natural_rgb(SIZE, SIZE, seed=seed + i) for i in range(BATCH)]
                    ).astype(np.float32) / 255.0


def _cwic_images():
    # Flat images for the first replica, textured ones for the second: their importance maps
    # (and kept fractions) differ, so a per-replica rate decision differs from the batch's.
    flat, textured = _images(0, flat=True), _images(0)
    half = BATCH // 2
    return np.concatenate([flat[:half], textured[half:]])


def _restorer_case(tf):
    from tfcomp.restorer.model import build_restorer
    clean = _images(10)
    noisy = np.clip(clean + 0.05 * np.random.default_rng(1).standard_normal(clean.shape),
                    0, 1).astype(np.float32)
    # Per-sample weights shaped [B, 1, 1], as --loss-power gives them (data.relative_weights).
    weights = np.array([0.5, 1.0, 2.0, 4.0], np.float32)[:, None, None]

    def build():
        return build_restorer(widths=(8, 8, 8, 8))

    def compile_fn(model):
        model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss="mse")
    return build, compile_fn, lambda m: [m], (noisy, clean, weights)


def _cwic_case(tf):
    from tfcomp.cwic.model import build_cwic
    x = _cwic_images()
    tf.keras.utils.set_random_seed(SEED)
    probe = build_cwic("tiny")  # the same draw as run()'s initial weights
    half = BATCH // 2
    kept = [float(tf.reduce_mean(probe.analyse(x[i:i + half])[2])) for i in (0, half)]
    if abs(kept[0] - kept[1]) < 0.02:
        raise RuntimeError(f"the two half-batches keep the same fraction {kept}: no test")
    # Between one half's kept fraction and the batch's: one replica alone would decide the
    # other way than the whole batch.
    lo, hi = sorted(kept)
    target = 0.5 * (lo + 0.5 * (lo + hi)) if kept[0] < kept[1] else 0.5 * (hi + 0.5 * (lo + hi))

    def build():
        return build_cwic("tiny", target=target, gamma=1.0)

    def compile_fn(model):
        model.compile(optimizer=tf.keras.optimizers.SGD(0.5))
    return build, compile_fn, lambda m: [m.encoder, m.decoder], (x,)


def _hiding_case(tf):
    from tfcomp.hiding.model import build_hiding
    x = _images(20)

    def build():
        return build_hiding(width=8, depth=3, decoder_widths=(8, 8, 8, 4), quality=30,
                            fidelity=0.5)

    def compile_fn(model):
        model.compile(optimizer=tf.keras.optimizers.SGD(0.5))
    return build, compile_fn, lambda m: [m.encoder, m.decoder], (x,)


def _jpdse_case(tf):
    from tfcomp.jpdse.model import NUM_LABELS, build_jpdse
    rng = np.random.default_rng(3)
    labels = np.repeat(np.repeat(rng.integers(0, NUM_LABELS, (BATCH, 4, 4)), 8, 1), 8, 2)
    edges = np.zeros(labels.shape + (1,), np.float32)
    semantics = np.concatenate([np.eye(NUM_LABELS, dtype=np.float32)[labels], edges], -1)
    target = _images(30)
    decoded = np.clip(target + 0.08 * rng.standard_normal(target.shape), 0, 1).astype(np.float32)

    def build():
        return build_jpdse("tiny", phase=2)

    def compile_fn(model):
        model.compile(tf.keras.optimizers.SGD(0.2), tf.keras.optimizers.SGD(0.2))
    return (build, compile_fn, lambda m: [m.generator, m.discriminator],
            ({"semantics": semantics, "decoded": decoded, "target": target},))


CASES = {"restorer": _restorer_case, "cwic": _cwic_case, "hiding": _hiding_case,
         "jpdse": _jpdse_case}


def _one_step(tf, strategy, case, init, tensors):
    """The networks' weights after one fit step on the global batch `tensors`."""
    build, compile_fn, nets, _ = case
    with strategy.scope():
        model = build()
        for net, values in zip(nets(model), init):
            net.set_weights(values)
        compile_fn(model)
    dataset = tf.data.Dataset.from_tensor_slices(tensors).batch(BATCH)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    model.fit(dataset.with_options(options), epochs=1, verbose=0)
    return [w for net in nets(model) for w in net.get_weights()]


@contextlib.contextmanager
def _eagerly(tf, eager):
    before = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(eager or before)
    try:
        yield
    finally:
        tf.config.run_functions_eagerly(before)


def run(tf, strategy, name, out, single_eager=False):
    """Writes OUT/name.npz: init, single-device and `strategy` weights after one step."""
    case = CASES[name](tf)
    build, _, nets, data = case
    tf.keras.utils.set_random_seed(SEED)
    init = [net.get_weights() for net in nets(build())]
    tensors = data if len(data) > 1 else data[0]
    multi = _one_step(tf, strategy, case, init, tensors)
    with _eagerly(tf, single_eager):  # the reference needs no second graph trace
        single = _one_step(tf, tf.distribute.get_strategy(), case, init, tensors)
    arrays = {"replicas": np.array(strategy.num_replicas_in_sync)}
    for key, values in (("init", [w for ws in init for w in ws]), ("single", single),
                        ("multi", multi)):
        arrays.update({f"{key}_{i}": v for i, v in enumerate(values)})
    np.savez(os.path.join(out, f"{name}.npz"), **arrays)


def main(argv):
    eager = argv[:1] == ["--eager"]
    mode, out, names = argv[eager], argv[eager + 1], argv[eager + 2:]
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tfcomp.training import make_strategy
    strategy = make_strategy(cpu_devices=2 if mode == "mirrored" else 1)  # before any TF op
    import tensorflow as tf
    tf.config.run_functions_eagerly(eager)
    for name in names:
        try:
            run(tf, strategy, name, out, single_eager=mode == "worker")
        except Exception:  # noqa: BLE001 - reported to the test, which fails with it
            with open(os.path.join(out, f"{name}.err"), "w") as f:
                f.write(traceback.format_exc())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
