"""What the projector is given to reproduce: image files, dataset volumes, generated seeds.

Each target is an EasyDict(name, volume [D,H,W,C] in [-1,1] on the dataset grid, label or None, affine) and for
image files also path and transform, so the projection can be written back in the file's own grid; generated
seeds also keep their true ws, to report the latent error.
"""

import os

import numpy as np

from dnnlib import EasyDict
from volumes import records
from volumes.manifest import load_manifest, volume_affine

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mgz", ".mgh", ".mha", ".mhd", ".nrrd", ".nhdr", ".dcm")


def unique_names(names):
    """Names with repeats numbered ('a', 'a' -> 'a', 'a-1'): one output folder per target."""
    seen, out = {}, []
    for n in names:
        k = seen.get(n, 0)
        seen[n] = k + 1
        out.append(n if k == 0 else f"{n}-{k}")
    return out


def file_stem(path):
    base = os.path.basename(os.path.normpath(str(path)))
    for suffix in IMAGE_SUFFIXES:
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


def find_manifest(network_path, data_dir=None):
    """The dataset manifest whose pipeline preprocesses image targets: data_dir's, else the run's copy
    (dataset.json in the network path or up to three folders above it: run dir, checkpoint, snapshot SavedModel).
    A run's copy has no shards beside it, so it is read as plain JSON: only its geometry and pipeline are used."""
    if data_dir:
        return load_manifest(data_dir)
    p = os.path.abspath(str(network_path))
    p = p if os.path.isdir(p) else os.path.dirname(p)
    for _ in range(4):
        cand = os.path.join(p, "dataset.json")
        if os.path.isfile(cand):
            try:
                m = EasyDict.load_json(cand)
            except (OSError, ValueError) as e:
                raise ValueError(f"{cand}: unreadable dataset manifest ({e})") from None
            if "shape" not in m or "spacing" not in m:
                raise ValueError(f"{cand}: dataset manifest lacks shape/spacing; give the dataset folder the "
                                 "network was trained on")
            return m
        p = os.path.dirname(p)
    raise FileNotFoundError(f"image targets are preprocessed with the training dataset's pipeline, but no "
                            f"dataset.json was found at or above {network_path}; give the dataset folder the "
                            "network was trained on")


def file_targets(paths, manifest):
    """Image files preprocessed exactly as the dataset was (preprocess.preprocess_like_manifest)."""
    from volumes import preprocess

    out = []
    for path in paths:
        arr, affine, transform = preprocess.preprocess_like_manifest(path, manifest)
        vol = np.asarray(arr, np.float32)
        vol = vol[..., None] if vol.ndim == 3 else vol
        out.append(EasyDict(name=file_stem(path), volume=vol * 2 - 1, label=None, path=str(path),
                            transform=transform, affine=np.asarray(affine, np.float64)))
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
        raise ValueError(f"{data_dir} has no volumes with indices {missing} "
                         f"(it holds {manifest.get('num_volumes', '?')} volumes)")
    out = []
    for i in indices:
        ex = found[int(i)]
        vol = records.decode_volume(ex.stored, manifest.storage_dtype).reshape(ex.shape)
        vol = vol[..., None] if vol.ndim == 3 else vol
        label = ex.label if ex.label.size else None
        out.append(EasyDict(name=f"index{int(i):05d}", volume=vol * 2 - 1, label=label,
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


def check_target_shapes(targets, G, data_dir=None):
    """Every target must be on the network's grid; the message names the target's source."""
    want = (*tuple(int(s) for s in G.img_shape), int(G.img_channels))
    for t in targets:
        if tuple(t.volume.shape) != want:
            src = t.get("path") or data_dir or "the dataset"
            raise ValueError(f"{src}: target {t.name} has shape {tuple(t.volume.shape)} on the dataset grid, but "
                             f"the network makes {want}; use the dataset the network was trained on")
