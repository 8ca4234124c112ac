"""training/networks.py: shapes, semantics against NumPy formulas, gradients, noise, truncation, dtypes."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from dnnlib.ops import modulated_conv3d as M
from training import networks as N


def tiny_G(architecture="orig", c_dim=0, up_factors=((2, 2, 2), (2, 2, 2)), base_shape=(5, 6, 7), **synth):
    kw = dict(base_shape=base_shape, up_factors=up_factors, fmap_base=8, fmap_min=4, fmap_max=8,
              architecture=architecture)
    kw.update(synth)
    return N.Generator(z_dim=8, c_dim=c_dim, w_dim=8, img_channels=1, mapping_kwargs=dict(num_layers=2),
                       synthesis_kwargs=kw)


def tiny_D(architecture="resnet", c_dim=0, up_factors=((2, 2, 2), (2, 2, 2)), base_shape=(5, 6, 7), **kw):
    res = N.stage_resolutions(base_shape, up_factors)[-1]
    return N.Discriminator(c_dim=c_dim, img_shape=res, base_shape=base_shape, up_factors=up_factors, fmap_base=8,
                           fmap_min=4, fmap_max=8, architecture=architecture, **kw)


def set_noise_strengths(G, value):
    for v in G.trainable_variables:
        if "noise_strength" in v.name:
            v.assign(value)


# ----------------------------------------------------------------------------------------------
# Feature depth, shapes, config round trip.


def test_feature_depth_formula():
    assert [N.feature_depth(s, 64, 8, 64) for s in range(5)] == [64, 32, 16, 8, 8]
    assert [N.feature_depth(s, 512, 16, 96) for s in range(4)] == [96, 96, 96, 64]


def test_tiny_shapes_and_num_ws():
    G, D = tiny_G(), tiny_D()
    assert G.num_ws == 2 + 2 * 2 and G.img_shape == (20, 24, 28)
    assert G.synthesis.noise_shapes == [[1, 5, 6, 7, 1]] + [[1, 10, 12, 14, 1]] * 2 + [[1, 20, 24, 28, 1]] * 2
    img = G(tf.random.normal([2, 8]))
    assert img.shape == (2, 20, 24, 28, 1) and img.dtype == tf.float32
    logits = D(img)
    assert logits.shape == (2, 1) and logits.dtype == tf.float32
    assert np.all(np.isfinite(img.numpy())) and np.all(np.isfinite(logits.numpy()))


def test_get_config_is_json_and_rebuilds_same_architecture():
    for arch in ("orig", "skip", "resnet"):
        G = tiny_G(arch, c_dim=3)
        D = tiny_D(arch, c_dim=3)
        cfg_g = json.loads(json.dumps(G.get_config()))
        cfg_d = json.loads(json.dumps(D.get_config()))
        G2, D2 = N.Generator(**cfg_g), N.Discriminator(**cfg_d)
        assert [v.shape for v in G2.variables] == [v.shape for v in G.variables]
        assert [v.shape for v in D2.variables] == [v.shape for v in D.variables]
        assert G2.get_config() == cfg_g and D2.get_config() == cfg_d


def test_discriminator_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="does not match"):
        N.Discriminator(img_shape=(20, 24, 30), base_shape=(5, 6, 7), up_factors=[(2, 2, 2)] * 2)
    D = tiny_D()
    with pytest.raises(ValueError, match="D expects volumes"):
        D(tf.zeros([1, 10, 12, 14, 1]))
    # Without up_factors, isotropic power-of-two stages are inferred from img_shape.
    assert N.Discriminator(img_shape=(20, 24, 28), base_shape=(5, 6, 7), fmap_base=4, fmap_min=4,
                           fmap_max=4).up_factors == [(2, 2, 2)] * 2


def test_anisotropic_schedule_prostate_shapes():
    # 256x256x24 prostate: base 8x8x3, the last two stages do not upsample the third axis.
    ups = [(2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 1), (2, 2, 1)]
    G = N.Generator(8, 0, 8, 1, dict(num_layers=2), dict(base_shape=(8, 8, 3), up_factors=ups, fmap_base=4,
                                                         fmap_min=2, fmap_max=4))
    assert G.img_shape == (256, 256, 24) and G.num_ws == 12
    res = [r for _, _, r in N.layer_names(G)]
    assert res[0] == (8, 8, 3) and res[1] == (16, 16, 6) and res[5] == (64, 64, 24)
    assert res[7] == (128, 128, 24) and res[-1] == (256, 256, 24)
    fn = tf.function(G).get_concrete_function(tf.TensorSpec([1, 8], tf.float32))
    assert fn.structured_outputs.shape.as_list() == [1, 256, 256, 24, 1]
    D = N.Discriminator(img_shape=(256, 256, 24), base_shape=(8, 8, 3), up_factors=ups, fmap_base=4, fmap_min=2,
                        fmap_max=4)
    assert [b.down for b in D.blocks] == list(reversed(ups))
    fd = tf.function(D).get_concrete_function(tf.TensorSpec([2, 256, 256, 24, 1], tf.float32))
    assert fd.structured_outputs.shape.as_list() == [2, 1]


def test_anisotropic_small_runs_end_to_end():
    ups = [(2, 2, 2), (2, 2, 1)]
    G = tiny_G(up_factors=ups, base_shape=(3, 4, 3))
    D = tiny_D(up_factors=ups, base_shape=(3, 4, 3))
    img = G(tf.random.normal([2, 8]))
    assert img.shape == (2, 12, 16, 6, 1)
    assert D(img).shape == (2, 1)


# ----------------------------------------------------------------------------------------------
# Synthesis layers against a direct NumPy formula (the op itself: tests/ops/test_modulated_conv3d.py).


def _np_conv_same(x, w):
    """Per-sample cross-correlation, 'same' zero padding. x [N,D,H,W,I], w [N,k,k,k,I,O]."""
    k = w.shape[1]
    p = k // 2
    xp = np.pad(x, [(0, 0), (p, p), (p, p), (p, p), (0, 0)])
    d, h, ww = x.shape[1:4]
    out = np.zeros([x.shape[0], d, h, ww, w.shape[-1]])
    for a in range(k):
        for b in range(k):
            for c in range(k):
                out += np.einsum("ndhwi,nio->ndhwo", xp[:, a:a + d, b:b + h, c:c + ww], w[:, a, b, c])
    return out


def test_modulated_conv_matches_numpy_and_demod_is_unit_norm():
    tf.random.set_seed(1)
    rng = np.random.default_rng(0)
    layer = N.SynthesisLayer(3, 5, w_dim=4, resolution=(4, 5, 6), use_noise=False)
    layer.bias.assign(rng.normal(size=5).astype(np.float32))
    layer.affine.bias.assign(rng.normal(size=3).astype(np.float32))
    x = rng.normal(size=(2, 4, 5, 6, 3)).astype(np.float32)
    w = rng.normal(size=(2, 4)).astype(np.float32)

    # Direct formula: s = w A / sqrt(w_dim) + b; w' = W/sqrt(fan_in) * s; w'' = w' / sqrt(sum w'^2 + 1e-8).
    A, b = layer.affine.weight.numpy(), layer.affine.bias.numpy()
    styles = w @ A / math.sqrt(4) + b
    W = layer.weight.numpy() / math.sqrt(3 * 27)
    wmod = W[None] * styles[:, None, None, None, :, None]
    wdemod = wmod / np.sqrt((wmod**2).sum(axis=(1, 2, 3, 4), keepdims=True) + 1e-8)
    np.testing.assert_allclose((wdemod**2).sum(axis=(1, 2, 3, 4)), 1.0, rtol=1e-5)  # per sample, per out ch

    conv = _np_conv_same(x.astype(np.float64), wdemod)
    got = M.modulated_conv3d(tf.constant(x), tf.constant(W), tf.constant(styles.astype(np.float32))).numpy()
    np.testing.assert_allclose(got, conv, rtol=1e-4, atol=1e-4)

    pre = conv + layer.bias.numpy()
    expect = np.where(pre >= 0, pre, 0.2 * pre) * math.sqrt(2)
    out = layer(tf.constant(x), tf.constant(w), noise_mode="none").numpy()
    np.testing.assert_allclose(out, expect, rtol=1e-4, atol=1e-4)


def test_torgb_has_no_demodulation():
    rng = np.random.default_rng(1)
    layer = N.ToRGBLayer(3, 1, w_dim=4, resolution=(2, 3, 4))
    x = rng.normal(size=(2, 2, 3, 4, 3)).astype(np.float32)
    w = rng.normal(size=(2, 4)).astype(np.float32)
    styles = (w @ layer.affine.weight.numpy() / 2 + layer.affine.bias.numpy()) / math.sqrt(3)
    expect = np.einsum("ndhwi,ni,io->ndhwo", x, styles, layer.weight.numpy()[0, 0, 0]) + layer.bias.numpy()
    np.testing.assert_allclose(layer(tf.constant(x), tf.constant(w)).numpy(), expect, rtol=1e-4, atol=1e-5)


def test_layer_gains_match_numpy():
    # The layers fold their output gain into weights, bias and noise strength; the result must still be
    # act(conv + noise + b) * act_gain * gain, clamped.
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 4, 5, 6, 3)).astype(np.float32)
    lrelu = lambda v: np.where(v >= 0, v, 0.2 * v)  # noqa: E731

    conv = N.Conv3dLayer(3, 4, 3, out_shape=(4, 5, 6), activation="lrelu", conv_clamp=1.5)
    conv.bias.assign(rng.normal(size=4).astype(np.float32))
    W = conv.weight.numpy() / math.sqrt(3 * 27)
    pre = _np_conv_same(x.astype(np.float64), np.broadcast_to(W, (2, *W.shape))) + conv.bias.numpy()
    for gain in (1.0, math.sqrt(0.5)):
        expect = np.clip(lrelu(pre) * math.sqrt(2) * gain, -1.5 * gain, 1.5 * gain)
        assert np.abs(expect).max() > 1.5 * gain * 0.99  # the clamp is exercised
        np.testing.assert_allclose(conv(tf.constant(x), gain=gain).numpy(), expect, rtol=1e-4, atol=1e-4)
    skip = N.Conv3dLayer(3, 4, 1, out_shape=(4, 5, 6), bias=False)
    expect = np.einsum("ndhwi,io->ndhwo", x, skip.weight.numpy()[0, 0, 0] / math.sqrt(3)) * math.sqrt(0.5)
    np.testing.assert_allclose(skip(tf.constant(x), gain=math.sqrt(0.5)).numpy(), expect, rtol=1e-4, atol=1e-5)

    layer = N.SynthesisLayer(3, 5, w_dim=4, resolution=(4, 5, 6))
    layer.bias.assign(rng.normal(size=5).astype(np.float32))
    layer.noise_strength.assign(0.7)
    w = rng.normal(size=(2, 4)).astype(np.float32)
    noise = rng.normal(size=(2, 4, 5, 6, 1)).astype(np.float32)
    styles = w @ layer.affine.weight.numpy() / 2 + layer.affine.bias.numpy()
    wmod = (layer.weight.numpy() / math.sqrt(3 * 27))[None] * styles[:, None, None, None, :, None]
    wdemod = wmod / np.sqrt((wmod**2).sum(axis=(1, 2, 3, 4), keepdims=True) + 1e-8)
    pre = _np_conv_same(x.astype(np.float64), wdemod) + 0.7 * noise + layer.bias.numpy()
    for gain in (1.0, math.sqrt(0.5)):
        out = layer(tf.constant(x), tf.constant(w), noise=tf.constant(noise), gain=gain).numpy()
        np.testing.assert_allclose(out, lrelu(pre) * math.sqrt(2) * gain, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="gain must be > 0"):
        layer(tf.constant(x), tf.constant(w), gain=-1.0)


def test_generator_images_do_not_depend_on_the_modulation_path(monkeypatch):
    # Each modulated conv picks per-sample weights or scaled activations by its output size: both everywhere
    # give the same images.
    G = tiny_G()
    z = tf.constant(np.random.default_rng(4).normal(size=(2, 8)).astype(np.float32))
    imgs = []
    for min_voxels in (0, float("inf")):
        monkeypatch.setattr(M, "_PER_SAMPLE_MIN_VOXELS", min_voxels)
        imgs.append(G(z, noise_mode="const").numpy())
    np.testing.assert_allclose(imgs[0], imgs[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("legacy", [{"fused_modconv": False}, {"fused_modconv": True}])
def test_generator_accepts_legacy_synthesis_kwargs(legacy):
    # training_options.json / generator.json of older runs hold fused_modconv in synthesis_kwargs.
    tf.random.set_seed(3)
    G = tiny_G(**legacy)
    tf.random.set_seed(3)
    G0 = tiny_G()
    assert "fused_modconv" not in G.get_config()["synthesis_kwargs"]
    assert N.count_params(G) == N.count_params(G0)
    z = tf.constant(np.random.default_rng(5).normal(size=(1, 8)).astype(np.float32))
    np.testing.assert_allclose(G(z, noise_mode="const").numpy(), G0(z, noise_mode="const").numpy(), rtol=1e-6)


def test_minibatch_stddev_matches_numpy():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 2, 3, 2, 4)).astype(np.float32)
    got = N.minibatch_stddev(tf.constant(x), group_size=4, num_features=2).numpy()
    # Group size: largest g <= 4 dividing 6 is 3; M = 2 groups, sample i in group i % 2.
    expect_stat = np.zeros([6, 2])
    for m in range(2):
        members = x[m::2]  # [3, D,H,W,C]
        sd = np.sqrt(members.var(axis=0) + 1e-8)  # [D,H,W,C]
        sd = sd.reshape(2, 3, 2, 2, 2).mean(axis=(0, 1, 2, 4))  # features split C = F * c
        expect_stat[m::2] = sd
    assert got.shape == (6, 2, 3, 2, 6)
    np.testing.assert_allclose(got[..., :4], x)
    np.testing.assert_allclose(got[..., 4:], np.broadcast_to(expect_stat[:, None, None, None], (6, 2, 3, 2, 2)),
                               rtol=1e-5)
    # Unknown batch at trace time: the group size is found in the graph, same result.
    dyn = tf.function(lambda t: N.minibatch_stddev(t, 4, 2), input_signature=[tf.TensorSpec([None, 2, 3, 2, 4])])
    np.testing.assert_allclose(dyn(tf.constant(x)).numpy(), got, rtol=1e-6)
    # A batch of 1 (group 1) gives sqrt(1e-8), not NaN.
    one = N.minibatch_stddev(tf.constant(x[:1]), 4, 1).numpy()
    np.testing.assert_allclose(one[..., 4], 1e-4, rtol=1e-3)


# ----------------------------------------------------------------------------------------------
# Mapping: truncation, w_avg, labels.


def test_truncation_and_w_avg():
    G = tiny_G()
    mapping = G.mapping
    w_avg = np.random.default_rng(4).normal(size=8).astype(np.float32)
    mapping.w_avg.assign(w_avg)
    z = tf.random.normal([3, 8])
    ws = mapping(z).numpy()
    assert ws.shape == (3, G.num_ws, 8)
    np.testing.assert_allclose(ws, np.broadcast_to(ws[:, :1], ws.shape))  # broadcast to every layer
    np.testing.assert_allclose(mapping(z, psi=0.0).numpy(), np.broadcast_to(w_avg, ws.shape), atol=1e-6)
    half = mapping(z, psi=0.5, truncation_cutoff=2).numpy()
    np.testing.assert_allclose(half[:, :2], w_avg + 0.5 * (ws[:, :2] - w_avg), atol=1e-5)
    np.testing.assert_allclose(half[:, 2:], ws[:, 2:], atol=1e-6)
    # Generator with psi=0 and const noise: every z gives the same volume.
    img = G(z, psi=0.0, noise_mode="const").numpy()
    np.testing.assert_allclose(img[0], img[1], atol=1e-5)
    # update_w_avg: lerp(mean, w_avg, beta).
    mapping.update_w_avg(tf.constant(ws))
    expect = ws[:, 0].mean(0) + 0.995 * (w_avg - ws[:, 0].mean(0))
    np.testing.assert_allclose(mapping.w_avg.numpy(), expect, rtol=1e-5, atol=1e-6)
    mapping.update_w_avg(tf.constant(ws[:, 0]))
    np.testing.assert_allclose(mapping.w_avg.numpy(), ws[:, 0].mean(0) + 0.995 * (expect - ws[:, 0].mean(0)),
                               rtol=1e-5, atol=1e-6)


def test_mapping_pixel_norm_and_labels():
    G = tiny_G(c_dim=3)
    z = tf.random.normal([2, 8])
    c = tf.one_hot([0, 2], 3)
    # Pixel norm: scaling z does not change w.
    np.testing.assert_allclose(G.mapping(z, c).numpy(), G.mapping(5.0 * z, c).numpy(), rtol=1e-4, atol=1e-5)
    assert not np.allclose(G.mapping(z, c).numpy(), G.mapping(z, tf.one_hot([1, 1], 3)).numpy())
    with pytest.raises(ValueError, match="conditional"):
        G.mapping(z)


# ----------------------------------------------------------------------------------------------
# Noise, determinism.


def test_noise_modes():
    G = tiny_G()
    set_noise_strengths(G, 0.5)
    z = tf.random.normal([2, 8])
    ws = G.mapping(z)
    const_a = G.synthesis(ws, noise_mode="const").numpy()
    np.testing.assert_array_equal(const_a, G.synthesis(ws, noise_mode="const").numpy())
    rand_a = G.synthesis(ws, noise_mode="random").numpy()
    rand_b = G.synthesis(ws, noise_mode="random").numpy()
    assert np.abs(rand_a - rand_b).max() > 1e-3
    none = G.synthesis(ws, noise_mode="none").numpy()
    zeros = [tf.zeros(s) for s in G.synthesis.noise_shapes]
    np.testing.assert_allclose(none, G.synthesis(ws, noise=zeros).numpy(), atol=1e-6)
    assert np.abs(none - const_a).max() > 1e-3
    # Explicit maps override the mode; the const maps reproduce 'const'.
    explicit = G.synthesis(ws, noise_mode="none", noise=[v.numpy() for v in G.synthesis.const_noise]).numpy()
    np.testing.assert_allclose(explicit, const_a, atol=1e-6)
    with pytest.raises(ValueError, match="noise must be a list"):
        G.synthesis(ws, noise=zeros[:-1])
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, noise_mode="sometimes")
    # With strength 0 (the init) noise has no effect.
    set_noise_strengths(G, 0.0)
    np.testing.assert_allclose(G.synthesis(ws, noise_mode="random").numpy(),
                               G.synthesis(ws, noise_mode="none").numpy(), atol=1e-6)


def test_no_noise_network_has_no_noise_inputs():
    G = tiny_G(use_noise=False)
    assert G.synthesis.noise_shapes == [] and G.synthesis.const_noise == []
    assert not any("noise" in v.name for v in G.variables)
    z = tf.random.normal([1, 8])
    np.testing.assert_array_equal(G(z, noise_mode="random").numpy(), G(z, noise_mode="const").numpy())


def test_determinism_under_fixed_seed():
    def run():
        tf.random.set_seed(123)
        G, D = tiny_G(), tiny_D()
        set_noise_strengths(G, 0.3)
        z = tf.random.normal([2, 8])
        img = G(z, noise_mode="random")
        return [v.numpy() for v in G.variables + D.variables], img.numpy(), D(img).numpy()

    v1, img1, l1 = run()
    v2, img2, l2 = run()
    for a, b in zip(v1, v2, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(img1, img2)
    np.testing.assert_array_equal(l1, l2)


# ----------------------------------------------------------------------------------------------
# Gradients reach every trainable variable.


@pytest.mark.parametrize("arch,c_dim", [("orig", 0), ("skip", 0), ("resnet", 0), ("orig", 3), ("skip", 2)])
def test_gradients_reach_every_variable(arch, c_dim):
    tf.random.set_seed(5)
    G, D = tiny_G(arch, c_dim=c_dim), tiny_D(arch, c_dim=c_dim)
    z = tf.random.normal([4, 8])
    c = tf.one_hot([0, 1, 1, 0], c_dim) if c_dim else None
    variables = G.trainable_variables + D.trainable_variables
    with tf.GradientTape() as tape:
        img = G(z, c, noise_mode="random")
        loss = tf.reduce_sum(tf.nn.softplus(D(img, c)))
    grads = tape.gradient(loss, variables)
    missing = [v.name for v, g in zip(variables, grads, strict=True) if g is None]
    assert not missing, missing
    zero = [v.name for v, g in zip(variables, grads, strict=True) if not np.any(g.numpy())]
    assert not zero, zero
    assert all(np.all(np.isfinite(g.numpy())) for g in grads)


def test_architectures_differ_in_structure():
    orig, skip, resnet = tiny_G("orig"), tiny_G("skip"), tiny_G("resnet")
    torgbs = [sum(1 for b in g.synthesis.blocks if b.num_torgb) for g in (orig, skip, resnet)]
    assert torgbs == [1, 3, 1]
    assert sum(hasattr(b, "skip") for b in resnet.synthesis.blocks) == 2
    names = [n for _, n, _ in N.layer_names(skip)]
    assert names[1] == "b5x6x7.torgb+b10x12x14.conv0" and names[-1] == "b20x24x28.torgb"


# ----------------------------------------------------------------------------------------------
# Mixed precision and introspection.


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_mixed_precision_runs_and_returns_float32(dtype):
    tf.random.set_seed(6)
    G32, D32 = tiny_G(), tiny_D()
    Gm = N.Generator(**{**G32.get_config(), "synthesis_kwargs": {**G32.get_config()["synthesis_kwargs"],
                                                                 "compute_dtype": dtype}})
    Dm = N.Discriminator(**{**D32.get_config(), "compute_dtype": dtype})
    for src, dst in ((G32, Gm), (D32, Dm)):
        for a, b in zip(src.variables, dst.variables, strict=True):
            assert b.dtype == tf.float32  # weights stay float32
            b.assign(a)
    z = tf.random.normal([2, 8])
    ref, img = G32(z, noise_mode="const"), Gm(z, noise_mode="const")
    assert img.dtype == tf.float32
    assert np.corrcoef(ref.numpy().ravel(), img.numpy().ravel())[0, 1] > 0.99
    logits = Dm(img)
    assert logits.dtype == tf.float32 and np.all(np.isfinite(logits.numpy()))
    if dtype == "float16":
        return  # the backward pass is the same code; bfloat16 covers it
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(Dm(Gm(z)))
    grads = tape.gradient(loss, Gm.trainable_variables)
    assert all(g is not None and g.dtype == tf.float32 for g in grads)


def test_summary_and_count_params():
    G, D = tiny_G("resnet", c_dim=2), tiny_D("skip", c_dim=2)
    for net in (G, D):
        text = N.summary(net)
        total = N.count_params(net)
        assert total == sum(int(np.prod(v.shape)) for v in net.trainable_variables)
        assert f"{total:,}" in text.splitlines()[-1]
        rows = [line for line in text.splitlines()[3:-2]]
        assert sum(int(r.split()[-2].replace(",", "")) for r in rows) == total  # every variable is in a row
    assert "[N, 20, 24, 28, 1]" in N.summary(G).replace("'", "")
    assert "[3, 20, 24, 28, 1]" in N.summary(G, tf.zeros([3, 8])).replace("'", "")


def test_update_w_avg_inside_strategy_run():
    # The training step may track w_avg inside a replica function; MEAN aggregation makes that legal.
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        mapping = N.MappingNetwork(4, 0, 4, num_ws=2, num_layers=1)
    ws = tf.ones([2, 2, 4])

    @tf.function
    def step():
        strategy.run(lambda: mapping.update_w_avg(ws))

    step()
    np.testing.assert_allclose(mapping.w_avg.numpy(), 0.005 * np.ones(4), rtol=1e-5)
