"""What run_projector.py calls: run_projection(opts) gathers the targets, projects them batch by batch and
writes one folder per target plus projection.json."""

import os

import numpy as np

from dnnlib import EasyDict


def run_projection(opts):
    """Project every target of opts into the network's latent space; returns {target name: metrics dict}.

    opts: network, outdir, overwrite; targets (image files), data and indices (dataset volumes), target_seeds,
    target_psi, target_noise_mode (generated volumes); class_idx, label; batch, progress_every, uint8; and any
    of projector.default_options() (num_steps, initial_learning_rate, w_plus, loss, ...).
    """
    from dnnlib.fileutil import atomic_output_dir
    from generation import projection_targets
    from generation.network_loader import load_generator
    from generation.outputs import output_affine
    from generation.projection_outputs import write_target_outputs
    from generation.projector import Projector, default_options, w_statistics
    from generation.seeds import make_label

    opts = EasyDict(opts)
    net = load_generator(opts.network)
    G = net.G
    c = make_label(int(G.c_dim), opts.get("class_idx"), opts.get("label"))
    targets = []
    if opts.get("targets"):
        manifest = projection_targets.find_manifest(opts.network, opts.get("data"))
        targets += projection_targets.file_targets(opts.targets, manifest)
    if opts.get("indices"):
        targets += projection_targets.dataset_targets(opts.data, opts.indices)
    if opts.get("target_seeds"):
        targets += projection_targets.seed_targets(G, opts.target_seeds, opts.get("target_psi", 1.0),
                                                   opts.get("target_noise_mode", "random"), c)
    for t, name in zip(targets, projection_targets.unique_names([t.name for t in targets]), strict=True):
        t.name = name
    projection_targets.check_target_shapes(targets, G, opts.get("data"))
    geometry = getattr(net, "geometry", None) or {}
    seed_affine = output_affine(geometry, G.img_shape) if opts.get("target_seeds") else None

    popts = {k: opts[k] for k in default_options() if k in opts}
    print(f"projecting {len(targets)} target(s) with {popts.get('num_steps', 1000)} steps; "
          f"W statistics from {popts.get('w_avg_samples', 10000)} samples")
    w_stats = w_statistics(G, popts.get("w_avg_samples", 10000), c, popts.get("seed", 0))
    batch = int(opts.get("batch", 4))
    summary = {}
    with atomic_output_dir(opts.outdir, overwrite=bool(opts.get("overwrite", False))) as out:
        for b0 in range(0, len(targets), batch):
            chunk = targets[b0 : b0 + batch]
            names = ", ".join(t.name for t in chunk)

            def progress(row, names=names):
                print(f"[{names}] step {row['step']:>5}  lr {row['lr']:.4f}  loss {np.mean(row['loss']):.5f}  "
                      f"mse {np.mean(row['mse']):.5f}  mse_down {np.mean(row['mse_down']):.5f}  "
                      f"noise_reg {np.mean(row['noise_reg']):.3g}", flush=True)

            res = Projector(G, np.stack([t.volume for t in chunk]), c, popts, w_stats).run(
                progress, int(opts.get("progress_every", 100)))
            for i, t in enumerate(chunk):
                affine = t.get("affine") if t.get("affine") is not None else seed_affine
                summary[t.name] = write_target_outputs(os.path.join(out, t.name), t, i, res, affine,
                                                       bool(opts.get("uint8", False)))
                print(f"{t.name}: " + "  ".join(f"{k} {v:.4f}" for k, v in summary[t.name].items()
                                                if isinstance(v, float)))
        EasyDict(options=opts, metrics=summary).save_json(os.path.join(out, "projection.json"))
    return summary
