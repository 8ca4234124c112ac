"""The gradient of XlaDynamicUpdateSlice, so that slices are differentiable twice under XLA.

Inside `jit_compile`, TensorFlow's gradient of `tf.slice` is an XlaDynamicUpdateSlice (the incoming gradient
written into zeros), and that op has no registered gradient: any second-order gradient through a slice (the
path-length penalty and R1 through our convolutions' crops) fails to trace with "gradient registry has no entry
for: XlaDynamicUpdateSlice". Registered once per process on import; left alone if TensorFlow registers its own.

  out = XlaDynamicUpdateSlice(input, update, indices): input with `update` written at `indices`, so
  d out / d input  = the gradient with the update's window set to zero,
  d out / d update = the gradient's window at `indices`; the indices are integers (no gradient).
"""

import tensorflow as tf
from tensorflow.compiler.tf2xla.ops import gen_xla_ops


def _dynamic_update_slice_grad(op, grad):
    update, indices = op.inputs[1], op.inputs[2]
    d_input = gen_xla_ops.xla_dynamic_update_slice(grad, tf.zeros_like(update), indices)
    d_update = gen_xla_ops.xla_dynamic_slice(grad, indices, tf.shape(update, out_type=indices.dtype))
    return d_input, d_update, None


try:
    tf.RegisterGradient("XlaDynamicUpdateSlice")(_dynamic_update_slice_grad)
except KeyError:  # already registered (a later TensorFlow, or this module imported under another name)
    pass
