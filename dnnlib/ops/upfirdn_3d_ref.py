"""NumPy reference for upfirdn_3d and the resampling convs, written from the definitions (no TF).

Everything here is deliberately direct: explicit zero insertion, explicit zero padding / cropping,
a dense k*k*k correlation written as a sum of shifted slices, explicit decimation. Slow, only for tests.
"""

import numpy as np


def _triple(v):
    return (int(v),) * 3 if np.isscalar(v) else tuple(int(a) for a in v)


def _pairs(padding):
    if np.isscalar(padding):
        return ((int(padding),) * 2,) * 3
    p = [int(a) for a in padding]
    if len(p) == 3:
        return tuple((a, a) for a in p)
    return ((p[0], p[1]), (p[2], p[3]), (p[4], p[5]))


def zero_insert(x, up):
    """Insert up-1 zeros after every sample along D, H, W: size n -> n*up."""
    n, d, h, w, c = x.shape
    z = np.zeros((n, d * up[0], h * up[1], w * up[2], c), dtype=x.dtype)
    z[:, :: up[0], :: up[1], :: up[2], :] = x
    return z


def pad_crop(x, pads):
    """Zero-pad (positive) or crop (negative) each spatial axis."""
    for axis, (p0, p1) in enumerate(pads, start=1):
        n = x.shape[axis]
        idx = [slice(None)] * 5
        idx[axis] = slice(max(-p0, 0), n - max(-p1, 0))
        x = x[tuple(idx)]
        width = [(0, 0)] * 5
        width[axis] = (max(p0, 0), max(p1, 0))
        x = np.pad(x, width)
    return x


def correlate_dense(x, kernel):
    """'valid' correlation of every channel of x with a 3-D kernel: out[i] = sum_t kernel[t] * x[i + t]."""
    kd, kh, kw = kernel.shape
    od, oh, ow = x.shape[1] - kd + 1, x.shape[2] - kh + 1, x.shape[3] - kw + 1
    out = np.zeros((x.shape[0], od, oh, ow, x.shape[4]), dtype=np.float64)
    for a in range(kd):
        for b in range(kh):
            for c in range(kw):
                out += kernel[a, b, c] * x[:, a:a + od, b:b + oh, c:c + ow, :]
    return out


def upfirdn_3d_ref(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    """Reference upfirdn: zero insertion, pad/crop, convolve with outer(f, f, f) * gain, decimate.

    f: 1-D taps, or a list of three 1-D taps (one per axis)."""
    x = np.asarray(x, dtype=np.float64)
    fs = f if isinstance(f, list | tuple) and np.ndim(f[0]) == 1 else [f] * 3
    fs = [np.asarray(a, dtype=np.float64) for a in fs]
    up, down = _triple(up), _triple(down)
    x = pad_crop(zero_insert(x, up), _pairs(padding))
    kernel = np.einsum("i,j,k->ijk", *fs) * gain
    if not flip_filter:
        kernel = kernel[::-1, ::-1, ::-1]  # convolution, not correlation
    y = correlate_dense(x, kernel)
    return y[:, :: down[0], :: down[1], :: down[2], :]


def resample_pads(taps, up=1, down=1):
    """(p0, p1), the zero padding before and after one axis that makes upfirdn with `taps` taps and factor up or
    down (at most one of them > 1) a resampling on the pixel-centre grid, from the two conditions that define it:

      size:    the output has n * up / down samples:  (n*up + p0 + p1 - taps) // down + 1 = n*up/down for every n
               divisible by down, so p0 + p1 = taps - down;
      centre:  output sample j is centred where it lies on the input's continuous axis, (j + 1/2) * down / up - 1/2
               in input samples. The filter (a convolution) centres output j at z-position j*down + (taps - 1)/2 - p0
               of the zero-inserted signal z (input position / up), so p0 = (taps - 1)/2 + (up - 1)/2 - (down - 1)/2,
               rounded up when it is not whole (the extra tap goes before).
    """
    if up > 1 and down > 1:
        raise ValueError("resample_pads: up or down, not both")
    p0 = (taps + up - down) // 2  # ceil((taps + up - down - 1) / 2)
    return p0, taps - down - p0


def _resample_setup(f, up, down, padding):
    # In an up/downsampling op an axis whose factor is 1 is not filtered; plain filtering filters every axis.
    resampling = max(up) > 1 or max(down) > 1
    fs, pads = [], []
    for (extra0, extra1), u, d in zip(_pairs(padding), up, down, strict=True):
        fa = np.asarray(f, dtype=np.float64) if (u > 1 or d > 1 or not resampling) else np.ones(1)
        p0, p1 = resample_pads(len(fa), u, d)
        fs.append(fa)
        pads += [p0 + extra0, p1 + extra1]
    return fs, pads


def upsample_3d_ref(x, f, up=2, padding=0, gain=1):
    up = _triple(up)
    fs, pads = _resample_setup(f, up, (1, 1, 1), padding)
    return upfirdn_3d_ref(x, fs, up=up, padding=pads, gain=gain * np.prod(up))


def downsample_3d_ref(x, f, down=2, padding=0, gain=1):
    down = _triple(down)
    fs, pads = _resample_setup(f, (1, 1, 1), down, padding)
    return upfirdn_3d_ref(x, fs, down=down, padding=pads, gain=gain)


def filter_3d_ref(x, f, padding=0, gain=1):
    fs, pads = _resample_setup(f, (1, 1, 1), (1, 1, 1), padding)
    return upfirdn_3d_ref(x, fs, padding=pads, gain=gain)


def conv3d_valid_ref(x, w):
    """'valid' stride-1 correlation: y[n,i,j,k,o] = sum_{a,b,c,ci} x[n,i+a,j+b,k+c,ci] * w[a,b,c,ci,o]."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    kd, kh, kw = w.shape[:3]
    od, oh, ow = x.shape[1] - kd + 1, x.shape[2] - kh + 1, x.shape[3] - kw + 1
    y = np.zeros((x.shape[0], od, oh, ow, w.shape[4]))
    for a in range(kd):
        for b in range(kh):
            for c in range(kw):
                y += x[:, a:a + od, b:b + oh, c:c + ow, :] @ w[a, b, c]
    return y


def same_pads(ksize):
    return [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in ksize]


def upsample_conv_3d_ref(x, w, f, up=2, padding=0):
    """StyleGAN2 semantics ('pad once'): upsample with the padding widened by the conv's SAME padding,
    then a 'valid' conv. Equals conv3d(upsample_3d(x), w, 'SAME') except in the outermost voxel layers,
    where the filter's tail is kept instead of being cut to zero before the conv."""
    up = _triple(up)
    fs, pads = _resample_setup(f, up, (1, 1, 1), padding)
    cp = same_pads(w.shape[:3])
    wide = [pads[2 * i + j] + cp[i][j] for i in range(3) for j in range(2)]
    return conv3d_valid_ref(upfirdn_3d_ref(x, fs, up=up, padding=wide, gain=np.prod(up)), w)


def conv_downsample_3d_ref(x, w, f, down=2, padding=0):
    """StyleGAN2 semantics ('pad once'): filter with the padding widened by the conv's SAME padding,
    'valid' conv, decimate. Equals downsample_3d(conv3d(x, w, 'SAME')) away from the borders."""
    down = _triple(down)
    fs, pads = _resample_setup(f, (1, 1, 1), down, padding)
    cp = same_pads(w.shape[:3])
    wide = [pads[2 * i + j] + cp[i][j] for i in range(3) for j in range(2)]
    y = conv3d_valid_ref(upfirdn_3d_ref(x, fs, padding=wide), w)
    return y[:, :: down[0], :: down[1], :: down[2], :]
