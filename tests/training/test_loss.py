"""Each loss term against a direct computation: closed forms on linear stand-in networks, hand-written softplus."""

import math

import numpy as np
import pytest
import tensorflow as tf

from training.loss import StyleGAN2Loss, draw_generator_inputs, lazy_regularization_ratio, slice_replica
from training.train_state import Adam, DynamicLossScale, ema_beta

SHAPE = (3, 4, 5)  # D, H, W
C = 2  # channels: R1/R2 must sum over the channel axis too


class LinearD(tf.Module):
    """D(x) = sum(x * W) + b per sample: dD/dx = W, so |grad|^2 = sum(W^2) for every sample."""

    c_dim = 0

    def __init__(self):
        super().__init__()
        self.W = tf.Variable(tf.random.stateless_normal([*SHAPE, C], seed=[1, 2]))
        self.b = tf.Variable(0.3)

    def __call__(self, img, c=None):
        return tf.reduce_sum(img * self.W, axis=[1, 2, 3, 4])[:, None] + self.b


class LinearMapping(tf.Module):
    def __init__(self, z_dim, w_dim, num_ws):
        super().__init__()
        self.M = tf.Variable(tf.random.stateless_normal([z_dim, w_dim], seed=[3, 4]))
        self.num_ws, self.w_avg_beta = num_ws, None

    def __call__(self, z, c=None):
        return tf.tile((z @ self.M)[:, None], [1, self.num_ws, 1])


class LinearSynthesis(tf.Module):
    """img = reshape(flatten(ws) @ A): J^T y = A y per sample, known in closed form."""

    noise_shapes = []

    def __init__(self, num_ws, w_dim):
        super().__init__()
        n = int(np.prod(SHAPE)) * C
        self.A = tf.Variable(tf.random.stateless_normal([num_ws * w_dim, n], seed=[5, 6]))

    def __call__(self, ws, noise_mode="random", noise=None):
        flat = tf.reshape(ws, [ws.shape[0], -1]) @ self.A
        return tf.reshape(flat, [-1, *SHAPE, C])


class LinearG(tf.Module):
    z_dim, c_dim, w_dim, num_ws, img_shape, img_channels = 4, 0, 3, 5, SHAPE, C

    def __init__(self):
        super().__init__()
        self.mapping = LinearMapping(self.z_dim, self.w_dim, self.num_ws)
        self.synthesis = LinearSynthesis(self.num_ws, self.w_dim)


def softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


@pytest.fixture
def setup():
    G, D = LinearG(), LinearD()
    loss = StyleGAN2Loss(G, D, r1_gamma=10.0, r2_gamma=3.0, pl_weight=2.0, pl_decay=0.01, pl_batch_shrink=2,
                         style_mixing_prob=0.0, G_reg_interval=4, D_reg_interval=16)
    rng = tf.random.Generator.from_seed(7)
    inp = draw_generator_inputs(rng, G, 4, with_pl_noise=True)
    return G, D, loss, inp


def _fake(G, inp):
    return (inp["z"].numpy() @ G.mapping.M.numpy())  # w, identical for all num_ws


def _img(G, w):
    ws = np.repeat(w[:, None], G.num_ws, axis=1).reshape(len(w), -1)
    return (ws @ G.synthesis.A.numpy()).reshape(len(w), *SHAPE, C)


def _d(D, img):
    return (img * D.W.numpy()).sum(axis=(1, 2, 3, 4)) + D.b.numpy()


def test_g_main_is_nonsaturating_logistic(setup):
    G, D, loss, inp = setup
    value, logits = loss.g_main(inp)
    ref_logits = _d(D, _img(G, _fake(G, inp)))
    np.testing.assert_allclose(logits.numpy(), ref_logits, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(value.numpy(), softplus(-ref_logits), rtol=1e-4, atol=1e-4)


def test_d_main_is_logistic(setup):
    G, D, loss, inp = setup
    reals = tf.random.stateless_normal([4, *SHAPE, C], seed=[8, 9])
    fake_logits, real_logits = _d(D, _img(G, _fake(G, inp))), _d(D, reals.numpy())
    np.testing.assert_allclose(loss.d_fake_logits(inp).numpy(), fake_logits, rtol=1e-4, atol=1e-3)
    obj, stats = loss.phase_objective("Dmain", inp, reals, tf.zeros([4, 0]), 4)
    expected = np.sum(softplus(fake_logits) + softplus(-real_logits))
    np.testing.assert_allclose(float(obj), expected / 4, rtol=1e-4)
    # The fake and real terms each add their part of the one D loss tag.
    np.testing.assert_allclose(float(stats["Loss/D/loss"][0]), expected, rtol=1e-4)
    np.testing.assert_allclose(float(stats["Loss/scores/real"][0]), np.sum(real_logits), rtol=1e-4, atol=1e-4)
    terms = loss.phase_terms("Dboth", inp, reals, tf.zeros([4, 0]), 4)
    assert [t.__name__ for t in terms] == ["d_fake", "d_real", "r1_term", "r2_term"]  # setup has R1 and R2


def test_r1_sums_all_non_batch_axes(setup):
    _, D, loss, _ = setup
    reals = tf.random.stateless_normal([3, *SHAPE, C], seed=[10, 11])
    penalty, _ = loss.grad_penalty(reals, None)
    # Closed form: |W|^2 over D, H, W and C (the original summed only three of the four axes of 5-D tensors).
    np.testing.assert_allclose(penalty.numpy(), [np.sum(D.W.numpy() ** 2)] * 3, rtol=1e-5)


def test_dreg_objective_weights_r1_and_r2(setup):
    G, D, loss, inp = setup
    reals = tf.random.stateless_normal([4, *SHAPE, C], seed=[12, 13])
    obj, stats = loss.phase_objective("Dreg", inp, reals, tf.zeros([4, 0]), 4)
    w2 = np.sum(D.W.numpy() ** 2)
    # Lazy: gain = interval 16; R1 on reals (gamma 10), R2 on fakes (gamma 3), both gamma/2 * |grad|^2.
    np.testing.assert_allclose(obj.numpy(), 16 * (10 / 2 * w2 + 3 / 2 * w2), rtol=1e-5)
    np.testing.assert_allclose(stats["Loss/r1_penalty"][0].numpy() / 4, w2, rtol=1e-5)


def test_path_length_against_closed_form(setup):
    G, _, loss, inp = setup
    lengths = loss.path_lengths(inp).numpy()
    A = G.synthesis.A.numpy()
    y = inp["pl_noise"].numpy().reshape(4, -1)
    g = (y @ A.T).reshape(4, G.num_ws, G.w_dim)  # d(sum img*y)/dws
    ref = np.sqrt((g**2).sum(axis=2).mean(axis=1))
    np.testing.assert_allclose(lengths, ref, rtol=1e-4)
    # Direction scaled by 1/sqrt(D*H*W): the noise std is 1/sqrt(60) here.
    assert abs(inp["pl_noise"].numpy().std() * math.sqrt(np.prod(SHAPE)) - 1) < 0.2


def test_greg_objective_updates_pl_mean_and_shrinks_batch(setup):
    G, _, loss, inp = setup
    pl_mean = tf.constant(0.5)
    obj, stats = loss.phase_objective("Greg", inp, None, None, 4, pl_mean)
    head = {k: (v[:2] if isinstance(v, tf.Tensor) and v.shape.rank else v) for k, v in inp.items()}
    lengths = loss.path_lengths(head).numpy()  # batch shrink 2: the first 2 of 4
    new_mean = 0.5 + (lengths.mean() - 0.5) * 0.01
    np.testing.assert_allclose(stats["pl_mean_new"].numpy(), new_mean, rtol=1e-5)
    # weight 2, lazy gain 4, mean over the shrunk batch
    np.testing.assert_allclose(obj.numpy(), 2 * 4 * np.mean((lengths - new_mean) ** 2), rtol=1e-4)


def test_style_mixing_splits_at_cutoff(setup):
    G, _, loss, _ = setup
    z, z2 = tf.random.normal([2, 4]), tf.random.normal([2, 4])
    ws = loss.mapping(z, None, z2, tf.constant(2)).numpy()
    np.testing.assert_allclose(ws[:, :2], np.repeat((z.numpy() @ G.mapping.M.numpy())[:, None], 2, 1), rtol=1e-5)
    np.testing.assert_allclose(ws[:, 2:], np.repeat((z2.numpy() @ G.mapping.M.numpy())[:, None], 3, 1), rtol=1e-5)


def test_mixing_probability_and_cutoff_range():
    G = LinearG()
    rng = tf.random.Generator.from_seed(0)
    cut = np.array([int(draw_generator_inputs(rng, G, 1, style_mixing_prob=0.9)["cutoff"]) for _ in range(400)])
    mixed = cut < G.num_ws
    assert 0.84 < mixed.mean() < 0.96
    assert cut[mixed].min() >= 1 and set(cut[mixed]) == set(range(1, G.num_ws))


def test_strided_replica_slices_partition_the_batch():
    x = tf.reshape(tf.range(8.0), [8, 1])
    parts = [slice_replica({"z": x}, r, 2)["z"].numpy()[:, 0] for r in range(2)]
    np.testing.assert_array_equal(parts[0], [0, 2, 4, 6])
    np.testing.assert_array_equal(parts[1], [1, 3, 5, 7])


def test_phases_lazy_and_every_step():
    G, D = LinearG(), LinearD()
    assert StyleGAN2Loss(G, D, r1_gamma=1).phases() == [("Gmain", 1), ("Greg", 4), ("Dmain", 1), ("Dreg", 16)]
    every = StyleGAN2Loss(G, D, r1_gamma=1, G_reg_interval=0, D_reg_interval=0).phases()
    assert every == [("Gboth", 1), ("Dboth", 1)]
    assert StyleGAN2Loss(G, D, r1_gamma=0, pl_weight=0).phases() == [("Gmain", 1), ("Dmain", 1)]
    assert lazy_regularization_ratio(4) == pytest.approx(0.8)
    assert lazy_regularization_ratio(16) == pytest.approx(16 / 17)


def test_adam_matches_reference_formula():
    v = tf.Variable([1.0, -2.0, 3.0])
    opt = Adam([v], lr=0.1, beta_1=0.5, beta_2=0.9, epsilon=1e-8)
    x, m, s = np.array([1.0, -2.0, 3.0]), np.zeros(3), np.zeros(3)
    for t, g in enumerate([np.array([0.1, 0.2, -0.3]), np.array([-0.5, 0.0, 1.0])], start=1):
        opt.apply([tf.constant(g, tf.float32)], [v])
        m = 0.5 * m + 0.5 * g
        s = 0.9 * s + 0.1 * g * g
        x = x - 0.1 / (1 - 0.5**t) * m / (np.sqrt(s) / np.sqrt(1 - 0.9**t) + 1e-8)
    np.testing.assert_allclose(v.numpy(), x, rtol=1e-5)


def test_ema_half_life_and_rampup():
    beta = ema_beta(batch_size=4, ema_kimg=1.0)
    assert beta ** (1000 / 4) == pytest.approx(0.5, rel=1e-6)
    # Ramp-up: early on the half-life is cur_nimg * rampup images.
    assert ema_beta(4, 10.0, 0.05, cur_nimg=800) == pytest.approx(0.5 ** (4 / 40))


def test_loss_scale_halves_on_overflow_and_grows_after_period():
    ls = DynamicLossScale(True, initial=8.0, period=2)
    ls.update(tf.constant(False))
    assert float(ls.scale.numpy()) == 4.0
    ls.update(tf.constant(True))
    ls.update(tf.constant(True))
    assert float(ls.scale.numpy()) == 8.0


def test_path_length_traces_generator_with_scaled_activations(monkeypatch):
    # Gradients wrt the styles alone: per-sample modulated weights would need each layer's filter gradient
    # (a slower Greg); G's main loss needs it anyway and keeps them.
    from dnnlib.ops import modulated_conv3d as modconv
    from training import configs

    G, D = configs.build_networks(configs.get_config("demo-tiny"))
    loss = StyleGAN2Loss(G, D)
    inp = draw_generator_inputs(tf.random.Generator.from_seed(1), G, 2, with_pl_noise=True)
    choices = []
    choose = modconv._per_sample_weights
    monkeypatch.setattr(modconv, "_per_sample_weights", lambda x, up: choices.append(choose(x, up)) or choices[-1])
    monkeypatch.setattr(modconv, "_PER_SAMPLE_MIN_VOXELS", 0)
    tf.function(loss.path_lengths).get_concrete_function(inp)
    assert choices and not any(choices)
    choices.clear()
    tf.function(loss.g_main).get_concrete_function(inp)
    assert choices and all(choices)
