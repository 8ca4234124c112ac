"""Curves in latent space measured in volume space: the metric a generator g induces on its latent space.

A curve through latents c_0 .. c_K (K segments) has the discrete energy E = K * sum_k ||g(c_{k+1}) - g(c_k)||^2
and length L = sum_k ||g(c_{k+1}) - g(c_k)||, with E >= L^2 (Cauchy-Schwarz), equal when the steps are equally long
in volume space. Minimising E over the inner points with the ends fixed gives the discrete geodesic; its energy
is the squared geodesic distance (Shao, Kumar, Fletcher 2018, "The Riemannian Geometry of Deep Generative Models").
The intrinsic (Frechet) mean m of latents x_i minimises sum_i d(m, x_i)^2: here m and the inner points of every
curve m -> x_i are optimised together, so the minimum over all of them is sum_i d(m, x_i)^2 at its minimiser.

Distances are Euclidean norms of the difference of the generated volumes in the network's range [-1, 1], summed
over every voxel. g: a callable latents [n, *latent_shape] (tf.Tensor) -> volumes [n, ...], differentiable.
"""

import math

import numpy as np
import tensorflow as tf

from dnnlib import EasyDict


def curve_energy(g, points):
    """Discrete energy of the curve through points [K+1, *latent_shape] (K >= 1): K * sum ||g(c_k+1) - g(c_k)||^2."""
    vols = tf.reshape(g(tf.convert_to_tensor(points, tf.float32)), [points.shape[0], -1])
    steps = tf.reduce_sum(tf.square(vols[1:] - vols[:-1]), axis=1)
    return float(points.shape[0] - 1) * tf.reduce_sum(steps)


def _schedule(step, num_steps, lr):
    """Cosine ramp-down to zero, so the last steps settle instead of jittering at Adam's step size."""
    return lr * 0.5 * (1.0 + math.cos(math.pi * step / num_steps))


def _straight(a, b, segments):
    t = np.linspace(0.0, 1.0, segments + 1, dtype=np.float64).reshape([-1] + [1] * np.ndim(a))
    return ((1 - t) * np.asarray(a, np.float64) + t * np.asarray(b, np.float64)).astype(np.float32)


def geodesic(g, a, b, segments=8, num_steps=200, lr=None, progress=None):
    """The discrete geodesic from latent a to latent b: EasyDict(points [K+1, ...] (ends a, b), energy, length,
    chord (||g(b) - g(a)||), start_energy (of the straight line, the initial curve))."""
    res = frechet_mean(g, np.asarray(b, np.float32)[None], segments, num_steps, lr, progress,
                       init_mean=np.asarray(a, np.float32), fixed_mean=True)
    points = res.curves[0]
    return EasyDict(points=points, energy=res.energies[0], length=res.lengths[0], chord=res.chords[0],
                    start_energy=res.start_energies[0])


def frechet_mean(g, latents, segments=4, num_steps=200, lr=None, progress=None, chunk=4, init_mean=None,
                 fixed_mean=False):
    """The intrinsic mean of latents [N, *latent_shape] under g's metric (see the module text).

    segments: K per curve; lr: Adam step in latent units (default 2% of the per-coordinate RMS distance of the
    latents from the start, |a - b| for a geodesic);
    chunk: curves per generator call; progress: callable(step, num_steps, total energy). Starts from the arithmetic
    mean (init_mean) and straight curves. Returns EasyDict(mean, curves [N, K+1, ...], energies [N] (squared
    geodesic distances), lengths [N], chords [N] (||g(m) - g(x_i)||), start_energies [N], arithmetic_mean).
    """
    from training.train_state import Adam

    x = np.asarray(latents, np.float32)
    if x.ndim < 2 or len(x) < 1:
        raise ValueError(f"latents of shape {list(x.shape)}: expected [N, ...] with N >= 1")
    if int(segments) < 1:
        raise ValueError(f"segments must be at least 1, got {segments}")
    n, K = len(x), int(segments)
    arith = x.astype(np.float64).mean(axis=0).astype(np.float32)
    m0 = arith if init_mean is None else np.asarray(init_mean, np.float32)
    if lr is None:
        spread = float(np.sqrt(np.mean(np.sum((x - m0).reshape(n, -1) ** 2, axis=1))))
        lr = 0.02 * max(spread, 1e-6) / math.sqrt(max(1, x[0].size))
    curves0 = np.stack([_straight(m0, xi, K) for xi in x])  # [N, K+1, ...]
    mean = tf.Variable(m0, name="mean")
    inner = tf.Variable(curves0[:, 1:K], name="inner")  # [N, K-1, ...]
    ends = tf.constant(x[:, None])
    params = [mean, inner] if not fixed_mean else [inner]
    opt = Adam(params, lr=lr, beta_1=0.9, beta_2=0.999, epsilon=1e-8) if K > 1 or not fixed_mean else None

    def curve_volumes(m, inner_c, ends_c):
        k = tf.shape(inner_c)[0]
        c = tf.concat([tf.broadcast_to(m[None, None], tf.concat([[k, 1], tf.shape(m)], 0)), inner_c, ends_c], 1)
        vols = g(tf.reshape(c, tf.concat([[-1], tf.shape(m)], 0)))
        return tf.reshape(vols, [k, K + 1, -1])

    # One compiled call per chunk size (at most two: the last chunk may be shorter).
    @tf.function
    def chunk_grads(m, inner_c, ends_c):
        with tf.GradientTape() as tape:
            tape.watch([m, inner_c])
            vols = curve_volumes(m, inner_c, ends_c)
            en = float(K) * tf.reduce_sum(tf.square(vols[:, 1:] - vols[:, :-1]), axis=[1, 2])
            total = tf.reduce_sum(en)
        dm, di = tape.gradient(total, [m, inner_c], unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return en, dm, di

    @tf.function
    def chunk_measures(m, inner_c, ends_c):
        vols = curve_volumes(m, inner_c, ends_c)
        diffs = vols[:, 1:] - vols[:, :-1]
        energy = float(K) * tf.reduce_sum(tf.square(diffs), axis=[1, 2])
        length = tf.reduce_sum(tf.sqrt(tf.reduce_sum(tf.square(diffs), axis=2)), axis=1)
        chord = tf.sqrt(tf.reduce_sum(tf.square(vols[:, -1] - vols[:, 0]), axis=1))
        return energy, length, chord

    chunks = [slice(a, min(a + chunk, n)) for a in range(0, n, chunk)]

    def all_energies():
        out = [chunk_measures(mean, inner[sl], ends[sl]) for sl in chunks]
        return [np.concatenate([o[i].numpy() for o in out]).astype(np.float64) for i in range(3)]

    start_e, _, _ = all_energies()
    if opt is not None:
        for step in range(int(num_steps)):
            dm, di, total = tf.zeros_like(mean), [], 0.0
            for sl in chunks:
                en, dm_c, di_c = chunk_grads(tf.convert_to_tensor(mean), inner[sl], ends[sl])
                dm += dm_c
                di.append(di_c)
                total += float(tf.reduce_sum(en))
            grads = [tf.concat(di, 0)] if fixed_mean else [dm, tf.concat(di, 0)]
            opt.lr.assign(_schedule(step, num_steps, lr))
            opt.apply(grads, params)
            if progress is not None:
                progress(step + 1, int(num_steps), total)
    e, lengths, chords = all_energies()
    curves = np.concatenate([np.broadcast_to(mean.numpy()[None, None], (n, 1, *x.shape[1:])), inner.numpy(),
                             x[:, None]], axis=1)
    return EasyDict(mean=mean.numpy(), curves=curves, energies=e, lengths=lengths, chords=chords,
                    start_energies=start_e, arithmetic_mean=arith)
