"""Grid matching: the degradation a target's own grid implies. `target_sampling_grid` is the grid a raw scan is
resampled onto (the network lattice in-plane, its own thick slices kept); `match_target_grid` derives the
thickenings (and crops) that take the network grid to a target's grid.
"""

import math
from dataclasses import dataclass

import numpy as np

from dnnlib.errors import InputError
from generation.restoration.forward_models import POSITION_EPS, Degradation, SliceProfile, Thicken


def _snap(v, eps=1e-6):
    """Geometry read from headers carries float noise: snap near-integers, drop digits below 1e-9."""
    r = round(float(v))
    return int(r) if abs(float(v) - r) < eps else round(float(v), 9)


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
            inside = np.flatnonzero((c - f / 2 >= -0.5 - POSITION_EPS) & (c + f / 2 <= L - 0.5 + POSITION_EPS))
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
