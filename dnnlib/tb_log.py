"""TensorBoard scalars and images through tf.summary.write, which needs no `tensorboard` package installed.

tf.summary.scalar/image import the tensorboard package (not a dependency here); the underlying op writes
the same event records when given the plugin metadata TensorBoard reads ("scalars", "images").
"""

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2


def _metadata(plugin, data_class):
    return summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin),
                                       data_class=data_class)


def scalar(tag, value, step):
    """Call inside `with writer.as_default():`."""
    return tf.summary.write(tag, tf.constant(float(value), tf.float32), step=int(step),
                            metadata=_metadata("scalars", summary_pb2.DATA_CLASS_SCALAR))


def image(tag, img_u8, step):
    """img_u8: [H, W] or [H, W, C] uint8; stored as TensorBoard's image-plugin tensor [width, height, png]."""
    img = np.asarray(img_u8, np.uint8)
    if img.ndim == 2:
        img = img[:, :, None]
    png = tf.io.encode_png(img)
    tensor = tf.stack([tf.as_string(img.shape[1]), tf.as_string(img.shape[0]), png])
    metadata = _metadata("images", summary_pb2.DATA_CLASS_BLOB_SEQUENCE)
    return tf.summary.write(tag, tensor, step=int(step), metadata=metadata)
