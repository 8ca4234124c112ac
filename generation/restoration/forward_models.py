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

The composition (`Degradation`)
-------------------------------
Thickenings (and crops) in order, then a mask on the final grid (`masks`) and a noise level weighting the data
term (`data_term`). Degradation() is the identity.
"""

import functools
import math
import numbers
from dataclasses import dataclass, field, replace

import numpy as np

from dnnlib.errors import InputError
from generation.restoration.data_term import gaussian_data_term, noise_weight
from generation.restoration.masks import Mask, read_mask

# TensorFlow is imported by the functions that run ops: spec.parse_spec alone (run_projector.py's flag check) must
# not load it.

PROFILES = ("box", "gaussian")
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
POSITION_EPS = 1e-6  # slice boxes are computed in floating point; a box edge this close to the grid's edge is inside


def array_axis(ndim, axis):
    """Array axis of spatial axis `axis` for a [N,D,H,W,C] (ndim 5) or [D,H,W] (ndim 3) volume."""
    if axis not in (0, 1, 2):
        raise InputError(f"axis must be 0, 1 or 2 (a spatial axis), got {axis!r}")
    if ndim == 5:
        return axis + 1
    if ndim == 3:
        return axis
    raise InputError(f"expected a [N,D,H,W,C] or [D,H,W] volume, got {ndim} dimensions")


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
        if c0 - f / 2.0 < -0.5 - POSITION_EPS:
            raise InputError(f"first thick slice (centre {c0:g}, thickness {f:g} voxels) starts before the grid "
                             f"along axis {self.axis}")
        fit = int(math.floor((length - 0.5 - c0 - f / 2.0 + POSITION_EPS) / f)) + 1
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
        ax = array_axis(x.shape.rank, self.axis)
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
# The composition.

# The spec word for "only the scan's own geometry": an image target keeps its slices as acquired (thickness read
# from its spacing) and nothing else is degraded. "none" means no degradation at all (see spec.is_no_degradation).
NATIVE = "native"


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
        """The spec string spec.parse_spec turns back into this degradation (NATIVE for the identity: an image target
        compared in its own geometry and nothing else)."""
        parts = [op.spec() for op in self.ops]
        if self.mask is not None and self.mask.path is not None:
            parts.append(self.mask.spec())
        if self.sigma is not None:
            parts.append(f"noise={self.sigma!r}")
        return ";".join(parts) or NATIVE
