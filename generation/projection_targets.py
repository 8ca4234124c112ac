"""What the projector is given to reproduce: image files, dataset volumes, generated seeds.

Each target is an EasyDict(name, volume [D,H,W,C] in [-1,1] on the dataset grid, label or None, affine) and for
image files also path and transform, so the projection can be written back in the file's own grid; generated
seeds also keep their true ws, to report the latent error.

With a degradation (reconstruction studies) a target also has `degradation` (its own Degradation, mask read),
`degraded` ([d,h,w,C] in [-1,1] on the degraded grid: what the loss compares), `grid_affine` (the degraded grid's)
and `fov` ((affine, shape) of the field of view for restored outputs). Dataset and seed targets are degraded
from their network-grid volume (`degrade_target`); image files are read in their own geometry
(`native_file_target`): no `volume` (nothing is known on the network grid), their thick slices kept as acquired.
"""

import os

import numpy as np

from dnnlib import EasyDict
from dnnlib.errors import InputError
from training.run_files import MANIFEST_COPY_NAME, OPTIONS_NAME
from volumes import records, volume_io
from volumes.manifest import load_manifest, volume_affine


def unique_names(names):
    """Names with repeats numbered ('a', 'a' -> 'a', 'a-1'): one output folder per target."""
    seen, out = {}, []
    for n in names:
        k = seen.get(n, 0)
        seen[n] = k + 1
        out.append(n if k == 0 else f"{n}-{k}")
    return out


def find_manifest(network_path, data_dir=None):
    """The dataset manifest whose pipeline preprocesses image targets: data_dir's, else the run's copy
    (dataset.json in the network path, or up to three folders above it in a folder that is the network's run
    (it holds training_options.json) or a shipped network's folder (record.json): checkpoint, snapshot SavedModel).
    A dataset.json in any other folder above the network is not taken: it may be anybody's.
    A run's copy has no shards beside it, so it is read as plain JSON: only its geometry and pipeline are used."""
    if data_dir:
        return load_manifest(data_dir)
    p = os.path.abspath(str(network_path))
    p = p if os.path.isdir(p) else os.path.dirname(p)
    for level in range(4):
        cand = os.path.join(p, MANIFEST_COPY_NAME)
        ours = level == 0 or any(os.path.isfile(os.path.join(p, n)) for n in (OPTIONS_NAME, "record.json"))
        if ours and os.path.isfile(cand):
            try:
                m = EasyDict.load_json(cand)
            except (OSError, ValueError) as e:
                raise InputError(f"{cand}: unreadable dataset manifest ({e})") from None
            if "shape" not in m or "spacing" not in m:
                raise InputError(f"{cand}: dataset manifest lacks shape/spacing; give the dataset folder the "
                                 "network was trained on")
            return m
        p = os.path.dirname(p)
    raise FileNotFoundError(f"image targets are preprocessed with the training dataset's pipeline, but no "
                            f"dataset.json was found in {network_path} or its run folder; give the dataset folder the "
                            "network was trained on")


def file_targets(paths, manifest):
    """Image files preprocessed exactly as the dataset was (preprocess.preprocess_like_manifest)."""
    from volumes import preprocess

    out = []
    for path in paths:
        arr, affine, transform = preprocess.preprocess_like_manifest(path, manifest)
        vol = np.asarray(arr, np.float32)
        vol = vol[..., None] if vol.ndim == 3 else vol
        out.append(EasyDict(name=volume_io.file_stem(path), volume=volume_io.from_unit_range(vol), label=None,
                            path=str(path), transform=transform, affine=np.asarray(affine, np.float64)))
    return out


def dataset_targets(data_dir, indices):
    """Volumes `indices` of a converted dataset, read straight from its shards, with their affines."""
    manifest = load_manifest(data_dir)
    want, found = set(int(i) for i in indices), {}
    for ex in records.iterate_records(data_dir, manifest):
        if ex.index in want:
            found[ex.index] = ex
            if len(found) == len(want):
                break
    missing = sorted(want - set(found))
    if missing:
        raise InputError(f"{data_dir} has no volumes with indices {missing} "
                         f"(it holds {manifest.get('num_volumes', '?')} volumes)")
    out = []
    for i in indices:
        ex = found[int(i)]
        vol = records.decode_volume(ex.stored, manifest.storage_dtype).reshape(ex.shape)
        vol = vol[..., None] if vol.ndim == 3 else vol
        label = ex.label if ex.label.size else None
        out.append(EasyDict(name=f"index{int(i):05d}", volume=volume_io.from_unit_range(vol), label=label,
                            affine=volume_affine(manifest, i)))
    return out


def seed_targets(G, seeds, psi=1.0, noise_mode="random", c=None):
    """Generated volumes as targets (recovery test); the true ws are kept to report the latent error."""
    from generation.runner import Runner
    from generation.sampling import generate
    from generation.seeds import seeds_to_z

    runner = Runner(G, batch_size=4)
    vols = generate(runner, seeds, psi, noise_mode, c)
    ws = runner.map(seeds_to_z(seeds, runner.z_dim), c, psi=psi)
    return [EasyDict(name=f"seed{s:04d}", volume=v, label=c, true_ws=w) for s, v, w in zip(seeds, vols, ws,
                                                                                         strict=True)]


def degrade_target(t, deg):
    """Dataset or seed target t (volume and affine on the network grid) through `deg`: sets t.degradation (mask
    read: a file on the degraded grid), t.degraded, t.grid_affine, t.fov (the network grid). Voxels the mask
    excludes are background (-1) in t.degraded: the hidden truth must not reach the input nor the trivial inverse."""
    shape = tuple(t.volume.shape[:3])
    t.grid_affine = deg.affine(t.affine)
    t.degradation = deg.load_mask(shape=deg.output_shape(shape), affine=t.grid_affine)
    degraded = deg(t.volume[None]).numpy()[0]
    w = t.degradation.weights()
    if w is not None:
        degraded = np.where((np.asarray(w) > 0)[..., None], degraded, np.float32(-1.0)).astype(np.float32)
    t.degraded = degraded
    t.fov = (np.asarray(t.affine, np.float64), shape)
    return t


def _binary_on_grid(arr, affine, grid, shape):
    """Nonzero voxels of (arr, affine) on (grid, shape): exact shift when on the lattice, else linear + 0.5."""
    from volumes import preprocess

    inside = (np.asarray(arr) != 0).astype(np.float32)
    offset = preprocess.lattice_offset(affine, grid)
    if offset is not None:
        return preprocess.crop_pad(inside, offset, shape, 0.0) > 0.5
    return preprocess.resample(inside, affine, grid, shape, 0.0) > 0.5


def _with_spec_profiles(match, deg, path):
    """The thickenings a scan's own spacing implies, with the slice profile the spec gives for that axis; a spec
    thickening must agree with the scan's slice thickness and may not name an axis the scan samples finely."""
    from dataclasses import replace

    spec_ops = {op.axis: op for op in deg.ops}
    out = []
    for op in match.ops:
        given = spec_ops.pop(op.axis, None)
        if op.factor != 1 and given is not None:
            if abs(float(given.factor) - float(op.factor)) > 0.01 * float(op.factor):
                raise InputError(f"{path}: its slices along voxel axis {op.axis} are {float(op.factor):g} network "
                                 f"voxels thick, the degradation says {float(given.factor):g}")
            op = replace(op, profile=given.profile)
        elif given is not None:
            spec_ops[op.axis] = given
        out.append(op)
    if spec_ops:
        axes = sorted(spec_ops)
        raise InputError(f"{path}: the degradation thickens voxel axes {axes}, but the scan is sampled at the "
                         f"network's spacing along them (an image target's slice thickness is read from the scan)")
    return tuple(out)


def native_file_target(path, manifest, img_shape, deg):
    """An image file in its own geometry (not interpolated onto the network grid along its thick axes).

    Reoriented and normalised as the dataset's pipeline does; the network grid is placed on the scan as
    preprocessing would place it; the scan is resampled in-plane onto the network lattice (anti-aliased when
    finer), its slices along coarser axes kept (`restoration.grid_matching.target_sampling_grid`);
    `match_target_grid` then gives the thickenings (profile from `deg`'s thicken part on that axis, box by
    default) and the crop of the scan the network grid covers. A mask file in `deg` is in the scan's own space
    (its shape and affine)."""
    from generation.restoration.forward_models import Degradation
    from generation.restoration.grid_matching import match_target_grid, target_sampling_grid
    from generation.restoration.masks import Mask
    from volumes import preprocess

    popts = preprocess.options_from_manifest(manifest)
    if popts.register_to:
        raise InputError(f"{path}: the dataset was registered to {popts.register_to}; a scan cannot be compared in "
                         "its own geometry through a registration (its slices would be oblique to the network's): "
                         "project it without a degradation")
    raw, raw_affine = volume_io.read_volume(path, max_voxels=volume_io.DEFAULT_MAX_VOXELS)
    preprocess.check_values(raw, str(path))
    vol, aff = raw, raw_affine
    if popts.reorient:
        vol, aff, _ = volume_io.reorient_to_ras(vol, aff)
        direction = np.eye(3)
    else:
        direction = aff[:3, :3] / volume_io.voxel_sizes(aff)[None, :]
    if popts.center == "foreground":
        centre = preprocess.foreground_centre(preprocess.foreground_mask(vol, popts.foreground_fraction))
    else:
        centre = (np.asarray(vol.shape, np.float64) - 1) / 2
    net_affine = preprocess.output_grid(aff, vol.shape, centre, EasyDict(popts, resample=True), direction)
    try:
        grid, shape = target_sampling_grid(net_affine, img_shape, aff, vol.shape)
        match = match_target_grid(net_affine, img_shape, grid, shape)  # box slices unless the spec says else
        ops = _with_spec_profiles(match, deg, path)
    except ValueError as e:
        raise InputError(f"{path}: {e}" if str(path) not in str(e) else str(e)) from None
    fill = float(vol.min())
    offset = preprocess.lattice_offset(aff, grid)
    if offset is not None:
        out = preprocess.crop_pad(vol, offset, shape, fill)
    else:
        blurred, _ = preprocess.antialias(vol, aff, volume_io.voxel_sizes(grid))
        out = preprocess.resample(blurred, aff, grid, shape, fill)
    if popts.normalize:
        out, intensity = preprocess.normalize_intensity(out, preprocess.foreground_mask(out, popts.foreground_fraction),
                                                        popts.percentiles)
        intensity["background"] = fill  # the scan's minimum: what 0 stands for back in its units
    else:
        out, intensity = np.clip(out, 0.0, 1.0), {"method": "clip01"}
    crop = match.target_slices
    mask = None
    if deg.mask is not None:
        m_arr, m_affine = volume_io.read_volume(deg.mask.path, max_voxels=volume_io.DEFAULT_MAX_VOXELS)
        if m_arr.shape != raw.shape or not np.allclose(m_affine, raw_affine, atol=1e-3):
            raise InputError(f"{deg.mask.path}: a mask for {path} must be in the scan's space (shape {raw.shape}, its "
                             f"affine); it has shape {m_arr.shape} and affine {np.round(m_affine, 3).tolist()}")
        if popts.reorient:
            m_arr, _, _ = volume_io.reorient_to_ras(m_arr, m_affine)
        inside = _binary_on_grid(m_arr, aff, grid, shape)[crop]
        mask = Mask.from_array(inside, invert=deg.mask.invert, path=deg.mask.path)
    degradation = Degradation(ops, mask, deg.sigma)
    degraded = volume_io.from_unit_range(out[crop]).astype(np.float32)[..., None]
    transform = {"source_shape": list(raw.shape), "source_affine": np.asarray(raw_affine).tolist(),
                 "intensity": intensity}
    return EasyDict(name=volume_io.file_stem(path), volume=None, label=None, path=str(path), transform=transform,
                    affine=net_affine, degradation=degradation, degraded=degraded, grid_affine=match.affine,
                    fov=(aff, tuple(vol.shape)))


def check_target_shapes(targets, G, data_dir=None):
    """Every target must be on the network's grid; the message names the target's source."""
    want = (*tuple(int(s) for s in G.img_shape), int(G.img_channels))
    for t in targets:
        if t.get("volume") is not None and tuple(t.volume.shape) != want:
            src = t.get("path") or data_dir or "the dataset"
            raise InputError(f"{src}: target {t.name} has shape {tuple(t.volume.shape)} on the dataset grid, but "
                             f"the network makes {want}; use the dataset the network was trained on")
