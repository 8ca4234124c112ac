"""generation/restoration/data_term.py: the masked MSE and the noise weighting against the NumPy reference."""

import numpy as np
import pytest
import tensorflow as tf

from generation.restoration.data_term import gaussian_data_term, masked_mse, noise_weight
from generation.restoration.data_term_ref import gaussian_nll_ref, masked_mse_ref


def test_masked_mse_and_noise_weighting_match_reference():
    rng = np.random.RandomState(4)
    x, y = rng.randn(3, 5, 6, 7, 2), rng.randn(3, 5, 6, 7, 2)
    w3 = (rng.rand(5, 6, 7) > 0.5).astype(np.float32)
    w4 = (rng.rand(3, 5, 6, 7) > 0.3).astype(np.float32)
    w4[1] = 0  # an item with nothing compared gets 0
    xt, yt = tf.constant(x, tf.float32), tf.constant(y, tf.float32)
    np.testing.assert_allclose(masked_mse(xt, yt).numpy(), masked_mse_ref(x, y), rtol=1e-5)
    np.testing.assert_allclose(masked_mse(xt, yt, w3).numpy(), masked_mse_ref(x, y, w3), rtol=1e-5)
    np.testing.assert_allclose(masked_mse(xt, yt, w4).numpy(), masked_mse_ref(x, y, w4), rtol=1e-5)
    assert noise_weight(0.05) == pytest.approx(200.0) and noise_weight(None) == 1.0
    np.testing.assert_allclose(gaussian_data_term(xt, yt, 0.1, w3).numpy(),
                               gaussian_nll_ref(x, y, 0.1, w3), rtol=1e-5)
