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
        self.img_shape = FAKE_SHAPE
        self.basis = tf.constant(_smooth_basis(z_dim, 1))
        self.calls = []

    def __call__(self, z, c=None, psi=1.0, noise_mode="random"):
        self.calls.append((z.shape[0], None if c is None else np.asarray(c)))
        x = 0.6 * tf.tanh(tf.matmul(z, self.basis) * 0.5)
        return tf.reshape(x, [-1, *FAKE_SHAPE, 1])


def png_pixel(png, ax, row, col):
    """The value (first channel) of a saved figure's pixel at the centre of voxel (row, col) of the image drawn
    in matplotlib axes `ax` (the figure saved at its own dpi)."""
    x, y = ax.transData.transform((col, row))
    return int(png[png.shape[0] - 1 - int(np.floor(y)), int(np.floor(x)), 0])


def make_reals(n=12, batch=4, labels=None):
    rng = np.random.default_rng(7)
    vols = 0.6 * np.tanh(rng.normal(size=(n, 6)) @ _smooth_basis(6, 2) * 0.5)
    vols = vols.reshape(n, *FAKE_SHAPE, 1).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices(vols if labels is None else (vols, labels))
    return vols, ds.batch(batch)


def fakes_of(G, num, seed=0):
    z = np.random.RandomState(seed).randn(num, G.z_dim).astype(np.float32)
    return np.clip(G(tf.constant(z)).numpy(), -1, 1)




def tiny_generator(seed=0, noise_strength=0.5):
    """A demo-tiny Generator with fixed initial weights and visible noise (a fresh one has noise strength 0)."""
    from training import configs

    tf.random.set_seed(seed)
    G, _ = configs.build_networks(configs.get_config("demo-tiny"))
    for layer in [lyr for b in G.synthesis.blocks for lyr in b.noise_layers()]:
        layer.noise_strength.assign(noise_strength)
    return G


def assert_conv3d_matches_reference(conv, k, padding):
    """conv(x, w, padding) against the NumPy conv3d reference (forward and both first-order gradients, float64)
    and against TensorFlow's own autodiff of an independent padded VALID conv to second order."""
    from dnnlib.ops.conv3d_ref import conv3d_filter_grad_ref, conv3d_input_grad_ref, conv3d_ref

    rng = np.random.default_rng(k)
    x = rng.standard_normal((2, 5, 4, 7, 3))
    w = rng.standard_normal((k, k, k, 3, 4)) * 0.3
    y_ref = conv3d_ref(x, w, padding)
    v = rng.standard_normal(y_ref.shape)
    u1, u2 = rng.standard_normal(x.shape), rng.standard_normal(w.shape)
    xt, wt = tf.constant(x), tf.constant(w)
    with tf.GradientTape() as tape:
        tape.watch([xt, wt])
        y = conv(xt, wt, padding)
        loss = tf.reduce_sum(y * v)
    gx, gw = tape.gradient(loss, [xt, wt])
    np.testing.assert_allclose(y.numpy(), y_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gx.numpy(), conv3d_input_grad_ref(x.shape, w, v, padding), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gw.numpy(), conv3d_filter_grad_ref(x, v, w.shape[:3], padding), rtol=1e-10,
                               atol=1e-10)
    mine = conv3d_first_and_second(lambda a, b: conv(a, b, padding), xt, wt, v, u1, u2)
    plain = conv3d_first_and_second(lambda a, b: plain_conv3d(a, b, padding), xt, wt, v, u1, u2)
    for m, p in zip(mine, plain, strict=True):
        np.testing.assert_allclose(m.numpy(), p.numpy(), rtol=1e-9, atol=1e-9)


def plain_conv3d(x, w, padding):
    """Independent of dnnlib.ops.conv3d: explicit tf.pad/slice + VALID tf.nn.conv3d with TF's own gradients."""
    from dnnlib.ops.conv3d_ref import ref_pads

    for axis, (lo, hi) in enumerate(ref_pads(padding, w.shape[:3]), start=1):
        n = x.shape[axis]
        x = tf.gather(x, tf.range(max(-lo, 0), n - max(-hi, 0)), axis=axis)
        width = [[0, 0]] * 5
        width[axis] = [max(lo, 0), max(hi, 0)]
        x = tf.pad(x, width)
    return tf.nn.conv3d(x, w, strides=[1] * 5, padding="VALID")


def conv3d_first_and_second(conv, x, w, v, u1, u2):
    """y, dL/dx, dL/dw for L = sum(sin(y) * v), and the gradient of an R1/path-length-like penalty of them."""
    with tf.GradientTape(persistent=True) as outer:
        outer.watch([x, w])
        with tf.GradientTape() as inner:
            inner.watch([x, w])
            y = conv(x, w)
            loss = tf.reduce_sum(tf.sin(y) * v)
        gx, gw = inner.gradient(loss, [x, w])
        penalty = tf.reduce_sum(tf.square(gx) * u1) + tf.reduce_sum(gw * u2)
    return [y, gx, gw, *outer.gradient(penalty, [x, w])]


def write_dicom_series(img, folder, series_uid, name="{:04d}.dcm", tags=None):
    """Write a SimpleITK 3D image as a DICOM series, one slice a file, with the geometry tags readers use."""
    import SimpleITK as sitk

    os.makedirs(folder, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(img.GetDepth()):
        s = img[:, :, k]
        s.SetMetaData("0020|0032", "\\".join(str(v) for v in img.TransformIndexToPhysicalPoint((0, 0, k))))
        s.SetMetaData("0020|0037", "1\\0\\0\\0\\1\\0")
        s.SetMetaData("0020|0013", str(k))
        s.SetMetaData("0020|000e", series_uid)
        for tag, value in (tags or {}).items():
            s.SetMetaData(tag, value)
        writer.SetFileName(os.path.join(str(folder), name.format(k)))
        writer.Execute(s)


def fail_save_as_on_a_full_disk(directory, checkpoint_number):
    """Leave what TensorFlow leaves when SaveV2 hits ENOSPC (a temporary folder holding a partial shard), then
    raise its error: the body of a CheckpointManager.save stand-in for the disk-full tests."""
    import uuid

    import tensorflow as tf

    temp = os.path.join(directory, f"ckpt-{checkpoint_number}_temp")
    os.makedirs(temp)
    with open(os.path.join(temp, f"part-00000-of-00001.data-00000-of-00001.tempstate{uuid.uuid4().int}"), "wb") as f:
        f.write(b"\0" * 1000)
    raise tf.errors.ResourceExhaustedError(None, None, f"{temp}/part; No space left on device [Op:SaveV2]")


def random_affine(seed=0):
    """A random rotation with anisotropic spacing and an offset origin."""
    rng = np.random.RandomState(seed)
    q, _ = np.linalg.qr(rng.randn(3, 3))
    a = np.eye(4)
    a[:3, :3] = q @ np.diag([1.2, 0.8, 2.0])
    a[:3, 3] = rng.uniform(-50, 50, 3)
    return a
