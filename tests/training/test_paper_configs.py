"""The named paper configs train as the original did by default: schedule, D filter, R2 strength; and the label
conditioning we keep (StyleGAN2-ADA's), counted by hand."""

import re

import numpy as np
import pytest
import tensorflow as tf

from dnnlib import EasyDict
from training import configs, networks
from training.loss import StyleGAN2Loss, lazy_regularization_ratio
from training.train_options import build_options

ORIGINAL_ADAM = dict(lr=0.002, beta_1=0.0, beta_2=0.99, epsilon=1e-8)


@pytest.fixture
def manifest_of_shape(monkeypatch, tmp_path):
    """build_options on a dataset of any shape without writing one: the manifest is all it reads."""
    shape = {}

    def fake_manifest(_):
        return EasyDict(shape=shape["value"], channels=1, spacing=[2.0] * 3, labels=None)

    monkeypatch.setattr("volumes.manifest.load_manifest", fake_manifest)

    def options(config, **kw):
        shape["value"] = configs.get_config(config).img_shape
        return build_options(data=str(tmp_path), config=config, **kw)

    return options


# (config, --lazy_reg value, expected (G, D) intervals)
SCHEDULE_CASES = [(name, None, (0, 0)) for name in configs.PAPER_CONFIGS] + [
    ("Gorig-Dres-3d-2mm-base567", True, (4, 16)),
    ("Gorig-Dres-3d-2mm-base567", False, (0, 0)),
    ("demo", None, (4, 16)),
    ("demo", False, (0, 0)),
    ("demo-tiny", True, (4, 16)),
]


@pytest.mark.parametrize("config, lazy_reg, intervals", SCHEDULE_CASES)
def test_resolved_schedule(manifest_of_shape, config, lazy_reg, intervals):
    kw = {} if lazy_reg is None else {"lazy_reg": lazy_reg}
    opts = manifest_of_shape(config, **kw)
    assert (opts.loss_kwargs.G_reg_interval, opts.loss_kwargs.D_reg_interval) == intervals
    for name, interval in (("G", intervals[0]), ("D", intervals[1])):
        kw = opts[f"{name}_opt_kwargs"]
        ratio = lazy_regularization_ratio(interval)  # what training_loop applies to lr and betas
        assert dict(kw) == ORIGINAL_ADAM
        if interval == 0:  # the original: lr 0.002, beta2 0.99 exactly, regularisers folded into every step
            assert (kw.lr * ratio, kw.beta_2**ratio) == (0.002, 0.99)
    phases = StyleGAN2Loss(None, None, **opts.loss_kwargs).phases()
    if intervals == (0, 0):
        assert [p for p, _ in phases] == ["Gboth", "Dboth" if opts.loss_kwargs.r1_gamma or opts.loss_kwargs.r2_gamma
                                          else "Dmain"]


def test_paper_filters_and_r2_strength(manifest_of_shape):
    opts = manifest_of_shape("Gorig-Dres-R2-3d-2mm-base567")
    assert opts.D_kwargs.resample_filter == [1, 3, 3, 3, 1]
    assert opts.G_kwargs.synthesis_kwargs.resample_filter == [1, 3, 3, 1]
    assert opts.loss_kwargs.r2_gamma == pytest.approx(10 / 112) == pytest.approx(0.0893, abs=1e-4)
    assert opts.loss_kwargs.r1_gamma == 0
    assert manifest_of_shape("Gorig-Dres-R2-3d-2mm-base567", r2_gamma=10.0).loss_kwargs.r2_gamma == 10.0


def test_gamma_sets_the_configs_own_penalty(manifest_of_shape):
    # The original's --gamma set its config's D penalty weight: R2's on the R2 config, where its R2 (summed over
    # three of four axes, then averaged over W) weighed gamma / W; R1's on the others.
    r2 = manifest_of_shape("Gorig-Dres-R2-3d-2mm-base567", gamma=5.0).loss_kwargs
    assert (r2.r1_gamma, r2.r2_gamma) == (0.0, pytest.approx(5.0 / 112))
    r1 = manifest_of_shape("Gorig-Dres-R1-3d-2mm-base567", gamma=5.0).loss_kwargs
    assert (r1.r1_gamma, r1.r2_gamma) == (5.0, 0.0)
    both = manifest_of_shape("Gorig-Dres-R2-3d-2mm-base567", gamma=5.0, r1_gamma=2.0).loss_kwargs
    assert (both.r1_gamma, both.r2_gamma) == (2.0, pytest.approx(5.0 / 112))
    assert manifest_of_shape("Gorig-Dres-3d-2mm-base567", gamma=1.5).loss_kwargs.r1_gamma == 1.5  # no penalty: R1
    with pytest.raises(ValueError, match="gamma and r2_gamma both set the R2 weight"):
        manifest_of_shape("Gorig-Dres-R2-3d-2mm-base567", gamma=5.0, r2_gamma=1.0)
    with pytest.raises(ValueError, match="gamma and r1_gamma both set the R1 weight"):
        manifest_of_shape("Gorig-Dres-R1-3d-2mm-base567", gamma=5.0, r1_gamma=1.0)


# (config, devices, --batch, global batch): the paper configs' batch is per device, as the original's
# run_training.py (minibatch_size_base = batch * num_gpus); --batch and the demo configs' batch are global.
BATCH_CASES = [
    ("Gorig-Dres-3d-1mm-base567", 4, None, 8),
    ("Gorig-Dres-3d-2mm-base567", 4, None, 32),
    ("Gorig-Dres-3d-2mm-base567", 1, None, 8),
    ("Gorig-Dres-R2-3d-2mm-base567", 2, None, 4),
    ("Gorig-Dres-3d-2mm-base567", 4, 12, 12),
    ("demo", 4, None, 4),
]


@pytest.mark.parametrize("config, devices, batch, expected", BATCH_CASES)
def test_global_batch_of_paper_configs(manifest_of_shape, config, devices, batch, expected):
    from training.train_options import global_batch

    opts = manifest_of_shape(config, **({} if batch is None else {"batch": batch}))
    assert global_batch(opts, devices) == expected
    # A per-device batch is named in the run directory once training_loop knows the devices.
    assert bool(re.search(r"-b\d+$", opts.desc)) == (batch is not None or config == "demo")


def test_resumed_run_keeps_its_global_batch(manifest_of_shape, tmp_path):
    # A 2 mm run started on 4 devices (global batch 32) continues at 32 on one device.
    from training.train_options import global_batch

    run = tmp_path / "00000-run"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("ckpt-5.index", "ckpt-5.data-00000-of-00001"):
        (run / "checkpoints" / name).write_bytes(b"x")  # only the files are looked at here
    config = "Gorig-Dres-3d-2mm-base567"
    EasyDict(batch_size=32, cli_args=dict(config=config, batch=None)).save_json(str(run / "training_options.json"))
    opts = manifest_of_shape(config, resume=str(run))
    assert opts.batch_size == 32 and global_batch(opts, 1) == 32


# -- D resampling: the layer D builds from the config, against NumPy filter-then-strided-conv ------------------------
def _np_pad(x, pads):
    return np.pad(x, [(0, 0), *pads, (0, 0)])


def _np_fir(x, taps):
    """Separable 'valid' FIR along axes 1..3 of [N,D,H,W,C] (taps symmetric: convolution = correlation)."""
    k = len(taps)
    for axis in (1, 2, 3):
        n = x.shape[axis] - k + 1
        x = sum(taps[t] * np.take(x, np.arange(t, t + n), axis=axis) for t in range(k))
    return x


def _np_strided_conv(x, w, stride=2):
    """'valid' cross-correlation with stride, as tf.nn.conv3d. x [N,D,H,W,Ci], w [k,k,k,Ci,Co]."""
    k = w.shape[0]
    out = [(n - k) // stride + 1 for n in x.shape[1:4]]
    y = 0
    for a in range(k):
        for b in range(k):
            for c in range(k):
                patch = x[:, a : a + stride * out[0] : stride, b : b + stride * out[1] : stride,
                          c : c + stride * out[2] : stride]
                y = y + patch @ w[a, b, c]
    return y


@pytest.mark.parametrize("kernel, pads", [(3, (3, 2)), (1, (2, 1))])
def test_d_downsampling_matches_numpy(kernel, pads):
    f = configs.get_config("Gorig-Dres-3d-2mm-base567").D_kwargs.resample_filter
    taps = np.asarray(f, np.float64) / np.sum(f)  # [1,3,3,3,1] / 11
    layer = networks.Conv3dLayer(3, 2, kernel, (5, 6, 7), bias=kernel == 3, down=(2, 2, 2), resample_filter=f)
    x = np.random.default_rng(0).normal(size=(2, 10, 12, 14, 3))
    got = layer(tf.constant(x, tf.float32)).numpy()
    w = layer.weight.numpy().astype(np.float64) * layer.weight_gain
    expected = _np_strided_conv(_np_fir(_np_pad(x, [pads] * 3), taps), w)
    assert got.shape == expected.shape == (2, 5, 6, 7, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


# -- R2: ours with the config's gamma equals the original's with gamma 10, on a toy D -------------------------------
SHAPE = (3, 4, 6)  # D, H, W: W = 6, so the original's effective weight is gamma / 6


class QuadraticD(tf.Module):
    """D(x) = sum(a x + b x^2 / 2) per sample: dD/dx = a + b x in closed form."""

    c_dim = 0

    def __init__(self, a, b):
        super().__init__()
        self.a, self.b = tf.constant(a, tf.float32), tf.constant(b, tf.float32)

    def __call__(self, img, c=None):
        return tf.reduce_sum(self.a * img + 0.5 * self.b * img * img, axis=[1, 2, 3, 4])[:, None]


class FixedFakesG(tf.Module):
    """A generator whose output is a fixed batch (R2 differentiates D only)."""

    c_dim, num_ws = 0, 1

    def __init__(self, fakes):
        super().__init__()
        self.fakes = tf.constant(fakes, tf.float32)
        self.mapping = lambda z, c=None: z[:, None, :]
        self.synthesis = lambda ws, noise_mode="random", noise=None: self.fakes


def _softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def test_r2_equals_the_originals_effective_strength():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(*SHAPE, 1)), rng.normal(size=(*SHAPE, 1))
    reals, fakes = rng.normal(size=(4, *SHAPE, 1)), rng.normal(size=(4, *SHAPE, 1))
    gamma = 10.0

    # The original (NCDHW): gradient penalty summed over axes [1, 2, 3] = C, D, H -> [N, W], added to the [N, 1]
    # logistic loss and the sum averaged over the [N, W] result.
    def d_out(x):
        return (a * x + 0.5 * b * x * x).sum(axis=(1, 2, 3, 4))

    loss = (_softplus(d_out(fakes)) + _softplus(-d_out(reals)))[:, None]
    grad_ncdhw = np.transpose(a + b * fakes, (0, 4, 1, 2, 3))
    penalty = np.sum(grad_ncdhw**2, axis=(1, 2, 3))  # [N, W]
    original = np.mean(loss + penalty * (gamma * 0.5))

    r2 = configs.original_r2_gamma(gamma, SHAPE)
    assert r2 == pytest.approx(gamma / SHAPE[-1])
    ours = StyleGAN2Loss(FixedFakesG(fakes), QuadraticD(a, b), r1_gamma=0, r2_gamma=r2, pl_weight=0,
                         G_reg_interval=0, D_reg_interval=0)
    inp = {"z": tf.zeros([4, 2]), "c": tf.zeros([4, 0]), "noise": []}
    objective, _ = ours.phase_objective("Dboth", inp, tf.constant(reals, tf.float32), tf.zeros([4, 0]), 4)
    assert float(objective) == pytest.approx(original, rel=1e-5)
    # With the nominal gamma our penalty is W times the original's: the reason the config stores gamma / W.
    strong = StyleGAN2Loss(FixedFakesG(fakes), QuadraticD(a, b), r1_gamma=0, r2_gamma=gamma, pl_weight=0,
                           G_reg_interval=0, D_reg_interval=0)
    objective10, _ = strong.phase_objective("Dboth", inp, tf.constant(reals, tf.float32), tf.zeros([4, 0]), 4)
    assert float(objective10) - loss.mean() == pytest.approx(SHAPE[-1] * (original - loss.mean()), rel=1e-5)


# -- Conditioning: StyleGAN2-ADA's form (kept), counted by hand for c_dim = 3 ---------------------------------------
def test_conditioning_parameter_counts():
    c = 3
    cfg = configs.get_config("demo-tiny")
    zw = cfg.G_kwargs.w_dim  # 16 = z_dim
    f0 = cfg.D_kwargs.fmap_max  # nf(0) = 8: the label-map width of D
    G0, D0 = configs.build_networks(cfg)
    G3, D3 = configs.build_networks(cfg, c_dim=c)
    # G: embedding dense c -> w_dim with bias, and the first mapping layer reads z_dim + w_dim inputs.
    assert networks.count_params(G3) - networks.count_params(G0) == (c * zw + zw) + zw * zw == 320
    # D: an 8-layer label mapping (dense c -> F with bias, then 8 dense F -> F with bias) and an output of width F
    # instead of 1, projected onto the mapped labels.
    d_extra = (c * f0 + f0) + 8 * (f0 * f0 + f0) + (f0 * f0 + f0) - (f0 + 1)
    assert networks.count_params(D3) - networks.count_params(D0) == d_extra == 671
