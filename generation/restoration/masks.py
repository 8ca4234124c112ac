"""Masks: which voxels of the degraded (target) grid are compared. Weight 1 = compared, 0 = not compared (a
lesion, a defaced region, a cut-off field of view)."""

import os
from dataclasses import dataclass

import numpy as np

from dnnlib.errors import InputError


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
