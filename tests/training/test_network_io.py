"""training/network_io.py: run dirs, checkpoint prefixes and SavedModels all give the same generator."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from dnnlib import EasyDict
from training import configs, networks
from training import network_io as network_loader

MANIFEST = {"format": "stylegan3d-tfrecord-v1", "shape": [20, 24, 28], "channels": 1, "spacing": [8, 8, 8],
            "affine": [[-8, 0, 0, 76], [0, 8, 0, -92], [0, 0, 8, -108], [0, 0, 0, 1]], "orientation": "RAS",
            "mirror_axis": 0, "labels": None}


def _perturb(G, seed):
    # Freshly built networks share init statistics; distinct weights make the comparisons meaningful.
    rng = np.random.default_rng(seed)
    for v in G.variables:
        v.assign(rng.normal(size=v.shape).astype(np.float32) * 0.5)


def make_run(tmp_path, g_kwargs_from="get_config", steps=(1,)):
    """A run directory like training_loop writes: options, manifest, CheckpointManager checkpoints."""
    run = tmp_path / "00000-demo-tiny"
    run.mkdir()
    cfg = configs.get_config("demo-tiny")
    G, D = configs.build_networks(cfg)
    G_ema = networks.Generator(**G.get_config())
    opts = EasyDict(cfg)
    opts.G_kwargs = G.get_config() if g_kwargs_from == "get_config" else cfg.G_kwargs
    opts.save_json(str(run / "training_options.json"))
    (run / "dataset.json").write_text(json.dumps(MANIFEST))
    step = tf.Variable(0, dtype=tf.int64)
    ckpt = tf.train.Checkpoint(G=G, D=D, G_ema=G_ema, G_opt=tf.keras.optimizers.Adam(),
                               D_opt=tf.keras.optimizers.Adam(), state=tf.train.Checkpoint(step=step))
    manager = tf.train.CheckpointManager(ckpt, str(run / "checkpoints"), max_to_keep=3)
    for i, s in enumerate(steps):
        _perturb(G_ema, seed=100 + i)
        _perturb(G, seed=200 + i)
        step.assign(s)
        manager.save(checkpoint_number=s)
    return run, G_ema


def _volumes(G, seed=0, psi=0.7):
    z = tf.constant(np.random.default_rng(seed).normal(size=(2, G.z_dim)).astype(np.float32))
    return G(z, psi=psi, noise_mode="const").numpy()


def test_run_dir_and_checkpoint_prefix_restore_ema(tmp_path):
    run, G_ema = make_run(tmp_path, steps=(1, 2))
    expect = _volumes(G_ema)
    net = network_loader.load_generator(str(run))
    np.testing.assert_array_equal(_volumes(net.G), expect)  # latest checkpoint, EMA weights (not G)
    assert net.geometry["affine"] == MANIFEST["affine"] and net.geometry["spacing"] == [8, 8, 8]
    assert net.options["G_kwargs"]["z_dim"] == 16 and net.source.endswith("ckpt-2")
    from_dir = network_loader.load_generator(run / "checkpoints")  # the checkpoints folder: latest
    assert from_dir.source.endswith("ckpt-2")
    older = network_loader.load_generator(str(run / "checkpoints" / "ckpt-1"))
    assert older.source.endswith("ckpt-1")
    assert np.abs(_volumes(older.G) - expect).max() > 1e-3


def test_options_with_config_style_g_kwargs(tmp_path):
    # G_kwargs without c_dim / img_channels (as in configs.py): those come from the manifest.
    run, G_ema = make_run(tmp_path, g_kwargs_from="config")
    net = network_loader.load_generator(run)
    np.testing.assert_array_equal(_volumes(net.G), _volumes(G_ema))


def test_missing_manifest_gives_default_geometry(tmp_path):
    run, _ = make_run(tmp_path)
    os.remove(run / "dataset.json")
    geo = network_loader.load_generator(run).geometry
    assert geo["shape"] == [20, 24, 28] and geo["spacing"] == [8.0, 8.0, 8.0]
    affine = np.array(geo["affine"])
    centre = affine @ np.array([9.5, 11.5, 13.5, 1.0])
    np.testing.assert_allclose(centre[:3], 0.0)


def _edit_options(run, edit):
    opts = json.loads((run / "training_options.json").read_text())
    edit(opts)
    (run / "training_options.json").write_text(json.dumps(opts))


def _other_architecture(opts):
    # Options that describe another architecture: the checkpoint does not fit.
    opts["G_kwargs"]["synthesis_kwargs"]["fmap_max"] = 16
    opts["G_kwargs"]["synthesis_kwargs"]["fmap_base"] = 16


def _empty_run(tmp_path):
    empty = tmp_path / "empty-run"
    empty.mkdir()
    (empty / "training_options.json").write_text("{}")
    return empty


# (what to break, the path to load, the exception, its message): each a plain exception naming the path.
BAD_NETWORKS = [
    ("missing", lambda tmp, run: tmp / "nope", FileNotFoundError, "no such file"),
    ("not a network", lambda tmp, run: tmp / "elsewhere", ValueError, "not a network"),
    ("other architecture", lambda tmp, run: _edit_options(run, _other_architecture) or run, ValueError,
     "does not hold this generator"),
    ("no G_kwargs", lambda tmp, run: _edit_options(run, lambda o: o.pop("G_kwargs")) or run, ValueError, "G_kwargs"),
    ("bad JSON", lambda tmp, run: (run / "training_options.json").write_text("{not json") and run, ValueError,
     "not valid JSON"),
    ("prefix without options", lambda tmp, run: os.remove(run / "training_options.json") or
     run / "checkpoints" / "ckpt-1", FileNotFoundError, "training_options.json"),
    ("no checkpoint", lambda tmp, run: _empty_run(tmp), FileNotFoundError, "no checkpoint"),
]


@pytest.mark.parametrize("name, break_it, error, match", BAD_NETWORKS, ids=[c[0] for c in BAD_NETWORKS])
def test_bad_networks_raise_plain_errors(tmp_path, name, break_it, error, match):
    run, _ = make_run(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    path = break_it(tmp_path, run)
    with pytest.raises(error, match=match) as e:
        network_loader.load_generator(path)
    assert "--" not in str(e.value)


def test_saved_model_export_reload_identical(tmp_path):
    tf.random.set_seed(3)
    G = networks.Generator(**configs.build_networks("demo-tiny", c_dim=2)[0].get_config())
    _perturb(G, seed=7)
    geometry = {**MANIFEST, "shape": list(G.img_shape)}
    geometry = {k: geometry[k] for k in ("shape", "spacing", "affine", "orientation", "mirror_axis")}
    export = tmp_path / "generator"
    network_loader.export_generator(G, geometry, str(export))
    meta = json.loads((export / "assets" / "generator.json").read_text())
    assert meta["G_kwargs"] == json.loads(json.dumps(G.get_config())) and meta["geometry"] == geometry

    z = tf.constant(np.random.default_rng(1).normal(size=(3, G.z_dim)).astype(np.float32))
    c = tf.one_hot([0, 1, 1], 2)
    expect = G(z, c, psi=0.6, noise_mode="const").numpy()
    served = tf.saved_model.load(str(export)).signatures["serving_default"]
    out = served(z=z, c=c, psi=tf.constant(0.6))["volume"].numpy()
    net = network_loader.load_generator(str(export))
    again = net.G(z, c, psi=0.6, noise_mode="const").numpy()
    # Same graph -> bit-identical; graph vs eager differ only by float rounding of fused kernels.
    np.testing.assert_array_equal(out, network_loader._serving_fn(net.G)(z, c, tf.constant(0.6))["volume"].numpy())
    np.testing.assert_array_equal(again, expect)
    snapshot = network_loader.load_generator(tmp_path)  # a snapshot folder holding generator/
    np.testing.assert_array_equal(snapshot.G(z, c, psi=0.6, noise_mode="const").numpy(), expect)
    np.testing.assert_allclose(out, expect, rtol=0, atol=1e-5)
    assert net.geometry == geometry
    for a, b in zip(G.variables, net.G.variables, strict=True):  # w_avg and const noise maps too
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    # Existing directory refused without overwrite, left untouched.
    before = sorted(os.listdir(export))
    with pytest.raises(FileExistsError, match="already exists"):
        network_loader.export_generator(G, geometry, str(export))
    assert sorted(os.listdir(export)) == before


def test_failed_export_leaves_nothing(tmp_path, monkeypatch):
    G = configs.build_networks("demo-tiny")[0]
    with pytest.raises(TypeError):
        network_loader.export_generator(G, {"shape": object()}, str(tmp_path / "gen"))

    def half_written(obj, export_dir, signatures=None, options=None):
        open(os.path.join(export_dir, "saved_model.pb"), "w").close()
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", half_written)
    with pytest.raises(OSError, match="disk full"):
        network_loader.export_generator(G, network_loader.default_geometry(G.img_shape), str(tmp_path / "gen"))
    assert os.listdir(tmp_path) == []


# How a run's checkpoint folder gets damaged, and which checkpoint the loader must then use (the one rule of
# training.checkpoints: files on disk, newest intact first; an unreadable one is skipped with a warning).
DAMAGES = [
    ("garbage state file", lambda d: open(os.path.join(d, "checkpoint"), "w").write("#@!"), "ckpt-2"),
    ("empty state file", lambda d: open(os.path.join(d, "checkpoint"), "w").close(), "ckpt-2"),
    ("truncated newest data", lambda d: [os.truncate(os.path.join(d, f), os.path.getsize(os.path.join(d, f)) // 3)
                                         for f in os.listdir(d) if f.startswith("ckpt-2.data")], "ckpt-1"),
]


@pytest.mark.parametrize("how, damage, expected", DAMAGES, ids=[d[0] for d in DAMAGES])
def test_damaged_checkpoints_load_the_newest_intact_one(tmp_path, recwarn, how, damage, expected):
    run, _ = make_run(tmp_path, steps=(1, 2))
    want = _volumes(network_loader.load_generator(str(run / "checkpoints" / expected)).G)
    damage(str(run / "checkpoints"))
    net = network_loader.load_generator(str(run))
    assert net.source.endswith(expected)
    np.testing.assert_array_equal(_volumes(net.G), want)
    skipped = [w for w in recwarn if "unreadable" in str(w.message)]
    assert len(skipped) == (expected != "ckpt-2")
