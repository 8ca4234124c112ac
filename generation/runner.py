"""Batched, compiled mapping and synthesis of one Generator.

One tf.function per call kind with a fixed batch size (the last batch is padded), so a run of many seeds
traces once.
"""

import numpy as np
import tensorflow as tf

from dnnlib.errors import InputError
from generation.seeds import seed_noise, shared_noise


class Runner:
    """Batched, compiled mapping and synthesis of one Generator; NumPy in, NumPy out."""

    def __init__(self, G, batch_size=4):
        self.G = G
        self.batch_size = int(batch_size)
        self.z_dim, self.c_dim, self.w_dim = int(G.z_dim), int(G.c_dim), int(G.w_dim)
        self.num_ws = int(G.num_ws)
        self.noise_shapes = [tuple(int(s) for s in shape) for shape in G.synthesis.noise_shapes]
        self._map = tf.function(self._map_impl, autograph=False)
        self._synth_mode = tf.function(self._synth_mode_impl, autograph=False)
        self._synth_noise = tf.function(self._synth_noise_impl, autograph=False)

    # Python scalars (psi, cutoff, mode) are trace-time constants: a run uses one value of each.
    def _map_impl(self, z, c, psi, truncation_cutoff):
        return self.G.mapping(z, c, psi=psi, truncation_cutoff=truncation_cutoff)

    def _synth_mode_impl(self, ws, noise_mode):
        return self.G.synthesis(ws, noise_mode=noise_mode)

    def _synth_noise_impl(self, ws, noise):
        return self.G.synthesis(ws, noise=noise)

    def _batches(self, n):
        for start in range(0, n, self.batch_size):
            yield start, min(start + self.batch_size, n)

    def _pad(self, x):
        # Pad the batch axis to batch_size by repeating the last item (keeps one static shape).
        if x.shape[0] == self.batch_size:
            return x
        reps = np.repeat(x[-1:], self.batch_size - x.shape[0], axis=0)
        return np.concatenate([x, reps], axis=0)

    def labels(self, c, n):
        if self.c_dim == 0:
            return np.zeros([n, 0], np.float32)
        if c is None:
            raise InputError(f"the network is conditional (c_dim = {self.c_dim}): a label is needed")
        return np.tile(np.asarray(c, np.float32).reshape(1, self.c_dim), [n, 1])

    def map(self, z, c=None, psi=1.0, truncation_cutoff=None):
        """z [N, z_dim] (+ label [c_dim]) -> ws [N, num_ws, w_dim] as NumPy."""
        z = np.asarray(z, np.float32)
        cs = self.labels(c, z.shape[0])
        out = []
        for a, b in self._batches(z.shape[0]):
            zb, cb = self._pad(z[a:b]), self._pad(cs[a:b])
            ws = self._map(tf.constant(zb), tf.constant(cb) if self.c_dim else None, float(psi), truncation_cutoff)
            out.append(ws.numpy()[: b - a])
        return np.concatenate(out, axis=0)

    def synthesize(self, ws, noise_mode="const", noise=None):
        """ws [N, num_ws, w_dim] -> volumes [N, D, H, W, C] in [-1, 1].

        noise: None (use noise_mode) or a list, one array per noised layer, of [N, D, H, W, 1] (per item) or
        [1, D, H, W, 1] (shared by all items).
        """
        ws = np.asarray(ws, np.float32)
        out = []
        for a, b in self._batches(ws.shape[0]):
            wb = tf.constant(self._pad(ws[a:b]))
            if noise is None:
                img = self._synth_mode(wb, noise_mode)
            else:
                nb = [n if n.shape[0] == 1 else self._pad(n[a:b]) for n in noise]
                nb = [tf.constant(np.broadcast_to(n, (self.batch_size,) + n.shape[1:])) for n in nb]
                img = self._synth_noise(wb, nb)
            out.append(img.numpy()[: b - a])
        return np.concatenate(out, axis=0)

    def seeds_noise(self, seeds):
        """Seed-derived noise for a list of seeds: list of [N, D, H, W, 1]."""
        per_seed = [seed_noise(s, self.noise_shapes, self.z_dim) for s in seeds]
        return [np.concatenate([p[i] for p in per_seed], axis=0) for i in range(len(self.noise_shapes))]

    def synthesize_seed_noise(self, ws, seeds, noise_mode):
        """Volumes of the seeds' ws; 'random' noise comes from each seed, so a seed always gives the same volume."""
        if noise_mode == "random" and self.noise_shapes:
            return self.synthesize(ws, noise=self.seeds_noise(seeds))
        return self.synthesize(ws, noise_mode=_drawn_mode(noise_mode))

    def synthesize_shared_noise(self, ws, noise_mode, noise_seed=0):
        """Volumes with the same noise for every item ('random': one draw from noise_seed): only the ws differ."""
        if noise_mode == "random" and self.noise_shapes:
            return self.synthesize(ws, noise=shared_noise(noise_seed, self.noise_shapes))
        return self.synthesize(ws, noise_mode=_drawn_mode(noise_mode))


def _drawn_mode(noise_mode):
    # Random noise is drawn here from seeds, never inside the network; without noised layers there is none to draw.
    return "const" if noise_mode == "random" else noise_mode
