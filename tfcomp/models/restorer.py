"""JPEG artifact-removal CNN: conv units of 3x3 / 1x1 / PReLU (methods.md section 2)."""

import tensorflow as tf

__all__ = ["build_restorer", "identity_init", "DEFAULT_WIDTHS", "receptive_radius"]

#: Channel widths of the original 313,066-parameter network.
DEFAULT_WIDTHS = (128, 64, 32, 16)


def _conv(filters, size, name, dtype=None):
    return tf.keras.layers.Conv2D(filters, size, padding="same", name=name, dtype=dtype)


def _prelu(name):
    # One scalar slope per layer, as in the original checkpoint (shared over H, W and C).
    return tf.keras.layers.PReLU(shared_axes=[1, 2, 3], name=name)


def build_restorer(channels=3, widths=DEFAULT_WIDTHS, name="restorer"):
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
    return tf.keras.Model(inputs, outputs, name=name)


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
