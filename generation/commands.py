"""What run_generator.py calls: run(opts) loads the network, runs opts.command and writes its files.

Importable without TensorFlow (the TF-using modules are imported inside the functions), so the front end can
validate its flags against COMMANDS and report mistakes before TensorFlow loads.
"""

import math
import os

from dnnlib.errors import InputError

COMMANDS = ("generate", "style-mix", "interpolate", "average")


def run(opts):
    """Load the network, run opts.command, write everything into opts.outdir atomically. Returns a summary dict.

    opts: command, network, outdir, overwrite, psi, truncation_cutoff, noise_mode, noise_seed, class_idx, label,
    batch, uint8, progress (default True: a progress line on stderr), and the command's own: seeds (generate,
    interpolate, average), grid_max and grid_cols (generate), row_seeds, col_seeds, styles
    (style-mix), frames, space, interp, axis, save_frames (interpolate; default True).
    """
    from dnnlib import EasyDict
    from dnnlib.fileutil import atomic_output_dir
    from generation.outputs import output_affine
    from generation.runner import Runner
    from generation.seeds import make_label
    from training.network_io import load_generator

    opts = EasyDict(opts)
    if opts.command not in COMMANDS:
        raise InputError(f"unknown command {opts.command!r}: expected one of {', '.join(COMMANDS)}")
    net = load_generator(opts.network)
    runner = Runner(net.G, batch_size=opts.get("batch", 4))
    job = EasyDict(
        G=net.G, runner=runner, c=make_label(runner.c_dim, opts.get("class_idx"), opts.get("label")),
        affine=output_affine(getattr(net, "geometry", None), net.G.img_shape), psi=float(opts.get("psi", 1.0)),
        cutoff=opts.get("truncation_cutoff"), uint8=bool(opts.get("uint8", False)),
    )
    if opts.get("projected_w"):
        from generation.projected_latents import load_projected

        job.projected = load_projected(opts.projected_w, runner.num_ws, runner.w_dim)
    summary = EasyDict(command=opts.command, network=str(getattr(net, "source", opts.network)), outdir=opts.outdir)
    with atomic_output_dir(opts.outdir, overwrite=bool(opts.get("overwrite", False)),
                           inputs=opts.get("inputs") or (opts.network, opts.get("projected_w"))) as out:
        job.path = lambda name: os.path.join(out, name)
        summary.update(_COMMAND_FUNCTIONS[opts.command](opts, job))
        EasyDict(options=opts, summary=summary).save_json(job.path("generation.json"))
    return summary


# The grid pictures show the first seeds only: a grid of every seed of a long run would be unreadably large.
GRID_MAX_VOLUMES = 64


def _synthesize_projected(opts, job, ws):
    """Volumes of projected ws: with the projection's own noise maps unless a noise mode was asked for."""
    if job.projected.noise is not None and opts.get("projected_noise", True) and len(ws) == len(job.projected.ws):
        return job.runner.synthesize(ws, noise=job.projected.noise)
    return job.runner.synthesize_shared_noise(ws, opts.noise_mode, opts.get("noise_seed", 0))


def _generate_projected(opts, job):
    import numpy as np

    from generation.outputs import write_volume
    from volumes.visualize import write_grids, write_mid_slices

    vols = _synthesize_projected(opts, job, job.projected.ws)
    for name, v in zip(job.projected.names, vols, strict=True):
        write_volume(job.path(f"{name}.nii.gz"), v, job.affine, job.uint8)
        write_mid_slices(job.path(f"{name}.png"), v)
    grid = vols[:GRID_MAX_VOLUMES]
    cols = min(len(grid), int(opts.get("grid_cols", 8)))
    write_grids(job.path("grid"), np.asarray(grid), math.ceil(len(grid) / cols), cols)
    return {"files": len(vols), "projected": job.projected.names}


def _generate(opts, job):
    import numpy as np

    if job.get("projected") is not None:
        return _generate_projected(opts, job)

    from generation.outputs import write_volume
    from generation.sampling import generate_batches
    from volumes.visualize import write_grids, write_mid_slices
    from volumes.work_pool import Progress

    # Streamed: each batch is written and dropped, so memory stays flat however many seeds there are.
    seeds = list(opts.seeds)
    grid_max = int(opts.get("grid_max", GRID_MAX_VOLUMES))
    grid = []
    progress = Progress(len(seeds), label="generate ", enabled=bool(opts.get("progress", True)))
    for chunk, vols in generate_batches(job.runner, seeds, job.psi, opts.noise_mode, job.c, job.cutoff, progress):
        for s, v in zip(chunk, vols, strict=True):
            write_volume(job.path(f"seed{s:04d}.nii.gz"), v, job.affine, job.uint8)
            write_mid_slices(job.path(f"seed{s:04d}.png"), v)
        grid.extend(vols[: max(grid_max - len(grid), 0)])
    if grid:
        cols = min(len(grid), int(opts.get("grid_cols", 8)))
        write_grids(job.path("grid"), np.stack(grid), math.ceil(len(grid) / cols), cols)
        _seeds_picture(job.path("seeds.png"), grid[:SEEDS_PICTURE_MAX], seeds, job.psi)
    return {"files": len(seeds), "grid_seeds": seeds[: len(grid)],
            "grid_note": f"grid_*.png show the first {len(grid)} of {len(seeds)} seeds",
            "seeds_picture_note": f"seeds.png shows the first {min(len(grid), SEEDS_PICTURE_MAX)}, named"}


SEEDS_PICTURE_MAX = 8  # seeds.png: the first volumes, three planes each, each row named by its seed


def _seeds_picture(path, vols, seeds, psi):
    """The first generated volumes drawn in three planes, each row labelled with its seed."""
    import numpy as np

    from volumes import visualize
    from volumes.volume_io import to_unit_range

    rows = [to_unit_range(np.asarray(v))[..., 0] for v in vols]
    result = visualize.draw_panels(path, rows, [f"seed {s}" for s in seeds[: len(rows)]],
                                   title=f"generated volumes (psi {psi:g})")
    if result.note:
        print(f"generate: {result.note}")
    return result


def _style_mix(opts, job):
    import numpy as np

    from generation.outputs import write_volume
    from generation.style_mixing import DEFAULT_STYLES, describe_presets, parse_styles, style_mix
    from volumes.visualize import write_grids

    styles = opts.get("styles") or DEFAULT_STYLES
    col_styles = parse_styles(styles, job.G)
    presets = describe_presets(job.G)
    print(f"style-mix: the columns give ws {styles} = {col_styles} of 0-{int(job.G.num_ws) - 1}; presets of this "
          "network:\n" + "\n".join(f"  {line}" for line in presets.splitlines()))
    projected = job.get("projected")
    # Rows from a projection are named by its targets, rows from seeds by the seed.
    row_names = projected.names if projected is not None else [f"seed{r:04d}" for r in opts.row_seeds]
    res = style_mix(job.runner, opts.get("row_seeds"), opts.col_seeds, col_styles, job.psi, opts.noise_mode, job.c,
                    job.cutoff, opts.get("noise_seed", 0), row_ws=None if projected is None else projected.ws)
    names = row_names + [f"seed{s:04d}" for s in opts.col_seeds]
    for name, v in zip(names, np.concatenate([res.rows, res.cols]), strict=True):
        write_volume(job.path(f"{name}.nii.gz"), v, job.affine, job.uint8)
    for i, r in enumerate(row_names):
        for j, cs in enumerate(opts.col_seeds):
            write_volume(job.path(f"mix-row{r.removeprefix('seed')}-col{cs:04d}.nii.gz"), res.mix[i, j], job.affine,
                         job.uint8)
    # Grid as in the StyleGAN papers: column seeds on top, row seeds on the left, mixes inside.
    blank = -np.ones_like(res.rows[:1])
    cells = [blank, res.cols]
    for i in range(len(row_names)):
        cells += [res.rows[i : i + 1], res.mix[i]]
    write_grids(job.path("stylemix"), np.concatenate(cells), len(row_names) + 1, len(opts.col_seeds) + 1,
                row_labels=["", *row_names], col_labels=["", *(f"seed{s:04d}" for s in opts.col_seeds)])
    return {"col_styles": col_styles, "presets": presets.splitlines()}


def _interpolate(opts, job):
    from generation.interpolation import INTERPOLATIONS, interpolate, interpolation_ts
    from generation.outputs import write_volume
    from volumes.visualize import write_strip_and_gif

    if job.get("projected") is not None:  # a projection has no z: the path runs through its ws
        import numpy as np

        w, fn = job.projected.ws, INTERPOLATIONS[opts.interp]
        if len(w) < 2:
            raise InputError(f"{opts.projected_w}: holds {len(w)} latent; interpolation needs at least two")
        ts = interpolation_ts(len(w), int(opts.frames))
        ws = np.stack([fn(w[s], w[s + 1], t) for s, t in ts]).astype(np.float32)
        vols = job.runner.synthesize_shared_noise(ws, opts.noise_mode, opts.get("noise_seed", 0))
    else:
        vols, ts = interpolate(job.runner, list(opts.seeds), int(opts.frames), opts.space, opts.interp, job.psi,
                               opts.noise_mode, job.c, job.cutoff, opts.get("noise_seed", 0))
    write_strip_and_gif(job.path("interpolation.png"), job.path("interpolation.gif"), vols, int(opts.get("axis", 2)))
    ends = [f"seed{v:04d}" for v in opts.seeds] if job.get("projected") is None else list(job.projected.names)
    change = interpolation_picture(job.path("interpolation_frames.png"), vols, ts, ends)
    print(f"interpolation: mean |change| between consecutive frames {change['consecutive']:.4g}, between the ends "
          f"of each segment {', '.join(f'{v:.4g}' for v in change['ends'])} (volumes in [0, 1])")
    if opts.get("save_frames", True):
        for f, v in enumerate(vols):
            write_volume(job.path(f"frame{f:04d}.nii.gz"), v, job.affine, job.uint8)
    return {"frames": len(ts), "mean_abs_change": change}


# Frames drawn in interpolation_frames.png (evenly spread over the path, both ends included).
PICTURE_FRAMES = 6


def interpolation_picture(path, vols, ts, ends):
    """Draw a sample of the frames (three planes each, labelled by segment and t) and the change between the first
    and last frame (x4) into path; returns the mean |change| (volumes in [0, 1]) between consecutive frames and
    between the two ends of each segment."""
    import numpy as np

    from volumes import visualize
    from volumes.volume_io import to_unit_range

    unit = to_unit_range(np.asarray(vols, np.float32))[..., 0]
    picks = visualize.sample_indices(len(unit), PICTURE_FRAMES)
    labels = [f"frame {f}: {ends[ts[f][0]]}\n-> {ends[ts[f][0] + 1]}, t={ts[f][1]:.2f}" for f in picks]
    rows = [unit[f] for f in picks] + [np.clip(np.abs(unit[-1] - unit[0]) * 4, 0, 1)]
    labels.append(f"|frame {len(unit) - 1} -\nframe 0| x4")
    result = visualize.draw_panels(path, rows, labels, title="interpolation (mid-slices)")
    if result.note:
        print(f"interpolation: {result.note}")
    starts = [f for f, (_, t) in enumerate(ts) if t == 0.0]
    stops = starts[1:] + [len(unit) - 1]  # a segment ends where the next one starts
    seg_ends = [float(np.mean(np.abs(unit[b] - unit[a]))) for a, b in zip(starts, stops, strict=True)]
    consecutive = float(np.mean(np.abs(np.diff(unit, axis=0)))) if len(unit) > 1 else 0.0
    return {"consecutive": consecutive, "ends": seg_ends}


def _average(opts, job):
    from generation.outputs import write_volume
    from generation.sampling import average_volume, average_w_volume
    from volumes.visualize import write_mid_slices
    from volumes.work_pool import Progress

    seeds = list(opts.seeds)
    progress = Progress(len(seeds), label="average ", enabled=bool(opts.get("progress", True)))
    mean = average_volume(job.runner, seeds, job.psi, opts.noise_mode, job.c, job.cutoff, progress)
    # The mean W is one volume: seed noise would be one arbitrary seed's, so 'random' falls back to const maps.
    w_noise_mode = "const" if opts.noise_mode == "random" else opts.noise_mode
    mean_w = average_w_volume(job.runner, seeds, job.psi, w_noise_mode, job.c, job.cutoff)
    for name, vol in (("average", mean), ("average_w", mean_w)):
        write_volume(job.path(f"{name}.nii.gz"), vol, job.affine, job.uint8)
        write_mid_slices(job.path(f"{name}.png"), vol)
    return {"num_seeds": len(seeds)}


_COMMAND_FUNCTIONS = {"generate": _generate, "style-mix": _style_mix, "interpolate": _interpolate,
                      "average": _average}
