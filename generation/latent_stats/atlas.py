"""atlas: the population atlas of an embedded cohort, three ways, side by side.

(a) the volume the generator makes at the arithmetic mean of the latents;
(b) the intrinsic mean: the Frechet mean under the metric the generator induces on latent space (geodesic.py:
    distances in volume space along discrete geodesics), and its volume;
(c) the voxel mean of the embedded volumes themselves, for reference (not made by the network).
"""

import os

import numpy as np

from dnnlib import EasyDict
from dnnlib.errors import InputError
from volumes.volume_io import from_unit_range


def voxel_mean(data, manifest, indices, progress=None):
    """Mean [D,H,W,C] in [-1, 1] of the dataset's volumes `indices`, a running float64 sum over the records."""
    from volumes import records

    want, total, count = set(int(i) for i in indices), None, 0
    for ex in records.iterate_records(data, manifest):
        if ex.index not in want:
            continue
        vol = records.decode_volume(ex.stored, manifest.storage_dtype).reshape(ex.shape).astype(np.float64)
        vol = from_unit_range(vol[..., None] if vol.ndim == 3 else vol)
        total = vol if total is None else total + vol
        count += 1
        if progress is not None:
            progress.update(1)
    if count != len(want):
        raise InputError(f"{data}: found {count} of the embedding's {len(want)} volumes; is it the embedded dataset?")
    return (total / count).astype(np.float32)


def run_atlas(opts, emb, net, manifest, out):
    """Write the three atlases, atlas.png and the intrinsic mean's latent into `out`; returns the summary."""
    from generation.latent_stats import figures
    from generation.latent_stats.embedding import latent_vectors, to_ws
    from generation.latent_stats.geodesic import frechet_mean
    from generation.latent_stats.latent_volumes import differentiable_generator, synthesize
    from generation.outputs import write_volume
    from volumes.volume_io import to_unit_range
    from volumes.work_pool import Progress

    G, w_plus = net.G, bool(emb.record.w_plus)
    affine = np.asarray(manifest.affine, np.float64)
    vectors = latent_vectors(emb)
    mean_vec = vectors.astype(np.float64).mean(axis=0).astype(np.float32)
    latents = emb.latents if w_plus else vectors
    steps = int(opts.get("geodesic_steps", 100))
    print(f"intrinsic mean of {len(latents)} latents: {steps} steps, {opts.get('segments', 4)} segments per curve")
    bar = Progress(steps, label="intrinsic mean ")

    def progress(step, total_steps, energy):
        bar.update(1)
        if step == 1 or step % max(1, total_steps // 10) == 0 or step == total_steps:
            print(f"step {step:>5}/{total_steps}  sum of squared geodesic distances {energy:.6g}", flush=True)

    fm = frechet_mean(differentiable_generator(G, w_plus), latents, int(opts.get("segments", 4)), steps,
                      opts.get("geodesic_lr"), progress, chunk=int(opts.get("batch", 4)))
    intrinsic_vec = fm.mean.reshape(-1)
    vols = synthesize(G, to_ws(emb, np.stack([mean_vec, intrinsic_vec])), int(opts.get("batch", 4)))
    indices = [int(r["index"]) for r in emb.record.rows]
    data_mean = voxel_mean(emb.record.data, manifest, indices, Progress(len(indices), label="voxel mean "))
    names = ("atlas_mean_latent", "atlas_intrinsic", "atlas_voxel_mean")
    for name, v in zip(names, [vols[0], vols[1], data_mean], strict=True):
        write_volume(os.path.join(out, name + ".nii.gz"), v, affine)
    units = [to_unit_range(v) for v in (vols[0], vols[1], data_mean)]
    figures.rows_png(os.path.join(out, "atlas.png"), units)
    np.save(os.path.join(out, "intrinsic_mean_latent.npy"), to_ws(emb, intrinsic_vec[None])[0])
    rms = lambda a, b: float(np.sqrt(np.mean((np.asarray(a, np.float64) - b) ** 2)))  # noqa: E731
    return EasyDict(
        files=[n + ".nii.gz" for n in names] + ["atlas.png", "intrinsic_mean_latent.npy"],
        rows=["mean latent", "intrinsic mean", "voxel mean of the data"],
        sum_sq_geodesic_at_arithmetic_mean=float(np.sum(fm.start_energies)),
        sum_sq_geodesic_at_intrinsic_mean=float(np.sum(fm.energies)),
        geodesic_distances=[float(np.sqrt(e)) for e in fm.energies],
        chord_distances=[float(c) for c in fm.chords],
        latent_distance_intrinsic_to_arithmetic=float(np.linalg.norm(intrinsic_vec - mean_vec)),
        rms_intensity_differences_unit={
            "mean_latent_vs_voxel_mean": rms(units[0], units[2]),
            "intrinsic_vs_voxel_mean": rms(units[1], units[2]),
            "intrinsic_vs_mean_latent": rms(units[1], units[0]),
        },
        distance_units="L2 norm over all voxels of generated volumes in [-1, 1]",
    )
