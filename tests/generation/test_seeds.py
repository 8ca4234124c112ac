"""generation/seeds.py: what a seed means (z, noise after z, shared noise) and label vectors."""

import numpy as np
import pytest

from generation import seeds


def test_seed_latent_is_numpy_randomstate():
    want = np.random.RandomState(7).randn(16).astype(np.float32)
    np.testing.assert_array_equal(seeds.seed_to_z(7, 16), want)
    np.testing.assert_array_equal(seeds.seeds_to_z([7, 7], 16), np.stack([want, want]))
    with pytest.raises(ValueError, match="out of range"):
        seeds.seed_to_z(-1, 16)


def test_seed_noise_is_drawn_after_z_from_the_same_stream():
    rng = np.random.RandomState(5)
    rng.randn(16)
    want = [rng.randn(1, 2, 3, 4, 1), rng.randn(1, 4, 6, 8, 1)]
    got = seeds.seed_noise(5, [(1, 2, 3, 4, 1), (1, 4, 6, 8, 1)], 16)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w.astype(np.float32))
    shared = seeds.shared_noise(5, [(1, 2, 3, 4, 1)])[0]
    np.testing.assert_array_equal(shared, np.random.RandomState(5).randn(1, 2, 3, 4, 1).astype(np.float32))


@pytest.mark.parametrize("c_dim, kwargs, want", [
    (0, {}, None),
    (3, {"class_idx": 1}, [0, 1, 0]),
    (2, {"label": [0.5, 2]}, [0.5, 2]),
])
def test_labels(c_dim, kwargs, want):
    got = seeds.make_label(c_dim, **kwargs)
    if want is None:
        assert got is None
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("c_dim, kwargs, match", [
    (0, {"class_idx": 0}, "unconditional"),
    (2, {}, "exactly one"),
    (2, {"class_idx": 0, "label": [1.0, 0.0]}, "exactly one"),
    (2, {"class_idx": 2}, "out of range"),
    (3, {"label": [1.0]}, "c_dim = 3"),
])
def test_bad_labels_raise_value_errors_naming_no_flag(c_dim, kwargs, match):
    with pytest.raises(ValueError, match=match) as e:
        seeds.make_label(c_dim, **kwargs)
    assert "--" not in str(e.value)
