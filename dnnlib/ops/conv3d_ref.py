"""NumPy reference for conv3d and its gradients, written from the definition (no TF)."""

import numpy as np

from dnnlib.ops.upfirdn_3d_ref import conv3d_valid_ref, pad_crop


def ref_pads(padding, ksize):
    """'SAME' | 'VALID' | int | 3 ints | 6 ints -> [(lo, hi)] * 3 (TF's SAME: extra padding at the end)."""
    if isinstance(padding, str):
        if padding == "SAME":
            return [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in ksize]
        return [(0, 0)] * 3
    if np.isscalar(padding):
        return [(int(padding), int(padding))] * 3
    p = list(padding)
    return [(a, a) for a in p] if len(p) == 3 else [(p[0], p[1]), (p[2], p[3]), (p[4], p[5])]


def conv3d_ref(x, w, padding="SAME"):
    x = np.asarray(x, dtype=np.float64)
    return conv3d_valid_ref(pad_crop(x, ref_pads(padding, w.shape[:3])), w)


def conv3d_filter_grad_ref(x, dy, ksize, padding="SAME"):
    """dL/dw[a,b,c,i,o] = sum_{n,d,h,w} xpad[n, d+a, h+b, w+c, i] * dy[n, d, h, w, o]."""
    xp = pad_crop(np.asarray(x, dtype=np.float64), ref_pads(padding, ksize))
    dy = np.asarray(dy, dtype=np.float64)
    od, oh, ow = dy.shape[1:4]
    dw = np.zeros((*ksize, x.shape[-1], dy.shape[-1]))
    for a in range(ksize[0]):
        for b in range(ksize[1]):
            for c in range(ksize[2]):
                patch = xp[:, a:a + od, b:b + oh, c:c + ow, :]
                dw[a, b, c] = np.einsum("ndhwi,ndhwo->io", patch, dy)
    return dw


def conv3d_input_grad_ref(x_shape, w, dy, padding="SAME"):
    """dL/dx by scattering: every output voxel adds w * dy back onto the input window it read."""
    w = np.asarray(w, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    pads = ref_pads(padding, w.shape[:3])
    n, d, h, wd, ci = x_shape
    padded = (n, d + pads[0][0] + pads[0][1], h + pads[1][0] + pads[1][1], wd + pads[2][0] + pads[2][1], ci)
    dxp = np.zeros(padded)
    od, oh, ow = dy.shape[1:4]
    for a in range(w.shape[0]):
        for b in range(w.shape[1]):
            for c in range(w.shape[2]):
                dxp[:, a:a + od, b:b + oh, c:c + ow, :] += dy @ w[a, b, c].T
    # Undo the padding: positive pads are dropped, cropped (negative) borders had zero gradient.
    return pad_crop(dxp, [(-lo, -hi) for lo, hi in pads])
