"""JPD-SE (Duan, Chen, Gu, TIP 2022): semantics for joint perception-distortion enhancement.

A generator post-processes any codec's decoded image given the scene's semantics:
input = concat(one-hot Cityscapes labels (35), instance-edge map (1), decoded RGB (3)) = 39
channels, output = the enhanced RGB image. Networks and losses are pix2pixHD's:

  * generator: the pix2pixHD global generator (reflection pad 3, conv7x7, InstanceNorm without
    affine, ReLU; stride-2 conv3x3 downsamplings doubling the channels; residual blocks;
    transposed-conv3x3 upsamplings halving them; reflection pad 3, conv7x7 to 3, tanh).
    Padding is explicit so the layout is PyTorch's exactly (zero pad 1 + valid stride-2 conv;
    valid transposed conv cropped by 1 at the top/left = ConvTranspose2d(padding=1,
    output_padding=1)). Images are [0, 1] at the interface and [-1, 1] inside.
    H and W must be multiples of 2**g_down (16 for "full", 8 for "narrow", 4 for "tiny").
  * discriminator: pix2pixHD multiscale PatchGAN on concat(semantics (36), RGB); the second
    scale sees the input average-pooled 3x3 stride 2 (padding 1, count_include_pad=False).
    It returns every layer's output (the last one is the patch map) for feature matching.
  * losses: LSGAN, feature matching, VGG19 perceptual (local weights file only), L1 distortion.

Training (JpdseModel) has the paper's three phases: 1 = semantic synthesis (the decoded image
input is zeroed), 2 = all losses on codec-decoded inputs, 3 = distortion only.
Weights: `model.generator.save_weights("x.weights.h5")` is all inference needs; restore with
`build_generator(config).load_weights(...)`. The VGG is deliberately not tracked by the
model, so model checkpoints hold the generator and discriminator (and optimizers) only.
"""

import logging
import os

import tensorflow as tf

from ..metrics import batch_psnr
from ..precision import loss_scale_optimizer, replica_loss, unscaled_gradients

__all__ = ["NUM_LABELS", "SEMANTIC_CHANNELS", "INPUT_CHANNELS", "CONFIGS", "PHASES",
           "InstanceNorm", "ReflectionPad2D", "AvgPoolExcludePad", "size_multiple",
           "build_generator", "build_discriminator", "lsgan_d_loss", "lsgan_g_loss",
           "feature_matching_loss", "distortion_loss", "VGGPerceptual", "JpdseModel",
           "build_jpdse", "load_init_weights"]

log = logging.getLogger(__name__)

#: Cityscapes labelIds 0..33 plus 34 reserved (labels >= 35 are mapped to 0 by the data code).
NUM_LABELS = 35
#: One-hot labels + instance-edge map.
SEMANTIC_CHANNELS = NUM_LABELS + 1
#: Generator input: semantics + decoded RGB.
INPUT_CHANNELS = SEMANTIC_CHANNELS + 3
PHASES = (1, 2, 3)

#: Network sizes. g_* = generator (base filters, stride-2 downsamplings, residual blocks);
#: d_* = discriminator (base filters, PatchGAN layers n_layers, number of scales).
#: "full" is pix2pixHD's global generator and discriminator as used by JPD-SE (about 182M
#: generator parameters); "narrow" keeps the topology at a size 2 CPU cores can train
#: (16 base filters, 3 downsamplings to 128 channels, 3 residual blocks; discriminator 16
#: filters); "tiny" is for tests. "narrow_residual" (not in the paper) adds the decoded image
#: to a tanh correction (clipped to [0, 1]) and starts as the identity (zero last conv), so
#: the generator post-filters the codec's output instead of re-synthesising every detail
#: through its bottleneck: the variant meant to gain PSNR over the codec. "narrow_local"
#: (not in the paper either) adds a full-resolution branch to it, in the spirit of
#: pix2pixHD's local enhancer: g_local = (layers, width) 3x3 conv + ReLU layers on the same
#: input whose zero-initialised 3-channel output joins the global correction before the
#: tanh, so fine artefacts need not pass through the 1/8-resolution bottleneck.
CONFIGS = {
    "full": {"g_filters": 64, "g_down": 4, "g_blocks": 9,
             "d_filters": 64, "d_layers": 3, "d_scales": 2},
    "narrow": {"g_filters": 16, "g_down": 3, "g_blocks": 3,
               "d_filters": 16, "d_layers": 3, "d_scales": 2},
    "narrow_residual": {"g_filters": 16, "g_down": 3, "g_blocks": 3, "g_residual": True,
                        "d_filters": 16, "d_layers": 3, "d_scales": 2},
    "narrow_local": {"g_filters": 16, "g_down": 3, "g_blocks": 3, "g_residual": True,
                     "g_local": (4, 24), "d_filters": 16, "d_layers": 3, "d_scales": 2},
    "tiny": {"g_filters": 4, "g_down": 2, "g_blocks": 1,
             "d_filters": 4, "d_layers": 3, "d_scales": 2},
}
_D_MAX_FILTERS = 512  # pix2pixHD caps the discriminator width


def _config(config):
    """(name, dict) for a CONFIGS name or a dict with the same keys."""
    if isinstance(config, str):
        if config not in CONFIGS:
            raise ValueError(f"unknown JPD-SE config {config!r}; choose from {list(CONFIGS)}")
        return config, dict(CONFIGS[config])
    if isinstance(config, dict):
        missing = set(CONFIGS["tiny"]) - set(config)
        if missing:
            raise ValueError(f"config is missing {sorted(missing)}")
        return "custom", dict(config)
    raise ValueError(f"config must be a name or a dict, got {type(config).__name__}")


def size_multiple(config="narrow"):
    """Image height and width must be multiples of this (2**g_down) for the generator."""
    return 2 ** _config(config)[1]["g_down"]


# Layers ---------------------------------------------------------------------------------

@tf.keras.utils.register_keras_serializable(package="tfcomp")
class InstanceNorm(tf.keras.layers.Layer):
    """Instance normalisation without affine parameters (PyTorch InstanceNorm2d(affine=False)).

    Mean and biased variance over H, W per sample and channel, in training and inference.
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, x):
        # Statistics in float32 also under mixed precision (float16 squares overflow).
        x32 = tf.cast(x, tf.float32)
        mean, var = tf.nn.moments(x32, axes=[1, 2], keepdims=True)
        return tf.cast((x32 - mean) * tf.math.rsqrt(var + self.epsilon), x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@tf.keras.utils.register_keras_serializable(package="tfcomp")
class ReflectionPad2D(tf.keras.layers.Layer):
    """Reflection padding of H and W by `padding` pixels (PyTorch ReflectionPad2d)."""

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, x):
        p = self.padding
        return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        for axis in (1, 2):
            if shape[axis] is not None:
                shape[axis] += 2 * self.padding
        return tf.TensorShape(shape)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@tf.keras.utils.register_keras_serializable(package="tfcomp")
class AvgPoolExcludePad(tf.keras.layers.Layer):
    """3x3 stride-2 average pooling, padding 1, padded cells not counted.

    = PyTorch AvgPool2d(3, stride=2, padding=1, count_include_pad=False), pix2pixHD's
    multiscale downsampler: output size floor((n + 2 - 3) / 2) + 1.
    """

    def call(self, x):
        pad = [[0, 0], [1, 1], [1, 1], [0, 0]]
        total = tf.nn.avg_pool2d(tf.pad(x, pad), 3, 2, "VALID")
        count = tf.nn.avg_pool2d(tf.pad(tf.ones_like(x[..., :1]), pad), 3, 2, "VALID")
        return total / count


def _init():
    # pix2pixHD's weights_init: conv weights N(0, 0.02). A fresh instance per layer (Keras
    # returns identical values from a reused unseeded initializer).
    return tf.keras.initializers.RandomNormal(0.0, 0.02)


def _conv(filters, size, strides=1, name=None, dtype=None):
    return tf.keras.layers.Conv2D(filters, size, strides=strides, padding="valid",
                                  kernel_initializer=_init(), name=name, dtype=dtype)


#: The generator's output layers compute in float32 under mixed precision.
_F32 = "float32"


# Networks -------------------------------------------------------------------------------

def build_generator(config="narrow", name="jpdse_generator"):
    """The pix2pixHD global generator: [B, H, W, 39] -> [B, H, W, 3], both images in [0, 1].

    Input "semantics_and_image" = concat(one-hot labels (35), instance edges (0/1), decoded
    RGB in [0, 1]); the RGB is mapped to [-1, 1] before the first conv, the tanh output back
    to [0, 1]. H and W must be multiples of size_multiple(config).
    """
    _, cfg = _config(config)
    nf, n_down, n_blocks = cfg["g_filters"], cfg["g_down"], cfg["g_blocks"]
    inputs = tf.keras.Input((None, None, INPUT_CHANNELS), name="semantics_and_image")
    image = tf.keras.layers.Rescaling(2.0, offset=-1.0, name="image_to_pm1")(
        inputs[..., SEMANTIC_CHANNELS:])
    x = tf.keras.layers.Concatenate(name="net_input")([inputs[..., :SEMANTIC_CHANNELS], image])

    x = ReflectionPad2D(3, name="in_pad")(x)
    x = _conv(nf, 7, name="in_conv")(x)
    x = InstanceNorm(name="in_norm")(x)
    x = tf.keras.layers.ReLU(name="in_relu")(x)
    for i in range(n_down):
        x = tf.keras.layers.ZeroPadding2D(1, name=f"down{i + 1}_pad")(x)
        x = _conv(nf * 2 ** (i + 1), 3, strides=2, name=f"down{i + 1}_conv")(x)
        x = InstanceNorm(name=f"down{i + 1}_norm")(x)
        x = tf.keras.layers.ReLU(name=f"down{i + 1}_relu")(x)
    width = nf * 2 ** n_down
    for i in range(n_blocks):
        p = f"res{i + 1}_"
        y = ReflectionPad2D(1, name=p + "pad1")(x)
        y = _conv(width, 3, name=p + "conv1")(y)
        y = InstanceNorm(name=p + "norm1")(y)
        y = tf.keras.layers.ReLU(name=p + "relu")(y)
        y = ReflectionPad2D(1, name=p + "pad2")(y)
        y = _conv(width, 3, name=p + "conv2")(y)
        y = InstanceNorm(name=p + "norm2")(y)
        x = tf.keras.layers.Add(name=p + "add")([x, y])
    for i in range(n_down):
        filters = nf * 2 ** (n_down - i - 1)
        x = tf.keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="valid",
                                            kernel_initializer=_init(),
                                            name=f"up{i + 1}_tconv")(x)
        # Full transposed conv gives 2n + 1 rows; PyTorch padding=1, output_padding=1 keeps 1..2n.
        x = tf.keras.layers.Cropping2D(((1, 0), (1, 0)), name=f"up{i + 1}_crop")(x)
        x = InstanceNorm(name=f"up{i + 1}_norm")(x)
        x = tf.keras.layers.ReLU(name=f"up{i + 1}_relu")(x)
    x = ReflectionPad2D(3, name="out_pad")(x)
    if cfg.get("g_local") and not cfg.get("g_residual"):
        raise ValueError("g_local needs g_residual")
    if cfg.get("g_residual"):
        x = tf.keras.layers.Conv2D(3, 7, kernel_initializer="zeros", name="out_conv",
                                   dtype=_F32)(x)
        if cfg.get("g_local"):
            layers, width = cfg["g_local"]
            y = tf.keras.layers.Concatenate(name="local_input")(
                [inputs[..., :SEMANTIC_CHANNELS], image])
            for i in range(layers):
                y = tf.keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                                           name=f"local{i + 1}_conv")(y)
            y = tf.keras.layers.Conv2D(3, 3, padding="same", kernel_initializer="zeros",
                                       name="local_out_conv", dtype=_F32)(y)
            x = tf.keras.layers.Add(name="add_local", dtype=_F32)([x, y])
        x = tf.keras.layers.Activation("tanh", name="out_tanh", dtype=_F32)(x)
        x = tf.keras.layers.Add(name="add_decoded", dtype=_F32)(
            [inputs[..., SEMANTIC_CHANNELS:], x])
        outputs = tf.keras.layers.ReLU(max_value=1.0, name="to_01", dtype=_F32)(x)  # clip
    else:
        x = _conv(3, 7, name="out_conv", dtype=_F32)(x)
        x = tf.keras.layers.Activation("tanh", name="out_tanh", dtype=_F32)(x)
        outputs = tf.keras.layers.Rescaling(0.5, offset=0.5, name="to_01", dtype=_F32)(x)
    return tf.keras.Model(inputs, outputs, name=name)


def _patchgan(x, cfg, prefix):
    """One NLayerDiscriminator with getIntermFeat: the list of its n_layers + 2 outputs."""
    feats = []
    nf = cfg["d_filters"]
    n_layers = cfg["d_layers"]
    x = tf.keras.layers.ZeroPadding2D(2, name=f"{prefix}l0_pad")(x)
    x = _conv(nf, 4, strides=2, name=f"{prefix}l0_conv")(x)
    x = tf.keras.layers.LeakyReLU(0.2, name=f"{prefix}l0_lrelu")(x)
    feats.append(x)
    for n in range(1, n_layers + 1):
        nf = min(nf * 2, _D_MAX_FILTERS)
        stride = 2 if n < n_layers else 1
        x = tf.keras.layers.ZeroPadding2D(2, name=f"{prefix}l{n}_pad")(x)
        x = _conv(nf, 4, strides=stride, name=f"{prefix}l{n}_conv")(x)
        x = InstanceNorm(name=f"{prefix}l{n}_norm")(x)
        x = tf.keras.layers.LeakyReLU(0.2, name=f"{prefix}l{n}_lrelu")(x)
        feats.append(x)
    x = tf.keras.layers.ZeroPadding2D(2, name=f"{prefix}out_pad")(x)
    feats.append(_conv(1, 4, name=f"{prefix}out_conv")(x))
    return feats


def build_discriminator(config="narrow", name="jpdse_discriminator"):
    """pix2pixHD multiscale PatchGAN: [B, H, W, 39] = concat(semantics (36), RGB in [0, 1]).

    Returns a list (one entry per scale, full resolution first) of lists of the d_layers + 2
    layer outputs; the last of each is the patch map (1 channel, no sigmoid).
    """
    _, cfg = _config(config)
    inputs = tf.keras.Input((None, None, INPUT_CHANNELS), name="semantics_and_image")
    image = tf.keras.layers.Rescaling(2.0, offset=-1.0, name="image_to_pm1")(
        inputs[..., SEMANTIC_CHANNELS:])
    x = tf.keras.layers.Concatenate(name="net_input")([inputs[..., :SEMANTIC_CHANNELS], image])
    outputs = []
    for s in range(cfg["d_scales"]):
        if s:
            x = AvgPoolExcludePad(name=f"downsample{s}")(x)
        outputs.append(_patchgan(x, cfg, f"scale{s}_"))
    return tf.keras.Model(inputs, outputs, name=name)


# Losses ---------------------------------------------------------------------------------

def _patch(out):
    """The patch map of one scale (float32): the last feature if given the full list."""
    return tf.cast(out[-1] if isinstance(out, (list, tuple)) else out, tf.float32)


def lsgan_d_loss(real_outs, fake_outs):
    """Mean over scales of 0.5 * [mean((D(real) - 1)^2) + mean(D(fake)^2)].

    Each argument: the discriminator's output (list per scale of feature lists) or a list of
    patch maps. (pix2pixHD sums over scales; see JpdseModel.lambda_gan.)
    """
    terms = [0.5 * (tf.reduce_mean(tf.square(_patch(r) - 1.0)) + tf.reduce_mean(tf.square(_patch(f))))
             for r, f in zip(real_outs, fake_outs)]
    return tf.add_n(terms) / len(terms)


def lsgan_g_loss(fake_outs):
    """Mean over scales of mean((D(fake) - 1)^2)."""
    terms = [tf.reduce_mean(tf.square(_patch(f) - 1.0)) for f in fake_outs]
    return tf.add_n(terms) / len(terms)


def feature_matching_loss(real_feats, fake_feats):
    """pix2pixHD feature matching (without lambda_feat).

    Sum over scales and intermediate layers (all but the last output) of
    4 / (n_layers + 1) * 1 / num_scales * mean|fake - stop_gradient(real)|,
    n_layers = (outputs per scale) - 2.
    """
    num_d = len(real_feats)
    total = 0.0
    for real, fake in zip(real_feats, fake_feats):
        weight = 4.0 / (len(real) - 1) / num_d  # len(real) - 1 = n_layers + 1
        for r, f in zip(real[:-1], fake[:-1]):
            total += weight * _l1(f, r)
    return tf.convert_to_tensor(total, tf.float32)


def _l1(fake, real):
    """mean|fake - stop_gradient(real)| of two feature maps, in float32."""
    fake, real = tf.cast(fake, tf.float32), tf.cast(real, tf.float32)
    return tf.reduce_mean(tf.abs(fake - tf.stop_gradient(real)))


def distortion_loss(a, b, kind="l1"):
    """Mean absolute ("l1") or squared ("mse") difference."""
    if kind == "l1":
        return tf.reduce_mean(tf.abs(a - b))
    if kind == "mse":
        return tf.reduce_mean(tf.square(a - b))
    raise ValueError(f"distortion kind must be 'l1' or 'mse', got {kind!r}")


#: relu1_1 .. relu5_1 (Keras VGG19 convs include their ReLU) and pix2pixHD's weights.
VGG_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
VGG_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


class VGGPerceptual:
    """pix2pixHD's VGG19 loss: sum_i w_i * mean|phi_i(x) - stop_gradient(phi_i(y))|.

    phi_i = relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 of a frozen VGG19 (Keras
    applications, include_top=False); inputs in [0, 1], preprocessed the Keras/Caffe way
    (x * 255, RGB -> BGR, ImageNet mean subtracted). `weights` is a LOCAL weights file
    (e.g. vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5); nothing is ever downloaded.
    `weights=None` builds a randomly initialised VGG: for tests only - use from_file().

    Deliberately a plain object, not a Keras layer: a JpdseModel holding it does not track
    the 20M fixed VGG parameters, so its checkpoints stay small and load with or without VGG.
    """

    def __init__(self, weights=None, name="vgg19_features"):
        if weights is not None:
            weights = os.fspath(weights)
            if weights == "imagenet":
                raise ValueError("VGGPerceptual takes a local weights file, never 'imagenet'")
            if not os.path.isfile(weights):
                raise ValueError(f"VGG19 weights file not found: {weights}")
        try:
            vgg = tf.keras.applications.VGG19(include_top=False, weights=weights,
                                              input_shape=(None, None, 3))
        except Exception as e:  # mismatching or unreadable file: one clear error
            raise ValueError(f"VGG19 weights file {weights} does not fit VGG19 without its top "
                             f"(include_top=False): {e}") from e
        vgg.trainable = False
        self.base = vgg  # the whole VGG19 without top; `model` stops at relu5_1
        self.model = tf.keras.Model(vgg.input, [vgg.get_layer(n).output for n in VGG_LAYERS],
                                    name=name)
        self.model.trainable = False
        self.weights_path = weights

    @classmethod
    def from_file(cls, path):
        """A VGGPerceptual from a local file, or None (term off, logged) when path is None."""
        if path is None:
            log.warning("no VGG19 weights file given: the VGG perceptual loss is off "
                        "(ImageNet weights cannot be downloaded here; pass a local file)")
            return None
        return cls(path)

    def features(self, images):
        x = tf.keras.applications.vgg19.preprocess_input(images * 255.0)
        return self.model(x, training=False)

    def __call__(self, fake, real):
        """The weighted L1 over the five layers; real features are not differentiated."""
        fake_f = self.features(fake)
        real_f = self.features(real)
        return tf.add_n([w * _l1(f, r) for w, f, r in zip(VGG_WEIGHTS, fake_f, real_f)])


# Training model -------------------------------------------------------------------------

#: The decoded-image value used in phase 1: 0.5 in [0, 1] is 0 where the network sees it.
PHASE1_DECODED = 0.5


class JpdseModel(tf.keras.Model):
    """Generator + multiscale discriminator (+ optional VGG) trained in three phases.

    Batches: dicts {"semantics", "decoded", "target"} or tuples (semantics, decoded, target)
    (also ((semantics, decoded), target)); semantics [B, H, W, 36] = one-hot labels + edges,
    images [B, H, W, 3] in [0, 1].

      phase 1: semantic synthesis - decoded input zeroed (the network sees 0, i.e. a 0.5
               grey image, so the image weights of the first conv get no gradient);
               G loss = lambda_gan * GAN + lambda_fm * FM + lambda_vgg * VGG.
      phase 2: real decoded input; G loss adds lambda_dist * distortion.
      phase 3: lambda_dist * distortion only; the discriminator is neither run nor updated.

    train_step: one forward pass, then the discriminator step, then the generator step, both
    from gradients of that pass (pix2pixHD's train.py updates G and D from one forward).
    Losses are per-replica means divided by num_replicas_in_sync, so the all-reduced
    gradients are global-batch means under MirroredStrategy. VGG and the phase-1 distortion
    are reported (g_vgg = 0 without VGG) but only enter the loss where the phase says.

    lambda_gan = 1 weights the mean-over-scales LSGAN terms; pix2pixHD sums over scales,
    which is lambda_gan = d_scales (2).
    """

    def __init__(self, generator, discriminator, vgg=None, phase=2, config="custom",
                 lambda_gan=1.0, lambda_fm=10.0, lambda_vgg=10.0, lambda_dist=10.0,
                 dist_kind="l1", **kwargs):
        super().__init__(**kwargs)
        if dist_kind not in ("l1", "mse"):
            raise ValueError(f"dist_kind must be 'l1' or 'mse', got {dist_kind!r}")
        self.generator = generator
        self.discriminator = discriminator
        self.vgg = vgg
        self.config_name = config
        self.lambda_gan = float(lambda_gan)
        self.lambda_fm = float(lambda_fm)
        self.lambda_vgg = float(lambda_vgg)
        self.lambda_dist = float(lambda_dist)
        self.dist_kind = dist_kind
        self._phase = None
        self.phase = phase
        self._trackers = {}
        self.d_optimizer = None

    @property
    def phase(self):
        return self._phase

    @phase.setter
    def phase(self, value):
        if value not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {value!r}")
        self._phase = int(value)
        # The step functions are traced for one phase: force a retrace.
        self.train_function = self.test_function = self.predict_function = None

    @property
    def g_optimizer(self):
        return self.optimizer

    def compile(self, g_optimizer=None, d_optimizer=None, **kwargs):
        """Two optimizers; each defaults to Adam(2e-4, beta_1=0.5) (pix2pixHD / JPD-SE)."""
        if g_optimizer is None:
            g_optimizer = tf.keras.optimizers.Adam(2e-4, beta_1=0.5)
        if d_optimizer is None:
            d_optimizer = tf.keras.optimizers.Adam(2e-4, beta_1=0.5)
        super().compile(optimizer=g_optimizer, **kwargs)  # loss-scaled under mixed_float16
        self.d_optimizer = loss_scale_optimizer(d_optimizer, self)
        # Created here, not in __init__, so weight files of an uncompiled model hold only the
        # networks (see tfcomp.hiding.model).
        names = ("g_loss", "d_loss", "g_gan", "g_fm", "g_vgg", "dist", "psnr", "psnr_in")
        self._trackers = {n: tf.keras.metrics.Mean(name=n) for n in names}

    @property
    def metrics(self):
        return list(self._trackers.values())

    def get_config(self):
        # The networks are rebuilt by build_jpdse; this records the training setup.
        return {"config": self.config_name, "phase": self.phase, "lambda_gan": self.lambda_gan,
                "lambda_fm": self.lambda_fm, "lambda_vgg": self.lambda_vgg,
                "lambda_dist": self.lambda_dist, "dist_kind": self.dist_kind,
                "vgg_weights": self.vgg.weights_path if self.vgg is not None else None}

    def generator_input(self, semantics, decoded):
        """The 39-channel generator input; the image channels are zeroed in phase 1."""
        decoded = tf.cast(decoded, tf.float32)  # a mixed policy's call casts inputs to float16
        if self.phase == 1:
            decoded = tf.fill(tf.shape(decoded), PHASE1_DECODED)
        return tf.concat([tf.cast(semantics, tf.float32), decoded], axis=-1)

    def enhance(self, semantics, decoded, training=False):
        """semantics [B, H, W, 36], decoded [B, H, W, 3] -> enhanced image in [0, 1]."""
        return self.generator(self.generator_input(semantics, decoded), training=training)

    def call(self, inputs, training=False):
        if isinstance(inputs, dict):
            return self.enhance(inputs["semantics"], inputs["decoded"], training)
        semantics, decoded = inputs
        return self.enhance(semantics, decoded, training)

    @staticmethod
    def unpack(data):
        """(semantics, decoded, target) from any accepted batch layout."""
        if isinstance(data, (tuple, list)) and len(data) == 1:
            data = data[0]
        if isinstance(data, dict):
            return data["semantics"], data["decoded"], data["target"]
        if isinstance(data, (tuple, list)):
            if len(data) == 3:
                return tuple(data)
            if len(data) == 2 and isinstance(data[0], (tuple, list)) and len(data[0]) == 2:
                return data[0][0], data[0][1], data[1]
        raise ValueError("a JPD-SE batch is {'semantics', 'decoded', 'target'} or "
                         "(semantics, decoded, target)")

    def _discriminate(self, semantics, image):
        return self.discriminator(tf.concat([semantics, image], axis=-1), training=True)

    def train_step(self, data):
        semantics, decoded, target = self.unpack(data)
        semantics = tf.cast(semantics, tf.float32)
        adversarial = self.phase in (1, 2)
        zero = tf.constant(0.0)
        with tf.GradientTape(persistent=adversarial) as tape:
            fake = self.generator(self.generator_input(semantics, decoded), training=True)
            dist = distortion_loss(fake, target, self.dist_kind)
            if adversarial:
                real_outs = self._discriminate(semantics, target)
                fake_outs = self._discriminate(semantics, fake)
                d_loss = lsgan_d_loss(real_outs, fake_outs)
                g_gan = lsgan_g_loss(fake_outs)
                g_fm = feature_matching_loss(real_outs, fake_outs)
                g_vgg = self.vgg(fake, target) if self.vgg is not None else zero
                g_loss = self.lambda_gan * g_gan + self.lambda_fm * g_fm
                if self.vgg is not None:
                    g_loss += self.lambda_vgg * g_vgg
                if self.phase == 2:
                    g_loss += self.lambda_dist * dist
            else:
                d_loss = g_gan = g_fm = g_vgg = zero
                g_loss = self.lambda_dist * dist
            g_scaled = replica_loss(g_loss, self.optimizer)
            d_scaled = replica_loss(d_loss, self.d_optimizer)
        g_vars = self.generator.trainable_variables
        g_grads = unscaled_gradients(tape.gradient(g_scaled, g_vars), self.optimizer)
        if adversarial:
            d_vars = self.discriminator.trainable_variables
            d_grads = unscaled_gradients(tape.gradient(d_scaled, d_vars), self.d_optimizer)
            self.d_optimizer.apply_gradients(zip(d_grads, d_vars))
        del tape
        self.optimizer.apply_gradients(zip(g_grads, g_vars))
        return self._update({
            "g_loss": g_loss, "d_loss": d_loss, "g_gan": g_gan, "g_fm": g_fm, "g_vgg": g_vgg,
            "dist": dist, "psnr": batch_psnr(fake, target), "psnr_in": batch_psnr(decoded, target)})

    def test_step(self, data):
        semantics, decoded, target = self.unpack(data)
        output = self.enhance(semantics, decoded, training=False)
        return self._update({"dist": distortion_loss(output, target, self.dist_kind),
                             "psnr": batch_psnr(output, target), "psnr_in": batch_psnr(decoded, target)})

    def _update(self, values):
        for k, v in values.items():
            self._trackers[k].update_state(v)
        return {k: self._trackers[k].result() for k in values}


_LOSS_WEIGHTS = ("lambda_gan", "lambda_fm", "lambda_vgg", "lambda_dist", "dist_kind")


def build_jpdse(config="narrow", phase=2, vgg_weights=None, **loss_weights):
    """A JpdseModel with its variables created (uncompiled).

    vgg_weights: a local VGG19 (no top) weights file, None (VGG term off, logged), or a
    ready VGGPerceptual (tests: VGGPerceptual(None) = random weights).
    loss_weights: lambda_gan, lambda_fm, lambda_vgg, lambda_dist, dist_kind.
    """
    unknown = set(loss_weights) - set(_LOSS_WEIGHTS)
    if unknown:
        raise ValueError(f"unknown loss weights {sorted(unknown)}; known: {list(_LOSS_WEIGHTS)}")
    name, cfg = _config(config)
    generator = build_generator(cfg)
    discriminator = build_discriminator(cfg)
    if isinstance(vgg_weights, VGGPerceptual):
        vgg = vgg_weights
    else:
        vgg = VGGPerceptual.from_file(vgg_weights)
    model = JpdseModel(generator, discriminator, vgg, phase=phase, config=name,
                       name="jpdse", **loss_weights)
    size = 4 * size_multiple(cfg)
    semantics = tf.zeros([1, size, size, SEMANTIC_CHANNELS])
    image = tf.zeros([1, size, size, 3])
    model((semantics, image))
    discriminator(tf.concat([semantics, image], axis=-1))
    return model


def load_init_weights(model, path):
    """Loads a JpdseModel's start weights: a whole model's file (generator + discriminator,
    what `train_jpdse --out` writes) or a generator's alone (`--generator-out`, the file a
    registry model ships), checked layer by layer (models.load_weights_checked) so that a
    file of another configuration is refused instead of half-loaded. Returns "model" or
    "generator"; with a generator file the discriminator keeps its initial weights."""
    from ..models import load_weights_checked
    try:
        load_weights_checked(model, path)
        return "model"
    except ValueError as whole:
        try:
            load_weights_checked(model.generator, path)
        except ValueError:
            raise whole from None
    log.warning(
        "%s holds a generator alone: the discriminator starts from its initial weights", path)
    return "generator"
