"""Feature networks: the standard FID Inception for slice metrics, Keras' InceptionV3 as a named alternative, and
any 3D network from the user's files.

* Slice metrics (fid_slices, kid, pr_slices) take grey slices [B, h, w] in [-1, 1]; each slice network brings its
  own input convention. `feature_weights` chooses the network (slice_network):
  - None: the standard FID Inception (inception-2015-12-05, pool_3, 2048-d; metrics/fid_inception.py), from the
    cache or a sha256-pinned download (metrics/fid_inception_weights.py). Its numbers are comparable with
    published FIDs (TTUR, StyleGAN2, pytorch-fid) and with the original 3D-StyleGAN's.
  - a file (.pb, .tgz, our .npz, TorchScript .pt): the same network from local weights. Input: slices in the
    uint8 range round((s + 1) * 127.5), grey repeated to RGB, no resize (the network resizes as its graph does).
  - "keras:<file>" (or "keras:" for the Keras cache): Keras' ImageNet InceptionV3 (notop .h5, full-top .h5,
    .weights.h5 or .keras) with its 2048-d average pool. Different weights and preprocessing: its numbers are NOT
    comparable with published FIDs. Input: slices resized bilinearly to image_size, [-1, 1], grey to RGB.
  - "random": Keras' InceptionV3 with random weights, to exercise the plumbing (numbers mean nothing).
  Each network records which network and weights it is (network_id: name, weights_sha256, file, standard).
* Any 3D network (for 3D FID/KID/...): a Keras model file (.keras/.h5) with an optional layer name, or a
  TensorFlow SavedModel directory with an optional output key; spatial outputs are averaged to a vector.
"""

import os

import numpy as np
import tensorflow as tf

from dnnlib.digest import sha256_path
from dnnlib.errors import InputError
from metrics.metric_options import INPUT_SCALES

INCEPTION_NOTOP_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_TOP_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
RANDOM = "random"
KERAS_PREFIX = "keras:"
KERAS_NAME = "keras-inception_v3-imagenet"


class FeatureNetwork:
    """A callable np.ndarray batch -> np.ndarray [B, d] float32, with an id that keys caches.

    network_id: what produced the features (name, weights_sha256, file, standard), recorded with every result.
    """

    def __init__(self, fn, ident, comparable, description, model=None, network_id=None, image_size=None):
        self._fn = fn
        self.model = model  # the Keras model or loaded SavedModel behind fn (kept alive with it)
        self.id = ident
        self.comparable = comparable  # False for random weights: never cache or compare such numbers
        self.description = description
        self.network_id = dict(network_id or {"name": description})
        self.image_size = image_size  # what slices are resized to before the network; None: the network resizes

    def __call__(self, batch):
        return np.asarray(self._fn(tf.convert_to_tensor(batch, tf.float32)), np.float32)


def file_digest(path):
    """sha256 of a file, or of every file under a directory (names included), to key caches."""
    return sha256_path(path, names=True)[:16]


def keras_cache_dir():
    return os.path.join(os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras")), "models")


# -- slice networks ------------------------------------------------------------------------------------------------
def parse_slice_network(feature_weights):
    """("fid", path or None) for the standard FID Inception, or ("keras", path, None or RANDOM) for Keras'."""
    spec = os.fspath(feature_weights) if feature_weights else None
    if spec == RANDOM:
        return "keras", RANDOM
    if spec and spec.startswith(KERAS_PREFIX):
        return "keras", spec[len(KERAS_PREFIX):] or None
    if spec and spec.lower().endswith((".h5", ".keras")):
        raise InputError(f"{spec}: Keras InceptionV3 weights give slice FIDs that are not comparable with published "
                         f"ones; to use them anyway name them {KERAS_PREFIX}{spec}, or give the standard FID "
                         "Inception weights (classify_image_graph_def.pb, inception-2015-12-05.tgz, a converted .npz "
                         "or a TorchScript .pt), or nothing for the cached or downloaded standard network")
    return "fid", spec


def check_slice_network(feature_weights, cache_dir=None):
    """Fail fast (FileNotFoundError / ValueError saying what to provide) when the slice network cannot be had."""
    from metrics import fid_inception_weights

    kind, path = parse_slice_network(feature_weights)
    if kind == "keras":
        find_inception_weights(path)
    elif path is None:
        fid_inception_weights.check_default_available(cache_dir)
    else:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such FID Inception weights file")
        fid_inception_weights.detect_format(path)


def slice_network(feature_weights=None, image_size=299, cache_dir=None, log=print):
    """The FeatureNetwork of the slice metrics: grey slices [B, h, w] in [-1, 1] -> [B, 2048] (see module doc)."""
    kind, path = parse_slice_network(feature_weights)
    if kind == "keras":
        return keras_inception_v3(path, image_size)
    return fid_inception(path, cache_dir=cache_dir, log=log)


def fid_slice_images(slices):
    """The standard network's input: grey [B, h, w] in [-1, 1] -> RGB in the uint8 range, as an 8-bit PNG holds."""
    s = tf.clip_by_value(tf.round((tf.convert_to_tensor(slices, tf.float32) + 1.0) * 127.5), 0.0, 255.0)
    return tf.tile(s[..., None], [1, 1, 1, 3])


def keras_slice_images(slices, size=299):
    """Keras InceptionV3's input: grey [B, h, w] in [-1, 1] -> RGB [B, size, size, 3] in [-1, 1], bilinear."""
    s = tf.image.resize(tf.convert_to_tensor(slices, tf.float32)[..., None], [size, size], method="bilinear")
    return tf.tile(s, [1, 1, 1, 3])


def fid_inception(path=None, cache_dir=None, log=print):
    """The standard FID Inception as a slice network; path None: cached or downloaded (pinned sha256)."""
    from metrics import fid_inception as fi
    from metrics.fid_inception_weights import load_fid_inception

    net = load_fid_inception(path, cache_dir=cache_dir, log=log)
    ident = net.network_id()
    standard = bool(ident.get("standard"))
    desc = f"{fi.NAME} ({ident.get('file', 'weights')}{'' if standard else ', NOT the standard weights'})"
    return FeatureNetwork(lambda s: net(fid_slice_images(s)), f"fid-inception-{net.weights_sha256[:16]}", True, desc,
                          model=net, network_id=ident, image_size=None)


def find_inception_weights(feature_weights=None):
    """Path of the user's Keras InceptionV3 weights, or RANDOM; FileNotFoundError saying exactly what to provide."""
    if feature_weights == RANDOM:
        return RANDOM
    if feature_weights:
        if not os.path.isfile(feature_weights):
            raise FileNotFoundError(f"{feature_weights}: no such InceptionV3 weights file")
        return feature_weights
    for name in (INCEPTION_NOTOP_FILE, INCEPTION_TOP_FILE):
        cached = os.path.join(keras_cache_dir(), name)
        if os.path.isfile(cached):
            return cached
    raise FileNotFoundError(
        "Keras InceptionV3 weights are never downloaded: give the path of "
        f"{INCEPTION_NOTOP_FILE} (the Keras ImageNet notop weights, also accepted: {INCEPTION_TOP_FILE}, "
        "a .weights.h5 or .keras file of keras.applications.InceptionV3) as keras:<path>, or place it at "
        f"{os.path.join(keras_cache_dir(), INCEPTION_NOTOP_FILE)}. The value '{RANDOM}' runs the plumbing with "
        "random weights (numbers not comparable)."
    )


def keras_inception_v3(feature_weights=None, image_size=299):
    """Keras' InceptionV3 (2048-d average pool) as a slice network: grey slices [B, h, w] in [-1, 1] are resized to
    image_size and repeated to RGB (Keras' own preprocessing range). Not the standard FID network."""
    import keras

    path = find_inception_weights(feature_weights)
    shape = (image_size, image_size, 3)
    model = keras.applications.InceptionV3(weights=None, include_top=False, pooling="avg", input_shape=shape)
    if path == RANDOM:
        ident, comparable, desc = "inception_v3-random-init", False, "InceptionV3, RANDOM weights (not comparable)"
        network_id = {"name": "keras-inception_v3-random-init", "weights_sha256": None, "standard": False}
    else:
        _check_weights_container(path)
        try:
            model.load_weights(path)
        except Exception as notop_error:  # maybe the with-top file: load into the full net, take its pool layer
            try:
                full = keras.applications.InceptionV3(weights=None, include_top=True, input_shape=(299, 299, 3))
                full.load_weights(path)
                model.set_weights(_notop_weights(full, model))
            except Exception:
                raise InputError(
                    f"{path}: could not load InceptionV3 weights from it ({notop_error}); "
                    f"expected Keras' {INCEPTION_NOTOP_FILE}"
                ) from None
        ident, comparable = f"inception_v3-{file_digest(path)}-{image_size}", True
        desc = f"Keras InceptionV3 ({os.path.basename(path)}; not comparable with published FIDs)"

        network_id = {"name": KERAS_NAME, "weights_sha256": sha256_path(path), "file": os.path.basename(path),
                      "standard": False}

    # One trace for every batch size: tracing InceptionV3 is expensive.
    @tf.function(input_signature=[tf.TensorSpec([None, *shape], tf.float32)])
    def run(x):
        return model(x, training=False)

    return FeatureNetwork(lambda s: run(keras_slice_images(s, image_size)), ident, comparable, desc, model,
                          network_id=network_id, image_size=image_size)


def _check_weights_container(path):
    # Fail fast, before building networks: Keras weights are HDF5 (.h5, .weights.h5) or a zip archive (.keras).
    import zipfile

    import h5py

    if not (h5py.is_hdf5(path) or zipfile.is_zipfile(path)):
        raise InputError(f"{path}: not an HDF5 or .keras file; could not load InceptionV3 weights from it "
                         f"(expected Keras' {INCEPTION_NOTOP_FILE})")


def _notop_weights(full, notop):
    # Both nets list their convolutional weights in the same order; the top adds only the final dense layer.
    return full.get_weights()[: len(notop.get_weights())]


def scale_volumes(x, input_scale):
    """Map volumes in [-1, 1] to what a 3D feature network expects."""
    if input_scale == "minus_one_one":
        return x
    if input_scale == "zero_one":
        return (x + 1.0) * 0.5
    if input_scale == "zscore":  # per volume over all voxels, as MedicalNet-style preprocessing
        axes = list(range(1, x.shape.rank))
        mean, var = tf.nn.moments(x, axes=axes, keepdims=True)
        return (x - mean) / tf.sqrt(var + 1e-8)
    raise InputError(f"unknown input scale {input_scale!r} for a 3D feature network: choose one of "
                     f"{', '.join(INPUT_SCALES)}")


def _pool_to_vector(y):
    y = tf.convert_to_tensor(y)
    if y.shape.rank > 2:  # spatial feature map [B, ..., C] -> [B, C]
        y = tf.reduce_mean(y, axis=list(range(1, y.shape.rank - 1)))
    return tf.cast(y, tf.float32)


def load_3d_network(path, layer=None, input_scale="minus_one_one"):
    """A 3D feature network from a Keras model file or SavedModel directory; input volumes [B,D,H,W,C] in [-1,1]."""
    if not path:
        raise InputError("no 3D feature network given: a Keras .keras/.h5 model or SavedModel directory is needed")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such 3D feature network (file or directory)")
    scale_volumes(tf.zeros([1, 1]), input_scale)  # validate early
    if os.path.isdir(path):
        fn, desc, model = _savedmodel_fn(path, layer)
    else:
        fn, desc, model = _keras_fn(path, layer)

    @tf.function(reduce_retracing=True)
    def run(x):
        return _pool_to_vector(fn(scale_volumes(x, input_scale)))

    ident = f"net3d-{file_digest(path)}-{layer or 'output'}-{input_scale}"
    return FeatureNetwork(run, ident, True, f"{desc}, input {input_scale}", model)


def _keras_fn(path, layer):
    import keras

    try:
        # safe_mode refuses Lambda layers and other deserialised Python code in a .keras file.
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as e:
        raise InputError(f"{path}: not a loadable Keras model ({type(e).__name__}: {e})") from None
    if layer:
        names = [lyr.name for lyr in model.layers]
        if layer not in names:
            raise InputError(f"feature layer {layer!r} is not a layer of {path}; layers: {', '.join(names)}")
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # keep the single-tensor call form
        model = keras.Model(inputs, model.get_layer(layer).output)
    return (lambda x: model(x, training=False)), f"Keras model {os.path.basename(path)}:{layer or 'output'}", model


def _savedmodel_fn(path, key):
    try:
        loaded = tf.saved_model.load(path)
        sig = loaded.signatures["serving_default"]
    except Exception as e:
        raise InputError(f"{path}: not a SavedModel with a serving_default signature ({e})") from None
    outputs = list(sig.structured_outputs)
    if key is None and len(outputs) == 1:
        key = outputs[0]
    if key not in outputs:
        raise InputError(f"feature output {key!r}: {path} has outputs {', '.join(outputs)}; name one")
    _, kwargs = sig.structured_input_signature
    if len(kwargs) != 1:
        raise InputError(f"{path}: expected a SavedModel with one input tensor, found {', '.join(kwargs)}")
    arg = next(iter(kwargs))
    desc = f"SavedModel {os.path.basename(os.path.normpath(path))}:{key}"
    # `loaded` must outlive the signature (it owns the variables): FeatureNetwork keeps it as .model.
    return (lambda x: sig(**{arg: x})[key]), desc, loaded
