"""FID on the features of a user-given 3D network (e.g. a converted Med3D/MedicalNet ResNet, as HA-GAN and
MONAI use), with the same statistics machinery as the slice FID. The network is a Keras model file or a
SavedModel directory plus a layer (or output) name; spatial feature maps are averaged to one vector per volume.
"""

from metrics import frechet, metric_utils


def features_3d(opts):
    """(reals, fakes, net): dicts with 'features' [N, d]."""
    extra = {"layer": opts.feature_layer, "input": opts.feature_input}
    return metric_utils.features(opts, "3d", "features_3d", lambda net: (lambda b: {"features": net(b)}), extra)


def info_3d(reals, fakes, net):
    return {"features": net.description, "comparable": net.comparable,
            "num_reals": metric_utils.count(reals), "num_fakes": metric_utils.count(fakes)}


def fid_3d(opts):
    reals, fakes, net = features_3d(opts)
    opts.info.update(info_3d(reals, fakes, net))
    return {"fid_3d": frechet.frechet_distance_from_features(reals["features"], fakes["features"])}
