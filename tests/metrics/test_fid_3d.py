"""3D FID/KID/precision-recall on a tiny random 3D network exported as a SavedModel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from metrics import frechet, kid, metric_main, precision_recall
from tests.utils import FakeG, fakes_of, make_reals


def test_savedmodel_features_end_to_end(tmp_path):
    inp = keras.Input((16, 16, 16, 1))
    h = keras.layers.Conv3D(5, 3, strides=2, activation="tanh")(inp)
    model = keras.Model(inp, keras.layers.GlobalAveragePooling3D()(h))
    model.export(str(tmp_path / "sm"), verbose=False)
    reals, ds = make_reals()
    G = FakeG()
    res = metric_main.calc_metrics(["fid_3d", "kid_3d", "pr_3d"], G=G, dataset_dir=ds, num=12, batch=5,
                                   feature_network=str(tmp_path / "sm"), feature_input="zero_one")
    fr = model((reals + 1) / 2).numpy()
    ff = model((fakes_of(G, 12) + 1) / 2).numpy()
    by = {r.metric: r.results for r in res}
    assert by["fid_3d"]["fid_3d"] == pytest.approx(frechet.frechet_distance_from_features(fr, ff), rel=1e-4)
    assert by["kid_3d"]["kid_3d"] == pytest.approx(kid.kernel_inception_distance(fr, ff), rel=1e-3, abs=1e-9)
    pr = precision_recall.precision_recall(fr, ff)
    assert by["pr_3d"] == {"precision_3d": pr["precision"], "recall_3d": pr["recall"]}
    assert res[0].info["num_reals"] == 12 and res[0].info["num_fakes"] == 12
    assert np.isfinite(by["fid_3d"]["fid_3d"]) and tf.is_tensor(tf.constant(1))
