"""JPEG artifact-removal CNN: conv units of 3x3 / 1x1 / PReLU (methods.md section 2)."""

import tensorflow as tf

__all__ = ["build_restorer", "identity_init", "DEFAULT_WIDTHS", "receptive_radius",
           "BlockDCTStats", "GatedResidual", "split_gate", "load_core_weights", "to_gray", "GATE_PREFIX"]

#: Layer-name prefix of the quality gate (build_restorer(quality_gate=True)).
GATE_PREFIX = "gate_"

#: Channel widths of the original 313,066-parameter network.
DEFAULT_WIDTHS = (128, 64, 32, 16)


def _conv(filters, size, name, dtype=None):
    return tf.keras.layers.Conv2D(filters, size, padding="same", name=name, dtype=dtype)


def _prelu(name):
    # One scalar slope per layer, as in the original checkpoint (shared over H, W and C).
    return tf.keras.layers.PReLU(shared_axes=[1, 2, 3], name=name)


def _dct_matrix(n=8):
    """Orthonormal DCT-II matrix [u, x] (the transform JPEG quantises)."""
    import numpy as np
    k = np.arange(n)
    m = np.cos((2 * k[None, :] + 1) * k[:, None] * np.pi / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


@tf.keras.utils.register_keras_serializable(package="tfcomp")
class BlockDCTStats(tf.keras.layers.Layer):
    """Per-image statistics of the 8x8 block DCT of the luma: what a JPEG's quality changes.

    Input float images [N, H, W, C] in [0, 1] (C = 3: BT.601 luma; C = 1: the plane itself).
    Output [N, 128]: for each of the 64 DCT frequencies, log(mean c^2 + 0.01) and
    log(mean |c| + 0.1) over the image's whole 8x8 blocks on the JPEG grid (from the top-left
    corner; partial blocks at the right/bottom edge are ignored), c in 0..255 units, scaled
    by 0.25. An image without a whole block gives the statistics of zero coefficients.
    No trainable weights; always float32.
    """

    def __init__(self, **kwargs):
        kwargs["dtype"] = "float32"
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)

    def build(self, input_shape):
        import numpy as np
        channels = int(input_shape[-1])
        d = _dct_matrix()
        basis = np.einsum("uy,vx->yxuv", d, d).reshape(8, 8, 1, 64)
        mix = np.array([0.299, 0.587, 0.114]) if channels == 3 else np.ones(1)
        # A numpy array made a constant inside call(): a graph Const, not a captured eager
        # tensor (tf2onnx would turn that into an extra model input).
        self._kernel = (255.0 * basis * mix.reshape(1, 1, channels, 1)).astype(np.float32)
        super().build(input_shape)

    def call(self, images):
        x = tf.cast(images, tf.float32)
        blocks = tf.shape(x)[1:3] // 8
        # A fixed zero pad and a crop of the result (not a pad by a computed amount, which
        # TFLite's converter cannot follow) keep exactly the whole blocks, none for tiny images.
        x = tf.pad(x, [[0, 0], [0, 7], [0, 7], [0, 0]])
        c = tf.nn.conv2d(x, tf.constant(self._kernel), strides=8, padding="VALID")
        c = c[:, :blocks[0], :blocks[1]]
        scale = 1.0 / tf.maximum(tf.cast(blocks[0] * blocks[1], tf.float32), 1.0)
        energy = tf.reduce_sum(tf.square(c), axis=[1, 2]) * scale
        magnitude = tf.reduce_sum(tf.abs(c), axis=[1, 2]) * scale
        return 0.25 * tf.concat([tf.math.log(energy + 0.01), tf.math.log(magnitude + 0.1)], -1)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], 128])


@tf.keras.utils.register_keras_serializable(package="tfcomp")
class GatedResidual(tf.keras.layers.Layer):
    """[x, f, g] -> x + g * (f - x): blends the network's output f with its input x by the
    per-image, per-channel gate g [N, C] in [0, 1]. Always float32."""

    def __init__(self, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)

    def call(self, inputs):
        x, f, g = (tf.cast(t, tf.float32) for t in inputs)
        return x + g[:, None, None, :] * (f - x)


def build_restorer(channels=3, widths=DEFAULT_WIDTHS, name="restorer", quality_gate=False):
    """Returns the restorer as a functional Keras model on float images in [0, 1].

    Args:
      channels: 3 for RGB, 1 for the gray / Y-channel variant.
      widths: (w1, w2, w3, w4) channel widths; the default is the original network.
      name: the Keras model name.

    The layout per width w in (w1, w2, w3): conv3x3(->w), conv1x1(w), PReLU, conv3x3(w),
    PReLU; then conv1x1(->w4), PReLU; then a linear conv5x5 back to `channels`.
    Stride 1, same padding, no global skip connection and no output clamp.
    The output conv always computes in float32, so under a mixed-precision policy
    (training with bfloat16 compute) the image and the loss stay float32.

    `quality_gate=True` adds a blind quality estimate (4,259 more parameters): a small MLP on
    the image's block-DCT statistics (BlockDCTStats) gives a per-image, per-channel gate
    g in [0, 1], and the output is x + g * (network(x) - x) (GatedResidual), so the model
    can learn to leave lightly compressed images alone. The gate reads the whole image;
    split_gate() separates it from the local network for tiled processing.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    widths = tuple(int(w) for w in widths)
    if len(widths) != 4 or min(widths) < 1:
        raise ValueError(f"widths must be four positive integers, got {widths}")
    inputs = tf.keras.Input(shape=(None, None, channels), name="image")
    x = inputs
    for i, w in enumerate(widths[:3], start=1):
        x = _conv(w, 3, f"unit{i}_conv3a")(x)
        x = _conv(w, 1, f"unit{i}_conv1")(x)
        x = _prelu(f"unit{i}_preluA")(x)
        x = _conv(w, 3, f"unit{i}_conv3b")(x)
        x = _prelu(f"unit{i}_preluB")(x)
    x = _conv(widths[3], 1, "squeeze_conv1")(x)
    x = _prelu("squeeze_prelu")(x)
    outputs = _conv(channels, 5, "output_conv5", dtype="float32")(x)
    if quality_gate:
        g = BlockDCTStats(name=GATE_PREFIX + "dct_stats")(inputs)
        g = tf.keras.layers.Dense(32, name=GATE_PREFIX + "dense1", dtype="float32")(g)
        g = tf.keras.layers.PReLU(name=GATE_PREFIX + "prelu", dtype="float32")(g)
        # Starts at g = sigmoid(4) = 0.98 for every image: close to the ungated network.
        g = tf.keras.layers.Dense(channels, activation="sigmoid", name=GATE_PREFIX + "dense2",
                                  kernel_initializer="zeros",
                                  bias_initializer=tf.keras.initializers.Constant(4.0),
                                  dtype="float32")(g)
        outputs = GatedResidual(name=GATE_PREFIX + "blend")([inputs, outputs, g])
    return tf.keras.Model(inputs, outputs, name=name)


def split_gate(model):
    """(gate, network) sub-models of a quality-gated restorer, or None for an ungated one.

    gate: image -> g [N, C] (reads the whole image); network: image -> f, local (receptive
    radius receptive_radius()). The full model is x + g * (f - x).
    """
    names = {layer.name for layer in model.layers}
    if GATE_PREFIX + "blend" not in names:
        return None
    gate = tf.keras.Model(model.inputs, model.get_layer(GATE_PREFIX + "dense2").output)
    network = tf.keras.Model(model.inputs, model.get_layer("output_conv5").output)
    return gate, network


def load_core_weights(model, path, drop_gate=False):
    """Loads `path` into `model`; a gated model also accepts an ungated restorer's file
    (its network layers are loaded, the gate keeps its initial values). A gated file for an
    ungated model is refused (ValueError) rather than silently dropping the gate, unless
    `drop_gate` (then only its network layers are loaded, e.g. to start another model's
    decoder from the blind restorer)."""
    gated_model, gated_file = split_gate(model) is not None, _is_gated_file(path)
    if gated_file == gated_model:
        model.load_weights(path)
        return model
    if gated_file and not drop_gate:
        raise ValueError(f"{path} holds a quality-gated restorer; build it with quality_gate=True")
    source = build_restorer(channels=int(model.input_shape[-1]), name=model.name,
                            widths=_widths(model), quality_gate=gated_file)
    source.load_weights(path)
    for layer in source.layers:
        if layer.weights and not layer.name.startswith(GATE_PREFIX):
            model.get_layer(layer.name).set_weights(layer.get_weights())
    return model


def _is_gated_file(path):
    # Keras' .weights.h5 layout lists the layers by class: only a gated model has the blend.
    from ..models import _file_layers
    try:
        layers = _file_layers(path)
    except OSError:  # not HDF5 (a TF checkpoint prefix, a missing file): load_weights decides
        return False
    return layers is not None and "gated_residual" in layers


def to_gray(model, name=None):
    """The 1-channel restorer that computes what the RGB `model` (ungated) computes on a gray
    image replicated to RGB, averaged over the output channels (the gray-Y evaluation
    protocol of an RGB model): the first conv's kernel summed over its input channels, the
    output conv's kernel and bias averaged over its outputs, every other layer copied. A
    start for gray training that begins at the RGB model's gray result."""
    if split_gate(model) is not None:
        raise ValueError("to_gray takes an ungated restorer (load_core_weights(..., "
                         "drop_gate=True) first)")
    if int(model.input_shape[-1]) != 3:
        raise ValueError("to_gray takes an RGB restorer")
    gray = build_restorer(channels=1, widths=_widths(model), name=name or model.name)
    for layer in model.layers:
        if not layer.weights:
            continue
        values = layer.get_weights()
        if layer.name == "unit1_conv3a":
            values = [values[0].sum(axis=2, keepdims=True), values[1]]
        elif layer.name == "output_conv5":
            values = [values[0].mean(axis=3, keepdims=True), values[1].mean(keepdims=True)]
        gray.get_layer(layer.name).set_weights(values)
    return gray


def _widths(model):
    return tuple(int(model.get_layer(n).filters) for n in
                 ("unit1_conv3a", "unit2_conv3a", "unit3_conv3a", "squeeze_conv1"))


def receptive_radius():
    """Pixels of context on each side that one output pixel depends on (six 3x3 + one 5x5)."""
    return 6 * 1 + 2


def identity_init(model):
    """Re-initialises the convolutions so that the network starts as the identity map.

    In every conv the first `channels` output channels copy the matching input channels
    (centre tap 1, everything else 0); the other channels keep their random init, and
    the output conv reads only the identity path at first. Images are >= 0, so PReLU
    passes the copied values unchanged. Training then starts at the JPEG's own PSNR
    instead of having to learn the identity first (the original net has no global skip).
    The architecture and parameter count do not change.
    """
    for layer in model.layers:
        if not isinstance(layer, tf.keras.layers.Conv2D):
            continue
        kernel, bias = layer.get_weights()
        kh, kw, cin, cout = kernel.shape
        c = min(model.input_shape[-1], cin, cout)
        kernel[:, :, :, :c] = 0.0
        for i in range(c):
            kernel[kh // 2, kw // 2, i, i] = 1.0
        if cout == model.output_shape[-1]:
            kernel[:, :, c:, :] = 0.0
        bias[:c] = 0.0
        layer.set_weights([kernel, bias])
    return model
