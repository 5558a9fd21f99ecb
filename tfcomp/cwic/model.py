"""Content-weighted image compression (Li et al., CVPR 2018): binarizer, importance map, mask.

A `CWIC` model with its context tables attached (`set_tables`) is a complete codec:
`compress` (uint8 image -> the .cwic file) and `decompress` (file -> uint8 image) are
tf.functions with input signatures whose contexts and range coding run in the graph
(tfcomp.cwic.graph), so a SavedModel of them needs only TensorFlow + tensorflow_compression.
"""

import json

import tensorflow as tf

from ..errors import TfcompError
from ..metrics import batch_psnr
from ..precision import replica_loss, unscaled_gradients

__all__ = ["CONFIGS", "DISTORTIONS", "ms_ssim_4", "binarize", "importance_mask",
           "kept_channels", "CWIC", "build_cwic", "IMAGE_SPEC", "BYTES_SPEC"]

#: The coding signatures' inputs: one RGB image, one .cwic file.
IMAGE_SPEC = tf.TensorSpec([None, None, 3], tf.uint8, name="image")
BYTES_SPEC = tf.TensorSpec([], tf.string, name="cwic_bytes")

#: Network sizes. "paper" is the official configuration (methods.md section 1); "narrow" trains
#: on a 2-core CPU in about an hour. n = binary channels, L = importance levels.
CONFIGS = {
    "paper": {"n": 64, "levels": 16, "enc": (128, 256), "res_inner": 128, "imp": 128,
              "dec": (512, 256, 32)},
    "paper128": {"n": 128, "levels": 32, "enc": (128, 256), "res_inner": 128, "imp": 128,
                 "dec": (512, 256, 32)},
    "narrow": {"n": 64, "levels": 16, "enc": (64, 128), "res_inner": 64, "imp": 64,
               "dec": (256, 128, 32)},
    "tiny": {"n": 16, "levels": 4, "enc": (8, 16), "res_inner": 8, "imp": 8,
             "dec": (32, 16, 8)},
}

#: Training distortions: "mse" is the paper's; "ms-ssim" (1 - ms_ssim_4) trades PSNR for
#: MS-SSIM, the usual second operating point of learned codecs.
DISTORTIONS = ("mse", "ms-ssim")

# The first four of MS-SSIM's five standard scale weights, renormalised: 128x128 training
# patches are too small for the fifth scale with an 11-tap window (it needs > 160 pixels).
_MS4 = (0.0448, 0.2856, 0.3001, 0.2363)
_MS4 = tuple(w / sum(_MS4) for w in _MS4)


def _gaussian_11():
    x = tf.range(11, dtype=tf.float32) - 5.0
    g = tf.exp(-x * x / (2.0 * 1.5 ** 2))
    g = g / tf.reduce_sum(g)
    return g[:, None] * g[None, :]


def ms_ssim_4(a, b, floor=1e-4):
    """Four-scale MS-SSIM of images in [0, 1] (per image), differentiable; sides >= 88.

    The same numbers as tf.image.ssim_multiscale(a, b, 1.0, power_factors=<the four
    weights>) while every term is positive; there, a term clipped to 0 (negative
    correlation, common at the start of training) makes x ** w (w < 1) give infinite,
    then NaN, gradients. Here each term is floored at `floor` instead.
    """
    channels = a.shape[-1]
    kernel = tf.tile(_gaussian_11()[:, :, None, None], [1, 1, channels, 1])

    def blur(t):
        return tf.nn.depthwise_conv2d(t, kernel, [1, 1, 1, 1], "VALID")

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    terms = []
    for scale in range(len(_MS4)):
        mu_a, mu_b = blur(a), blur(b)
        var_a = blur(a * a) - mu_a * mu_a
        var_b = blur(b * b) - mu_b * mu_b
        cov = blur(a * b) - mu_a * mu_b
        cs = (2.0 * cov + c2) / (var_a + var_b + c2)
        if scale < len(_MS4) - 1:
            terms.append(tf.reduce_mean(cs, axis=[1, 2]))
            a = tf.nn.avg_pool2d(a, 2, 2, "VALID")
            b = tf.nn.avg_pool2d(b, 2, 2, "VALID")
        else:
            lum = (2.0 * mu_a * mu_b + c1) / (mu_a * mu_a + mu_b * mu_b + c1)
            terms.append(tf.reduce_mean(lum * cs, axis=[1, 2]))
    terms = tf.maximum(tf.stack(terms, axis=-1), floor)            # [B, C, scales]
    per_channel = tf.reduce_prod(terms ** tf.constant(_MS4), axis=-1)
    return tf.reduce_mean(per_channel, axis=-1)


@tf.custom_gradient
def binarize(x):
    """Forward: 1 where x > 0.5 else 0. Backward: identity (straight-through)."""
    y = tf.cast(x > 0.5, x.dtype)

    def grad(dy):
        return dy
    return y, grad


def kept_channels(p, n, levels):
    """Channels kept per position for importance p in [0, 1]: (floor(L p) + 1) * n / L.

    This is the released nets' rule (the paper's formula is floor(L p) * n / L), so every
    position keeps at least n / L channels. Returns float32 [..., 1].
    """
    q = tf.clip_by_value(tf.floor(p * levels), 0.0, levels - 1.0)
    return (q + 1.0) * (n // levels)


def importance_mask(p, n, levels):
    """The channel mask m[..., k] = 1 if k < kept(p), with the released nets' gradient.

    p: [B, h, w, 1] in (0, 1). Backward: dL/dp = sum over all k of dL/dm_k.
    """
    @tf.custom_gradient
    def _mask(p):
        kept = kept_channels(p, n, levels)
        k = tf.range(n, dtype=p.dtype)
        m = tf.cast(k < kept, p.dtype)

        def grad(dm):
            return tf.reduce_sum(dm, axis=-1, keepdims=True)
        return m, grad
    return _mask(p)


def _global_mean(value):
    """The mean of a per-replica scalar over all replicas (the value itself on one device).

    In a replica context (train_step, test_step) under MirroredStrategy or
    MultiWorkerMirroredStrategy, this makes a batch statistic the global batch's (replicas
    hold equal shares of it); elsewhere it returns `value`.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.MEAN, value)


def _conv(filters, size, strides=1, activation="relu", name=None, dtype=None):
    return tf.keras.layers.Conv2D(filters, size, strides=strides, padding="same",
                                  activation=activation, name=name, dtype=dtype)


@tf.keras.utils.register_keras_serializable(package="tfcomp", name="CwicRes")
class _Res(tf.keras.layers.Layer):
    """Res(C): conv3x3(inner)+ReLU -> conv3x3(C)+ReLU -> add input -> ReLU."""

    def __init__(self, channels, inner, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.inner = channels, inner
        self.conv1 = _conv(inner, 3)
        self.conv2 = _conv(channels, 3)

    def call(self, x):
        return tf.nn.relu(x + self.conv2(self.conv1(x)))

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "inner": self.inner}


def _encoder(cfg):
    c1, c2 = cfg["enc"]
    r = cfg["res_inner"]
    x_in = tf.keras.Input((None, None, 3), name="image")
    x = tf.keras.layers.Lambda(lambda t: t * 2.0 - 1.0, name="to_pm1")(x_in)
    x = _conv(c1, 8, strides=4, name="conv8x8_s4")(x)
    x = _Res(c1, r, name="res1")(x)
    x = _conv(c2, 4, strides=2, name="conv4x4_s2")(x)
    x = _Res(c2, r, name="res2")(x)
    x = _conv(c2, 3, name="conv3x3")(x)
    features = _Res(c2, r, name="res3")(x)
    # The codes (binarizer input) and the importance map stay float32 under mixed precision.
    codes = _conv(cfg["n"], 1, activation="sigmoid", name="to_codes", dtype="float32")(features)
    imp = _conv(cfg["imp"], 3, name="imp_conv3x3")(features)
    p = _conv(1, 1, activation="sigmoid", name="imp_map", dtype="float32")(imp)
    return tf.keras.Model(x_in, [codes, p], name="encoder")


def _decoder(cfg):
    d1, d2, d3 = cfg["dec"]
    r = cfg["res_inner"]
    b_in = tf.keras.Input((None, None, cfg["n"]), name="masked_bits")
    x = _conv(d1, 3, name="conv_a")(b_in)
    x = _Res(d1, r, name="res_a")(x)
    x = _conv(d1, 3, name="conv_b")(x)
    x = _Res(d1, r, name="res_b")(x)
    x = tf.keras.layers.Lambda(lambda t: tf.nn.depth_to_space(t, 2), name="d2s_2")(x)
    x = _conv(d2, 3, name="conv_c")(x)
    x = _Res(d2, r, name="res_c")(x)
    x = tf.keras.layers.Lambda(lambda t: tf.nn.depth_to_space(t, 4), name="d2s_4")(x)
    x = _conv(d3, 3, name="conv_d")(x)
    x = _conv(3, 1, activation=None, name="to_rgb", dtype="float32")(x)
    y = tf.keras.layers.Lambda(lambda t: (t + 1.0) / 2.0, name="to_01", dtype="float32")(x)
    return tf.keras.Model(b_in, y, name="decoder")


@tf.keras.utils.register_keras_serializable(package="tfcomp", name="CWIC")
class CWIC(tf.keras.Model):
    """The content-weighted codec's networks; images are float [0, 1], H and W multiples of 8.

    `use_binarizer=False` feeds the sigmoid codes to the decoder (the plain autoencoder's
    continuous code); `use_importance=False` keeps all n channels everywhere. The rate loss
    gamma * mean(p) is added while the kept-bit fraction of the batch exceeds `target`.
    Under a tf.distribute strategy "the batch" is the global batch: the replicas average
    their kept fractions (all-reduce) and each scales its loss by 1 / num_replicas_in_sync,
    so N replicas on a global batch take the step one device takes on it.
    `distortion`: "mse" (the paper's) or "ms-ssim" (1 - ms_ssim_4 + mse_weight * MSE; training
    patches >= 88; the MSE anchor keeps colours and brightness, which MS-SSIM barely sees).

    Coding: `set_tables(tables, rate)` attaches the integer CDF tables (as constants) and
    creates `compress(image)` -> {"cwic_bytes": the .cwic file, ...} and
    `decompress(cwic_bytes)` -> uint8 [H, W, 3]; `model_id` names weights + tables in files.
    """

    STRIDE = 8

    def __init__(self, config="narrow", use_binarizer=True, use_importance=True, target=0.33,
                 gamma=1e-3, distortion="mse", mse_weight=0.0, **kwargs):
        super().__init__(**kwargs)
        if config not in CONFIGS:
            raise ValueError(f"unknown CWIC config {config!r}; choose from {list(CONFIGS)}")
        if distortion not in DISTORTIONS:
            raise ValueError(f"unknown distortion {distortion!r}; choose from {DISTORTIONS}")
        cfg = CONFIGS[config]
        if cfg["n"] % cfg["levels"]:
            raise ValueError("n must be a multiple of the number of levels")
        self.config_name, self.cfg = config, cfg
        self.n, self.levels = cfg["n"], cfg["levels"]
        self.use_binarizer, self.use_importance = bool(use_binarizer), bool(use_importance)
        self.target, self.gamma = float(target), float(gamma)
        self.distortion, self.mse_weight = distortion, float(mse_weight)
        self.encoder = _encoder(cfg)
        self.decoder = _decoder(cfg)
        names = ("loss", "mse", "psnr") + (("msssim",) if distortion == "ms-ssim" else ()) \
            + ("kept", "bpp_raw", "rate_active")
        self._trackers = {k: tf.keras.metrics.Mean(name=k) for k in names}

    # -- coding ---------------------------------------------------------------------------
    def set_tables(self, tables, rate=0):
        """Attaches context tables (tfcomp.cwic.coding.ContextTables) and the registry rate
        index (0 for a model outside the registry); creates `compress` and `decompress`.

        Call it after the weights are final: the model identity written into files
        (`model_id`) is a hash of the weights and tables at this moment.
        """
        from .coding import DEFAULT_FAMILY
        if (tables.n, tables.levels) != (self.n, self.levels):
            raise TfcompError(f"cwic: tables for n={tables.n}, L={tables.levels} do not fit a "
                              f"model with n={self.n}, L={self.levels}")
        if tables.family != DEFAULT_FAMILY:
            raise TfcompError(f"cwic: tables of the {tables.family!r} context family; .cwic "
                              f"files use {DEFAULT_FAMILY!r}")
        if not 0 <= int(rate) <= 255:
            raise TfcompError(f"cwic: rate index {rate} outside 0..255")
        self.tables, self.rate = tables, int(rate)
        self.model_id = _model_id(self, tables)
        self._bit_cdf = tf.constant(tables.bit_cdf, tf.int32)
        self._map_cdf = tf.constant(tables.map_cdf, tf.int32)
        self.compress = tf.function(self._compress, input_signature=[IMAGE_SPEC], autograph=False)
        self.decompress = tf.function(self._decompress, input_signature=[BYTES_SPEC], autograph=False)
        return self

    def compress(self, image):
        """Set by `set_tables` (a tf.function); without tables there is nothing to code with."""
        raise TfcompError("cwic: this model has no context tables; call set_tables first")

    decompress = compress

    def _compress(self, image):
        from . import graph
        from .codec import MAX_SIDE
        h, w = tf.shape(image)[0], tf.shape(image)[1]
        ok = tf.debugging.Assert((h >= 1) & (h <= MAX_SIDE) & (w >= 1) & (w <= MAX_SIDE),
                                 [f"image: sides must be 1..{MAX_SIDE}; height, width:", h, w])
        with tf.control_dependencies([ok]):
            bits, kept = graph.analyse(self, image)
        q = kept // (self.n // self.levels) - 1
        map_stream = graph.encode_map(q, self._map_cdf, self.levels)
        bit_stream = graph.encode_bits(bits, kept, self._bit_cdf, self.n, self.levels)
        data = graph.write_file(self.rate, self.model_id, h, w, map_stream, bit_stream)
        return {"cwic_bytes": data, "map_bytes": map_stream, "bits_bytes": bit_stream,
                "image_shape": tf.stack([h, w]), "grid_shape": tf.shape(q)}

    def _decompress(self, cwic_bytes):
        from . import graph
        h, w, map_stream, bit_stream = graph.read_file(cwic_bytes, self.rate, self.model_id)
        q = graph.decode_map(map_stream, self._map_cdf, -(-h // self.STRIDE),
                             -(-w // self.STRIDE), self.levels)
        kept = (q + 1) * (self.n // self.levels)
        # The range decoder reads zeros past a stream's end, so a few forged bytes would
        # decode to any size: each stream must be the encoder's (canonical) output.
        with tf.control_dependencies([graph.require_canonical(
                graph.encode_map(q, self._map_cdf, self.levels), map_stream, "importance-map")]):
            bits = graph.decode_bits(bit_stream, kept, self._bit_cdf, self.n, self.levels)
        with tf.control_dependencies([graph.require_canonical(
                graph.encode_bits(bits, kept, self._bit_cdf, self.n, self.levels), bit_stream,
                "bit")]):
            return graph.synthesise(self, bits, h, w)

    def get_config(self):
        return {"config": self.config_name, "use_binarizer": self.use_binarizer,
                "use_importance": self.use_importance, "target": self.target,
                "gamma": self.gamma, "distortion": self.distortion,
                "mse_weight": self.mse_weight}

    @property
    def metrics(self):
        return list(self._trackers.values())

    def analyse(self, x):
        """Encoder half: image -> (codes in [0,1] or {0,1}, importance p, mask)."""
        codes, p = self.encoder(x)
        if self.use_binarizer:
            codes = binarize(codes)
        if self.use_importance:
            mask = importance_mask(p, self.n, self.levels)
        else:
            mask = tf.ones_like(codes)
        return codes, p, mask

    def call(self, x, training=False):
        codes, p, mask = self.analyse(x)
        return self.decoder(codes * mask)

    def _objective(self, x, training):
        codes, p, mask = self.analyse(x)
        y = self.decoder(codes * mask, training=training)
        mse = tf.reduce_mean(tf.square(y - x))
        kept = _global_mean(tf.stop_gradient(tf.reduce_mean(mask)))
        active = tf.cast(kept > self.target, tf.float32) if self.use_importance else 0.0
        logs = {"mse": mse}
        if self.distortion == "ms-ssim":
            logs["msssim"] = tf.reduce_mean(ms_ssim_4(y, x))
            dist = 1.0 - logs["msssim"] + self.mse_weight * mse
        else:
            dist = mse
        loss = dist + active * self.gamma * tf.reduce_mean(p)
        psnr = tf.reduce_mean(batch_psnr(tf.clip_by_value(y, 0.0, 1.0), x))
        # Uncoded rate: kept bits per 8x8 block, plus log2(L) bits for its importance level.
        bpp_raw = kept * self.n / 64.0 + (tf.math.log(float(self.levels)) / tf.math.log(2.0) / 64.0
                                          if self.use_importance else 0.0)
        return loss, {**logs, "loss": loss, "psnr": psnr, "kept": kept, "bpp_raw": bpp_raw,
                      "rate_active": active}

    def train_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        with tf.GradientTape() as tape:
            loss, logs = self._objective(x, True)
            # This replica's share (apply_gradients sums them), loss-scaled under float16.
            scaled = replica_loss(loss, self.optimizer)
        grads = unscaled_gradients(tape.gradient(scaled, self.trainable_variables),
                                   self.optimizer)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return self._update(logs)

    def test_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        return self._update(self._objective(x, False)[1])

    def _update(self, logs):
        for k, v in logs.items():
            self._trackers[k].update_state(v)
        return {k: t.result() for k, t in self._trackers.items()}


def _model_id(model, tables):
    """8 bytes of SHA-256 over the architecture, the networks' weights and the CDF tables."""
    from ..registry import arrays_digest
    arch = {"config": CONFIGS[model.config_name], "binarizer": model.use_binarizer,
            "importance": model.use_importance, "family": tables.family}
    return arrays_digest(model.encoder.get_weights() + model.decoder.get_weights()
                         + [tables.bit_cdf, tables.map_cdf],
                         prefix=json.dumps(arch, sort_keys=True).encode())[:8]


def build_cwic(config="narrow", **kwargs):
    """A CWIC model with its weights created (one call on a dummy 16x16 image)."""
    model = CWIC(config, **kwargs)
    model(tf.zeros((1, 16, 16, 3)))
    return model
