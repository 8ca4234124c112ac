"""Curve energy, discrete geodesics and the intrinsic mean against closed forms.

Toy generators g(w) = A phi(w) with A's columns orthonormal: ||g(a) - g(b)|| = ||phi(a) - phi(b)||, so the
induced distance is the Euclidean one of phi(w) and, for phi onto R^d, the geodesic from a to b is
phi^-1((1 - t) phi(a) + t phi(b)) (equally spaced in phi: also the exact minimiser of the discrete energy) and
the Frechet mean is phi^-1(mean phi(x_i)). phi = identity (linear g: straight lines, the arithmetic mean) and
phi = sinh (whose intrinsic mean differs from the arithmetic one).
"""

import numpy as np
import pytest
import tensorflow as tf

from generation.latent_stats.geodesic import curve_energy, frechet_mean, geodesic

RNG = np.random.RandomState(0)
A = np.linalg.qr(RNG.randn(24, 3))[0].astype(np.float32)  # orthonormal columns
X = RNG.randn(5, 3).astype(np.float32)

PHIS = {
    "linear": (lambda w: w, lambda y: y, np.identity),
    "sinh": (tf.sinh, np.arcsinh, np.sinh),
}


def _g(phi):
    return lambda w: tf.matmul(phi(w), A, transpose_b=True)


def test_curve_energy_formula():
    pts = RNG.randn(4, 3).astype(np.float32)
    vols = np.sinh(pts.astype(np.float64)) @ A.T.astype(np.float64)
    want = 3 * np.sum((vols[1:] - vols[:-1]) ** 2)
    np.testing.assert_allclose(float(curve_energy(_g(tf.sinh), pts)), want, rtol=1e-5)


@pytest.mark.parametrize("kind", ["linear", "sinh"])
def test_geodesic_is_the_closed_form_curve(kind):
    phi_tf, inv, phi_np = PHIS[kind]
    phi_np = (lambda w: w) if kind == "linear" else phi_np
    a, b = X[0], X[1]
    res = geodesic(_g(phi_tf), a, b, segments=4, num_steps=150, lr=0.05)
    t = np.linspace(0, 1, 5)[:, None]
    want = inv((1 - t) * phi_np(a.astype(np.float64)) + t * phi_np(b.astype(np.float64)))
    np.testing.assert_allclose(res.points, want, atol=2e-3)
    d2 = np.sum((phi_np(a.astype(np.float64)) - phi_np(b.astype(np.float64))) ** 2)
    np.testing.assert_allclose(res.energy, d2, rtol=1e-3)  # energy of a geodesic = squared distance
    np.testing.assert_allclose(res.length, np.sqrt(d2), rtol=1e-3)
    if kind == "sinh":
        assert res.start_energy > res.energy * 1.001  # the straight line in latent space is not the geodesic


def test_intrinsic_mean_is_the_frechet_mean_of_the_toy():
    res = frechet_mean(_g(tf.sinh), X, segments=3, num_steps=200, lr=0.05, chunk=2)
    want = np.arcsinh(np.sinh(X.astype(np.float64)).mean(axis=0))
    np.testing.assert_allclose(res.mean, want, atol=2e-3)
    assert np.linalg.norm(want - X.mean(axis=0)) > 0.1  # differs from the arithmetic mean it started from
    np.testing.assert_allclose(res.arithmetic_mean, X.mean(axis=0), rtol=1e-6)
    d2 = np.sum((np.sinh(X.astype(np.float64)) - np.sinh(want)) ** 2, axis=1)
    np.testing.assert_allclose(res.energies, d2, rtol=5e-3, atol=1e-4)
    assert np.sum(res.start_energies) > np.sum(res.energies)
    np.testing.assert_array_equal(res.curves[:, -1], X)  # curves end at the data


def test_linear_generator_mean_is_arithmetic_and_curves_straight():
    res = frechet_mean(_g(lambda w: w), X, segments=2, num_steps=50, lr=0.02)
    np.testing.assert_allclose(res.mean, X.mean(axis=0), atol=2e-3)
    mid = (res.curves[:, 0] + res.curves[:, 2]) / 2
    np.testing.assert_allclose(res.curves[:, 1], mid, atol=2e-3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="segments"):
        frechet_mean(_g(tf.sinh), X, segments=0)
    with pytest.raises(ValueError, match="latents of shape"):
        frechet_mean(_g(tf.sinh), X[0])
