"""FID on 2D slices, in each of the three orientations, with the standard FID Inception by default.

Each volume gives its middle slice (or every k-th slice, centred on the middle one) along each spatial axis; the
grey slices in [-1, 1] go to the slice network, which applies its own input convention (metrics/feature_networks.py:
the standard FID Inception takes them in the uint8 range repeated to RGB and resizes them itself; Keras' InceptionV3
takes them resized to image_size in [-1, 1]). FID is reported per axis and averaged, with the network's identity
(name, weights sha256) in the result's info. The original reported only the middle slice along the last axis.
Axis meanings follow the dataset's canonical orientation (RAS: axis 0 sagittal, 1 coronal, 2 axial slices).
"""

import numpy as np
import tensorflow as tf

from metrics import feature_networks, frechet, metric_utils

AXES = (0, 1, 2)
RAS_SLICE_NAMES = {0: "sagittal", 1: "coronal", 2: "axial"}


def slice_indices(n, step=None):
    """Middle slice n // 2, or every `step`-th slice on both sides of it."""
    mid = n // 2
    if not step:
        return [mid]
    return list(range(mid % step, n, step))


def slices(volumes, axis, step=None):
    """volumes [B,D,H,W,C] in [-1,1] -> grey slices [B*S, h, w] (first channel), volume-major."""
    v = tf.convert_to_tensor(volumes, tf.float32)[..., 0]  # [B, D, H, W]
    idx = slice_indices(v.shape[axis + 1], step)
    s = tf.gather(v, idx, axis=axis + 1)  # [B, .., S, ..]
    s = tf.experimental.numpy.moveaxis(s, axis + 1, 1)  # [B, S, h, w]
    return tf.reshape(s, [-1, s.shape[2], s.shape[3]])


def slice_images(volumes, axis, step=None, size=299):
    """Keras InceptionV3's input: RGB images [B*S, size, size, 3] in [-1, 1] (grey repeated)."""
    return feature_networks.keras_slice_images(slices(volumes, axis, step), size)


def slice_extractor(net, step=None, chunk=32):
    def extract(batch):
        out = {}
        for axis in AXES:
            s = slices(batch, axis, step)
            feats = [net(s[i : i + chunk]) for i in range(0, s.shape[0], chunk)]
            out[f"axis{axis}"] = np.concatenate(feats, axis=0)
        return out

    return extract


def slice_features(opts):
    """(reals, fakes, net): dicts axis0/axis1/axis2 -> slice network features [N*S, 2048]."""
    extra = {"slice_step": opts.slice_step or 0}
    return metric_utils.features(opts, "inception", "inception_slices",
                                 lambda net: slice_extractor(net, opts.slice_step), extra)


def per_axis(opts, compare):
    """A metric of the slice features along each axis and averaged over the axes.

    compare(real features [N, d], fake features [N, d]) -> {name: value} gives results {name}_axis0, _axis1,
    _axis2 and their mean {name}; how the features were made goes to opts.info.
    """
    reals, fakes, net = slice_features(opts)
    per = {axis: compare(reals[f"axis{axis}"], fakes[f"axis{axis}"]) for axis in AXES}
    results = {f"{name}_axis{axis}": value for axis in AXES for name, value in per[axis].items()}
    results.update({name: float(np.mean([per[a][name] for a in AXES])) for name in per[AXES[0]]})
    opts.info.update({"features": net.description, "comparable": net.comparable, "feature_network": net.network_id,
                      "slice_step": opts.slice_step or "middle",
                      "image_size": net.image_size or "the network's own resize to 299",
                      "num_reals": metric_utils.count(reals), "num_fakes": metric_utils.count(fakes)})
    return results


def fid_slices(opts):
    return per_axis(opts, lambda r, f: {"fid_slices": frechet.frechet_distance_from_features(r, f)})
