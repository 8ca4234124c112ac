"""Shared test helpers: tiny datasets, tiny training options, a stand-in generator, subprocess helpers.

Test modules import from here, never from each other.
"""

import os
import subprocess
import sys

import numpy as np
import tensorflow as tf
from scipy import ndimage

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(script, *args, env=None, timeout=600, **kwargs):
    """Run a top-level script (run_training.py, ...) of this checkout in a fresh Python, quietly; CompletedProcess."""
    full_env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    full_env.update(env or {})
    return subprocess.run([sys.executable, os.path.join(REPO, script), *args], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


TINY_SHAPE = (20, 24, 28)


def make_tiny_dataset(path, num=6, shape=TINY_SHAPE, seed=0, spacing=8.0):
    """A dataset of smooth ellipsoids of random size (written with volumes.records)."""
    from volumes.manifest import FORMAT, write_manifest
    from volumes.records import ShardedWriter, encode_volume, serialize_example

    os.makedirs(path, exist_ok=True)
    rng = np.random.RandomState(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"), axis=-1)
    writer = ShardedWriter(path, 1)
    for i in range(num):
        radii = rng.uniform(0.5, 0.8, size=3)
        r = np.sqrt(np.sum((grid / radii) ** 2, axis=-1))
        vol = np.clip(1.2 - r, 0.0, 1.0) ** 0.5
        writer.write(serialize_example(encode_volume(vol), i))
    shards = writer.close()
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = [-(s - 1) * spacing / 2 for s in shape]
    write_manifest(path, dict(format=FORMAT, synthetic=True, shape=list(shape), channels=1,
                              spacing=[spacing] * 3, affine=affine.tolist(), orientation="RAS", mirror_axis=0,
                              storage_dtype="uint16", normalisation={}, labels=None, num_volumes=num,
                              shards=shards, compression="GZIP", files=[], skipped=[]))
    return path


def tiny_options(tmp_path, data, **kw):
    from training.train_options import build_options

    args = dict(data=str(data), config="demo-tiny", outdir=str(tmp_path / "results"), batch=2, kimg=0.008,
                kimg_per_tick=0.004, snap=1, samples=2, seed=0)
    args.update(kw)
    return build_options(**args)


FAKE_SHAPE = (16, 16, 16)


def _smooth_basis(n, seed):
    rng = np.random.default_rng(seed)
    b = np.stack([ndimage.gaussian_filter(rng.normal(size=FAKE_SHAPE), 2.0) for _ in range(n)])
    return (b / b.std()).reshape(n, -1).astype(np.float32)


class FakeG:
    """Stands in for training.networks.Generator: z_dim, c_dim, __call__(z, c, psi, noise_mode) -> [N,D,H,W,1]."""

    def __init__(self, z_dim=8, c_dim=0):
        self.z_dim, self.c_dim = z_dim, c_dim
        self.basis = tf.constant(_smooth_basis(z_dim, 1))
        self.calls = []

    def __call__(self, z, c=None, psi=1.0, noise_mode="random"):
        self.calls.append((z.shape[0], None if c is None else np.asarray(c)))
        x = 0.6 * tf.tanh(tf.matmul(z, self.basis) * 0.5)
        return tf.reshape(x, [-1, *FAKE_SHAPE, 1])


def make_reals(n=12, batch=4, labels=None):
    rng = np.random.default_rng(7)
    vols = 0.6 * np.tanh(rng.normal(size=(n, 6)) @ _smooth_basis(6, 2) * 0.5)
    vols = vols.reshape(n, *FAKE_SHAPE, 1).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices(vols if labels is None else (vols, labels))
    return vols, ds.batch(batch)


def fakes_of(G, num, seed=0):
    z = np.random.RandomState(seed).randn(num, G.z_dim).astype(np.float32)
    return np.clip(G(tf.constant(z)).numpy(), -1, 1)


