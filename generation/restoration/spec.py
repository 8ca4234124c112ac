"""The degradation spec (run_projector.py's --degradation): `parse_spec` turns the string into a `Degradation`,
`Degradation.spec()` gives it back; `is_no_degradation` tells "no forward model at all" apart.

Importing this module does not load TensorFlow (run_projector.py checks the flag before any work).
"""

import math

from dnnlib.errors import InputError
from generation.restoration.forward_models import NATIVE, PROFILES, Degradation, SliceProfile, Thicken
from generation.restoration.masks import Mask

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
