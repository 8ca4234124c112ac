"""Reconstruction metrics against direct NumPy/SciPy formulas."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import signal

from metrics import reconstruction as rec


def _ssim_reference(a, b, data_range, k=11, sigma=1.5):
    # Independent: full 3D Gaussian kernel (outer product), FFT convolution, valid region, population stats.
    d = np.arange(k) - (k - 1) / 2
    g = np.exp(-(d**2) / (2 * sigma**2))
    g /= g.sum()
    w = g[:, None, None] * g[None, :, None] * g[None, None, :]
    f = lambda x: signal.fftconvolve(x, w, mode="valid")  # noqa: E731 - symmetric kernel: conv == correlation
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = f(a), f(b)
    vx, vy, cxy = f(a * a) - mx**2, f(b * b) - my**2, f(a * b) - mx * my
    s = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean()


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, size=(14, 16, 18)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.1, size=a.shape), 0, 1).astype(np.float32)
    return a, b


def test_psnr_matches_formula(pair):
    a, b = pair
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    assert rec.psnr(a, b, 1.0) == pytest.approx(10 * np.log10(1.0 / mse), rel=1e-9)
    assert rec.psnr(a, b, 2.0) == pytest.approx(10 * np.log10(4.0 / mse), rel=1e-9)
    assert rec.psnr(a, a, 1.0) == np.inf


def test_nrmse_matches_formula(pair):
    a, b = pair
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    expected = np.sqrt(np.sum((a64 - b64) ** 2)) / np.sqrt(np.sum(a64**2))
    assert rec.nrmse(a, b) == pytest.approx(expected, rel=1e-9)
    assert rec.nrmse(a, a) == 0.0


def test_ssim_matches_scipy_reference(pair):
    a, b = pair
    got = rec.ssim_3d(a, b, data_range=1.0)
    assert got == pytest.approx(_ssim_reference(a.astype(np.float64), b.astype(np.float64), 1.0), abs=2e-5)
    assert got < 0.99
    assert rec.ssim_3d(a, a, data_range=1.0) == pytest.approx(1.0, abs=1e-5)


def test_ssim_kernel_shrinks_for_small_volumes():
    rng = np.random.default_rng(1)
    a = rng.uniform(size=(7, 9, 12))
    b = a + rng.normal(0, 0.05, size=a.shape)
    # Smallest axis is 7: the largest odd window that fits is 7.
    assert rec.ssim_3d(a, b, 1.0) == pytest.approx(_ssim_reference(a, b, 1.0, k=7), abs=2e-5)


def test_tensors_channels_and_per_volume(pair):
    a, b = pair
    batch_a = np.stack([a, b])[..., None]  # [2, D, H, W, 1]
    batch_b = np.stack([b, b])[..., None]
    per = rec.ssim_3d(tf.constant(batch_a), tf.constant(batch_b), 1.0, per_volume=True)
    assert per.shape == (2,)
    assert per[0] == pytest.approx(rec.ssim_3d(a, b, 1.0), abs=1e-6)
    assert per[1] == pytest.approx(1.0, abs=1e-5)
    p = rec.psnr(batch_a, batch_b, 1.0, per_volume=True)
    assert p[0] == pytest.approx(rec.psnr(a, b, 1.0)) and p[1] == np.inf
    n = rec.nrmse(tf.constant(batch_a), batch_b, per_volume=True)
    assert n[0] == pytest.approx(rec.nrmse(a, b)) and n[1] == 0.0
    # A single volume with a channel axis equals the bare volume.
    assert rec.ssim_3d(a[..., None], b[..., None], 1.0) == pytest.approx(rec.ssim_3d(a, b, 1.0), abs=1e-7)


# (call on a volume pair a, b, message pattern of the ValueError)
BAD_INPUT_CASES = [
    pytest.param(lambda a, b: rec.psnr(a, b[:-1], 1.0), "differ in shape", id="shape"),
    pytest.param(lambda a, b: rec.ssim_3d(a, b, 0), "data_range must be positive", id="data_range"),
    pytest.param(lambda a, b: rec.nrmse(a, b, per_volume=True), "per_volume=True needs a batch", id="per_volume"),
]


@pytest.mark.parametrize("call, pattern", BAD_INPUT_CASES)
def test_bad_input_is_refused(pair, call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call(*pair)


def test_reconstruction_metrics_dict(pair):
    a, b = pair
    out = rec.reconstruction_metrics(a, b, 1.0)
    assert set(out) == {"psnr", "ssim_3d", "nrmse"}
    assert out["psnr"] == pytest.approx(rec.psnr(a, b, 1.0))
