"""dnnlib.tb_log: scalar and image events land in the event file with the tag, step, value and plugin TensorBoard
reads (checked by reading the file back with TensorFlow alone)."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from dnnlib import tb_log


def _events(logdir):
    """{(tag, step): summary value} of every event file under logdir."""
    out = {}
    for path in glob.glob(os.path.join(str(logdir), "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                out[(v.tag, event.step)] = v
    return out


def _write(logdir, fn):
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        fn()
    writer.flush()
    writer.close()
    return _events(logdir)


# (tag, value, step): plain floats, NumPy scalars and tensors are all accepted.
SCALAR_CASES = [("Loss/G", 1.25, 0), ("Metrics/fid", np.float64(-3.5), 7), ("Progress/kimg", tf.constant(2.0), 1200)]


@pytest.mark.parametrize("tag, value, step", SCALAR_CASES, ids=["float", "numpy", "tensor"])
def test_scalar_event(tmp_path, tag, value, step):
    events = _write(tmp_path, lambda: tb_log.scalar(tag, value, step))
    v = events[(tag, step)]
    assert v.metadata.plugin_data.plugin_name == "scalars"
    assert float(tf.make_ndarray(v.tensor)) == pytest.approx(float(value))


def test_several_steps_keep_their_values(tmp_path):
    values = np.random.default_rng(0).normal(size=4)

    def log():
        for step, x in enumerate(values):
            tb_log.scalar("Loss/D", x, step * 10)

    events = _write(tmp_path, log)
    got = [float(tf.make_ndarray(events[("Loss/D", step * 10)].tensor)) for step in range(4)]
    np.testing.assert_allclose(got, values, rtol=1e-6)


# (image shape): greyscale 2D, one channel, RGB.
IMAGE_SHAPES = [(6, 9), (6, 9, 1), (5, 4, 3)]


@pytest.mark.parametrize("shape", IMAGE_SHAPES, ids=["2d", "grey", "rgb"])
def test_image_event(tmp_path, shape):
    img = np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8)
    events = _write(tmp_path, lambda: tb_log.image("Samples/mid", img, 3))
    v = events[("Samples/mid", 3)]
    assert v.metadata.plugin_data.plugin_name == "images"
    width, height, png = tf.make_ndarray(v.tensor)
    assert (int(width), int(height)) == (shape[1], shape[0])
    decoded = tf.io.decode_png(png).numpy()
    np.testing.assert_array_equal(decoded.reshape(shape), img)
