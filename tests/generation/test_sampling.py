"""generation/sampling.py and runner.py: seeds -> volumes through the batched runner, noise modes, averages."""

import numpy as np
import pytest
import tensorflow as tf

from generation import sampling
from generation.runner import Runner
from tests.utils import tiny_generator
from training import configs


@pytest.fixture(scope="module")
def G():
    # Noise strengths and w_avg as a trained network has them, so noise modes and truncation make a difference.
    G = tiny_generator(seed=0, noise_strength=0.5)
    z = np.random.RandomState(1).randn(64, G.z_dim).astype(np.float32)
    G.mapping.w_avg.assign(tf.reduce_mean(G.mapping(z)[:, 0], axis=0))
    return G


@pytest.fixture(scope="module")
def runner(G):
    return Runner(G, batch_size=3)


def test_same_seed_same_volume_across_calls_and_batches(runner):
    a = sampling.generate(runner, [3, 4, 5, 6], psi=0.7, noise_mode="random")
    b = sampling.generate(runner, [6, 3], psi=0.7, noise_mode="random")
    assert a.shape == (4, 20, 24, 28, 1)
    np.testing.assert_allclose(b[0], a[3], atol=1e-5)
    np.testing.assert_allclose(b[1], a[0], atol=1e-5)
    assert np.abs(a[0] - a[1]).max() > 1e-2  # different seeds differ


def test_noise_modes(runner):
    rnd = sampling.generate(runner, [2], noise_mode="random")
    const = sampling.generate(runner, [2], noise_mode="const")
    none = sampling.generate(runner, [2], noise_mode="none")
    np.testing.assert_allclose(const, sampling.generate(runner, [2], noise_mode="const"), atol=1e-6)
    assert np.abs(rnd - const).max() > 1e-3 and np.abs(const - none).max() > 1e-3
    with pytest.raises(ValueError, match="noise_mode"):
        sampling.generate(runner, [2], noise_mode="loud")


def test_psi_zero_collapses_every_seed_to_the_average_w(runner, G):
    vols = sampling.generate(runner, [0, 1, 2], psi=0.0, noise_mode="const")
    ws = np.tile(G.mapping.w_avg.numpy()[None, None], [1, G.num_ws, 1])
    want = G.synthesis(tf.constant(ws), noise_mode="const").numpy()[0]
    for v in vols:
        np.testing.assert_allclose(v, want, atol=1e-5)


def test_conditional_runner_needs_a_label():
    G, _ = configs.build_networks(configs.get_config("demo-tiny"), c_dim=2)
    with pytest.raises(ValueError, match="conditional"):
        Runner(G, batch_size=1).map(np.zeros([1, G.z_dim], np.float32))


def test_average_volume_is_voxelwise_mean(runner):
    seeds = list(range(7))  # not a multiple of the batch size
    vols = sampling.generate(runner, seeds, psi=0.9, noise_mode="random")
    mean = sampling.average_volume(runner, seeds, psi=0.9, noise_mode="random")
    np.testing.assert_allclose(mean, vols.astype(np.float64).mean(axis=0), atol=1e-5)


def test_average_w_volume_is_the_volume_of_the_mean_w(runner, G):
    seeds = [0, 1, 2, 3]
    z = np.stack([np.random.RandomState(s).randn(G.z_dim) for s in seeds]).astype(np.float32)
    ws = G.mapping(tf.constant(z), psi=0.8).numpy().mean(axis=0, keepdims=True)
    want = G.synthesis(tf.constant(ws), noise_mode="const").numpy()[0]
    np.testing.assert_allclose(sampling.average_w_volume(runner, seeds, psi=0.8), want, atol=1e-5)
