"""What run_latent.py calls: run(opts) loads what the command reads, checks it, and writes opts.outdir atomically
with latent_stats.json (options and summary). embed writes through its resumable .partial folder instead."""

import os

from dnnlib import EasyDict
from dnnlib.errors import InputError

COMMANDS = ("embed", "atlas", "regress", "trajectory", "progress")
RECORD = "latent_stats.json"


def _load_cohort(opts, emb):
    """(network, manifest) that embedding `emb` names (or opts' own), checked against each other and the latents."""
    from generation.latent_stats.embedding import check_grid
    from training.network_io import load_generator
    from volumes.manifest import load_manifest

    network = opts.get("network") or emb.record.network
    data = opts.get("data") or emb.record.data
    emb.record.data = data
    manifest = load_manifest(data)
    net = load_generator(network)
    check_grid(net.G, manifest, f"{network} and {data}", net.geometry)
    if (int(net.G.num_ws), int(net.G.w_dim)) != tuple(emb.latents.shape[1:]):
        raise InputError(f"{emb.path}: latents [{emb.latents.shape[1]}, {emb.latents.shape[2]}] do not fit {network} "
                         f"([{int(net.G.num_ws)}, {int(net.G.w_dim)}] ws)")
    return net, manifest


def run(opts):
    """Run opts.command; returns its summary. Inputs are read and checked before anything is written."""
    from dnnlib.fileutil import atomic_output_dir, check_output_dir

    opts = EasyDict(opts)
    if opts.command not in COMMANDS:
        raise ValueError(f"unknown command {opts.command!r}: expected one of {', '.join(COMMANDS)}")
    if opts.command == "embed":
        from generation.latent_stats.embedding import embed

        return embed(opts)
    overwrite = bool(opts.get("overwrite", False))
    if opts.command == "progress":
        from generation.latent_stats.snapshots import run_progress, snapshot_networks

        check_output_dir(opts.outdir, [opts.run], overwrite)
        snapshot_networks(opts.run)
        with atomic_output_dir(opts.outdir, overwrite, [opts.run]) as out:
            summary = run_progress(opts, out)
            EasyDict(options=opts, summary=summary).save_json(os.path.join(out, RECORD))
        return summary
    inputs = [p for p in (opts.embedding, opts.get("network"), opts.get("data")) if p]
    check_output_dir(opts.outdir, inputs, overwrite)
    from generation.latent_stats import atlas, conditional
    from generation.latent_stats.embedding import load_embedding

    emb = load_embedding(opts.embedding)
    # The covariates and the model are checked (NumPy only) before the network loads and the output folder opens.
    fitted = None
    if opts.command == "regress":
        fitted = conditional.prepare_regress(opts, emb)
    if opts.command == "trajectory":
        fitted = conditional.prepare_trajectory(opts, emb)
    net, manifest = _load_cohort(opts, emb)
    fn = {"atlas": atlas.run_atlas, "regress": conditional.run_regress, "trajectory": conditional.run_trajectory}
    kwargs = {} if fitted is None else {"fitted": fitted}
    with atomic_output_dir(opts.outdir, overwrite, [*inputs, emb.record.network, emb.record.data]) as out:
        summary = fn[opts.command](opts, emb, net, manifest, out, **kwargs)
        EasyDict(options=opts, embedding=emb.path, summary=summary).save_json(os.path.join(out, RECORD))
    print(f"{opts.command}: wrote {opts.outdir}")
    return summary
