"""Restoration studies on held-out volumes: projection through a forward model against simple baselines.

  .venv/bin/python -m bench.bench_restoration --network=demo --data=pretrained/demo/heldout --indices=0-3 \
      --num_steps=200 --factors=2,4,6 --blocks=16,8 --out=/tmp/restoration \
      --figure=docs/figures/restoration_case.png

thick: each volume thickened along --axis by each of --factors (box slices, `thicken:axis=A,factor=F`) and projected
through that forward model (generation.projection_command.run_projection); PSNR over the voxels between thick-slice
centres (reconstruction.missing_information; every voxel for an even factor) and 3D SSIM over their bounding box
(the whole volume), for the projection and for linear interpolation between the thick slices (the trivial inverse).
block: a cube of --blocks voxels, centred on the foreground of the dataset's mean volume, hidden by a mask
(`mask:path=BLOCK,invert=1`, one NIfTI on the dataset grid for every index); PSNR over the block's voxels and SSIM
over the block, for the projection and three fills of the block: background (the input as it is, the trivial
inverse), harmonic (the discrete Laplace interpolation of the voxels around the block) and the population mean
(the mean of the dataset's other volumes in the block, leave-one-out); and, as a control, the projection of the
whole clean volume (nothing hidden) measured in the block: the network's own floor there (the same control is
measured in the thick-slice study).
Everything in [0, 1] (file units). --figure draws mid-slices of the first index: original, input, baseline,
projection, for thick slices (--figure_factor) and the first block size.
"""

import os

from absl import app, flags

FLAGS = flags.FLAGS


def define_flags():
    """The flags, defined only when run as a script: tests import this module beside others that define
    --network and --data."""
    from dnnlib.option_table import defaults
    from generation.projection_options import PROJECTOR_OPTIONS

    flags.DEFINE_string("network", "demo", "The network (a shipped name, run dir or SavedModel).")
    flags.DEFINE_string("data", "pretrained/demo/heldout", "Dataset of volumes the network never saw.")
    flags.DEFINE_string("indices", "0-3", "Volumes of --data to restore.")
    flags.DEFINE_integer("num_steps", 200, "Projector steps.")
    flags.DEFINE_bool("w_plus", defaults(PROJECTOR_OPTIONS).w_plus, "Project into W+ (one W per layer), as the "
                      "projector by default; --now_plus: one W tiled over the layers.")
    flags.DEFINE_integer("w_avg_samples", 10000, "Mapping samples for the W mean and spread.")
    flags.DEFINE_float("w_prior_weight", defaults(PROJECTOR_OPTIONS).w_prior_weight, "Weight of the projector's prior "
                       "on W (run_projector.py --w_prior_weight).")
    flags.DEFINE_list("factors", ["2", "4", "6"], "Thick-slice factors (voxels per slice); empty: no thick study.")
    flags.DEFINE_integer("axis", 2, "Array axis thickened (2: superior on RAS data).")
    flags.DEFINE_list("blocks", ["16", "8"], "Edges of the hidden cube in voxels; empty: no block study.")
    flags.DEFINE_string("out", None, "Folder for the projections (kept); default a temporary folder, removed.")
    flags.DEFINE_bool("overwrite", False, "Replace the projection folders in --out.")
    flags.DEFINE_string("figure", None, "PNG of one case (the first index), e.g. docs/figures/restoration_case.png.")
    flags.DEFINE_integer("figure_factor", 4, "Thick-slice factor shown in --figure (one of --factors).")


# ---------------------------------------------------------------------------------------------------------------
# Baselines and measures.


def harmonic_fill(volume, hole):
    """volume [D,H,W] with the `hole` voxels replaced by the discrete harmonic interpolation of the voxels around
    them: every hole voxel is the mean of its face neighbours inside the grid (a sparse linear solve). Exact for a
    volume linear over the hole and its neighbours. ValueError when a part of the hole touches no known voxel."""
    import numpy as np
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components
    from scipy.sparse.linalg import spsolve

    v = np.array(volume, np.float64)
    hole = np.asarray(hole, bool)
    if hole.shape != v.shape:
        raise ValueError(f"hole has shape {hole.shape}, the volume {v.shape}")
    coords = np.argwhere(hole)
    n = len(coords)
    if n == 0:
        return v
    index = np.full(v.shape, -1, np.int64)
    index[hole] = np.arange(n)
    rows, cols = [], []
    degree, rhs, touches = np.zeros(n), np.zeros(n), np.zeros(n, bool)
    for axis in range(3):
        for step in (-1, 1):
            nb = coords.copy()
            nb[:, axis] += step
            ok = (nb[:, axis] >= 0) & (nb[:, axis] < v.shape[axis])
            degree += ok
            me, nb = np.flatnonzero(ok), nb[ok]
            j = index[tuple(nb.T)]
            inner = j >= 0
            rows.append(me[inner])
            cols.append(j[inner])
            rhs[me[~inner]] += v[tuple(nb[~inner].T)]
            touches[me[~inner]] = True
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    adjacency = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, label = connected_components(adjacency, directed=False)
    if not np.all(np.bincount(label, weights=touches) > 0):
        raise ValueError("part of the hole touches no known voxel: nothing to interpolate from")
    system = sp.diags(degree) - adjacency
    v[hole] = spsolve(system.tocsc(), rhs)
    return v


def block_slices(centre, edge, shape):
    """Index slices of a cube of `edge` voxels centred at `centre` (voxel coordinates), moved inside the grid."""
    out = []
    for c, n in zip(centre, shape, strict=True):
        if edge > n:
            raise ValueError(f"a block of {edge} voxels does not fit a grid of {tuple(shape)}")
        lo = min(max(int(round(c - edge / 2)), 0), n - edge)
        out.append(slice(lo, lo + edge))
    return tuple(out)


def inside_metrics(truth, restored, region):
    """{psnr over the region's voxels, ssim over the region's bounding box} in [0, 1] units."""
    import numpy as np

    from metrics.reconstruction import psnr, ssim_3d

    box = tuple(slice(int(a.min()), int(a.max()) + 1) for a in np.nonzero(region))
    return {"psnr": psnr(truth[region], restored[region], 1.0), "ssim": ssim_3d(truth[box], restored[box], 1.0)}


# ---------------------------------------------------------------------------------------------------------------
# The studies.


def _read(folder, name):
    from volumes import volume_io

    return volume_io.read_volume(os.path.join(folder, name))[0]


def _project(cfg, outdir, degradation):
    """run_projection (the projector's library entry point) of cfg.indices through `degradation`."""
    from dnnlib import EasyDict
    from generation.projection_command import run_projection
    from generation.projector import default_options

    opts = EasyDict(default_options())
    opts.update(network=cfg.network, outdir=outdir, overwrite=cfg.overwrite, data=cfg.data, targets=[],
                indices=list(cfg.indices), target_seeds=[], num_steps=cfg.num_steps, w_avg_samples=cfg.w_avg_samples,
                w_plus=cfg.w_plus, w_prior_weight=cfg.w_prior_weight,
                batch=len(cfg.indices), progress_every=max(1, cfg.num_steps // 4), uint8=False,
                degradation=degradation)
    return run_projection(opts)


def thick_study(cfg, out, clean):
    """Rows (factor, index, psnr/ssim of the projection, the control and interpolation); kept volumes of the first
    index. clean: the folder of the projections of the clean volumes (the control)."""
    from generation.restoration.restored import missing_information
    from generation.restoration.spec import parse_spec

    rows, keep = [], {}
    for f in cfg.factors:
        folder = os.path.join(out, f"thick-f{f}")
        spec = f"thicken:axis={cfg.axis},factor={f}"
        _project(cfg, folder, spec)
        for i in cfg.indices:
            d = os.path.join(folder, f"index{i:05d}")
            truth, proj, interp = (_read(d, n) for n in ("target.nii.gz", "projected.nii.gz",
                                                          "trivial_inverse.nii.gz"))
            missing = missing_information(parse_spec(spec), truth.shape)
            fills = {"projection": proj, "unhidden": _read(os.path.join(clean, f"index{i:05d}"), "projected.nii.gz"),
                     "interpolation": interp}
            rows.append(_row(dict(factor=f, index=i), truth, fills, missing))
            if i == cfg.indices[0]:
                keep[f] = dict(truth=truth, thick=_read(d, "target_degraded.nii.gz"), baseline=interp, projection=proj)
    return rows, keep


def _row(head, truth, fills, region):
    """head + psnr_<fill> for every fill, then ssim_<fill> (inside_metrics over `region`)."""
    measured = {name: inside_metrics(truth, vol, region) for name, vol in fills.items()}
    return dict(head, **{f"{k}_{name}": measured[name][k] for k in ("psnr", "ssim") for name in fills})


def dataset_volumes(data):
    """{index: volume [D,H,W] in [0, 1]} of every volume of a dataset, and its manifest."""
    from volumes import records
    from volumes.manifest import load_manifest

    m = load_manifest(data)
    return {ex.index: records.decode_volume(ex.stored, m.storage_dtype).reshape(ex.shape)
            for ex in records.iterate_records(data, m)}, m


def block_centre(volumes):
    """Voxel centre of the foreground of the mean volume (the same block for every index)."""
    import numpy as np

    from volumes import preprocess

    mean = np.mean(np.stack(list(volumes.values())), axis=0)
    return preprocess.foreground_centre(preprocess.foreground_mask(mean))


def block_study(cfg, out, clean):
    """Rows (block, index, psnr/ssim of the projection, the control and the three fills); kept volumes of the
    first index."""
    import numpy as np

    from volumes import volume_io

    volumes, manifest = dataset_volumes(cfg.data)
    centre = block_centre(volumes)
    rows, keep = [], {}
    for edge in cfg.blocks:
        where = block_slices(centre, edge, manifest.shape)
        block = np.zeros(manifest.shape, bool)
        block[where] = True
        mask_path = os.path.join(out, f"block{edge}.nii.gz")
        volume_io.write_nifti(mask_path, block.astype(np.float32), np.asarray(manifest.affine), dtype="uint8")
        print(f"block {edge}: voxels {[(s.start, s.stop) for s in where]} of {list(manifest.shape)}", flush=True)
        folder = os.path.join(out, f"block{edge}")
        _project(cfg, folder, f"mask:path={mask_path},invert=1")
        for i in cfg.indices:
            d = os.path.join(folder, f"index{i:05d}")
            truth, proj, background = (_read(d, n) for n in ("target.nii.gz", "projected.nii.gz",
                                                              "trivial_inverse.nii.gz"))
            others = [v for k, v in volumes.items() if k != i]
            fills = {"projection": proj, "unhidden": _read(os.path.join(clean, f"index{i:05d}"), "projected.nii.gz"),
                     "background": background,
                     "harmonic": harmonic_fill(background, block).astype(np.float32),
                     "mean": np.where(block, np.mean(others, axis=0), background).astype(np.float32)}
            rows.append(_row(dict(block=edge, index=i), truth, fills, block))
            if i == cfg.indices[0]:
                keep[edge] = dict(truth=truth, masked=background, baseline=fills["harmonic"], projection=proj,
                                  where=where)
    return rows, keep


def medians(rows, key):
    """One row per value of `key`: the median of every numeric column over the indices."""
    import numpy as np

    out = []
    for value in dict.fromkeys(r[key] for r in rows):
        group = [r for r in rows if r[key] == value]
        out.append({key: value, "index": "median", **{c: float(np.median([r[c] for r in group]))
                                                      for c in group[0] if c not in (key, "index")}})
    return out


def print_rows(title, rows, key):
    from bench.common import print_table

    print(f"\n{title}")
    table = rows + medians(rows, key)
    print_table([list(r.values()) for r in table], list(table[0]), floatfmt="{:.3f}")


# ---------------------------------------------------------------------------------------------------------------
# The picture.


def case_figure(path, thick, block, factor, axis, thick_psnr, block_psnr):
    """PNG: rows thick slices (factor) and hidden block; columns original, input, baseline, projection. Coronal
    slices (superior up): the middle one for thick slices, through the block's centre for the block."""
    import io

    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from dnnlib.fileutil import atomic_write_bytes
    from generation.restoration.trivial_inverse import trivial_inverse
    from volumes.visualize import slice_2d

    shape = thick["truth"].shape
    shown_thick = trivial_inverse(thick["thick"], axis, float(factor), "nearest", length=shape[axis])
    j = (block["where"][1].start + block["where"][1].stop) // 2
    edge = block["where"][1].stop - block["where"][1].start
    rows = [
        (f"thick slices x{factor}", [thick["truth"], shown_thick, thick["baseline"], thick["projection"]], None,
         ["original", f"input ({factor} voxels / slice)", f"linear interp. {thick_psnr[0]:.1f} dB",
          f"projection {thick_psnr[1]:.1f} dB"]),
        (f"hidden block, {edge} voxels", [block["truth"], block["masked"], block["baseline"], block["projection"]], j,
         ["original", "input (block hidden)", f"harmonic fill {block_psnr[0]:.1f} dB",
          f"projection {block_psnr[1]:.1f} dB"]),
    ]
    fig = Figure(figsize=(7.2, 4.4), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 4)
    for r, (label, vols, index, titles) in enumerate(rows):
        for c, (vol, title) in enumerate(zip(vols, titles, strict=True)):
            ax = axes[r, c]
            ax.imshow(slice_2d(np.asarray(vol), 1, index), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            if index is not None:  # the block's outline: rows run superior to inferior, columns along axis 0
                wi, wk = block["where"][0], block["where"][2]
                ax.add_patch(Rectangle((wi.start - 0.5, shape[2] - wk.stop - 0.5), wi.stop - wi.start,
                                       wk.stop - wk.start, fill=False, edgecolor="tab:red", linewidth=0.8))
        axes[r, 0].set_ylabel(label, fontsize=9)
    fig.suptitle("held-out volume, coronal slices; PSNR in the restored voxels", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    atomic_write_bytes(path, buf.getvalue())
    return path


# ---------------------------------------------------------------------------------------------------------------


def run(cfg):
    """Both studies (as cfg says), tables printed; returns {"thick": rows, "block": rows}."""
    import shutil
    import tempfile

    out = cfg.out or tempfile.mkdtemp(prefix="bench_restoration-")
    os.makedirs(out, exist_ok=True)
    try:
        # The control: the projections of the clean volumes (nothing hidden), measured where the studies measure.
        clean = os.path.join(out, "clean")
        if cfg.factors or cfg.blocks:
            _project(cfg, clean, None)
        thick_rows, thick_keep = thick_study(cfg, out, clean) if cfg.factors else ([], {})
        block_rows, block_keep = block_study(cfg, out, clean) if cfg.blocks else ([], {})
    finally:
        if not cfg.out:
            shutil.rmtree(out, ignore_errors=True)
    where = (f"{cfg.data}, indices {','.join(map(str, cfg.indices))}, {'W+' if cfg.w_plus else 'W'}, "
             f"{cfg.num_steps} steps, "
             f"w_prior_weight {cfg.w_prior_weight:g}, network {cfg.network}")
    if thick_rows:
        print_rows(f"thick slices along axis {cfg.axis} ({where}): PSNR (dB) between slice centres, SSIM whole "
                   "volume; interpolation = linear between thick slices; unhidden = projection of the clean volume "
                   "(control)", thick_rows, "factor")
    if block_rows:
        print_rows(f"hidden block ({where}): PSNR (dB) in the block, SSIM over the block; fills: background (input "
                   "as is), harmonic (Laplace from the block's faces), mean (other volumes' mean); unhidden = "
                   "projection of the clean volume (control)", block_rows, "block")
    if cfg.figure:
        f, b = cfg.figure_factor, cfg.blocks[0]
        t0 = next(r for r in thick_rows if r["factor"] == f and r["index"] == cfg.indices[0])
        b0 = next(r for r in block_rows if r["block"] == b and r["index"] == cfg.indices[0])
        case_figure(cfg.figure, thick_keep[f], block_keep[b], f, cfg.axis,
                    (t0["psnr_interpolation"], t0["psnr_projection"]), (b0["psnr_harmonic"], b0["psnr_projection"]))
        print(f"figure: {cfg.figure}")
    return {"thick": thick_rows, "block": block_rows}


def _ints(values, name):
    try:
        out = [int(v) for v in values]
    except ValueError:
        raise SystemExit(f"--{name}={','.join(values)}: expected integers") from None
    if any(v < 1 for v in out):
        raise SystemExit(f"--{name}: every value must be at least 1")
    return out


def main(argv):
    from bench.common import machine_line
    from dnnlib import EasyDict
    from dnnlib.cli import parse_int_ranges
    from training import pretrained

    if len(argv) > 1:
        raise SystemExit(f"unexpected arguments: {' '.join(argv[1:])}")
    cfg = EasyDict(network=pretrained.resolve(FLAGS.network), data=FLAGS.data,
                   indices=parse_int_ranges(FLAGS.indices, "--indices"), num_steps=FLAGS.num_steps, w_plus=FLAGS.w_plus,
                   w_prior_weight=FLAGS.w_prior_weight, w_avg_samples=FLAGS.w_avg_samples,
                   factors=_ints(FLAGS.factors, "factors"), axis=FLAGS.axis,
                   blocks=_ints(FLAGS.blocks, "blocks"), out=FLAGS.out, overwrite=FLAGS.overwrite,
                   figure=FLAGS.figure, figure_factor=FLAGS.figure_factor)
    if cfg.axis not in (0, 1, 2):
        raise SystemExit(f"--axis={cfg.axis}: must be 0, 1 or 2")
    if cfg.figure and (cfg.figure_factor not in cfg.factors or not cfg.blocks):
        raise SystemExit("--figure needs --figure_factor among --factors and at least one of --blocks")
    print(machine_line(), flush=True)
    run(cfg)


if __name__ == "__main__":
    from dnnlib.cli import run_main

    define_flags()
    app.run(run_main(main))  # SIGTERM unwinds: the projection in progress leaves no temporary folder in --out
