"""Training plumbing shared by the training scripts: strategies, schedules, callbacks, fit."""

import contextlib
import json
import os
import tempfile

import tensorflow as tf

from .errors import InputError
from .metrics import batch_psnr
from .precision import PRECISIONS
from .run_control import RunBackup, SignalFlag, StepControl, interrupted, optimizer_step

__all__ = ["make_strategy", "is_chief", "parse_lr_schedule", "psnr_metric",
           "standard_callbacks", "worker_dir", "ImageLogger", "fit_and_save", "save_slim_weights",
           "copy_network_weights", "halve_weights_file", "average_weights_files",
           "precision_policy", "PRECISIONS", "HIDING_NO_JIT", "train_restorer", "train_cwic", "train_hiding",
           "train_jpdse"]


def make_strategy(cpu_devices=1):
    """The distribution strategy for this process.

    MultiWorkerMirroredStrategy (RING all-reduce) when TF_CONFIG is set; otherwise
    MirroredStrategy over all GPUs, or over the CPU split into `cpu_devices` logical
    devices (1 = the whole CPU as one replica). Call it before any other TF op runs.
    """
    if os.environ.get("TF_CONFIG"):
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if tf.config.list_physical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    if cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:max(1, cpu_devices)]
    return tf.distribute.MirroredStrategy(devices)


@contextlib.contextmanager
def precision_policy(name):
    """Sets the Keras global dtype policy for the models built inside; restores it after.

    "mixed_bfloat16" computes in bfloat16 with float32 variables (so checkpoints and shipped
    weights stay float32); on CPUs with AMX / AVX512-BF16 it trains the restorer ~2.4x
    faster than float32 (make bench); on CPUs without bf16 units it is much slower.
    "mixed_float16" computes in float16 with float32 variables, for GPUs with tensor cores;
    compile() then wraps the optimizer in a LossScaleOptimizer and the models' own
    train_steps scale their losses (tfcomp.precision). On a CPU it works, slowly.
    Every model keeps its output image, losses and (CWIC) codes and importance map float32.
    """
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {name!r}")
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def is_chief(strategy):
    """True for the process that writes the real checkpoints and outputs."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker"
                                             and resolver.task_id == 0)


def worker_dir(path, strategy):
    """`path` on the chief; a private temporary directory on other workers."""
    if is_chief(strategy):
        return path
    resolver = strategy.cluster_resolver
    return os.path.join(tempfile.gettempdir(), "tfcomp-worker",
                        f"{resolver.task_type}{resolver.task_id}", os.path.basename(path))


def parse_lr_schedule(text):
    """'1e-3,5e-4@2000,1e-4@3000' -> a Keras LearningRateSchedule (or a float).

    The first value applies from step 0; `value@step` takes over at that optimizer step.
    """
    values, boundaries = [], []
    for i, part in enumerate(text.split(",")):
        value, _, step = part.strip().partition("@")
        try:
            values.append(float(value))
            if i == 0:
                if step:
                    raise ValueError
            else:
                boundaries.append(int(step))
        except ValueError:
            raise ValueError(f"bad learning-rate schedule {text!r}: expected e.g. "
                             "'1e-3,5e-4@2000,1e-4@3000'") from None
    if any(b <= a for a, b in zip(boundaries, boundaries[1:])) or (boundaries and boundaries[0] <= 0):
        raise ValueError(f"bad learning-rate schedule {text!r}: steps must increase")
    if len(values) == 1:
        return values[0]
    # PiecewiseConstantDecay keeps the old value while step <= boundary.
    return tf.keras.optimizers.schedules.PiecewiseConstantDecay([b - 1 for b in boundaries], values)


def psnr_metric(y_true, y_pred):
    """PSNR in dB of images in [0, 1] (the output is clipped as it would be when saved)."""
    return batch_psnr(tf.clip_by_value(y_pred, 0.0, 1.0), y_true)


psnr_metric.__name__ = "psnr"


class _Log(tf.keras.callbacks.Callback):
    """Appends each epoch's logs as a JSON line (a plain-text training record), with the
    optimizer step it ended at (a resumed or interrupted epoch shows where it stands)."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        record = {"epoch": epoch + 1, "step": optimizer_step(self.model),
                  **{k: float(v) for k, v in (logs or {}).items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def standard_callbacks(run_dir, strategy, backup_every=250):
    """TensorBoard, per-epoch weights, a resume backup every `backup_every` steps
    (run_control.RunBackup), TerminateOnNaN, a JSON log of the epochs."""
    own = worker_dir(run_dir, strategy)
    os.makedirs(own, exist_ok=True)
    return [
        RunBackup(os.path.join(run_dir, "backup"), backup_every),
        tf.keras.callbacks.TerminateOnNaN(),
        tf.keras.callbacks.TensorBoard(os.path.join(own, "tensorboard")),
        tf.keras.callbacks.ModelCheckpoint(os.path.join(own, "checkpoints", "latest.weights.h5"),
                                           save_weights_only=True),
        _Log(os.path.join(own, "log.jsonl")),
    ]


class ImageLogger(tf.keras.callbacks.Callback):
    """Writes [input | output | target] strips of a fixed sample to TensorBoard each epoch.

    `sample` = (model inputs, inputs image, target image) as batched tensors; the model is
    called on the first element. The inputs image may instead be a function
    `shown(model, inputs)` -> images, drawn each epoch (what the model makes of its input:
    CWIC's importance map, the image hiding sends).
    """

    def __init__(self, log_dir, sample, name="samples"):
        super().__init__()
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "images"))
        self.sample, self.name = sample, name

    def on_epoch_end(self, epoch, logs=None):
        inputs, shown, target = self.sample
        output = tf.clip_by_value(self.model(inputs, training=False), 0.0, 1.0)
        if callable(shown):
            shown = tf.clip_by_value(tf.cast(shown(self.model, inputs), tf.float32), 0.0, 1.0)
        with self.writer.as_default():
            tf.summary.image(self.name, tf.concat([shown, output, target], axis=2), step=epoch,
                             max_outputs=4)
        self.writer.flush()


def save_slim_weights(model, build_fn, path):
    """Saves only the model's variables (no optimizer state) by copying into a fresh build."""
    fresh = build_fn()
    copy_network_weights(model, fresh)
    fresh.save_weights(path)


def _map_weights_files(srcs, dst, combine, skip=()):
    """Writes to `dst` the structure of the .h5 files `srcs` (identical groups, attributes and
    dataset names) with each dataset's value `combine(name, [value from each file])`, leaving
    out the top-level groups named in `skip`. Written to a temp file and renamed, so `dst`
    is never half-written."""
    import h5py

    def copy(sources, target):
        target.attrs.update(sources[0].attrs)
        for key, item in sources[0].items():
            if item.name.lstrip("/") in skip:
                continue
            others = [s.get(key) for s in sources[1:]]
            if any(o is None or isinstance(o, h5py.Group) != isinstance(item, h5py.Group)
                   for o in others):
                raise ValueError(f"{item.name}: the weights files differ in structure")
            if isinstance(item, h5py.Group):
                copy([item] + others, target.create_group(key))
            else:
                values = [item[()]] + [o[()] for o in others]
                target.create_dataset(key, data=combine(item.name, values))
                target[key].attrs.update(item.attrs)

    tmp = f"{dst}.tmp-{os.getpid()}.h5"
    files = []
    try:
        files = [h5py.File(s, "r") for s in srcs]
        with h5py.File(tmp, "w") as fout:
            copy(files, fout)
        os.replace(tmp, dst)
    finally:
        for f in files:
            f.close()
        if os.path.exists(tmp):
            os.remove(tmp)


def halve_weights_file(src, dst):
    """Copies a Keras weights file (.h5) with every float32 array stored as float16.

    Half the bytes for the shipped files; Keras casts back to the variables' float32 on
    load (relative rounding error <= 2**-11). Written to a temp file and renamed.
    """
    import numpy as np

    def halve(name, values):
        data = values[0]
        if isinstance(data, np.ndarray) and data.dtype == np.float32:
            if np.any(np.abs(data) > np.finfo(np.float16).max):
                raise ValueError(f"{name}: values beyond float16's range")
            data = data.astype(np.float16)
        return data

    _map_weights_files([src], dst, halve)


def average_weights_files(srcs, dst):
    """Writes the element-wise mean of several weights files of one model (e.g. the
    checkpoints of the last epochs of a run: checkpoint averaging, as in SWA).

    Floating-point arrays are averaged in float64 and stored in their own dtype; other
    arrays are taken from the last file. Shapes must match. Training checkpoints' optimizer
    and metric state is left out: the result holds the model's variables only.
    """
    import numpy as np

    if not srcs:
        raise ValueError("no weights files to average")

    def mean(name, values):
        if any(np.shape(v) != np.shape(values[0]) for v in values):
            raise ValueError(f"{name}: shapes differ between the weights files")
        first = np.asarray(values[0])
        if not np.issubdtype(first.dtype, np.floating):
            return values[-1]
        return np.mean([np.asarray(v, np.float64) for v in values], axis=0).astype(first.dtype)

    _map_weights_files(list(srcs), dst, mean, skip=("optimizer", "metrics"))


def _network_vars(model):
    # Models with their own train_step own metric trackers (made in __init__ or at compile
    # time), which show up in model.weights: these are the other variables.
    metric_vars = {id(v) for t in model.metrics for v in t.variables}
    return [v for v in model.weights if id(v) not in metric_vars]


def copy_network_weights(source, target):
    """Assigns the source model's network variables (not metric trackers) to the target's."""
    src, dst = _network_vars(source), _network_vars(target)
    if [v.shape for v in src] != [v.shape for v in dst]:
        raise ValueError("the two models' network variables do not match")
    for s, t in zip(src, dst):
        t.assign(s.numpy())


def fit_and_save(build_fn, compile_fn, dataset, *, run_dir, out, steps, steps_per_epoch,
                 strategy, validation=None, batch_size=None, init_weights=None, verbose=1,
                 callbacks=(), init_loader=None, backup_every=None):
    """Builds (build_fn) and compiles (compile_fn) under the strategy, fits, saves the weights.

    Exactly `steps` optimizer steps: epochs of `steps_per_epoch` steps (at most `steps`),
    the last one shortened. The training state is backed up to RUN_DIR/backup every
    `backup_every` steps (default: once an epoch); a run restarted with the same arguments
    and `run_dir` says "resuming from step S" and goes on to `steps` in all. SIGINT or
    SIGTERM stops a run at the end of the current step, after a backup: one line on stderr,
    then TrainingInterrupted (a SystemExit: status 130 for SIGINT, 143 for SIGTERM).

    The final weights (variables only, no optimizer state) go to `out` (chief only; other
    workers write a private copy, as MultiWorkerMirroredStrategy requires every worker to
    save). `init_loader(model, path)` loads `init_weights` (default model.load_weights).
    `batch_size` (the global batch) must split evenly over the replicas: the models' steps
    give each replica an equal share of the loss.
    """
    if steps < 1 or steps_per_epoch < 1:
        raise ValueError(f"steps and steps_per_epoch must be >= 1, got {steps}, {steps_per_epoch}")
    if batch_size:
        _check_replica_batch(batch_size, strategy)
    steps_per_epoch = min(steps_per_epoch, steps)
    with SignalFlag() as flag:
        model = _build_under(strategy, build_fn, compile_fn, init_weights, init_loader)
        backup_dir = os.path.join(run_dir, "backup")
        if flag.signum is not None:
            raise interrupted(flag, None, backup_dir)
        standard = standard_callbacks(run_dir, strategy, backup_every or steps_per_epoch)
        backup = next(c for c in standard if isinstance(c, RunBackup))
        control = StepControl(steps, backup, flag)
        history = model.fit(dataset, epochs=-(-steps // steps_per_epoch),
                            steps_per_epoch=steps_per_epoch, validation_data=validation,
                            batch_size=None if validation is None else batch_size,
                            callbacks=standard + list(callbacks) + [control], verbose=verbose)
        if control.interrupted_at is not None:
            raise interrupted(flag, control.interrupted_at, backup_dir)
    if out:
        target = out if is_chief(strategy) else worker_dir(out, strategy)
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        save_slim_weights(model, build_fn, target)
    return model, history


def _check_replica_batch(batch_size, strategy):
    """The global batch must split evenly over the replicas: the models' training steps give
    each replica an equal share of the loss (1 / num_replicas_in_sync)."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(f"the global batch {batch_size} does not split over {replicas} "
                         "replicas: use a multiple of the number of replicas")


def _build_under(strategy, build_fn, compile_fn, init_weights, init_loader):
    """The compiled model, built under the strategy, with `init_weights` when given."""
    donor = None
    if init_weights:
        # Loaded into a plain build first (outside the strategy): a file's metric-tracker
        # values cannot be assigned to a MirroredStrategy model's sum-on-read trackers.
        donor = build_fn()
        # slim weights or a checkpoint with optimizer state
        (init_loader or (lambda m, p: m.load_weights(p)))(donor, init_weights)
    with strategy.scope():
        model = build_fn()
        if donor is not None:
            copy_network_weights(donor, model)
        compile_fn(model)
    return model


def train_restorer(*, data, run_dir, out=None, eval_data=None, channels=3,
                   widths=None, quality=None, quality_range=None, steps=5000,
                   steps_per_epoch=250, batch_size=8, patch_size=128, lr_schedule="5e-4",
                   init_weights=None, seed=0, cpu_devices=1, eval_qualities=None,
                   quality_sampling="uniform", identity=True, loss_power=0.0,
                   precision="float32", keep_epochs=False, quality_gate=False, gate_only=False,
                   verbose=1, strategy=None, crops_per_image=None, backup_every=None, jit=False,
                   scales=None, rescale_prob=None):
    """Trains the artifact-removal CNN with keras fit (MSE); returns the History.

    `scales` / `rescale_prob` replace PatchConfig's rescale augmentation (None: its
    defaults, the seed project's); factors above 1 enlarge (scaled-up, smooth content).

    `quality_sampling` ("uniform" / "log") is how a quality range is drawn (PatchConfig).
    `loss_power` > 0 weights each patch's MSE by its input's MSE to that power
    (data.relative_weights): 1 balances the qualities in relative terms, 0 is plain MSE.

    `identity=True` starts from the identity map (tfcomp.restorer.model.identity_init) unless
    `init_weights` are given. `precision` is a precision_policy name ("mixed_bfloat16",
    "mixed_float16" with loss scaling); the weights written are float32 either way. `jit`
    compiles the training step with XLA (every train_* function takes both).
    `keep_epochs` also keeps every epoch's weights (checkpoints/epoch-NNN.weights.h5), e.g.
    for checkpoint averaging (average_weights_files).
    `quality_gate` trains the gated model (build_restorer(quality_gate=True)); its
    `init_weights` may be an ungated restorer's (load_core_weights). `gate_only` freezes
    everything but the gate.
    """
    from .data import PatchConfig, eval_patches, patch_dataset, relative_weights
    from .restorer.model import (DEFAULT_WIDTHS, GATE_PREFIX, build_restorer, identity_init,
                                  load_core_weights)

    if gate_only and not quality_gate:
        raise ValueError("gate_only needs quality_gate")

    strategy = strategy or make_strategy(cpu_devices)
    rescale = {}
    if scales is not None:
        rescale["scales"] = tuple(scales)
    if rescale_prob is not None:
        rescale["rescale_prob"] = rescale_prob
    config = PatchConfig(patch_size=patch_size, channels=channels, quality=quality,
                         quality_range=quality_range, quality_sampling=quality_sampling,
                         crops_per_image=crops_per_image, **rescale)
    dataset = patch_dataset(data, config, batch_size, seed=seed)
    if loss_power:
        dataset = dataset.map(lambda x, y: (x, y, relative_weights(x, y, loss_power)))
    validation = None
    if eval_data:
        if eval_qualities is None:
            eval_qualities = [quality] if quality is not None else \
                sorted({quality_range[0], (quality_range[0] + quality_range[1]) // 2, quality_range[1]})
        vx, vy = eval_patches(eval_data, patch_size, channels, eval_qualities)
        base = float(tf.reduce_mean(psnr_metric(vy, vx)))
        if verbose:
            print(f"validation: {len(vx)} patches at JPEG q{eval_qualities}, "
                  f"JPEG PSNR {base:.3f} dB (restored PSNR is val_psnr)")
        validation = (vx, vy)

    def build_fn():
        model = build_restorer(channels=channels, widths=widths or DEFAULT_WIDTHS,
                               quality_gate=quality_gate)
        if gate_only:
            for layer in model.layers:
                layer.trainable = layer.name.startswith(GATE_PREFIX)
        return identity_init(model) if identity and not init_weights else model

    def compile_fn(model):
        model.compile(optimizer=tf.keras.optimizers.Adam(parse_lr_schedule(lr_schedule)),
                      loss="mse", metrics=[psnr_metric], jit_compile=jit)

    x, y = _sample_batch(dataset, validation)
    callbacks = [_image_logger(run_dir, strategy, (x, x, y), "jpeg|restored|original")]
    if keep_epochs:
        callbacks.append(tf.keras.callbacks.ModelCheckpoint(
            os.path.join(worker_dir(run_dir, strategy), "checkpoints", "epoch-{epoch:03d}.weights.h5"),
            save_weights_only=True))
    with precision_policy(precision):
        return fit_and_save(build_fn, compile_fn, dataset, run_dir=run_dir, out=out,
                            steps=steps, steps_per_epoch=steps_per_epoch, strategy=strategy,
                            validation=validation, batch_size=batch_size,
                            init_weights=init_weights, verbose=verbose, callbacks=callbacks,
                            init_loader=load_core_weights, backup_every=backup_every)[1]


def _adam_compile(lr_schedule, jit=False):
    """compile_fn for models with their own train_step (the loss lives in the model)."""
    def compile_fn(model):
        model.compile(optimizer=tf.keras.optimizers.Adam(parse_lr_schedule(lr_schedule)),
                      jit_compile=jit)
    return compile_fn


def _sample_batch(dataset, validation, count=4):
    """Up to `count` (input, target) images for the TensorBoard strips: the first
    validation patches, else one training batch."""
    if validation is not None:
        x, y = validation[0][:count], validation[1][:count]
    else:
        batch = next(iter(dataset.take(1)))
        x, y = batch[0][:count], batch[1][:count]
    return tf.convert_to_tensor(x, tf.float32), tf.convert_to_tensor(y, tf.float32)


def _image_logger(run_dir, strategy, sample, name):
    """ImageLogger writing to this worker's RUN_DIR/tensorboard/images."""
    return ImageLogger(os.path.join(worker_dir(run_dir, strategy), "tensorboard"), sample,
                       name=name)


def _cwic_importance(model, x):
    """CWIC's importance map as a grey image at the input's size (8x8 blocks)."""
    p = model.analyse(x)[1]
    p = tf.repeat(tf.repeat(p, model.STRIDE, axis=1), model.STRIDE, axis=2)
    return tf.tile(p, [1, 1, 1, 3])


def _hiding_sent(model, x):
    """The file hiding sends, as any viewer decodes it (the plain codec's output side)."""
    from .hiding.model import real_codec, st_quantize
    q = model.quality
    sent = st_quantize(model.hide(x, real_codec(x, q, model.codec)[0]))
    return real_codec(sent, q, model.codec)[0]


def _clean_patches(data, eval_data, patch_size, multiple, batch_size, seed,
                   crops_per_image=None):
    """(training dataset, validation arrays or None) of clean patches, for models that
    compress their input themselves (the codec is inside the model)."""
    from .data import PatchConfig, eval_patches, patch_dataset
    if patch_size % multiple:
        raise ValueError(f"patch size must be a multiple of {multiple}, got {patch_size}")
    dataset = patch_dataset(data, PatchConfig(patch_size=patch_size,
                                              crops_per_image=crops_per_image),
                            batch_size, seed=seed)
    return dataset, (eval_patches(eval_data, patch_size, 3, None) if eval_data else None)


def train_cwic(*, data, run_dir, out=None, eval_data=None, config="narrow", target=0.33,
               gamma=1e-3, use_binarizer=True, use_importance=True, distortion="mse",
               mse_weight=0.0, steps=10000, steps_per_epoch=250, batch_size=8, patch_size=128,
               lr_schedule="1e-4", init_weights=None, seed=0, cpu_devices=1, verbose=1,
               strategy=None,
               crops_per_image=None, backup_every=None, precision="float32", jit=False):
    """Trains the content-weighted codec's networks (distortion + thresholded rate loss).

    `precision` and `jit` as in train_restorer."""
    from .cwic.model import build_cwic

    if distortion == "ms-ssim" and patch_size < 88:
        raise ValueError(f"the ms-ssim distortion needs patches >= 88 pixels, got {patch_size}")
    strategy = strategy or make_strategy(cpu_devices)
    dataset, validation = _clean_patches(data, eval_data, patch_size, 8, batch_size, seed,
                                         crops_per_image)

    def build_fn():
        return build_cwic(config, use_binarizer=use_binarizer, use_importance=use_importance,
                          target=target, gamma=gamma, distortion=distortion,
                          mse_weight=mse_weight)

    x, _ = _sample_batch(dataset, validation)
    logger = _image_logger(run_dir, strategy, (x, _cwic_importance, x),
                           "importance|decoded|original")
    return _fit_own_step(build_fn, dataset, validation, logger, precision, jit, lr_schedule,
                         run_dir=run_dir, out=out, steps=steps, steps_per_epoch=steps_per_epoch,
                         strategy=strategy, batch_size=batch_size, init_weights=init_weights,
                         verbose=verbose, backup_every=backup_every)


def _fit_own_step(build_fn, dataset, validation, logger, precision, jit, lr_schedule, **fit):
    """fit_and_save of a model with its own train_step (Adam), under `precision`, with the
    ImageLogger `logger`; returns the History."""
    with precision_policy(precision):
        return fit_and_save(build_fn, _adam_compile(lr_schedule, jit), dataset,
                            validation=validation, callbacks=[logger], **fit)[1]


#: Why `tfcomp train hiding --jit` is refused.
HIDING_NO_JIT = ("--jit: the hiding model runs the real JPEG/BPG codec inside its training "
                 "step (string and custom ops), which XLA cannot compile")


def train_hiding(*, data, run_dir, out=None, eval_data=None, codec="jpeg", quality=50,
                 quality_range=None, quality_sampling="uniform", strategy_kind=2, fidelity=0.1,
                 rate_weight=0.0,
                 width=48, depth=5, decoder_init=None, decoder_gate=False, steps=4000,
                 steps_per_epoch=250,
                 batch_size=8, patch_size=128, lr_schedule="1e-4", init_weights=None, seed=0,
                 cpu_devices=1, verbose=1, strategy=None, crops_per_image=None, backup_every=None,
                 precision="float32", jit=False):
    """Trains the residual-hiding encoder/decoder with the real codec in the loop.

    `strategy_kind` is the paper's training strategy (1: simulated-JPEG gradient, 2:
    identity gradient through the codec); `strategy` is the tf.distribute strategy.
    `decoder_init` starts D from a restorer's weights (e.g. restorer-blind's); `decoder_gate`
    makes D the quality-gated restorer (build_hiding).
    `precision` as in train_restorer; `jit` is refused (see HIDING_NO_JIT).
    """
    from .hiding.model import build_hiding

    if jit:
        raise InputError(HIDING_NO_JIT)

    strategy = strategy or make_strategy(cpu_devices)
    dataset, validation = _clean_patches(data, eval_data, patch_size, 16, batch_size, seed,
                                         crops_per_image)

    def build_fn():
        return build_hiding(codec=codec, quality=quality, quality_range=quality_range,
                            quality_sampling=quality_sampling, strategy=strategy_kind,
                            fidelity=fidelity, rate_weight=rate_weight,
                            width=width, depth=depth, decoder_gate=decoder_gate,
                            decoder_init=None if init_weights else decoder_init)

    x, _ = _sample_batch(dataset, validation)
    logger = _image_logger(run_dir, strategy, (x, _hiding_sent, x),
                           f"sent_{codec}{quality}|revealed|original")
    return _fit_own_step(build_fn, dataset, validation, logger, precision, False, lr_schedule,
                         run_dir=run_dir, out=out, steps=steps, steps_per_epoch=steps_per_epoch,
                         strategy=strategy, batch_size=batch_size, init_weights=init_weights,
                         verbose=verbose, backup_every=backup_every)


def train_jpdse(*, data, run_dir, out=None, phase=2, config="narrow", size=(512, 256),
                qps=(33, 36, 39, 42), eval_qp=36, cache_dir=None, vgg_weights=None,
                loss_weights=None, steps=2000, steps_per_epoch=100, batch_size=1,
                lr_schedule="2e-4", init_weights=None, seed=0, cpu_devices=1, verbose=1,
                strategy=None, generator_out=None, label_scale=1, crop=None,
                backup_every=None, precision="float32", jit=False, extra_sizes=()):
    """Trains JPD-SE (one phase) on the Cityscapes frames under `data` (train split).

    BPG-decoded inputs come from tfcomp.jpdse.data (cached per QP under `cache_dir`); the
    held-out split at `eval_qp` is the validation set. `init_weights`: the previous phase's
    weights (generator + discriminator), or a generator's alone (a shipped model's file: the
    discriminator then starts fresh). `out` gets the generator + discriminator weights,
    `generator_out` the generator's alone (what the jpdse-bpg codec ships). `label_scale`:
    train on the semantics a receiver decodes from coarse side information (1 = lossless).
    `crop` = (W, H): train on random windows of the frames (validation: whole frames).
    `extra_sizes`: more working sizes ((W, H), ...) whose crops are mixed into training with
    `size`'s, one size per batch drawn uniformly (needs `crop`; validation stays at `size`).
    `precision` and `jit` as in train_restorer.
    """
    from .evaluate import progress
    from .jpdse.data import frame_dataset, multi_size_dataset, prepare_frames
    from .jpdse.model import build_jpdse, load_init_weights
    from .jpdse.semantic import cityscapes_frames, split_frames

    strategy = strategy or make_strategy(cpu_devices)
    _check_replica_batch(batch_size, strategy)  # fit_and_save does not see the batch size
    train, heldout = split_frames(cityscapes_frames(data))
    show = (lambda it: progress(it, len(it), "BPG cache")) if verbose else None
    if extra_sizes:
        by_size = [prepare_frames(train, qps, tuple(s), cache_dir, progress=show)
                   for s in [size, *extra_sizes]]
        dataset = multi_size_dataset(by_size, crop, qps, batch_size, seed=seed,
                                     label_scale=label_scale)
    else:
        records = prepare_frames(train, qps, size, cache_dir, progress=show)
        dataset = frame_dataset(records, qps, batch_size, flip=True, seed=seed,
                                label_scale=label_scale, crop=crop)
    held = prepare_frames(heldout, (eval_qp,), size, cache_dir)
    validation = frame_dataset(held, (eval_qp,), 1, flip=False, repeat=False, shuffle=False,
                               label_scale=label_scale)
    (sem, dec), tgt = next(iter(validation.take(1)))
    logger = _image_logger(run_dir, strategy, ((sem, dec), dec, tgt),
                           f"bpg_qp{eval_qp}|enhanced|original")

    def build_fn():
        return build_jpdse(config, phase=phase, vgg_weights=vgg_weights, **(loss_weights or {}))

    def compile_fn(model):
        lr = parse_lr_schedule(lr_schedule)
        model.compile(g_optimizer=tf.keras.optimizers.Adam(lr, beta_1=0.5),
                      d_optimizer=tf.keras.optimizers.Adam(lr, beta_1=0.5), jit_compile=jit)

    with precision_policy(precision):
        model, history = fit_and_save(build_fn, compile_fn, dataset, run_dir=run_dir, out=out,
                                      steps=steps, steps_per_epoch=steps_per_epoch,
                                      strategy=strategy, validation=validation,
                                      init_weights=init_weights, verbose=verbose,
                                      callbacks=[logger], backup_every=backup_every,
                                      init_loader=load_init_weights)
    if generator_out and is_chief(strategy):
        os.makedirs(os.path.dirname(os.path.abspath(generator_out)), exist_ok=True)
        model.generator.save_weights(generator_out)
    return history
