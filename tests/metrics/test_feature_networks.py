"""Feature networks load the user's files (never download) and say exactly what to provide when missing."""

import hashlib

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from metrics import feature_networks as fn


def _tiny_3d_model():
    inp = keras.Input((None, None, None, 1))
    h = keras.layers.Conv3D(4, 3, activation="relu", name="c1")(inp)
    h = keras.layers.Conv3D(5, 3, name="c2")(h)
    return keras.Model(inp, keras.layers.GlobalAveragePooling3D(name="gap")(h))


@pytest.fixture(scope="module")
def volumes():
    return np.random.default_rng(0).uniform(-1, 1, size=(3, 12, 10, 14, 1)).astype(np.float32)


def test_missing_inception_weights_say_what_to_provide(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError) as e:
        fn.find_inception_weights(None)
    msg = str(e.value)
    assert fn.INCEPTION_NOTOP_FILE in msg and f"'{fn.RANDOM}'" in msg and str(tmp_path) in msg
    with pytest.raises(FileNotFoundError, match="no such InceptionV3 weights file"):
        fn.find_inception_weights(str(tmp_path / "missing.h5"))
    # The Keras cache is found when present.
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / fn.INCEPTION_NOTOP_FILE).write_bytes(b"x")
    assert fn.find_inception_weights(None) == str(tmp_path / "models" / fn.INCEPTION_NOTOP_FILE)


def test_inception_loads_legacy_h5_weights(tmp_path):
    # The Keras cache file is a legacy HDF5 weights file: write one from a random network, load it back.
    src = keras.applications.InceptionV3(weights=None, include_top=False, pooling="avg", input_shape=(75, 75, 3))
    path = tmp_path / fn.INCEPTION_NOTOP_FILE
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, src)
    net = fn.slice_network(fn.KERAS_PREFIX + str(path), image_size=75)
    assert net.comparable and net.id.startswith("inception_v3-")
    assert net.network_id["name"] == fn.KERAS_NAME and net.network_id["standard"] is False
    assert net.network_id["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    for a, b in zip(net.model.get_weights(), src.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="could not load InceptionV3"):
        fn.keras_inception_v3(str(bad), image_size=75)


# feature_weights -> (kind, path) of the slice network, or the exception and message it raises.
SLICE_NETWORK_SPECS = [
    (None, ("fid", None)),
    ("", ("fid", None)),
    ("/w/inception-2015-12-05.tgz", ("fid", "/w/inception-2015-12-05.tgz")),
    ("/w/default_1.pt", ("fid", "/w/default_1.pt")),
    ("keras:/w/notop.h5", ("keras", "/w/notop.h5")),
    ("keras:", ("keras", None)),
    ("random", ("keras", fn.RANDOM)),
    ("/w/notop.h5", (ValueError, "keras:/w/notop.h5")),
    ("/w/model.keras", (ValueError, "not comparable with published")),
]


@pytest.mark.parametrize("spec, expected", SLICE_NETWORK_SPECS)
def test_parse_slice_network(spec, expected):
    if isinstance(expected[0], type):
        with pytest.raises(expected[0], match=expected[1]):
            fn.parse_slice_network(spec)
    else:
        assert fn.parse_slice_network(spec) == expected


@pytest.mark.parametrize("values, expected", [
    ([-1.0, -0.99, 0.0, 0.004, 1.0, 1.5, -2.0], [0, 1, 128, 128, 255, 255, 0]),
])
def test_fid_input_convention(values, expected):
    # round((s + 1) * 127.5) clipped to 0..255, grey repeated to RGB, no resize.
    s = np.asarray(values, np.float32).reshape(1, 1, -1)
    rgb = fn.fid_slice_images(s).numpy()
    assert rgb.shape == (1, 1, len(values), 3)
    for c in range(3):
        assert rgb[0, 0, :, c].tolist() == expected
    expected_np = np.clip(np.round((s.astype(np.float64) + 1) * 127.5), 0, 255)
    np.testing.assert_array_equal(rgb[..., 0], expected_np)


def test_3d_keras_model_layer_and_errors(tmp_path, volumes):
    model = _tiny_3d_model()
    path = str(tmp_path / "net.keras")
    model.save(path)
    net = fn.load_3d_network(path, "c2")
    expected = tf.reduce_mean(keras.Model(model.inputs, model.get_layer("c2").output)(volumes), axis=[1, 2, 3])
    np.testing.assert_allclose(net(volumes), expected.numpy(), rtol=1e-5, atol=1e-6)
    # The zero_one input scale feeds (x + 1) / 2.
    net01 = fn.load_3d_network(path, None, "zero_one")
    np.testing.assert_allclose(net01(volumes), model((volumes + 1) / 2).numpy(), rtol=1e-5, atol=1e-6)
    assert net.id != net01.id
    with pytest.raises(ValueError, match="'nope' is not a layer .*layers: .*c1"):
        fn.load_3d_network(path, "nope")
    with pytest.raises(FileNotFoundError, match="no such 3D feature network"):
        fn.load_3d_network(str(tmp_path / "missing.keras"))
    with pytest.raises(ValueError, match="input scale 'bogus'"):
        fn.load_3d_network(path, None, "bogus")


def test_3d_savedmodel(tmp_path, volumes):
    model = _tiny_3d_model()
    export = str(tmp_path / "sm")
    model.export(export, verbose=False)
    net = fn.load_3d_network(export)
    np.testing.assert_allclose(net(volumes), model(volumes).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="has outputs"):
        fn.load_3d_network(export, "not_an_output")


def test_zscore_scaling():
    x = tf.constant(np.random.default_rng(2).uniform(-1, 1, size=(2, 4, 4, 4, 1)).astype(np.float32))
    z = fn.scale_volumes(x, "zscore").numpy().reshape(2, -1)
    np.testing.assert_allclose(z.mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(1), 1, atol=1e-3)
