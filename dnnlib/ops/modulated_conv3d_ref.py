"""NumPy reference for modulated_conv3d and add_noise, written from the definition (no TF), float64."""

import numpy as np

from dnnlib.ops.conv3d_ref import conv3d_ref
from dnnlib.ops.upfirdn_3d_ref import upsample_conv_3d_ref


def modulated_weights_ref(weight, styles, demodulate=True, gain=1.0):
    """Per-sample weights [N,k,k,k,Cin,Cout]: w * s_n, divided by sqrt(sum_{k,k,k,Cin} (w*s_n)^2 + 1e-8) when
    demodulating, times gain."""
    w = np.asarray(weight, np.float64)[None] * np.asarray(styles, np.float64)[:, None, None, None, :, None]
    if demodulate:
        w = w / np.sqrt((w**2).sum(axis=(1, 2, 3, 4), keepdims=True) + 1e-8)
    return w * gain


def modulated_conv3d_ref(x, weight, styles, demodulate=True, up=None, resample_filter=None, gain=1.0):
    """Sample n convolved ('SAME') with its modulated weights; with up, upsample_conv_3d_ref instead."""
    x = np.asarray(x, np.float64)
    ws = modulated_weights_ref(weight, styles, demodulate, gain)
    upsample = up is not None and max(up) > 1
    out = [upsample_conv_3d_ref(x[n:n + 1], ws[n], resample_filter, up=up) if upsample
           else conv3d_ref(x[n:n + 1], ws[n], "SAME") for n in range(x.shape[0])]
    return np.concatenate(out, axis=0)


def add_noise_ref(x, noise, strength):
    """x + noise * strength, noise [N or 1,D,H,W,1] broadcast over the batch and the channels."""
    return np.asarray(x, np.float64) + np.asarray(noise, np.float64) * float(strength)


def add_noise_grads_ref(x, noise, strength, dy):
    """(dx, dnoise, dstrength) of add_noise for the output gradient dy, from the formula."""
    noise, dy = np.asarray(noise, np.float64), np.asarray(dy, np.float64)
    dnoise = dy.sum(axis=-1, keepdims=True) * float(strength)
    if noise.shape[0] == 1 and dy.shape[0] != 1:
        dnoise = dnoise.sum(axis=0, keepdims=True)
    return dy, dnoise, float((np.broadcast_to(noise, dy.shape) * dy).sum())
