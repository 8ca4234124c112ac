"""generation/interpolation.py: slerp's closed form, the frame schedule, paths that end at the seeds' volumes."""

import numpy as np
import pytest
import tensorflow as tf

from generation import interpolation, sampling
from generation.runner import Runner
from training import configs


@pytest.fixture(scope="module")
def runner():
    tf.random.set_seed(0)
    G, _ = configs.build_networks(configs.get_config("demo-tiny"))
    return Runner(G, batch_size=3)


def test_slerp_closed_form():
    a, b = np.array([1.0, 0, 0]), np.array([0, 2.0, 0])
    # Orthogonal: direction (a^ + b^)/sqrt(2) at t = 0.5; length lerped: 1.5.
    np.testing.assert_allclose(interpolation.slerp(a, b, 0.5), 1.5 * np.array([1, 1, 0]) / np.sqrt(2), atol=1e-12)
    np.testing.assert_allclose(interpolation.slerp(a, b, 0.0), a, atol=1e-12)
    np.testing.assert_allclose(interpolation.slerp(a, 2 * a, 0.25), 1.25 * a, atol=1e-12)  # parallel -> lerp


def test_interpolation_ts_count_shared_ends_once():
    ts = interpolation.interpolation_ts(3, 4)
    assert len(ts) == 7 and ts[0] == (0, 0.0) and ts[3] == (1, 0.0) and ts[-1] == (1, 1.0)


@pytest.mark.parametrize("space", interpolation.SPACES)
@pytest.mark.parametrize("kind", list(interpolation.INTERPOLATIONS))
def test_interpolation_ends_at_the_seeds_volumes(runner, space, kind):
    seeds = [8, 9]
    ends = sampling.generate(runner, seeds, psi=1.0, noise_mode="const")
    vols, _ = interpolation.interpolate(runner, seeds, frames=4, space=space, kind=kind, noise_mode="const")
    assert vols.shape[0] == 4
    np.testing.assert_allclose(vols[0], ends[0], atol=1e-4)
    np.testing.assert_allclose(vols[-1], ends[1], atol=1e-4)


@pytest.mark.parametrize("space, kind", [("x", "linear"), ("z", "cubic")])
def test_unknown_space_or_kind(runner, space, kind):
    with pytest.raises(ValueError, match="expected space z or w"):
        interpolation.interpolate(runner, [1, 2], frames=4, space=space, kind=kind)
