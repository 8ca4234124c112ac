"""The standard FID Inception network (TensorFlow graph inception-2015-12-05, 2048-d `pool_3` features) as a plain
tf.Module, so that FID numbers are comparable with TTUR, TF-GAN, StyleGAN2/-ADA, pytorch-fid and clean-fid.

Input: float images [N, H, W, 3] in the uint8 range [0, 255], any H and W. As the TF graph does, they are resized to
299x299 with its ResizeBilinear op (align_corners=False and, the graph being from 2015, the legacy pixel convention:
output pixel i samples input coordinate i * in_size / 299, not the half-pixel centres of today's tf.image.resize),
then mapped to [-1, 1) by (x - 128) / 128.
Each convolution is followed by the graph's batch normalisation (BatchNormWithGlobalNormalization: moving mean and
variance, epsilon 0.001, beta; gamma only where the graph says scale_after_normalization) and a ReLU. Quirks of that
graph that other InceptionV3 implementations do not share are kept: average pools in the blocks do not count the
padding, and the last block's pool branch is a max pool.

Weights: a dict {TF graph Const name: np.ndarray}, convolution kernels HWIO as in the graph, e.g.
"mixed_9/tower/mixed/conv/conv2d_params" and "mixed_9/tower/mixed/conv/batchnorm/moving_mean"; the loaders in
metrics/fid_inception_weights.py produce it from the .pb/.tgz, our .npz, or (via the torch converter) TorchScript.
"""

import hashlib
import json

import numpy as np
import tensorflow as tf

NAME = "fid-inception-2015-12-05"
FEATURE_DIM = 2048
INPUT_SIZE = 299
DEFAULT_EPSILON = 1e-3

# (scope, stride, padding) of every convolution in graph order; a scope's weights are scope + "/conv2d_params" and
# its batch norm scope + "/batchnorm/{moving_mean,moving_variance,beta[,gamma]}".
_STEM = [("conv", 2, "VALID"), ("conv_1", 1, "VALID"), ("conv_2", 1, "SAME"), ("conv_3", 1, "VALID"),
         ("conv_4", 1, "VALID")]
_BLOCK_A = ["mixed", "mixed_1", "mixed_2"]
_BLOCK_C = ["mixed_4", "mixed_5", "mixed_6", "mixed_7"]
_BLOCK_E = ["mixed_9", "mixed_10"]


def conv_scopes():
    """Every convolution scope of the network, in graph order, with its stride and padding."""
    s = list(_STEM)
    for m in _BLOCK_A:
        s += [(f"{m}/conv", 1, "SAME"), (f"{m}/tower/conv", 1, "SAME"), (f"{m}/tower/conv_1", 1, "SAME"),
              (f"{m}/tower_1/conv", 1, "SAME"), (f"{m}/tower_1/conv_1", 1, "SAME"),
              (f"{m}/tower_1/conv_2", 1, "SAME"), (f"{m}/tower_2/conv", 1, "SAME")]
    s += [("mixed_3/conv", 2, "VALID"), ("mixed_3/tower/conv", 1, "SAME"), ("mixed_3/tower/conv_1", 1, "SAME"),
          ("mixed_3/tower/conv_2", 2, "VALID")]
    for m in _BLOCK_C:
        s += [(f"{m}/conv", 1, "SAME")]
        s += [(f"{m}/tower/conv{k}", 1, "SAME") for k in ("", "_1", "_2")]
        s += [(f"{m}/tower_1/conv{k}", 1, "SAME") for k in ("", "_1", "_2", "_3", "_4")]
        s += [(f"{m}/tower_2/conv", 1, "SAME")]
    s += [("mixed_8/tower/conv", 1, "SAME"), ("mixed_8/tower/conv_1", 2, "VALID"),
          ("mixed_8/tower_1/conv", 1, "SAME"), ("mixed_8/tower_1/conv_1", 1, "SAME"),
          ("mixed_8/tower_1/conv_2", 1, "SAME"), ("mixed_8/tower_1/conv_3", 2, "VALID")]
    for m in _BLOCK_E:
        s += [(f"{m}/conv", 1, "SAME"), (f"{m}/tower/conv", 1, "SAME"), (f"{m}/tower/mixed/conv", 1, "SAME"),
              (f"{m}/tower/mixed/conv_1", 1, "SAME"), (f"{m}/tower_1/conv", 1, "SAME"),
              (f"{m}/tower_1/conv_1", 1, "SAME"), (f"{m}/tower_1/mixed/conv", 1, "SAME"),
              (f"{m}/tower_1/mixed/conv_1", 1, "SAME"), (f"{m}/tower_2/conv", 1, "SAME")]
    return s


BN_PARTS = ("moving_mean", "moving_variance", "beta")


def required_weight_names():
    names = []
    for scope, _, _ in conv_scopes():
        names.append(f"{scope}/conv2d_params")
        names += [f"{scope}/batchnorm/{p}" for p in BN_PARTS]
    return names


def weights_digest(weights, epsilon=DEFAULT_EPSILON):
    """sha256 of the network's numbers (names, shapes, float32 bytes of the weights it uses, and epsilon): the same
    for the same weights whatever file (.pb, .tgz, .pt, .npz) they came from."""
    h = hashlib.sha256()
    names = required_weight_names() + sorted(n for n in weights if n.endswith("/batchnorm/gamma"))
    for n in sorted(names):
        a = np.ascontiguousarray(np.asarray(weights[n], np.float32))
        h.update(json.dumps([n, list(a.shape)]).encode())
        h.update(a.tobytes())
    h.update(json.dumps({"variance_epsilon": normalize_epsilon(epsilon)}).encode())
    return h.hexdigest()


def check_weights(weights):
    """ValueError naming every missing or malformed entry."""
    missing = [n for n in required_weight_names() if n not in weights]
    if missing:
        raise ValueError(f"FID Inception weights lack {len(missing)} of {len(required_weight_names())} tensors, "
                         f"e.g. {', '.join(missing[:5])}")
    for scope, shape in _kernel_shapes().items():
        k = tuple(np.shape(weights[f"{scope}/conv2d_params"]))
        if k != shape:
            raise ValueError(f"{scope}/conv2d_params: expected an HWIO kernel of shape {shape}, got {k}")
        for p in BN_PARTS + ("gamma",):
            name = f"{scope}/batchnorm/{p}"
            if name in weights and np.shape(weights[name]) != (shape[3],):
                raise ValueError(f"{name}: expected shape ({shape[3]},), got {np.shape(weights[name])}")


def normalize_epsilon(eps):
    """The graph stores epsilon as float32; use its shortest decimal (0.001) so every source gives the same id."""
    return float(np.format_float_positional(np.float32(eps)))


def resize_like_tf_graph(images, size=INPUT_SIZE):
    """The graph's ResizeBilinear (align_corners=False, legacy pixel convention: src = dst * in / out)."""
    return tf.raw_ops.ResizeBilinear(images=images, size=[size, size], align_corners=False, half_pixel_centers=False)


class FIDInception(tf.Module):
    """images [N, H, W, 3] float in [0, 255] -> pool_3 features [N, 2048] float32."""

    def __init__(self, weights, epsilon=DEFAULT_EPSILON, source=None, name="fid_inception"):
        super().__init__(name=name)
        check_weights(weights)
        self.epsilon = normalize_epsilon(epsilon)
        self.weights_sha256 = weights_digest(weights, self.epsilon)
        self.source = dict(source or {})
        self._conv = {}
        for scope, stride, padding in conv_scopes():
            kernel = tf.constant(np.asarray(weights[f"{scope}/conv2d_params"], np.float32))
            mean = np.asarray(weights[f"{scope}/batchnorm/moving_mean"], np.float32)
            var = np.asarray(weights[f"{scope}/batchnorm/moving_variance"], np.float32)
            beta = np.asarray(weights[f"{scope}/batchnorm/beta"], np.float32)
            gamma = weights.get(f"{scope}/batchnorm/gamma")
            # BatchNormWithGlobalNormalization computes (x - mean) * rsqrt(var + eps) [* gamma] + beta; the same
            # order of operations (not folded into the kernel) keeps the float32 results closest to the graph's.
            scale = tf.math.rsqrt(tf.constant(var) + self.epsilon)
            if gamma is not None:
                scale = scale * tf.constant(np.asarray(gamma, np.float32))
            self._conv[scope] = (kernel, stride, padding, tf.constant(mean), scale, tf.constant(beta))
        self._features = tf.function(self._forward, input_signature=[tf.TensorSpec([None, None, None, 3],
                                                                                   tf.float32)])

    def network_id(self):
        """What produced a metric: network name, sha256 of the weights' numbers, and the file they came from."""
        return {"name": NAME, "weights_sha256": self.weights_sha256, **self.source}

    def __call__(self, images):
        return self._features(tf.convert_to_tensor(images, tf.float32))

    # -- the graph ---------------------------------------------------------------------------------------------
    def _cbr(self, x, scope):
        kernel, stride, padding, mean, scale, beta = self._conv[scope]
        x = tf.nn.conv2d(x, kernel, strides=stride, padding=padding)
        return tf.nn.relu((x - mean) * scale + beta)

    @staticmethod
    def _max_pool(x, stride, padding):
        return tf.nn.max_pool2d(x, 3, stride, padding)

    @staticmethod
    def _avg_pool_same(x):
        # TF's SAME average pool divides by the number of valid (unpadded) inputs of each window.
        return tf.nn.avg_pool2d(x, 3, 1, "SAME")

    def _block_a(self, x, m):
        a = self._cbr(x, f"{m}/conv")
        b = self._cbr(self._cbr(x, f"{m}/tower/conv"), f"{m}/tower/conv_1")
        c = self._cbr(self._cbr(self._cbr(x, f"{m}/tower_1/conv"), f"{m}/tower_1/conv_1"), f"{m}/tower_1/conv_2")
        d = self._cbr(self._avg_pool_same(x), f"{m}/tower_2/conv")
        return tf.concat([a, b, c, d], axis=-1)

    def _block_b(self, x, m):
        a = self._cbr(x, f"{m}/conv")
        b = self._cbr(self._cbr(self._cbr(x, f"{m}/tower/conv"), f"{m}/tower/conv_1"), f"{m}/tower/conv_2")
        return tf.concat([a, b, self._max_pool(x, 2, "VALID")], axis=-1)

    def _block_c(self, x, m):
        a = self._cbr(x, f"{m}/conv")
        b = x
        for k in ("", "_1", "_2"):
            b = self._cbr(b, f"{m}/tower/conv{k}")
        c = x
        for k in ("", "_1", "_2", "_3", "_4"):
            c = self._cbr(c, f"{m}/tower_1/conv{k}")
        d = self._cbr(self._avg_pool_same(x), f"{m}/tower_2/conv")
        return tf.concat([a, b, c, d], axis=-1)

    def _block_d(self, x, m):
        a = self._cbr(self._cbr(x, f"{m}/tower/conv"), f"{m}/tower/conv_1")
        b = x
        for k in ("", "_1", "_2", "_3"):
            b = self._cbr(b, f"{m}/tower_1/conv{k}")
        return tf.concat([a, b, self._max_pool(x, 2, "VALID")], axis=-1)

    def _block_e(self, x, m, pool):
        a = self._cbr(x, f"{m}/conv")
        t = self._cbr(x, f"{m}/tower/conv")
        t1 = self._cbr(self._cbr(x, f"{m}/tower_1/conv"), f"{m}/tower_1/conv_1")
        p = self._avg_pool_same(x) if pool == "avg" else self._max_pool(x, 1, "SAME")
        return tf.concat([a, self._cbr(t, f"{m}/tower/mixed/conv"), self._cbr(t, f"{m}/tower/mixed/conv_1"),
                          self._cbr(t1, f"{m}/tower_1/mixed/conv"), self._cbr(t1, f"{m}/tower_1/mixed/conv_1"),
                          self._cbr(p, f"{m}/tower_2/conv")], axis=-1)

    def _forward(self, images):
        x = resize_like_tf_graph(images)
        x = (x - 128.0) * (1.0 / 128.0)
        for scope in ("conv", "conv_1", "conv_2"):
            x = self._cbr(x, scope)
        x = self._max_pool(x, 2, "VALID")  # pool
        x = self._cbr(self._cbr(x, "conv_3"), "conv_4")
        x = self._max_pool(x, 2, "VALID")  # pool_1
        for m in _BLOCK_A:
            x = self._block_a(x, m)
        x = self._block_b(x, "mixed_3")
        for m in _BLOCK_C:
            x = self._block_c(x, m)
        x = self._block_d(x, "mixed_8")
        x = self._block_e(x, "mixed_9", "avg")
        x = self._block_e(x, "mixed_10", "max")  # the graph's known quirk: a max pool in the last block
        x = tf.nn.avg_pool2d(x, 8, 8, "VALID")  # pool_3: 8x8 -> 1x1
        return tf.reshape(x, [-1, FEATURE_DIM])


def random_weights(seed=0):
    """Weights of the right shapes (He-scaled kernels, BN statistics near identity) for tests of the plumbing."""
    rng = np.random.RandomState(seed)
    shapes = _kernel_shapes()
    w = {}
    for scope, _, _ in conv_scopes():
        kh, kw, cin, cout = shapes[scope]
        w[f"{scope}/conv2d_params"] = (rng.randn(kh, kw, cin, cout) * np.sqrt(2.0 / (kh * kw * cin))).astype(
            np.float32)
        w[f"{scope}/batchnorm/moving_mean"] = (rng.randn(cout) * 0.1).astype(np.float32)
        w[f"{scope}/batchnorm/moving_variance"] = rng.uniform(0.5, 1.5, cout).astype(np.float32)
        w[f"{scope}/batchnorm/beta"] = (rng.randn(cout) * 0.1).astype(np.float32)
    return w


def _kernel_shapes():
    """HWIO kernel shape of every convolution of inception-2015-12-05."""
    shapes = {"conv": (3, 3, 3, 32), "conv_1": (3, 3, 32, 32), "conv_2": (3, 3, 32, 64), "conv_3": (1, 1, 64, 80),
              "conv_4": (3, 3, 80, 192)}
    cin = 192
    for m, pool_out in zip(_BLOCK_A, (32, 64, 64), strict=True):
        shapes.update({f"{m}/conv": (1, 1, cin, 64), f"{m}/tower/conv": (1, 1, cin, 48),
                       f"{m}/tower/conv_1": (5, 5, 48, 64), f"{m}/tower_1/conv": (1, 1, cin, 64),
                       f"{m}/tower_1/conv_1": (3, 3, 64, 96), f"{m}/tower_1/conv_2": (3, 3, 96, 96),
                       f"{m}/tower_2/conv": (1, 1, cin, pool_out)})
        cin = 64 + 64 + 96 + pool_out
    shapes.update({"mixed_3/conv": (3, 3, cin, 384), "mixed_3/tower/conv": (1, 1, cin, 64),
                   "mixed_3/tower/conv_1": (3, 3, 64, 96), "mixed_3/tower/conv_2": (3, 3, 96, 96)})
    cin = 384 + 96 + cin
    for m, c7 in zip(_BLOCK_C, (128, 160, 160, 192), strict=True):
        shapes.update({f"{m}/conv": (1, 1, cin, 192), f"{m}/tower/conv": (1, 1, cin, c7),
                       f"{m}/tower/conv_1": (1, 7, c7, c7), f"{m}/tower/conv_2": (7, 1, c7, 192),
                       f"{m}/tower_1/conv": (1, 1, cin, c7), f"{m}/tower_1/conv_1": (7, 1, c7, c7),
                       f"{m}/tower_1/conv_2": (1, 7, c7, c7), f"{m}/tower_1/conv_3": (7, 1, c7, c7),
                       f"{m}/tower_1/conv_4": (1, 7, c7, 192), f"{m}/tower_2/conv": (1, 1, cin, 192)})
        cin = 4 * 192
    shapes.update({"mixed_8/tower/conv": (1, 1, cin, 192), "mixed_8/tower/conv_1": (3, 3, 192, 320),
                   "mixed_8/tower_1/conv": (1, 1, cin, 192), "mixed_8/tower_1/conv_1": (1, 7, 192, 192),
                   "mixed_8/tower_1/conv_2": (7, 1, 192, 192), "mixed_8/tower_1/conv_3": (3, 3, 192, 192)})
    cin = 320 + 192 + cin
    for m in _BLOCK_E:
        shapes.update({f"{m}/conv": (1, 1, cin, 320), f"{m}/tower/conv": (1, 1, cin, 384),
                       f"{m}/tower/mixed/conv": (1, 3, 384, 384), f"{m}/tower/mixed/conv_1": (3, 1, 384, 384),
                       f"{m}/tower_1/conv": (1, 1, cin, 448), f"{m}/tower_1/conv_1": (3, 3, 448, 384),
                       f"{m}/tower_1/mixed/conv": (1, 3, 384, 384), f"{m}/tower_1/mixed/conv_1": (3, 1, 384, 384),
                       f"{m}/tower_2/conv": (1, 1, cin, 192)})
        cin = FEATURE_DIM
    return shapes
