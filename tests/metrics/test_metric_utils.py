"""Feeding reals and fakes, counting, caching."""

import os

import numpy as np
import tensorflow as tf

from dnnlib import EasyDict
from metrics import metric_main, metric_utils
from tests.utils import FakeG, make_reals


def _opts(**kw):
    _, ds = make_reals()
    return metric_main.make_options(FakeG(), kw.pop("reals", ds), **kw)


def test_iterate_reals_caps_num_and_accepts_pairs():
    vols, _ = make_reals()
    opts = _opts(num=7, batch=4)
    got = np.concatenate(list(metric_utils.iterate_reals(opts)))
    np.testing.assert_array_equal(got, vols[:7])
    labelled = tf.data.Dataset.from_tensor_slices((vols, np.zeros((12, 2), np.float32))).batch(5)
    opts = _opts(num=20, batch=5, reals=labelled)
    assert sum(b.shape[0] for b in metric_utils.iterate_reals(opts)) == 12  # fewer reals than num: all of them


def test_iterate_fakes_seeded_and_clipped():
    opts = _opts(num=6, batch=4, seed=3)
    a = np.concatenate(list(metric_utils.iterate_fakes(opts)))
    b = np.concatenate(list(metric_utils.iterate_fakes(opts)))
    assert a.shape == (6, 16, 16, 16, 1)
    np.testing.assert_array_equal(a, b)
    z = np.random.RandomState(3).randn(6, 8).astype(np.float32)
    np.testing.assert_allclose(a, np.clip(opts.G(tf.constant(z)).numpy(), -1, 1), atol=1e-6)

    class Loud(FakeG):
        def __call__(self, z, c=None, psi=1.0, noise_mode="random"):
            return super().__call__(z) * 10

    opts.G, opts.session = Loud(), {}  # a new generator is a new session
    out = np.concatenate(list(metric_utils.iterate_fakes(opts)))
    assert out.max() == 1.0 and out.min() == -1.0


def test_a_generators_random_noise_comes_from_the_seed_whatever_the_batch():
    # A metric's value must not change from run to run: the noise maps of a real Generator are drawn from the seed,
    # volume after volume, so the first fakes are the same at any batch size, and they are the maps written out.
    from training import configs

    tf.random.set_seed(0)
    G, _ = configs.build_networks(configs.get_config("demo-tiny"))
    strengths = [v for v in G.synthesis.variables if "noise_strength" in v.name]
    assert strengths
    for v in strengths:  # 0 in a fresh network, as StyleGAN2's: the maps would not reach the volumes
        v.assign(tf.fill(v.shape, 0.5))
    reals = tf.data.Dataset.from_tensor_slices(np.zeros((4, 20, 24, 28, 1), np.float32)).batch(2)

    def fakes(batch, seed=3, noise_mode="random", num=5):
        opts = metric_main.make_options(G, reals, num=num, batch=batch, seed=seed, noise_mode=noise_mode)
        return np.concatenate(list(metric_utils.iterate_fakes(opts)))

    a = fakes(2)
    np.testing.assert_array_equal(a, fakes(2))
    np.testing.assert_allclose(fakes(3), a, atol=1e-5)  # other padding, same first five
    draw = metric_utils.fake_noise(G, 3, "random")
    maps = [np.concatenate(parts) for parts in zip(draw(2), draw(3), strict=True)]
    z = np.random.RandomState(3).randn(5, G.z_dim).astype(np.float32)
    want = G.synthesis(G.mapping(tf.constant(z)), noise=[tf.constant(m) for m in maps]).numpy()
    np.testing.assert_allclose(a, np.clip(want, -1, 1), atol=1e-5)
    assert np.abs(fakes(2, seed=4) - a).max() > 1e-3
    assert np.abs(fakes(2, noise_mode="const") - a).max() > 1e-4  # the maps do reach the volumes
    assert metric_utils.fake_noise(G, 3, "const") is None and metric_utils.fake_noise(FakeG(), 3, "random") is None


def test_collect_counts_volumes():
    batches = [np.zeros((3, 2, 2, 2, 1)), np.zeros((2, 2, 2, 2, 1))]
    out = metric_utils.collect(batches, lambda b: {"f": np.ones((b.shape[0] * 3, 4))})
    assert metric_utils.count(out) == 5 and out["f"].shape == (15, 4)


def test_resolve_generator_unwraps_loaded_network():
    G = FakeG()
    assert metric_utils.resolve_generator(EasyDict(G=G, geometry={})) is G
    assert metric_utils.resolve_generator(G) is G


def test_no_cache_without_dataset_key_and_unwritable_cache(tmp_path, capsys):
    opts = _opts(num=4)
    assert opts.dataset_key is None and metric_utils._cache_path(opts, "t", {}) is None
    opts.dataset_key = "k"
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    opts.cache_dir = str(blocker / "cache")  # cannot be created, even as root
    out = metric_utils.cached_reals(opts, "t", {}, lambda: {"x": np.arange(3)})
    np.testing.assert_array_equal(out["x"], np.arange(3))
    assert "continuing without it" in capsys.readouterr().out
    # A writable cache directory gets one file per key.
    opts.cache_dir, opts.session = str(tmp_path / "cache"), {}
    metric_utils.cached_reals(opts, "t", {"a": 1}, lambda: {"x": np.arange(3)})
    assert len(os.listdir(tmp_path / "cache")) == 1


class ModuleG(tf.Module):
    """A tf.Module generator (as training.networks.Generator): traced once, last batch padded then trimmed."""

    def __init__(self):
        super().__init__()
        self.z_dim, self.c_dim = 4, 0
        self.w = tf.Variable(np.random.default_rng(0).normal(size=(4, 2 * 3 * 4)).astype(np.float32))
        self.traces = 0

    def __call__(self, z, c=None, psi=1.0, noise_mode="random"):
        self.traces += 1  # Python side effect: counts traces under tf.function
        return tf.reshape(tf.tanh(z @ self.w) * psi, [-1, 2, 3, 4, 1])


def test_module_generator_traced_once_and_trimmed():
    G = ModuleG()
    _, ds = make_reals()
    opts = metric_main.make_options(G, ds, num=7, batch=3, psi=0.5)
    out = np.concatenate(list(metric_utils.iterate_fakes(opts)))
    assert out.shape == (7, 2, 3, 4, 1) and G.traces == 1
    z = np.random.RandomState(0).randn(7, 4).astype(np.float32)
    np.testing.assert_allclose(out[..., 0], np.tanh(z @ G.w.numpy()).reshape(7, 2, 3, 4) * 0.5, atol=1e-6)
