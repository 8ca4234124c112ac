"""Differentiable forward models of how a clinical scan corrupts what the generator makes, for projection
(Bayesian reconstruction): the generated volume is degraded to the target's sampling and compared there.

Conventions
-----------
* Volumes are [N,D,H,W,C] float32 (TF) or [N,D,H,W,C] / [D,H,W] arrays (NumPy). `axis` always counts the three
  spatial axes (0, 1, 2 = D, H, W = the affine's voxel axes i, j, k), never the batch or channel axis.
* Positions along an axis are in network voxels: voxel i has its centre at i and covers [i - 0.5, i + 0.5].

Slice thickening (`Thicken`, `thicken`)
---------------------------------------
Output slice j has its centre at c_j = start + j * factor (start defaults to (factor - 1) / 2, so the first
slice's box [c_0 - factor/2, c_0 + factor/2] begins exactly at the network grid's edge, -0.5) and is a weighted
average of network slices along `axis` (each row of weights sums to 1):
  box       weight of network slice i = length of [i - 0.5, i + 0.5] inside [c_j - factor/2, c_j + factor/2],
            i.e. the network volume is taken as piecewise constant per voxel. For an integer factor and the
            default start this is exactly the mean of the block of `factor` slices j*factor ... j*factor+factor-1;
            a fractional factor (thickness_mm / network spacing, e.g. 6.5 / 2 = 3.25) gives the edge slices
            fractional weights (partial volume).
  gaussian  weight of network slice i = exp(-(i - c_j)^2 / (2 sigma^2)) for |i - c_j| <= truncate * sigma,
            sigma = fwhm_vox / 2.3548, fwhm_vox = factor (the slice thickness) unless given; the taps are
            normalised to sum 1, also at the volume's ends, where taps outside the grid are dropped. The taps
            reach beyond the block of `factor` slices (to +-3 sigma = +-1.27 factor by default): a Gaussian cut at
            its half maximum would just be a soft box; pass truncate=factor / (2 sigma) to keep to the block.
Output length (count): by default every slice whose box lies inside the network grid, floor(L / factor) for the
default start (the trailing L mod factor slices are not looked at). The degraded grid's affine is the network
affine with the axis' column scaled by `factor` and the origin moved to c_0 along that axis (c_0 = (factor-1)/2
voxels by default): see `Thicken.affine`. A thickening with factor 1 and an integer start is a crop.

Mask, noise, loss
-----------------
A mask lives on the degraded (target) grid: weight 1 = compared, 0 = not compared (a lesion, a defaced region, a
cut-off field of view). The loss per item is the masked mean squared error over the compared voxels, times
1/(2 sigma^2) when a noise level sigma is given (the Gaussian negative log-likelihood per compared voxel, without
its constant; multiply by the number of compared voxels for the full sum). sigma is in the units of the volumes
given to `loss` (the projector compares in [-1, 1], twice the [0, 1] file range).

`parse_spec` turns a CLI-style string into a `Degradation` (grammar in its docstring); `read_mask` reads a mask
file; `target_sampling_grid` is the grid a raw scan is resampled onto (network lattice in-plane, its own thick
slices kept); `match_target_grid` derives the thickening (and crops) from a target's grid; `trivial_inverse`
interpolates thick slices back to the network grid (the baseline reconstruction).
"""

import functools
import math
import numbers
import os
from dataclasses import dataclass, field, replace

import numpy as np

from dnnlib.errors import InputError

# TensorFlow is imported by the functions that run ops: parse_spec alone (run_projector.py's flag check) must not
# load it.

PROFILES = ("box", "gaussian")
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
_POS_EPS = 1e-6  # slice boxes are computed in floating point; a box edge this close to the grid's edge is inside


def _array_axis(ndim, axis):
    """Array axis of spatial axis `axis` for a [N,D,H,W,C] (ndim 5) or [D,H,W] (ndim 3) volume."""
    if axis not in (0, 1, 2):
        raise InputError(f"axis must be 0, 1 or 2 (a spatial axis), got {axis!r}")
    if ndim == 5:
        return axis + 1
    if ndim == 3:
        return axis
    raise InputError(f"expected a [N,D,H,W,C] or [D,H,W] volume, got {ndim} dimensions")


def _snap(v, eps=1e-6):
    """Geometry read from headers carries float noise: snap near-integers, drop digits below 1e-9."""
    r = round(float(v))
    return int(r) if abs(float(v) - r) < eps else round(float(v), 9)


def _num(v):
    """A float that prints without a trailing .0 when integral (for spec strings and descriptions)."""
    v = float(v)
    return int(v) if v.is_integer() else v


# ---------------------------------------------------------------------------------------------------------------
# Slice thickening.


@dataclass(frozen=True)
class SliceProfile:
    """How one thick slice weights the network slices it covers (see the module docstring)."""

    kind: str = "box"
    fwhm_vox: float | None = None  # gaussian only; None = the slice thickness (the thickening factor)
    truncate: float = 3.0  # gaussian only; taps within truncate * sigma of the slice centre

    def __post_init__(self):
        if self.kind not in PROFILES:
            raise InputError(f"slice profile must be one of {PROFILES}, got {self.kind!r}")
        if self.kind == "box" and self.fwhm_vox is not None:
            raise InputError(f"a box slice profile has no FWHM (got fwhm_vox={self.fwhm_vox})")
        if self.fwhm_vox is not None and not (math.isfinite(self.fwhm_vox) and self.fwhm_vox > 0):
            raise InputError(f"slice profile FWHM must be a positive number of voxels, got {self.fwhm_vox}")
        if not (math.isfinite(self.truncate) and self.truncate > 0):
            raise InputError(f"slice profile truncate must be positive, got {self.truncate}")

    def weights(self, centres, factor, length):
        """[len(centres), length] float64 weights of network slices 0..length-1 for slices centred at `centres`."""
        c = np.asarray(centres, np.float64)[:, None]
        i = np.arange(length, dtype=np.float64)[None, :]
        if self.kind == "box":
            lo, hi = c - factor / 2.0, c + factor / 2.0
            w = np.clip(np.minimum(hi, i + 0.5) - np.maximum(lo, i - 0.5), 0.0, None)
        else:
            sigma = (self.fwhm_vox if self.fwhm_vox is not None else factor) * FWHM_TO_SIGMA
            d = i - c
            w = np.where(np.abs(d) <= self.truncate * sigma + 1e-9, np.exp(-0.5 * (d / sigma) ** 2), 0.0)
        s = w.sum(axis=1, keepdims=True)
        if np.any(s <= 0):
            bad = [float(v) for v in np.asarray(centres)[s[:, 0] <= 0]]
            raise InputError(f"{self.kind} slice profile puts no weight on any network slice for slices centred "
                             f"at {bad} (grid length {length})")
        return w / s


@functools.lru_cache(maxsize=64)
def _thicken_matrix(op, length):
    return op.profile.weights(op.centres(length), op.factor, length)


@dataclass(frozen=True)
class Thicken:
    """Thick slices along `axis`: slice j centred at start + j * factor network voxels, `profile`-weighted."""

    axis: int
    factor: float
    profile: SliceProfile = field(default_factory=SliceProfile)
    start: float | None = None  # centre of the first output slice, network voxels; None = (factor - 1) / 2
    count: int | None = None  # number of output slices; None = all whose box lies inside the grid

    def __post_init__(self):
        if self.axis not in (0, 1, 2):
            raise InputError(f"thickening axis must be 0, 1 or 2, got {self.axis!r}")
        if not (isinstance(self.factor, numbers.Real) and not isinstance(self.factor, bool)
                and math.isfinite(self.factor) and self.factor >= 1):
            raise InputError(f"thickening factor must be a number >= 1 (network voxels per slice), got "
                             f"{self.factor!r}")
        if self.count is not None and (not isinstance(self.count, numbers.Integral) or self.count < 1):
            raise InputError(f"thickening count must be a positive integer, got {self.count!r}")
        if self.start is not None and not math.isfinite(self.start):
            raise InputError(f"thickening start must be finite, got {self.start!r}")

    @property
    def first_centre(self):
        return (self.factor - 1.0) / 2.0 if self.start is None else float(self.start)

    def output_length(self, length):
        """Number of thick slices made from `length` network slices (ValueError if a slice would leave the grid)."""
        c0, f = self.first_centre, float(self.factor)
        if c0 - f / 2.0 < -0.5 - _POS_EPS:
            raise InputError(f"first thick slice (centre {c0:g}, thickness {f:g} voxels) starts before the grid "
                             f"along axis {self.axis}")
        fit = int(math.floor((length - 0.5 - c0 - f / 2.0 + _POS_EPS) / f)) + 1
        if self.count is None:
            if fit < 1:
                raise InputError(f"no thick slice of {f:g} voxels starting at centre {c0:g} fits in {length} "
                                 f"network slices along axis {self.axis}")
            return fit
        if self.count > fit:
            raise InputError(f"{self.count} thick slices of {f:g} voxels from centre {c0:g} need "
                             f"{c0 + (self.count - 1) * f + f / 2 + 0.5:g} network slices along axis {self.axis}, "
                             f"the grid has {length}")
        return self.count

    def centres(self, length):
        return self.first_centre + self.factor * np.arange(self.output_length(length), dtype=np.float64)

    def matrix(self, length):
        """[count, length] float64: thick slice j = sum_i matrix[j, i] * network slice i."""
        return _thicken_matrix(self, int(length))

    def _is_crop(self):
        return self.factor == 1 and self.profile.kind == "box" and float(self.first_centre).is_integer()

    def __call__(self, x):
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        ax = _array_axis(x.shape.rank, self.axis)
        length = x.shape[ax]
        if length is None:
            raise InputError(f"thickening needs a static length along axis {self.axis}, got shape {x.shape}")
        if self._is_crop():  # exact and cheap
            begin = [0] * x.shape.rank
            size = [-1] * x.shape.rank
            begin[ax], size[ax] = int(self.first_centre), self.output_length(length)
            return tf.slice(x, begin, size)
        m = tf.constant(self.matrix(length), x.dtype)
        letters = "ndhwc" if x.shape.rank == 5 else "dhw"
        src = letters[ax]
        return tf.einsum(f"{letters},m{src}->{letters.replace(src, 'm')}", x, m)

    def output_shape(self, shape):
        """Spatial shape (3 ints) after thickening."""
        shape = [int(s) for s in shape]
        shape[self.axis] = self.output_length(shape[self.axis])
        return tuple(shape)

    def affine(self, affine):
        """Affine of the thick-slice grid: the axis' column times factor, origin at the first slice's centre."""
        a = np.array(affine, np.float64)
        out = a.copy()
        out[:3, 3] = a[:3, 3] + a[:3, self.axis] * self.first_centre
        out[:3, self.axis] = a[:3, self.axis] * self.factor
        return out

    def describe(self):
        d = {"op": "thicken", "axis": self.axis, "factor": _num(self.factor), "profile": self.profile.kind,
             "start": _num(self.first_centre)}
        if self.profile.kind == "gaussian":
            d["fwhm_vox"] = _num(self.profile.fwhm_vox if self.profile.fwhm_vox is not None else self.factor)
            d["truncate"] = _num(self.profile.truncate)
        if self.count is not None:
            d["count"] = self.count
        return d

    def spec(self):
        parts = [f"axis={self.axis}", f"factor={_num(self.factor)!r}", f"profile={self.profile.kind}"]
        if self.profile.fwhm_vox is not None:
            parts.append(f"fwhm={_num(self.profile.fwhm_vox)!r}")
        if self.profile.kind == "gaussian" and self.profile.truncate != 3.0:
            parts.append(f"truncate={_num(self.profile.truncate)!r}")
        if self.start is not None:
            parts.append(f"start={_num(self.start)!r}")
        if self.count is not None:
            parts.append(f"count={self.count}")
        return "thicken:" + ",".join(parts)


def thicken(x, axis, factor, profile="box", fwhm_vox=None, start=None, count=None, truncate=3.0):
    """Functional form of `Thicken` (see the module docstring): [N,D,H,W,C] -> thick slices along `axis`."""
    prof = SliceProfile(profile, fwhm_vox, truncate) if isinstance(profile, str) else profile
    return Thicken(axis, factor, prof, start, count)(x)


# ---------------------------------------------------------------------------------------------------------------
# Mask, noise, loss terms.


def _weights_5d(w, dtype):
    import tensorflow as tf

    w = tf.convert_to_tensor(w, dtype)
    if w.shape.rank == 3:
        return w[None, ..., None]
    if w.shape.rank == 4:
        return w[..., None]
    if w.shape.rank == 5:
        return w
    raise InputError(f"mask weights must be [D,H,W], [N,D,H,W] or [N,D,H,W,C], got shape {w.shape}")


def masked_mse(x, y, weights=None):
    """[N]: mean of (x - y)^2 over the voxels (and channels) with weight 1 (weighted mean for soft weights).
    An item whose weights are all 0 gets 0."""
    import tensorflow as tf

    d = tf.square(tf.convert_to_tensor(x) - tf.convert_to_tensor(y, x.dtype))
    if weights is None:
        return tf.reduce_mean(d, axis=[1, 2, 3, 4])
    w = tf.broadcast_to(_weights_5d(weights, d.dtype), tf.shape(d))
    return tf.math.divide_no_nan(tf.reduce_sum(w * d, axis=[1, 2, 3, 4]), tf.reduce_sum(w, axis=[1, 2, 3, 4]))


def noise_weight(sigma):
    """Loss weight 1/(2 sigma^2) of a Gaussian likelihood with noise SD sigma; 1 when sigma is None."""
    if sigma is None:
        return 1.0
    if not (math.isfinite(sigma) and sigma > 0):
        raise InputError(f"noise level sigma must be positive, got {sigma!r}")
    return 1.0 / (2.0 * float(sigma) ** 2)


def gaussian_data_term(x, y, sigma=None, weights=None):
    """[N]: masked MSE times 1/(2 sigma^2): the Gaussian negative log-likelihood per compared voxel."""
    return noise_weight(sigma) * masked_mse(x, y, weights)


@dataclass(frozen=True, eq=False)
class Mask:
    """Which voxels of the degraded (target) grid are compared: weights 1 inside, 0 outside.

    From a spec the mask is a file not yet read (`path`, `invert`: nonzero voxels are excluded instead, e.g. a
    lesion mask); `read_mask` / `Degradation.load_mask` fill `weights`."""

    path: str | None = None
    invert: bool = False
    weights: np.ndarray | None = None  # [D,H,W] or [N,D,H,W] float32 in {0, 1}; None until read

    def __post_init__(self):
        if self.path is None and self.weights is None:
            raise InputError("a mask needs a file path or weights")
        if self.weights is not None:
            w = np.asarray(self.weights, np.float32)
            if w.ndim not in (3, 4):
                raise InputError(f"mask weights must be [D,H,W] or [N,D,H,W], got shape {w.shape}")
            if not np.all(np.isfinite(w)) or w.min() < 0:
                raise InputError("mask weights must be finite and non-negative")
            if not np.any(w > 0):
                raise InputError(f"mask {self.path or '(array)'} excludes every voxel: nothing would be compared")
            object.__setattr__(self, "weights", w)

    @classmethod
    def from_array(cls, array, invert=False, path=None):
        """Nonzero voxels compared (or, with invert, excluded)."""
        a = np.asarray(array)
        inside = (a != 0) if not invert else (a == 0)
        return cls(path=path, invert=invert, weights=inside.astype(np.float32))

    def describe(self):
        d = {"path": self.path, "invert": self.invert}
        if self.weights is not None:
            d["shape"] = list(self.weights.shape)
            d["fraction_compared"] = float(np.mean(self.weights > 0))
        return d

    def spec(self):
        if self.path is None:
            raise InputError("a mask given as an array has no spec form")
        return f"mask:path={self.path},invert=1" if self.invert else f"mask={self.path}"


def read_mask(path, invert=False, shape=None, affine=None, atol=1e-3):
    """Read a mask file (NIfTI or anything volumes.volume_io reads) as a `Mask`: nonzero voxels are compared
    (excluded with invert). With `shape`/`affine` (the target grid) it must be on that grid: ValueError naming
    the file and what differs."""
    from volumes import volume_io

    data, mask_affine = volume_io.read_volume(path, max_voxels=volume_io.DEFAULT_MAX_VOXELS)
    if shape is not None and tuple(data.shape) != tuple(int(s) for s in shape):
        raise InputError(f"{path}: mask has shape {tuple(data.shape)}, the target grid is {tuple(shape)}")
    if affine is not None and not np.allclose(mask_affine, np.asarray(affine, np.float64), atol=atol):
        raise InputError(f"{path}: mask affine\n{np.round(mask_affine, 4)}\ndiffers from the target grid's\n"
                         f"{np.round(np.asarray(affine, np.float64), 4)}")
    return Mask.from_array(data, invert=invert, path=os.fspath(path))


# ---------------------------------------------------------------------------------------------------------------
# The composition.


@dataclass(frozen=True, eq=False)
class Degradation:
    """Thickenings/crops applied in order, then a mask (on the final grid) and a noise level in the loss.

    `__call__` returns the degraded volume (the mask does not change values: it says which are compared);
    `loss(volume, target)` -> [N] compares it with a target on the degraded grid. Degradation() is the identity
    and its loss is the plain MSE."""

    ops: tuple = ()
    mask: Mask | None = None
    sigma: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "ops", tuple(self.ops))
        for op in self.ops:
            if not isinstance(op, Thicken):
                raise InputError(f"degradation ops must be Thicken, got {op!r}")
        noise_weight(self.sigma)  # validates

    def __call__(self, volume):
        import tensorflow as tf

        x = tf.convert_to_tensor(volume)
        for op in self.ops:
            x = op(x)
        return x

    def output_shape(self, shape):
        """Spatial shape of the degraded grid for a network grid of spatial `shape`."""
        shape = tuple(int(s) for s in shape)
        for op in self.ops:
            shape = op.output_shape(shape)
        return shape

    def affine(self, affine):
        """Affine of the degraded grid for a network grid with `affine`."""
        for op in self.ops:
            affine = op.affine(affine)
        return np.asarray(affine, np.float64)

    def weights(self):
        """Mask weights on the degraded grid, or None (compare everything). ValueError if the file is unread."""
        if self.mask is None:
            return None
        if self.mask.weights is None:
            raise InputError(f"mask {self.mask.path} has not been read (Degradation.load_mask / read_mask)")
        return self.mask.weights

    def loss(self, volume, target):
        """[N]: masked, noise-weighted MSE between the degraded `volume` and `target` (on the degraded grid)."""
        import tensorflow as tf

        y = self(volume)
        target = tf.convert_to_tensor(target, y.dtype)
        if tuple(y.shape) != tuple(target.shape):
            raise InputError(f"degraded volume has shape {tuple(y.shape)}, the target {tuple(target.shape)}")
        w = self.weights()
        if w is not None and tuple(w.shape[-3:]) != tuple(y.shape[1:4]):
            raise InputError(f"mask {self.mask.path or ''} has shape {w.shape}, the degraded grid "
                             f"{tuple(y.shape[1:4])}")
        return gaussian_data_term(y, target, self.sigma, w)

    def with_mask(self, mask):
        return replace(self, mask=mask)

    def load_mask(self, shape=None, affine=None):
        """The same degradation with its mask file read (see read_mask); unchanged without an unread mask."""
        if self.mask is None or self.mask.weights is not None:
            return self
        return self.with_mask(read_mask(self.mask.path, self.mask.invert, shape, affine))

    @property
    def is_identity(self):
        return not self.ops and self.mask is None and self.sigma is None

    def describe(self):
        """JSON-able record of the degradation for the run's record."""
        return {"ops": [op.describe() for op in self.ops],
                "mask": self.mask.describe() if self.mask is not None else None,
                "noise_sigma": self.sigma, "loss_weight": noise_weight(self.sigma), "spec": self.spec()}

    def spec(self):
        """The spec string parse_spec turns back into this degradation (NATIVE for the identity: an image target
        compared in its own geometry and nothing else)."""
        parts = [op.spec() for op in self.ops]
        if self.mask is not None and self.mask.path is not None:
            parts.append(self.mask.spec())
        if self.sigma is not None:
            parts.append(f"noise={self.sigma!r}")
        return ";".join(parts) or NATIVE


# ---------------------------------------------------------------------------------------------------------------
# The spec parser.

_THICKEN_KEYS = ("axis", "factor", "mm", "profile", "fwhm", "fwhm_mm", "truncate", "start", "count")


def _kv(body, where):
    out = {}
    for item in body.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise InputError(f"{where}: '{item}' is not key=value")
        k, v = (s.strip() for s in item.split("=", 1))
        if k in out:
            raise InputError(f"{where}: '{k}' given twice")
        out[k] = v
    return out


def _float(v, key, where):
    try:
        x = float(v)
    except ValueError:
        raise InputError(f"{where}: {key}={v!r} is not a number") from None
    if not math.isfinite(x):
        raise InputError(f"{where}: {key}={v!r} is not finite")
    return x


def _bool(v, key, where):
    s = v.lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise InputError(f"{where}: {key}={v!r} is not a boolean (1/0, true/false)")


def _parse_thicken(body, where, spacing):
    kv = _kv(body, where)
    unknown = sorted(set(kv) - set(_THICKEN_KEYS))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {unknown}; known: {', '.join(_THICKEN_KEYS)}")
    if "axis" not in kv:
        raise InputError(f"{where}: needs axis=0|1|2")
    if kv["axis"] not in ("0", "1", "2"):
        raise InputError(f"{where}: axis={kv['axis']!r} is not 0, 1 or 2")
    axis = int(kv["axis"])

    def mm_to_vox(key):
        if spacing is None:
            raise InputError(f"{where}: {key}= is in millimetres and needs the network grid's spacing")
        return _float(kv[key], key, where) / float(spacing[axis])

    if ("factor" in kv) == ("mm" in kv):
        raise InputError(f"{where}: give exactly one of factor= (network voxels) or mm= (slice thickness)")
    factor = _float(kv["factor"], "factor", where) if "factor" in kv else mm_to_vox("mm")
    if factor.is_integer():
        factor = int(factor)
    profile = kv.get("profile", "box")
    if profile not in PROFILES:
        raise InputError(f"{where}: profile={profile!r} is not one of {', '.join(PROFILES)}")
    if "fwhm" in kv and "fwhm_mm" in kv:
        raise InputError(f"{where}: give fwhm= or fwhm_mm=, not both")
    fwhm = _float(kv["fwhm"], "fwhm", where) if "fwhm" in kv else mm_to_vox("fwhm_mm") if "fwhm_mm" in kv else None
    if fwhm is not None and profile != "gaussian":
        raise InputError(f"{where}: fwhm only applies to profile=gaussian")
    if "truncate" in kv and profile != "gaussian":
        raise InputError(f"{where}: truncate only applies to profile=gaussian")
    truncate = _float(kv["truncate"], "truncate", where) if "truncate" in kv else 3.0
    start = _float(kv["start"], "start", where) if "start" in kv else None
    count = None
    if "count" in kv:
        try:
            count = int(kv["count"])
        except ValueError:
            raise InputError(f"{where}: count={kv['count']!r} is not an integer") from None
    try:
        return Thicken(axis, factor, SliceProfile(profile, fwhm, truncate), start, count)
    except ValueError as e:
        raise InputError(f"{where}: {e}") from None


# The spec word for "only the scan's own geometry": an image target keeps its slices as acquired (thickness read
# from its spacing) and nothing else is degraded. "none" means no degradation at all (see is_no_degradation).
NATIVE = "native"


def is_no_degradation(spec):
    """True for a spec that asks for no forward model at all (None, "" or "none"): targets are then compared on
    the network grid, image files resampled onto it as the dataset's scans were."""
    return spec is None or str(spec).strip().lower() in ("", "none")


def parse_spec(spec, network_spacing=None):
    """Parse a degradation spec into a `Degradation` (pure: a mask file is named, not read).

    Grammar (parts separated by ';', whitespace around parts ignored; "", "none" and "native" are the identity:
    an image target's own slice geometry is added by projection_targets.native_file_target, not here):
      thicken:axis=A,factor=F[,profile=box|gaussian][,fwhm=V][,truncate=T][,start=S][,count=M]
          A in 0,1,2 (spatial axis: D,H,W = i,j,k); F >= 1 network voxels per slice (fractional allowed);
          mm=T instead of factor= gives the slice thickness in millimetres (F = T / network spacing along A,
          so `network_spacing` (3 numbers, mm) is needed); fwhm=V network voxels or fwhm_mm=V (gaussian only,
          default the thickness); start = centre of the first slice in network voxels; count = number of
          slices. Several thicken parts apply in order, each on its own axis.
      mask=PATH | mask:path=PATH[,invert=1]
          a volume on the degraded grid; nonzero voxels are compared (with invert: not compared). PATH may not
          contain ';' (nor ',' in the mask: form).
      noise=SIGMA | noise:sigma=SIGMA
          noise SD in the units of the compared volumes; the loss is weighted by 1/(2 SIGMA^2).
    Raises ValueError naming the bad part.
    """
    spec = "" if spec is None else str(spec).strip()
    if spec.lower() in ("", "none", NATIVE):
        return Degradation()
    ops, mask, sigma = [], None, None
    for n, raw in enumerate(spec.split(";"), 1):
        part = raw.strip()
        where = f"degradation part {n} '{part}'"
        if not part:
            raise InputError(f"degradation part {n} of '{spec}' is empty")
        cut = min((i for i in (part.find(":"), part.find("=")) if i >= 0), default=-1)
        if cut < 0:
            raise InputError(f"{where}: expected thicken:..., mask=... or noise=...")
        name, sep, body = part[:cut].strip(), part[cut], part[cut + 1:].strip()
        if name == "thicken":
            if sep != ":":
                raise InputError(f"{where}: write thicken:axis=...,factor=...")
            op = _parse_thicken(body, where, network_spacing)
            if any(o.axis == op.axis for o in ops):
                raise InputError(f"{where}: axis {op.axis} is already thickened")
            ops.append(op)
        elif name == "mask":
            if mask is not None:
                raise InputError(f"{where}: only one mask")
            if sep == "=":
                path, invert = body, False
            else:
                kv = _kv(body, where)
                unknown = sorted(set(kv) - {"path", "invert"})
                if unknown:
                    raise InputError(f"{where}: unknown key(s) {unknown}; known: path, invert")
                path = kv.get("path", "")
                invert = _bool(kv["invert"], "invert", where) if "invert" in kv else False
            if not path:
                raise InputError(f"{where}: needs a file path")
            mask = Mask(path=path, invert=invert)
        elif name == "noise":
            if sigma is not None:
                raise InputError(f"{where}: only one noise level")
            if sep == "=":
                value = body
            else:
                kv = _kv(body, where)
                if set(kv) != {"sigma"}:
                    raise InputError(f"{where}: write noise=SIGMA or noise:sigma=SIGMA")
                value = kv["sigma"]
            sigma = _float(value, "noise", where)
            if sigma <= 0:
                raise InputError(f"{where}: the noise level must be positive")
        else:
            raise InputError(f"{where}: unknown forward model '{name}' (known: thicken, mask, noise)")
    return Degradation(tuple(ops), mask, sigma)


# ---------------------------------------------------------------------------------------------------------------
# Geometry: the degradation a target's own grid implies.


@dataclass(frozen=True)
class GridMatch:
    """How a target grid sits on the network grid. `ops` turn the network volume into the target's sampling
    (thickenings where the target is coarser, crops where it covers less); `target_slices` are the index ranges
    of the target that the network grid covers (crop the target with target[target_slices] - the whole target
    when it lies inside); `affine`/`shape` are the degraded grid's (= the cropped target's)."""

    ops: tuple
    target_slices: tuple
    factors: tuple  # target spacing / network spacing per axis
    affine: np.ndarray
    shape: tuple

    @property
    def thick_axes(self):
        return tuple(a for a, f in enumerate(self.factors) if f > 1)

    def degradation(self, mask=None, sigma=None):
        return Degradation(self.ops, mask, sigma)


def match_target_grid(net_affine, net_shape, target_affine, target_shape, profile=None, tol=1e-3):
    """The thickenings/crops that take the network grid (net_affine, net_shape) to a target's own grid.

    The target's voxel axes must be the network's (same directions, to `tol` in cosine and relative spacing;
    ValueError naming the axis otherwise), each axis the same spacing or coarser (coarser = thick slices,
    factor = spacing ratio, any real >= 1), and its voxels must lie on the network lattice along axes of equal
    spacing (integer offsets). Along a thick axis the slice positions are free. Target slices whose thick box
    would leave the network grid are cropped off (target_slices); ValueError if nothing is left.
    `profile` (SliceProfile, default box) is used for the thick axes.
    """
    na, ta = np.asarray(net_affine, np.float64), np.asarray(target_affine, np.float64)
    net_shape = tuple(int(s) for s in net_shape)[:3]
    target_shape = tuple(int(s) for s in target_shape)[:3]
    profile = profile or SliceProfile()
    ns, ts = np.linalg.norm(na[:3, :3], axis=0), np.linalg.norm(ta[:3, :3], axis=0)
    factors = []
    for a in range(3):
        cos = float(np.dot(na[:3, a], ta[:3, a]) / (ns[a] * ts[a]))
        if cos < 1 - tol:
            angle = math.degrees(math.acos(max(-1.0, min(1.0, cos))))
            raise InputError(f"voxel axis {a} points differently: network {np.round(na[:3, a] / ns[a], 4).tolist()}, "
                             f"target {np.round(ta[:3, a] / ts[a], 4).tolist()} ({angle:.2f} degrees apart); "
                             f"the target must be on the network's axes")
        r = ts[a] / ns[a]
        if r < 1 - tol:
            raise InputError(f"voxel axis {a}: target spacing {ts[a]:g} mm is finer than the network's {ns[a]:g} mm; "
                             f"resample the target to the network spacing along that axis first")
        factors.append(1 if abs(r - 1) <= tol else _snap(r))
    p0 = np.linalg.solve(na[:3, :3], ta[:3, 3] - na[:3, 3])  # target voxel 0 in network voxel coordinates
    ops, slices = [], []
    for a in range(3):
        f, L, n = factors[a], net_shape[a], target_shape[a]
        if f == 1:
            off = p0[a]
            if abs(off - round(off)) > tol:
                raise InputError(f"voxel axis {a}: target voxels are {off - math.floor(off):.4f} voxel off the "
                                 f"network lattice (same spacing {ns[a]:g} mm, origins differ by {off:.4f} voxels)")
            off = int(round(off))
            lo, hi = max(0, -off), min(n, L - off)
            start = off + lo
            op = Thicken(a, 1, SliceProfile(), start, hi - lo) if (start, hi - lo) != (0, L) else None
        else:
            # target slice j: centre p0 + j f; inside when its box [c - f/2, c + f/2] lies in [-0.5, L - 0.5]
            c = p0[a] + f * np.arange(n)
            inside = np.flatnonzero((c - f / 2 >= -0.5 - _POS_EPS) & (c + f / 2 <= L - 0.5 + _POS_EPS))
            lo, hi = (int(inside[0]), int(inside[-1]) + 1) if inside.size else (0, 0)
            start = _snap(p0[a] + f * lo)
            op = Thicken(a, f, profile, start, hi - lo) if hi > lo else None
        if hi <= lo:
            raise InputError(f"voxel axis {a}: no target slice lies inside the network grid (target slice 0 at "
                             f"network voxel {p0[a]:.3f}, spacing ratio {f:g}, {n} target / {L} network slices)")
        slices.append(slice(lo, hi))
        if op is not None:
            ops.append(op)
    deg = Degradation(tuple(ops))
    return GridMatch(ops=tuple(ops), target_slices=tuple(slices), factors=tuple(factors), affine=deg.affine(na),
                     shape=deg.output_shape(net_shape))


def target_sampling_grid(net_affine, net_shape, target_affine, target_shape, tol=1e-3):
    """(affine, shape) of the grid a raw target should be resampled onto so that `match_target_grid` applies:
    along each axis where the target is coarser than the network (thick slices) the target's own slice
    positions and count are kept - resampling onto this grid does not interpolate along them -, along the
    others the network's lattice (its positions and length). The target's voxel axes must point along the
    network's (ValueError naming the axis otherwise: an oblique acquisition is not a thickening of network
    slices). Finer in-plane spacing is resampled down (anti-alias first, e.g. volumes.preprocess.antialias)."""
    na, ta = np.asarray(net_affine, np.float64), np.asarray(target_affine, np.float64)
    ns, ts = np.linalg.norm(na[:3, :3], axis=0), np.linalg.norm(ta[:3, :3], axis=0)
    p0 = np.linalg.solve(na[:3, :3], ta[:3, 3] - na[:3, 3])
    affine, shape = na, [int(s) for s in net_shape][:3]
    for a in range(3):
        cos = float(np.dot(na[:3, a], ta[:3, a]) / (ns[a] * ts[a]))
        if cos < 1 - tol:
            angle = math.degrees(math.acos(max(-1.0, min(1.0, cos))))
            raise InputError(f"voxel axis {a} points differently: network {np.round(na[:3, a] / ns[a], 4).tolist()}, "
                             f"target {np.round(ta[:3, a] / ts[a], 4).tolist()} ({angle:.2f} degrees apart)")
        r = ts[a] / ns[a]
        if r > 1 + tol:
            affine = Thicken(a, _snap(r), start=_snap(p0[a])).affine(affine)
            shape[a] = int(target_shape[a])
    return affine, tuple(shape)


# ---------------------------------------------------------------------------------------------------------------
# The trivial inverse (baseline for the reconstruction study).


def trivial_inverse(degraded, axis, factor, kind="linear", start=None, length=None):
    """Thick slices back on the network grid by interpolation along `axis` alone (NumPy; the mask is ignored).

    Slice j sits at network position start + j * factor (start defaults to (factor - 1) / 2, as in Thicken);
    network slice i gets, at t = (i - start) / factor, kind="linear": (1 - frac t) * slice[floor t] +
    frac t * slice[floor t + 1], kind="nearest": slice[round t]; beyond the first/last slice centre the end
    slice is repeated. Exact for a volume linear along `axis` between the first and last slice centres (the box
    average of a linear profile is its value at the centre). `length` = network slices (default round(M * f)).
    """
    y = np.asarray(degraded)
    ax = _array_axis(y.ndim, axis)
    if kind not in ("linear", "nearest"):
        raise InputError(f"trivial inverse kind must be 'linear' or 'nearest', got {kind!r}")
    m = y.shape[ax]
    start = (factor - 1.0) / 2.0 if start is None else float(start)
    length = int(round(m * factor)) if length is None else int(length)
    t = np.clip((np.arange(length, dtype=np.float64) - start) / factor, 0.0, m - 1.0)
    if kind == "nearest":
        return np.take(y, np.floor(t + 0.5).astype(np.int64), axis=ax)
    j0 = np.minimum(np.floor(t).astype(np.int64), max(m - 2, 0))
    j1 = np.minimum(j0 + 1, m - 1)
    frac = (t - j0).reshape([-1 if k == ax else 1 for k in range(y.ndim)])
    out = (1.0 - frac) * np.take(y, j0, axis=ax) + frac * np.take(y, j1, axis=ax)
    return out.astype(y.dtype if np.issubdtype(y.dtype, np.floating) else np.float32)
