"""FID on the features of a user-given 3D network (e.g. a converted Med3D/MedicalNet ResNet, as HA-GAN and
MONAI use), with the same statistics machinery as the slice FID. The network is a Keras model file or a
SavedModel directory plus a layer (or output) name; spatial feature maps are averaged to one vector per volume.
"""

from metrics import frechet, metric_utils


def features_3d(opts):
    """(reals, fakes, net): dicts with 'features' [N, d]."""
    extra = {"layer": opts.feature_layer, "input": opts.feature_input}
    return metric_utils.features(opts, "3d", "features_3d", lambda net: (lambda b: {"features": net(b)}), extra)


def on_features_3d(opts, compare):
    """compare(real features [N, d], fake features [N, d]) -> results, in the 3D network's feature space; how the
    features were made goes to opts.info."""
    reals, fakes, net = features_3d(opts)
    opts.info.update({"features": net.description, "comparable": net.comparable,
                      "num_reals": metric_utils.count(reals), "num_fakes": metric_utils.count(fakes)})
    return compare(reals["features"], fakes["features"])


def fid_3d(opts):
    return on_features_3d(opts, lambda r, f: {"fid_3d": frechet.frechet_distance_from_features(r, f)})
