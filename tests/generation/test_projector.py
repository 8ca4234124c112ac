"""generation/projector.py: schedule, loss pieces against direct formulas, the return to the native grid, and
recovery of a
generated volume at demo-tiny."""

import math

import numpy as np
import pytest
import tensorflow as tf

from dnnlib.errors import UserError
from generation import projector
from generation import sampling as generation
from metrics.ms_ssim import ssim_per_volume_tf
from metrics.reconstruction import psnr, ssim_3d
from training import configs


def test_learning_rate_schedule_matches_the_original_formula():
    lr = projector.learning_rate
    assert lr(0.0) == 0.0
    assert lr(0.025) == pytest.approx(0.3 * 0.5)  # halfway up the 5% linear ramp
    assert lr(0.05) == pytest.approx(0.3) and lr(0.5) == pytest.approx(0.3)
    assert lr(0.875) == pytest.approx(0.3 * (0.5 - 0.5 * math.cos(0.5 * math.pi)))  # halfway down the cosine
    assert lr(1.0) == pytest.approx(0.0, abs=1e-12)


def test_latent_noise_decays_quadratically_to_zero_at_75_percent():
    s = projector.latent_noise_scale
    assert s(0.0, 2.0) == pytest.approx(0.1)
    assert s(0.375, 2.0) == pytest.approx(0.1 * 0.25)
    assert s(0.75, 2.0) == 0.0 and s(0.9, 2.0) == 0.0


def _noise_reg_numpy(maps):
    total = np.zeros(maps[0].shape[0])
    for v in maps:
        v = v[..., 0].astype(np.float64)
        while True:
            for ax in (1, 2, 3):
                total += np.mean(v * np.roll(v, 1, axis=ax), axis=(1, 2, 3)) ** 2
            n, d, h, w = v.shape
            if min(d, h, w) <= 8 or d % 2 or h % 2 or w % 2:
                break
            v = v.reshape(n, d // 2, 2, h // 2, 2, w // 2, 2).mean(axis=(2, 4, 6))
    return total


def test_noise_regularizer_matches_numpy_pyramid():
    rng = np.random.RandomState(0)
    # 20x24x28 gives three levels (20, 10, 5); smooth maps have large autocorrelation.
    smooth = np.cumsum(rng.randn(2, 20, 24, 28, 1), axis=2)
    maps = [rng.randn(2, 5, 6, 7, 1), smooth, rng.randn(2, 10, 12, 14, 1)]
    got = projector.noise_regularizer([tf.constant(m, tf.float32) for m in maps]).numpy()
    np.testing.assert_allclose(got, _noise_reg_numpy(maps), rtol=1e-4)
    assert got[0] > 1.0  # the smooth map is penalised


def test_avg_pool_8x_is_block_mean():
    x = np.random.RandomState(1).randn(1, 16, 8, 24, 1).astype(np.float32)
    want = x.reshape(1, 2, 8, 1, 8, 3, 8, 1).mean(axis=(2, 4, 6))
    np.testing.assert_allclose(projector.avg_pool_3d(tf.constant(x), 8).numpy(), want, atol=1e-6)


def test_tf_ssim_matches_metrics_reconstruction():
    rng = np.random.RandomState(2)
    a = np.tanh(np.cumsum(rng.randn(2, 14, 15, 16, 1), axis=1) * 0.3)
    b = np.clip(a + 0.2 * rng.randn(*a.shape), -1, 1)
    got = ssim_per_volume_tf(tf.constant(a, tf.float32), tf.constant(b, tf.float32), data_range=2.0).numpy()
    want = ssim_3d(a, b, data_range=2.0, per_volume=True)
    np.testing.assert_allclose(got, want, atol=1e-4)
    # Small volumes: the window shrinks to the largest odd size that fits, as in metrics.reconstruction.
    s = (slice(None), slice(0, 7), slice(0, 9), slice(0, 9))
    got = ssim_per_volume_tf(tf.constant(a[s], tf.float32), tf.constant(b[s], tf.float32), 2.0).numpy()
    np.testing.assert_allclose(got, ssim_3d(a[s], b[s], data_range=2.0, per_volume=True), atol=1e-4)


def test_to_native_grid_inverts_reorientation_and_registration():
    # Dataset grid: RAS, 2 mm. Source grid: LPS-like flips, 3 mm, other origin. A linear function of world
    # position is reproduced exactly by linear interpolation, so each source voxel must get f(its world point).
    data_aff = np.array([[2.0, 0, 0, -20], [0, 2, 0, -24], [0, 0, 2, -28], [0, 0, 0, 1]])
    shape = (20, 24, 28)
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).reshape(-1, 3)
    world = idx @ data_aff[:3, :3].T + data_aff[:3, 3]
    coef = np.array([0.01, -0.02, 0.03])
    src_aff = np.array([[-3.0, 0, 0, 12], [0, -3, 0, 15], [0, 0, 3, -18], [0, 0, 0, 1]])
    src_shape = (8, 10, 12)
    src_idx = np.stack(np.meshgrid(*[np.arange(s) for s in src_shape], indexing="ij"), -1).reshape(-1, 3)
    src_world = src_idx @ src_aff[:3, :3].T + src_aff[:3, 3]
    t = {"source_shape": list(src_shape), "source_affine": src_aff.tolist()}

    vol = (world @ coef + 0.5).reshape(shape)
    out, aff = projector.to_native_grid(vol, data_aff, t)
    assert out.shape == src_shape
    np.testing.assert_array_equal(aff, src_aff)
    np.testing.assert_allclose(out.ravel(), src_world @ coef + 0.5, atol=1e-5)

    # With registration: the dataset grid lives in template space, x_source = M @ x_template.
    m = np.array([[1.1, 0.05, 0, 2], [0, 0.95, 0.02, -1], [0.03, 0, 1.0, 1.5], [0, 0, 0, 1]])
    t["registration"] = {"fixed_to_moving_ras": m.tolist()}
    out, _ = projector.to_native_grid(vol, data_aff, t)
    tmpl = (np.c_[src_world, np.ones(len(src_world))] @ np.linalg.inv(m).T)[:, :3]
    np.testing.assert_allclose(out.ravel(), tmpl @ coef + 0.5, atol=1e-5)


@pytest.fixture(scope="module")
def G():
    tf.random.set_seed(0)
    G, _ = configs.build_networks(configs.get_config("demo-tiny"))
    z = np.random.RandomState(1).randn(256, G.z_dim).astype(np.float32)
    G.mapping.w_avg.assign(tf.reduce_mean(G.mapping(z)[:, 0], axis=0))
    return G


def test_w_statistics_formula(G):
    w_avg, w_std = projector.w_statistics(G, num_samples=300, seed=5, chunk=128)
    z = np.random.RandomState(5).randn(300, G.z_dim).astype(np.float32)
    w = G.mapping(tf.constant(z)).numpy()[:, 0].astype(np.float64)
    np.testing.assert_allclose(w_avg, w.mean(0), atol=1e-5)
    assert w_std == pytest.approx(np.sqrt(np.mean(np.sum((w - w.mean(0)) ** 2, axis=1))), rel=1e-5)


def test_bad_inputs(G):
    stats = (np.zeros(G.w_dim, np.float32), 1.0)
    with pytest.raises(UserError, match="shape"):
        projector.Projector(G, np.zeros([1, 8, 8, 8, 1]), w_stats=stats)
    with pytest.raises(UserError, match="--loss"):
        projector.Projector(G, np.zeros([1, 20, 24, 28, 1]), opts={"loss": "l1"}, w_stats=stats)


def test_projector_step_scales_activations_instead_of_per_sample_weights(G, monkeypatch):
    # Its gradients are wrt ws and noise only, where per-sample weights would add a filter gradient per layer
    # (measured 1.18x slower at demo): the step traces G inside networks.modulation_of_activations.
    from training import networks

    choices = []
    choose = networks._per_sample_weights
    monkeypatch.setattr(networks, "_per_sample_weights", lambda x, up: choices.append(choose(x, up)) or choices[-1])
    monkeypatch.setattr(networks, "PER_SAMPLE_MIN_VOXELS", 0)
    p = projector.Projector(G, np.zeros([2, 20, 24, 28, 1], np.float32), w_stats=(np.zeros(G.w_dim, np.float32), 1.0))
    p._step.get_concrete_function(tf.constant(0.1), tf.constant(0.0))
    assert choices and not any(choices)
    choices.clear()
    tf.function(lambda: G.synthesis(tf.zeros([2, G.num_ws, G.w_dim]))).get_concrete_function()
    assert choices and all(choices)


def test_projection_recovers_a_generated_volume(G):
    runner = generation.Runner(G, batch_size=2)
    targets = generation.generate(runner, [0, 1], psi=1.0, noise_mode="const")
    others = generation.generate(runner, [100, 101, 102], psi=1.0, noise_mode="const")
    p = projector.Projector(G, targets, opts=dict(num_steps=40, w_avg_samples=500, loss="mse+ssim"))
    res = p.run()
    assert res.ws.shape == (2, G.num_ws, G.w_dim) and len(res.curve) == 40
    np.testing.assert_allclose(res.ws[:, 0], res.ws[:, -1])  # one W tiled over the layers
    for n in res.noise:  # maps renormalised after every step
        np.testing.assert_allclose(n.mean(axis=(1, 2, 3, 4)), 0, atol=1e-4)
        np.testing.assert_allclose(n.std(axis=(1, 2, 3, 4)), 1, atol=1e-3)
    unit = generation.to_unit_range
    got = np.mean([psnr(unit(targets[i]), unit(res.volumes[i]), 1.0) for i in range(2)])
    rand = np.mean([psnr(unit(targets[i]), unit(o), 1.0) for i in range(2) for o in others])
    assert got > rand + 5.0, (got, rand)
    assert np.all(res.curve[-1]["mse"] < res.curve[0]["mse"])
