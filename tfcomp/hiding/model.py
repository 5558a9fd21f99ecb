"""Learning to hide residual (Lee et al., BMVC 2021): encoder/decoder networks around a real codec.

Sender:   I_L = codec(I_H), I_R = I_H - I_L, I_H_enc = E(I_H, I_R); send codec(I_H_enc).
Receiver: I_L_enc = decoded file, output = I_L_enc + D(I_L_enc).

The paper's layer tables are unpublished; the design here (see README "Hiding residual"):
  * E: a plain conv net on [I_H, 4 * I_R] (6 channels): conv3x3 + PReLU units of `width`
    channels, a final conv3x3 to 3 channels whose kernel starts at zero, added to I_H. So
    E starts as the identity (I_H_enc = I_H) and learns a small additive pattern.
  * D: the artifact-removal CNN of tfcomp.restorer.model (313,066 parameters, no global
    skip): D(x) = R(x) - x, so output = R(I_L_enc). Started from restorer-blind's weights,
    the untrained system is exactly "JPEG + restorer", the baseline it has to beat.
The codec runs for real in the forward pass (tfcomp.codecs.graph_jpeg or the BPG op) with
straight-through uint8 rounding/clipping before it; gradients pass the codec by identity
(strategy 2) or through tfcomp.hiding.jpeg_sim (strategy 1).
"""

import tensorflow as tf

from ..data import check_quality_sampling, random_qualities
from ..metrics import batch_psnr
from ..precision import replica_loss, unscaled_gradients
from ..restorer.model import DEFAULT_WIDTHS, build_restorer, load_core_weights

__all__ = ["build_hiding_encoder", "build_hiding", "HidingModel", "st_quantize", "real_codec",
           "codec_in_loop", "RESIDUAL_GAIN", "CODECS", "STRATEGIES"]

#: The residual is small (|I_R| << 1); E sees it amplified.
RESIDUAL_GAIN = 4.0
CODECS = ("jpeg", "bpg")
STRATEGIES = (1, 2)


def build_hiding_encoder(channels=3, width=48, depth=5, name="hiding_encoder"):
    """E: [I_H, I_R] concatenated (2*channels) -> I_H_enc = I_H + f(I_H, 4 I_R).

    `depth` 3x3 convolutions in total (depth-1 with PReLU, then the zero-initialised output).
    """
    if depth < 2:
        raise ValueError(f"depth must be >= 2, got {depth}")
    inputs = tf.keras.Input(shape=(None, None, 2 * channels), name="image_and_residual")
    image = inputs[..., :channels]
    x = tf.keras.layers.Concatenate()([image, RESIDUAL_GAIN * inputs[..., channels:]])
    for i in range(depth - 1):
        x = tf.keras.layers.Conv2D(width, 3, padding="same", name=f"enc_conv{i + 1}")(x)
        x = tf.keras.layers.PReLU(shared_axes=[1, 2], name=f"enc_prelu{i + 1}")(x)
    # The sent image stays float32 under mixed precision (I_H is added exactly).
    delta = tf.keras.layers.Conv2D(channels, 3, padding="same", kernel_initializer="zeros",
                                   name="enc_out", dtype="float32")(x)
    outputs = tf.keras.layers.Add(name="hidden", dtype="float32")([image, delta])
    return tf.keras.Model(inputs, outputs, name=name)


def st_quantize(x):
    """Clip to [0, 1] and round to the uint8 grid; identity gradient (straight-through)."""
    return x + tf.stop_gradient(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0) / 255.0 - x)


def real_codec(images, quality, codec="jpeg"):
    """Runs the real codec on a float batch on the uint8 grid: -> (decoded float, file bytes [B]).

    `quality` is a JPEG quality or a BPG QP: a scalar or one per element (int32 [B]).
    """
    u8 = tf.cast(tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0), tf.uint8)
    q = tf.broadcast_to(tf.cast(quality, tf.int32), tf.shape(u8)[:1])

    if codec == "jpeg":
        from ..codecs.graph_jpeg import jpeg_encode

        def one(args):
            data = jpeg_encode(args[0], args[1])
            decoded = tf.io.decode_jpeg(data, channels=images.shape[-1],
                                        dct_method="INTEGER_ACCURATE")
            return decoded, tf.strings.length(data)
    elif codec == "bpg":
        from ..codecs.bpg import bpg_roundtrip

        def one(args):
            return bpg_roundtrip(args[0], qp=args[1])
    else:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    decoded, nbytes = tf.map_fn(
        one, (u8, q), fn_output_signature=(tf.TensorSpec(u8.shape[1:], tf.uint8),
                                           tf.TensorSpec([], tf.int32)))
    decoded = tf.ensure_shape(decoded, u8.shape)
    return tf.cast(decoded, tf.float32) / 255.0, nbytes


def codec_in_loop(x, quality, codec="jpeg", strategy=2):
    """Real codec forward, straight-through (2) or simulated-JPEG (1) gradient.

    `x` is on the uint8 grid (st_quantize). Returns (decoded, file bytes [B]).
    """
    real, nbytes = real_codec(tf.stop_gradient(x), quality, codec)
    if strategy == 2:
        return x + tf.stop_gradient(real - x), nbytes
    if strategy == 1:
        if codec != "jpeg":
            raise ValueError("strategy 1 needs a differentiable simulation: JPEG only")
        from .jpeg_sim import jpeg_simulate
        sim = jpeg_simulate(x, quality)
        return sim + tf.stop_gradient(real - sim), nbytes
    raise ValueError(f"strategy must be 1 or 2, got {strategy!r}")


def _mse(a, b):
    return tf.reduce_mean(tf.square(a - b), axis=[1, 2, 3])


class HidingModel(tf.keras.Model):
    """E and D around a real codec; `fit` on batches of clean images (x or (x, anything)).

    Loss = MSE(output, I_H) + fidelity * MSE(I_H_enc, I_H)
           [+ rate_weight * (rate proxy of I_H_enc - rate proxy of I_H)],
    the proxy being, for JPEG, tfcomp.hiding.jpeg_sim's differentiable log-magnitude of the
    quantised DCT coefficients and, for BPG, tfcomp.hiding.bpg_rate's log-magnitude of DCT
    coefficients against HEVC's quantiser step (both bits/pixel-like). Metrics: psnr (final output), psnr_plain (the plain
    codec at the same quality, the baseline), psnr_view (the sent file decoded by any
    viewer), psnr_enc (I_H_enc), bpp / bpp_plain (real file bytes).

    Under a tf.distribute strategy each replica's loss (a mean over its share of the batch)
    is divided by num_replicas_in_sync, so N replicas on a global batch take the step one
    device takes on it.
    """

    def __init__(self, encoder, decoder, codec="jpeg", quality=50, quality_range=None,
                 strategy=2, fidelity=0.1, rate_weight=0.0, quality_sampling="uniform", **kwargs):
        super().__init__(**kwargs)
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if strategy == 1 and codec != "jpeg":
            raise ValueError("strategy 1 (simulated gradient) exists for JPEG only")
        self.encoder = encoder
        self.decoder = decoder
        self.codec = codec
        self.quality = int(quality)
        self.quality_range = tuple(int(q) for q in quality_range) if quality_range else None
        check_quality_sampling(quality_sampling)
        self.quality_sampling = quality_sampling
        self.strategy = int(strategy)
        self.fidelity = float(fidelity)
        self.rate_weight = float(rate_weight)
        self._trackers = {}

    def compile(self, *args, **kwargs):
        super().compile(*args, **kwargs)
        # Created here, not in __init__, so the weights files of an uncompiled model hold only
        # the two networks (metric variables in a file break loading it under a strategy).
        names = ["loss", "psnr", "psnr_plain", "psnr_view", "psnr_enc", "bpp", "bpp_plain"]
        if self.rate_weight:
            names.append("rate_proxy_extra")
        self._trackers = {n: tf.keras.metrics.Mean(name=n) for n in names}

    def get_config(self):
        # The two networks are rebuilt by build_hiding; this records the training setup.
        return {"codec": self.codec, "quality": self.quality, "quality_range": self.quality_range,
                "quality_sampling": self.quality_sampling, "strategy": self.strategy,
                "fidelity": self.fidelity,
                "rate_weight": self.rate_weight}

    @property
    def metrics(self):
        return list(self._trackers.values())

    def hide(self, clean, plain):
        """I_H_enc from I_H and its plain decoded version I_L."""
        return self.encoder(tf.concat([clean, clean - plain], axis=-1))

    def reveal(self, decoded):
        """The receiver: decoded file -> restored image (= decoded + D(decoded))."""
        return self.decoder(decoded)

    def _qualities(self, batch, training):
        if self.quality_range is None or not training:
            return tf.fill([batch], self.quality)
        lo, hi = self.quality_range
        return random_qualities(batch, lo, hi, self.quality_sampling)

    def _forward(self, clean, training):
        q = self._qualities(tf.shape(clean)[0], training)
        plain, plain_bytes = real_codec(clean, q, self.codec)
        hidden = self.hide(clean, tf.stop_gradient(plain))
        sent = st_quantize(hidden)
        decoded, nbytes = codec_in_loop(sent, q, self.codec, self.strategy)
        output = self.reveal(decoded)
        pixels = tf.cast(tf.shape(clean)[1] * tf.shape(clean)[2], tf.float32)
        mse = _mse(output, clean)
        mse_enc = _mse(hidden, clean)
        loss = tf.reduce_mean(mse) + self.fidelity * tf.reduce_mean(mse_enc)
        stats = {
            "psnr": batch_psnr(tf.clip_by_value(output, 0.0, 1.0), clean),
            "psnr_plain": batch_psnr(plain, clean),
            "psnr_view": batch_psnr(decoded, clean),
            "psnr_enc": batch_psnr(sent, clean),
            "bpp": 8.0 * tf.cast(nbytes, tf.float32) / pixels,
            "bpp_plain": 8.0 * tf.cast(plain_bytes, tf.float32) / pixels,
        }
        if self.rate_weight:
            extra = self._rate_proxy(sent, q) - tf.stop_gradient(self._rate_proxy(clean, q))
            loss += self.rate_weight * tf.reduce_mean(extra)
            stats["rate_proxy_extra"] = extra
        return output, loss, stats

    def _rate_proxy(self, images, q):
        """The codec's differentiable bits proxy per pixel [B]."""
        if self.codec == "bpg":
            from .bpg_rate import bpg_rate_proxy
            return bpg_rate_proxy(images, q)
        from .jpeg_sim import jpeg_simulate
        return jpeg_simulate(images, q, return_rate=True)[1]

    def call(self, clean, training=False):
        # A mixed policy's __call__ casts the input to the compute dtype: the codec and the
        # losses work on float32.
        return self._forward(tf.cast(clean, tf.float32), training)[0]

    def _update(self, loss, stats):
        self._trackers["loss"].update_state(loss)
        for k, v in stats.items():
            self._trackers[k].update_state(v)
        return {k: m.result() for k, m in self._trackers.items()}

    @staticmethod
    def _clean(data):
        return data[0] if isinstance(data, (tuple, list)) else data

    def train_step(self, data):
        clean = self._clean(data)
        with tf.GradientTape() as tape:
            _, loss, stats = self._forward(clean, True)
            # This replica's share (apply_gradients sums them), loss-scaled under float16.
            scaled = replica_loss(loss, self.optimizer)
        grads = unscaled_gradients(tape.gradient(scaled, self.trainable_variables),
                                   self.optimizer)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return self._update(loss, stats)

    def test_step(self, data):
        _, loss, stats = self._forward(self._clean(data), False)
        return self._update(loss, stats)


def build_hiding(codec="jpeg", quality=50, quality_range=None, strategy=2, fidelity=0.1,
                 rate_weight=0.0, width=48, depth=5, decoder_widths=DEFAULT_WIDTHS,
                 decoder_init=None, decoder_gate=False, quality_sampling="uniform"):
    """A built HidingModel (variables created). `decoder_init`: restorer weights for D.

    `decoder_gate=True`: D is the quality-gated restorer (restorer-blind's architecture),
    started from a gated file with its gate, so a quality-range model starts as "JPEG +
    restorer-blind"; otherwise a gated file's network is taken and its gate dropped."""
    encoder = build_hiding_encoder(width=width, depth=depth)
    decoder = build_restorer(channels=3, widths=decoder_widths, name="hiding_decoder",
                             quality_gate=decoder_gate)
    if decoder_init:
        load_core_weights(decoder, decoder_init, drop_gate=not decoder_gate)
    model = HidingModel(encoder, decoder, codec=codec, quality=quality,
                        quality_range=quality_range, strategy=strategy, fidelity=fidelity,
                        rate_weight=rate_weight, quality_sampling=quality_sampling,
                        name=f"hiding_{codec}")
    # Creating the variables needs no codec run: call the two networks on a dummy input.
    model.hide(tf.zeros([1, 16, 16, 3]), tf.zeros([1, 16, 16, 3]))
    model.reveal(tf.zeros([1, 16, 16, 3]))
    return model
