"""Everything a resumed run needs besides the networks: optimiser, counters, RNG, pl mean, loss scale, EMA.

Adam is a small tf.Module of our own rather than keras.optimizers.Adam: Keras 3 optimisers track
keras.Variables, name their slots by layer paths our tf.Modules do not have, and route distributed updates
through their own merge calls; a plain module gives an exact, object-graph checkpoint (slots stored by
variable position) and updates we apply in cross-replica context after one tf.distribute reduction.
"""

import tensorflow as tf


class Adam(tf.Module):
    """Adam as in PyTorch (and StyleGAN2-ADA): var -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)."""

    def __init__(self, variables, lr=0.002, beta_1=0.0, beta_2=0.99, epsilon=1e-8, name=None):
        super().__init__(name=name)
        self.lr = tf.Variable(float(lr), trainable=False, name="lr")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        self.m = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False, name="m") for v in variables]
        self.v = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False, name="v") for v in variables]

    def apply(self, grads, variables):
        t = tf.cast(self.iterations + 1, tf.float32)
        bc1 = 1.0 - tf.pow(self.beta_1, t) if self.beta_1 > 0 else tf.constant(1.0)
        bc2 = 1.0 - tf.pow(self.beta_2, t)
        step = self.lr / bc1
        for g, var, m, v in zip(grads, variables, self.m, self.v, strict=True):
            if g is None:
                continue
            m.assign(self.beta_1 * m + (1.0 - self.beta_1) * g)
            v.assign(self.beta_2 * v + (1.0 - self.beta_2) * tf.square(g))
            var.assign_sub(step * m / (tf.sqrt(v) / tf.sqrt(bc2) + self.epsilon))
        self.iterations.assign_add(1)


class DynamicLossScale(tf.Module):
    """fp16 loss scaling (the original ran fp16 without it): halve on overflow, double after `period` clean steps."""

    def __init__(self, enabled, initial=2.0**15, period=2000, name=None):
        super().__init__(name=name)
        self.enabled = bool(enabled)
        self.scale = tf.Variable(float(initial) if enabled else 1.0, trainable=False, name="scale")
        self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="good_steps")
        self.period = int(period)

    def update(self, finite):
        """Called once per optimiser step with whether all gradients were finite."""
        if not self.enabled:
            return
        grow = tf.logical_and(finite, self.good_steps + 1 >= self.period)
        self.scale.assign(tf.where(finite, tf.where(grow, self.scale * 2.0, self.scale),
                                   tf.maximum(self.scale * 0.5, 1.0)))
        self.good_steps.assign(tf.where(tf.logical_and(finite, tf.logical_not(grow)), self.good_steps + 1, 0))


class TrainState(tf.Module):
    """Counters, the RNG and running statistics, checkpointed as `state`."""

    def __init__(self, seed, loss_scale=False, augment=None, name=None):
        super().__init__(name=name)
        if augment is not None:  # training.augment.AugmentPipe: p, its RNG and the r_t accumulator resume exactly
            self.augment = augment
        self.cur_nimg = tf.Variable(0, dtype=tf.int64, trainable=False, name="cur_nimg")
        self.batch_idx = tf.Variable(0, dtype=tf.int64, trainable=False, name="batch_idx")
        self.cur_tick = tf.Variable(0, dtype=tf.int64, trainable=False, name="cur_tick")
        self.pl_mean = tf.Variable(0.0, trainable=False, name="pl_mean")
        self.rng = tf.random.Generator.from_seed(int(seed))
        self.loss_scale = DynamicLossScale(loss_scale, name="loss_scale")


def ema_beta(batch_size, ema_kimg, ema_rampup=None, cur_nimg=0):
    """Per-step EMA decay: half-life ema_kimg thousand images, optionally ramped up with the run's length."""
    ema_nimg = ema_kimg * 1000.0
    if ema_rampup is not None and ema_rampup > 0:
        ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


def update_ema(G_ema, G, beta):
    """Trainable weights: lerp towards G by (1 - beta). Buffers (w_avg, const noise maps): copied."""
    for e, v in zip(G_ema.trainable_variables, G.trainable_variables, strict=True):
        e.assign(v + (e - v) * beta)
    for e, v in zip(_buffers(G_ema), _buffers(G), strict=True):
        e.assign(v)


def copy_weights(dst, src):
    for d, s in zip(dst.variables, src.variables, strict=True):
        d.assign(s)


def _buffers(module):
    return [v for v in module.variables if not v.trainable]
