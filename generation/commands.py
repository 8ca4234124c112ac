"""What run_generator.py calls: run(opts) loads the network, runs opts.command and writes its files.

Importable without TensorFlow (the TF-using modules are imported inside the functions), so the front end can
validate its flags against COMMANDS and report mistakes before TensorFlow loads.
"""

import math
import os

COMMANDS = ("generate", "style-mix", "interpolate", "average")


def run(opts):
    """Load the network, run opts.command, write everything into opts.outdir atomically. Returns a summary dict.

    opts: command, network, outdir, overwrite, psi, truncation_cutoff, noise_mode, noise_seed, class_idx, label,
    batch, uint8, and the command's own: seeds (generate, interpolate, average), row_seeds, col_seeds, styles
    (style-mix), frames, space, interp, axis, save_frames (interpolate).
    """
    from dnnlib import EasyDict
    from dnnlib.fileutil import atomic_output_dir
    from generation.network_loader import load_generator
    from generation.outputs import output_affine
    from generation.runner import Runner
    from generation.seeds import make_label

    opts = EasyDict(opts)
    if opts.command not in COMMANDS:
        raise ValueError(f"unknown command {opts.command!r}: expected one of {', '.join(COMMANDS)}")
    net = load_generator(opts.network)
    runner = Runner(net.G, batch_size=opts.get("batch", 4))
    job = EasyDict(
        G=net.G, runner=runner, c=make_label(runner.c_dim, opts.get("class_idx"), opts.get("label")),
        affine=output_affine(getattr(net, "geometry", None), net.G.img_shape), psi=float(opts.get("psi", 1.0)),
        cutoff=opts.get("truncation_cutoff"), uint8=bool(opts.get("uint8", False)),
    )
    summary = EasyDict(command=opts.command, network=str(getattr(net, "source", opts.network)), outdir=opts.outdir)
    with atomic_output_dir(opts.outdir, overwrite=bool(opts.get("overwrite", False))) as out:
        job.path = lambda name: os.path.join(out, name)
        summary.update(_COMMAND_FUNCTIONS[opts.command](opts, job))
        EasyDict(options=opts, summary=summary).save_json(job.path("generation.json"))
    return summary


def _generate(opts, job):
    from generation.outputs import write_grids, write_mid_slices, write_volume
    from generation.sampling import generate

    seeds = list(opts.seeds)
    vols = generate(job.runner, seeds, job.psi, opts.noise_mode, job.c, job.cutoff)
    for s, v in zip(seeds, vols, strict=True):
        write_volume(job.path(f"seed{s:04d}.nii.gz"), v, job.affine, job.uint8)
        write_mid_slices(job.path(f"seed{s:04d}.png"), v)
    cols = min(len(seeds), int(opts.get("grid_cols", 8)))
    write_grids(job.path("grid"), vols, math.ceil(len(seeds) / cols), cols)
    return {"files": len(seeds)}


def _style_mix(opts, job):
    import numpy as np

    from generation.outputs import write_grids, write_volume
    from generation.style_mixing import describe_presets, parse_styles, style_mix

    col_styles = parse_styles(opts.styles, job.G)
    res = style_mix(job.runner, opts.row_seeds, opts.col_seeds, col_styles, job.psi, opts.noise_mode, job.c,
                    job.cutoff, opts.get("noise_seed", 0))
    seeds = list(opts.row_seeds) + list(opts.col_seeds)
    for s, v in zip(seeds, np.concatenate([res.rows, res.cols]), strict=True):
        write_volume(job.path(f"seed{s:04d}.nii.gz"), v, job.affine, job.uint8)
    for i, r in enumerate(opts.row_seeds):
        for j, cs in enumerate(opts.col_seeds):
            write_volume(job.path(f"mix-row{r:04d}-col{cs:04d}.nii.gz"), res.mix[i, j], job.affine, job.uint8)
    # Grid as in the StyleGAN papers: column seeds on top, row seeds on the left, mixes inside.
    blank = -np.ones_like(res.rows[:1])
    cells = [blank, res.cols]
    for i in range(len(opts.row_seeds)):
        cells += [res.rows[i : i + 1], res.mix[i]]
    write_grids(job.path("stylemix"), np.concatenate(cells), len(opts.row_seeds) + 1, len(opts.col_seeds) + 1)
    return {"col_styles": col_styles, "presets": describe_presets(job.G).splitlines()}


def _interpolate(opts, job):
    from generation.interpolation import interpolate
    from generation.outputs import write_strip_and_gif, write_volume

    vols, ts = interpolate(job.runner, list(opts.seeds), int(opts.frames), opts.space, opts.interp, job.psi,
                           opts.noise_mode, job.c, job.cutoff, opts.get("noise_seed", 0))
    write_strip_and_gif(job.path("interpolation.png"), job.path("interpolation.gif"), vols, int(opts.get("axis", 2)))
    if opts.get("save_frames", False):
        for f, v in enumerate(vols):
            write_volume(job.path(f"frame{f:04d}.nii.gz"), v, job.affine, job.uint8)
    return {"frames": len(ts)}


def _average(opts, job):
    from generation.outputs import write_mid_slices, write_volume
    from generation.sampling import average_volume, average_w_volume

    seeds = list(opts.seeds)
    mean = average_volume(job.runner, seeds, job.psi, opts.noise_mode, job.c, job.cutoff)
    # The mean W is one volume: seed noise would be one arbitrary seed's, so 'random' falls back to const maps.
    w_noise_mode = "const" if opts.noise_mode == "random" else opts.noise_mode
    mean_w = average_w_volume(job.runner, seeds, job.psi, w_noise_mode, job.c, job.cutoff)
    for name, vol in (("average", mean), ("average_w", mean_w)):
        write_volume(job.path(f"{name}.nii.gz"), vol, job.affine, job.uint8)
        write_mid_slices(job.path(f"{name}.png"), vol)
    return {"num_seeds": len(seeds)}


_COMMAND_FUNCTIONS = {"generate": _generate, "style-mix": _style_mix, "interpolate": _interpolate,
                      "average": _average}
