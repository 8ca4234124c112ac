"""Latents -> volumes for the statistics: every volume made with the network's constant noise maps, so a volume
depends on its latent alone (the projections' own noise maps are per subject and have no mean)."""

import numpy as np
import tensorflow as tf

from dnnlib.ops.modulated_conv3d import modulation_of_activations


def differentiable_generator(G, w_plus):
    """g(latents) -> volumes, differentiable in the latents: latents [n, w_dim] (W, tiled over the layers) or
    [n, num_ws, w_dim] (W+)."""
    num_ws = int(G.num_ws)

    def g(latents):
        ws = latents if w_plus else tf.tile(latents[:, None], [1, num_ws, 1])
        with modulation_of_activations():  # gradients w.r.t. the styles only, as in the projector
            return G.synthesis(ws, noise_mode="const")

    return g


def synthesize(G, ws, batch=4):
    """Volumes [M, D, H, W, C] in [-1, 1] of ws [M, num_ws, w_dim], constant noise."""
    from generation.runner import Runner

    return Runner(G, batch).synthesize(np.asarray(ws, np.float32), noise_mode="const")
