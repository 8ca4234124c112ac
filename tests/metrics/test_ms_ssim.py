"""3D SSIM / MS-SSIM against independent NumPy/SciPy code written here."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage, signal

from metrics import ms_ssim as ms

W = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])


def _window3d(k, sigma=1.5):
    d = np.arange(k) - (k - 1) / 2
    g = np.exp(-(d**2) / (2 * sigma**2))
    g /= g.sum()
    return g[:, None, None] * g[None, :, None] * g[None, None, :]


def _ssim_cs(a, b, filt, L=1.0):
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    mx, my = filt(a), filt(b)
    vx, vy, cxy = filt(a * a) - mx**2, filt(b * b) - my**2, filt(a * b) - mx * my
    cs = (2 * cxy + c2) / (vx + vy + c2)
    return ((2 * mx * my + c1) / (mx**2 + my**2 + c1) * cs).mean(), cs.mean()


def _pool(x):
    s = [n // 2 * 2 for n in x.shape]
    x = x[: s[0], : s[1], : s[2]]
    return x.reshape(s[0] // 2, 2, s[1] // 2, 2, s[2] // 2, 2).mean(axis=(1, 3, 5))


def _ms_ssim_monai_ref(a, b, k):
    w3 = _window3d(k)
    filt = lambda x: signal.fftconvolve(x, w3, mode="valid")  # noqa: E731
    terms = []
    for j in range(5):
        s, cs = _ssim_cs(a, b, filt)
        terms.append(max(s if j == 4 else cs, 0.0))
        a, b = _pool(a), _pool(b)
    return np.prod(np.array(terms) ** W)


def _ms_ssim_kwon_ref(a, b):
    filt = lambda x: ndimage.gaussian_filter(x, sigma=1.5, truncate=4.0, mode="reflect")  # noqa: E731
    ss, css = [], []
    for _ in range(5):
        s, cs = _ssim_cs(a, b, filt)
        ss.append(s)
        css.append(cs)
        a, b = _pool(a), _pool(b)
    pow_cs, pow_s = np.array(css) ** W, np.array(ss) ** W
    return np.prod(pow_cs[:-1] * pow_s[-1])


@pytest.fixture(scope="module")
def vols():
    rng = np.random.default_rng(0)
    base = ndimage.gaussian_filter(rng.uniform(size=(48, 50, 52)), 2.0)
    base = (base - base.min()) / (base.max() - base.min())
    other = np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1)
    return base, other


def test_ms_ssim_matches_numpy_reference(vols):
    a, b = vols
    r = ms.ms_ssim(a, b, data_range=1.0, kernel_size=3)
    assert (r.kernel_size, r.num_scales) == (3, 5)
    assert r.values[0] == pytest.approx(_ms_ssim_monai_ref(a, b, 3), abs=1e-5)


def test_legacy_kwon_matches_numpy_reference(vols):
    a, b = vols
    got = ms.ms_ssim_legacy_kwon(a, b, data_range=1.0)[0]
    assert got == pytest.approx(_ms_ssim_kwon_ref(a, b), abs=1e-5)
    # The legacy formula weighs the last SSIM term 4x: it differs from the standard product.
    assert abs(got - ms.ms_ssim(a, b, 1.0, kernel_size=3).values[0]) > 1e-4


def test_scipy_window_equals_scipy():
    impulse = np.zeros(31)
    impulse[15] = 1.0
    taps = ms.scipy_gaussian_window(1.5, 4.0)
    assert taps.size == 13
    np.testing.assert_allclose(taps, ndimage.gaussian_filter1d(impulse, 1.5, truncate=4.0)[9:22], atol=1e-15)


def test_reflect_filter_equals_scipy_even_when_window_exceeds_axis():
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(2, 5, 4, 9))  # 13-tap window on axes shorter than the window
    got = ms.filter_3d(tf.constant(x, tf.float32), ms.scipy_gaussian_window(1.5, 4.0), "reflect").numpy()
    for b in range(2):
        np.testing.assert_allclose(got[b], ndimage.gaussian_filter(x[b], 1.5, truncate=4.0, mode="reflect"), atol=1e-6)


def test_valid_filter_equals_fftconvolve():
    x = np.random.default_rng(4).uniform(size=(1, 9, 10, 11))
    got = ms.filter_3d(tf.constant(x, tf.float32), ms.gaussian_window(5), "valid").numpy()
    np.testing.assert_allclose(got[0], signal.fftconvolve(x[0], _window3d(5), mode="valid"), atol=1e-6)


def test_identical_is_one_and_noise_falls_monotonically(vols):
    a, _ = vols
    rng = np.random.default_rng(2)
    batch = [a] + [np.clip(a + rng.normal(0, s, a.shape), 0, 1) for s in (0.02, 0.05, 0.1, 0.2)]
    x = np.stack([a] * len(batch))[..., None]
    y = np.stack(batch)[..., None]
    v = ms.ms_ssim(x, y, 1.0, kernel_size=3).values
    legacy = ms.ms_ssim_legacy_kwon(x, y, 1.0)
    for values in (v, legacy):
        assert values[0] == pytest.approx(1.0, abs=1e-5)
        assert np.all(np.diff(values) < 0), values


# (spatial shape, requested kernel, (kernel, scales) used)
KERNEL_RULE_CASES = [
    ((80, 96, 112), 11, (5, 5)),
    ((160, 192, 224), 11, (9, 5)),
    ((400, 400, 400), 11, (11, 5)),
    ((32, 32, 32), 11, (3, 4)),  # 3 does not fit 5 scales: drop one
]


@pytest.mark.parametrize("shape, kernel_size, expected", KERNEL_RULE_CASES)
def test_kernel_rule(shape, kernel_size, expected):
    assert ms.fit_kernel_and_scales(shape, kernel_size) == expected


def test_monai_size_test_and_too_small_volumes():
    # MONAI's own test: size // 16 > kernel - 1 on every axis.
    assert ms.monai_accepts((80, 96, 112), 5, 5) and not ms.monai_accepts((80, 96, 112), 7, 5)
    with pytest.raises(ValueError, match="too small"):
        ms.fit_kernel_and_scales((2, 2, 2))


def test_small_volume_uses_fitted_kernel_and_reports_it():
    rng = np.random.default_rng(3)
    a = rng.uniform(size=(2, 16, 16, 16, 1))
    r = ms.ms_ssim(a, a[::-1], 1.0)
    assert (r.kernel_size, r.num_scales) == (3, 3)
    assert r.values.shape == (2,) and np.all(r.values < 0.9)
    # Three scales with the first three weights renormalised to sum 1, checked against the NumPy reference.
    w3 = W[:3] / W[:3].sum()
    filt = lambda x: signal.fftconvolve(x, _window3d(3), mode="valid")  # noqa: E731
    x, y = a[0, ..., 0], a[1, ..., 0]
    terms = []
    for j in range(3):
        s, cs = _ssim_cs(x, y, filt)
        terms.append(max(s if j == 2 else cs, 0.0))
        x, y = _pool(x), _pool(y)
    assert r.values[0] == pytest.approx(np.prod(np.array(terms) ** w3), abs=1e-5)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        ms.ms_ssim(np.zeros((40, 40, 40)), np.zeros((40, 40, 41)), 1.0)


def test_pair_values_fixed_chunks_in_order():
    seen = []

    def fn(a, b):
        seen.append(a.shape[0])
        return a.reshape(a.shape[0], -1)[:, 0] * 10 + b.reshape(b.shape[0], -1)[:, 0]

    # Volumes whose [0,1] value is i / 10: pairs (0,1), (2,3), ... in stream order across uneven batches.
    vols = [np.full((1, 2, 2, 2, 1), i / 10 * 2 - 1) for i in range(7)]
    batches = [np.concatenate(vols[:3]), np.concatenate(vols[3:5]), np.concatenate(vols[5:])]
    out = ms.pair_values(batches, fn, pairs_per_call=2)
    np.testing.assert_allclose(out, [0 * 10 + 0.1, 0.2 * 10 + 0.3, 0.4 * 10 + 0.5], atol=1e-6)
    assert seen == [2, 2]  # the last single pair was padded to the chunk size
