"""Mixed precision for the models with their own train_step: loss scaling under mixed_float16.

Keras compiles a model whose dtype policy is "mixed_float16" with its optimizer wrapped in
a LossScaleOptimizer (the restorer, trained by the stock train_step, needs nothing more).
A custom train_step has to scale the loss itself before differentiating and unscale the
gradients before applying them; these helpers do that, and nothing when the optimizer is
a plain one (float32 and mixed_bfloat16: bfloat16 has float32's exponent range and needs no
loss scaling).

    with tf.GradientTape() as tape:
        loss = ...
        scaled = replica_loss(loss, self.optimizer)
    grads = unscaled_gradients(tape.gradient(scaled, variables), self.optimizer)
    self.optimizer.apply_gradients(zip(grads, variables))

(LossScaleOptimizer.apply_gradients skips a step whose gradients are not finite and lowers
the scale.) Models also keep their numerics-sensitive outputs in float32 (final convs,
losses, CWIC's binarizer and importance map): see each model's layers with dtype="float32".
TensorFlow is imported when a helper runs, so the flag definitions can read PRECISIONS
without it (`--help` stays fast).
"""

__all__ = ["PRECISIONS", "is_loss_scaled", "replica_loss", "unscaled_gradients",
           "loss_scale_optimizer"]

#: Keras dtype-policy names a training run accepts (tfcomp.training.precision_policy).
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def is_loss_scaled(optimizer):
    """True when `optimizer` is a Keras LossScaleOptimizer."""
    import tensorflow as tf
    return isinstance(optimizer, tf.keras.mixed_precision.LossScaleOptimizer)


def replica_loss(loss, optimizer):
    """This replica's share of the loss to differentiate: `loss` / num_replicas_in_sync
    (apply_gradients sums the replicas' gradients), times the loss scale when the optimizer
    is a LossScaleOptimizer. Call it inside the GradientTape."""
    import tensorflow as tf
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    share = tf.cast(loss, tf.float32) / replicas
    return optimizer.get_scaled_loss(share) if is_loss_scaled(optimizer) else share


def unscaled_gradients(grads, optimizer):
    """Gradients of replica_loss(...) with the loss scale divided out (as they are when the
    optimizer is not loss-scaled)."""
    return optimizer.get_unscaled_gradients(grads) if is_loss_scaled(optimizer) else grads


def loss_scale_optimizer(optimizer, model):
    """`optimizer`, wrapped in a LossScaleOptimizer when `model` computes in float16 (what
    Model.compile does to the optimizer it is given; for a model's second optimizer)."""
    import tensorflow as tf
    if model.dtype_policy.name == "mixed_float16" and not is_loss_scaled(optimizer):
        return tf.keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer
