"""Recomputation of layer activations (recompute_layers) and the sequential loss terms of TrainSteps(recompute=True):
the same objectives and gradients as the plain path.

Each phase objective (G main, path length, D main, R1) is differentiated once with respect to the weights, so the
regularisers check second-order gradients through tf.recompute_grad; the plain path is the reference. Graph mode
(tf.function), as in training.
"""

import numpy as np
import pytest
import tensorflow as tf

from training import configs
from training.loss import StyleGAN2Loss, draw_generator_inputs
from training.networks import recompute_layers

# float32: the recomputed forward repeats the same ops, so only the order of some sums may differ.
PHASE_ATOL = 1e-5  # of the phase's largest gradient entry

# (phase, G architecture, D architecture): the regularisers are the second-order cases.
CASES = [("Gmain", "orig", "resnet"), ("Greg", "orig", "resnet"), ("Dmain", "orig", "resnet"),
         ("Dreg", "orig", "resnet"), ("Greg", "skip", "skip"), ("Dreg", "resnet", "orig")]


def phase_gradients(phase, g_arch, d_arch, recompute):
    cfg = configs.get_config("demo-tiny")
    for kw in (cfg.G_kwargs.synthesis_kwargs, cfg.D_kwargs):  # 8^3 volumes: the smallest two-stage networks
        kw.base_shape = [2, 2, 2]
    cfg.D_kwargs.img_shape = [8, 8, 8]
    cfg.G_kwargs.synthesis_kwargs.architecture, cfg.D_kwargs.architecture = g_arch, d_arch
    tf.random.set_seed(0)
    G, D = configs.build_networks(cfg)
    loss = StyleGAN2Loss(G, D, **cfg.loss_kwargs)
    module = G if phase.startswith("G") else D
    inp = draw_generator_inputs(tf.random.Generator.from_seed(1), G, 4, style_mixing_prob=0.9, with_pl_noise=True)
    reals = tf.random.stateless_uniform([4, 8, 8, 8, 1], seed=[1, 2], minval=-1, maxval=1)

    @tf.function
    def step():
        with tf.GradientTape() as tape, recompute_layers(recompute):
            objective, _ = loss.phase_objective(phase, inp, reals, tf.zeros([4, 0]), 4, tf.constant(0.5))
        return objective, tape.gradient(objective, module.trainable_variables)

    objective, grads = step()
    graph = step.get_concrete_function().graph
    custom = sum(op.type == "IdentityN" for op in graph.get_operations())  # how tf.custom_gradient marks its calls
    return float(objective), [np.zeros(v.shape) if g is None else g.numpy()
                              for g, v in zip(grads, module.trainable_variables, strict=True)], custom


@pytest.mark.parametrize("phase,g_arch,d_arch", CASES)
def test_recompute_gives_the_plain_gradients(phase, g_arch, d_arch):
    plain_obj, plain, plain_custom = phase_gradients(phase, g_arch, d_arch, recompute=False)
    re_obj, re, re_custom = phase_gradients(phase, g_arch, d_arch, recompute=True)
    assert re_custom >= plain_custom + 2  # the layers did run recomputed (else the comparison proves nothing)
    assert re_obj == pytest.approx(plain_obj, rel=1e-5)
    scale = max(np.abs(g).max() for g in plain)
    assert sum(np.abs(g).max() > 0 for g in plain) > len(plain) // 2  # most weights take part
    for i, (a, b) in enumerate(zip(plain, re, strict=True)):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=PHASE_ATOL * scale, err_msg=f"{phase} gradient {i}")


def test_recompute_is_off_outside_the_block():
    from training import networks

    with recompute_layers():
        with recompute_layers(False):
            assert not networks._recompute_options.enabled
        assert networks._recompute_options.enabled
    assert not networks._recompute_options.enabled


def test_recompute_step_takes_the_terms_one_after_another():
    """TrainSteps(recompute=True): the same step, its loss terms' gradients taken in sequence.

    Gboth (G main + path length) and Dboth (D on fakes, on reals, R1) are the phases with several terms; each
    term after the first reads the weights only once the previous term's gradients exist (control inputs). The
    reference is the plain step on the whole batch.
    """
    from tests.training.test_accumulation import one_step_each_phase

    strategy = tf.distribute.get_strategy()
    plain_graphs, seq_graphs = {}, {}
    plain = one_step_each_phase(strategy, 4, None, lazy=False, graphs=plain_graphs)
    # Accumulated over two rounds as well (batch_gpu=2): the terms run in sequence inside each round.
    seq = one_step_each_phase(strategy, 4, 2, lazy=False, recompute=True, graphs=seq_graphs)
    assert seq["rounds"] == 2
    for phase in ("Gboth", "Dboth"):
        (g_plain, s_plain), (g_seq, s_seq) = plain[phase], seq[phase]
        scale = max(np.abs(np.asarray(g)).max() for g in g_plain)
        for i, (a, b) in enumerate(zip(g_plain, g_seq, strict=True)):
            np.testing.assert_allclose(b, a, rtol=1e-3, atol=PHASE_ATOL * scale, err_msg=f"{phase} gradient {i}")
        assert s_seq == pytest.approx(s_plain, rel=1e-5)

        def waiting_reads(graph):
            return sum(bool(op.control_inputs) for op in graph.get_operations() if op.type == "ReadVariableOp")

        assert waiting_reads(plain_graphs[phase]) == 0
        assert waiting_reads(seq_graphs[phase]) > 0
    assert seq["pl_mean"] == pytest.approx(plain["pl_mean"], rel=1e-5)


def test_recomputed_layers_draw_random_noise_once():
    """noise_mode='random' under recompute_layers: each layer's noise is drawn once, before the layer, so the
    backward pass's recomputation sees the same noise (drawn inside it, it would be a second, different draw)."""
    cfg = configs.get_config("demo-tiny")
    tf.random.set_seed(0)
    G, _ = configs.build_networks(cfg)
    ws = tf.random.stateless_normal([2, G.num_ws, G.w_dim], seed=[3, 4])

    @tf.function
    def grads():
        with tf.GradientTape() as tape, recompute_layers():
            tape.watch(ws)
            loss = tf.reduce_sum(tf.square(G.synthesis(ws, noise_mode="random")))
        return tape.gradient(loss, ws)

    graph = grads.get_concrete_function().graph
    assert grads() is not None
    draws = [op for op in graph.get_operations() if op.type == "RandomStandardNormal"]
    assert len(draws) == len(G.synthesis.noise_shapes) > 0


@pytest.mark.parametrize("voxels", [(16, 32, 16), (8, 8, 8)])
def test_recomputed_layers_take_the_lean_modulation_path_whatever_was_measured(monkeypatch, voxels):
    """--recompute is for memory: modulated convs take per-sample weights (no scaled copy of the activations) even
    where the measurement (here forced) chose scaled activations, at large and small sizes alike."""
    from dnnlib.ops import autotune
    from dnnlib.ops import modulated_conv3d as M

    monkeypatch.setenv(autotune.ENV_FORCE, "modulated_conv3d=scaled_activations")
    x, w, s = tf.zeros([2, *voxels, 4]), tf.zeros([3, 3, 3, 4, 4]), tf.zeros([2, 4])
    assert M._path(x, w, s, None, None, None, tf.float32) == "scaled_activations"
    with recompute_layers():
        assert M._path(x, w, s, None, None, None, tf.float32) == "per_sample_weights"
        with M.modulation_of_activations():  # the path-length pass's style gradients: scaled activations still
            assert M._path(x, w, s, None, None, None, tf.float32) == "scaled_activations"
    with recompute_layers(False):
        assert M._path(x, w, s, None, None, None, tf.float32) == "scaled_activations"


def test_the_backward_recomputation_takes_the_lean_modulation_path_too(monkeypatch):
    """The layer's recomputation runs when the gradient is taken, outside recompute_layers() (as in TrainSteps): it
    must convolve with per-sample weights as well, not the scaled activations measured (here forced) fastest."""
    from dnnlib.ops import autotune
    from dnnlib.ops import modulated_conv3d as M
    from training import networks

    monkeypatch.setenv(autotune.ENV_FORCE, "modulated_conv3d=scaled_activations")
    paths, real = [], autotune.choose
    monkeypatch.setattr(autotune, "choose", lambda op, *a, **k: paths.append((op, real(op, *a, **k))) or paths[-1][1])
    rng = tf.random.Generator.from_seed(0)
    x, w, s = rng.normal([2, 8, 8, 8, 4]), rng.normal([3, 3, 3, 4, 4]), rng.normal([2, 4])
    with tf.GradientTape() as tape:
        tape.watch([x, s])
        with recompute_layers():
            y = networks._recompute_call(lambda x_, s_: M.modulated_conv3d(x_, w, s_), [x, s])
        loss = tf.reduce_sum(y**2)
    grads = tape.gradient(loss, [x, s])
    assert all(g is not None for g in grads)
    assert [p for op, p in paths if op == "modulated_conv3d"] == ["per_sample_weights"] * 2  # forward, recomputation
