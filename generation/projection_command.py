"""What run_projector.py calls: run_projection(opts) gathers the targets, projects them batch by batch and
writes one folder per target plus projection.json. With a degradation (opts.degradation, a spec string for
generation.restoration.spec.parse_spec) each target is compared on its own degraded grid: targets sharing a
degraded grid (the same thickenings and noise level) are projected together, each with its own mask."""

import json
import os

import numpy as np

from dnnlib import EasyDict


def run_projection(opts):
    """Project every target of opts into the network's latent space; returns {target name: metrics dict}.

    opts: network, outdir, overwrite; targets (image files), data and indices (dataset volumes), target_seeds,
    target_psi, target_noise_mode (generated volumes); class_idx, label; batch, progress_every, uint8; and any
    of projector.default_options() (num_steps, initial_learning_rate, w_plus, loss, w_prior_weight, ...);
    degradation (spec string; None or "none" = no forward model, every target compared on the network grid;
    any other spec, "native" included, reads image files in their own geometry), output_grid (mm: restored
    volumes on an isotropic grid over each target's field of view); ood_reference (how many reference
    volumes, the dataset's when `data` is given, else generated, are projected for the out-of-distribution
    check of generation.projection_trust; 0: none).
    """
    from dnnlib.fileutil import atomic_output_dir
    from generation import projection_targets
    from generation.outputs import output_affine
    from generation.projection_options import command_defaults
    from generation.projection_outputs import write_target_outputs
    from generation.projector import Projector, default_options, w_statistics
    from generation.seeds import make_label
    from training.network_io import load_generator

    # Every option absent from opts takes the table's default, but the out-of-distribution check: a library
    # caller that does not ask for it (ood_reference absent) gets none, as its reference projections cost time.
    given = EasyDict(opts)  # recorded in projection.json as given
    opts = EasyDict({**command_defaults(), "ood_reference": 0, **given})
    net = load_generator(opts.network)
    G = net.G
    c = make_label(int(G.c_dim), opts.get("class_idx"), opts.get("label"))
    geometry = getattr(net, "geometry", None) or {}
    deg = None
    targets = []
    if opts.get("targets"):
        manifest = projection_targets.find_manifest(opts.network, opts.get("data"))
    from generation.restoration.spec import is_no_degradation

    if not is_no_degradation(opts.get("degradation")):
        from generation.restoration.spec import parse_spec
        from volumes.volume_io import voxel_sizes

        spacing = geometry.get("spacing") or (manifest.spacing if opts.get("targets") else None)
        spacing = spacing or voxel_sizes(output_affine(geometry, G.img_shape)).tolist()
        deg = parse_spec(opts.degradation, network_spacing=[float(v) for v in spacing])
        for path in opts.get("targets") or []:
            targets.append(projection_targets.native_file_target(path, manifest, G.img_shape, deg))
    elif opts.get("targets"):
        targets += projection_targets.file_targets(opts.targets, manifest)
    if opts.get("indices"):
        targets += projection_targets.dataset_targets(opts.data, opts.indices)
    if opts.get("target_seeds"):
        targets += projection_targets.seed_targets(G, opts.target_seeds, opts.target_psi,
                                                   opts.target_noise_mode, c)
    for t, name in zip(targets, projection_targets.unique_names([t.name for t in targets]), strict=True):
        t.name = name
    projection_targets.check_target_shapes(targets, G, opts.get("data"))
    seed_affine = output_affine(geometry, G.img_shape) if opts.get("target_seeds") else None
    for t in targets:
        if t.get("affine") is None:
            t.affine = seed_affine
        if deg is not None and t.get("degradation") is None:
            projection_targets.degrade_target(t, deg)

    popts = {k: opts[k] for k in default_options()}
    print(f"projecting {len(targets)} target(s) with {popts['num_steps']} steps; "
          f"W statistics from {popts['w_avg_samples']} samples")
    w_stats = w_statistics(G, popts["w_avg_samples"], c, popts["seed"])
    batch = int(opts.batch)
    uint8 = bool(opts.uint8)
    summary = {}
    num_reference = int(opts.ood_reference)
    with atomic_output_dir(opts.outdir, overwrite=bool(opts.overwrite),
                           inputs=opts.get("inputs") or ()) as out:
        for group in _same_grid_groups(targets):
            reference = None
            if num_reference > 0:
                from generation.projection_trust import reference_data_terms, reference_volumes

                kind, ref_vols = reference_volumes(G, num_reference, c, opts.get("data"), opts.get("indices") or ())
                print(f"projecting {num_reference} {'dataset' if kind == 'dataset' else 'generated'} volumes the "
                      "same way, for the out-of-distribution check", flush=True)
                reference = (kind, reference_data_terms(G, ref_vols, c, popts, w_stats,
                                                        None if deg is None else group[0].degradation))
            for b0 in range(0, len(group), batch):
                chunk = group[b0 : b0 + batch]
                names = ", ".join(t.name for t in chunk)

                def progress(row, names=names):
                    print(f"[{names}] {progress_line(row, popts['num_steps'])}", flush=True)

                if deg is None:
                    projector = Projector(G, np.stack([t.volume for t in chunk]), c, popts, w_stats)
                else:
                    projector = Projector(G, np.stack([t.degraded for t in chunk]), c, popts, w_stats,
                                          degradation=_batch_degradation(chunk))
                res = projector.run(progress, int(opts.progress_every))
                for i, t in enumerate(chunk):
                    folder = os.path.join(out, t.name)
                    summary[t.name] = write_target_outputs(folder, t, i, res, t.affine, uint8)
                    if deg is not None:
                        from generation.restoration.restored import write_reconstruction_outputs

                        summary[t.name].update(write_reconstruction_outputs(folder, t, res.volumes[i],
                                                                            opts.get("output_grid"), uint8))
                    if reference is not None:
                        summary[t.name].update(_trust(t.name, float(res.curve[-1]["mse"][i]), *reference))
                    if deg is not None or reference is not None:
                        _rewrite_metrics(folder, summary[t.name])
                    print(f"{t.name}: " + "  ".join(f"{k} {v:.4g}" for k, v in summary[t.name].items()
                                                    if isinstance(v, float)))
        record = EasyDict(options=given, metrics=summary)
        if deg is not None:
            record.degradation = deg.describe()
        record.save_json(os.path.join(out, "projection.json"))
    return summary


def _trust(name, term, kind, reference):
    """The out-of-distribution check of one target (generation.projection_trust): its metrics, and a warning."""
    import sys

    from generation.projection_trust import FACTORS, out_of_distribution

    why = out_of_distribution(term, reference, kind)
    if why:
        print(f"warning: {name}: {why}", file=sys.stderr, flush=True)
    return {"data_term": term, "reference_kind": kind, "reference_data_terms": [float(v) for v in reference],
            "out_of_distribution": bool(why), "ood_factor": FACTORS[kind]}


def progress_line(row, num_steps):
    """One projector progress line: the data term and the noise regulariser apart (means over the batch), the
    data term also in the original's units (MSEs of [0, 255] volumes), elapsed time and ETA."""
    from generation.projector import ORIGINAL_MSE_SCALE

    step, seconds = int(row["step"]), float(row["seconds"])
    mean = {k: float(np.mean(row[k])) for k in ("data", "mse", "mse_down", "noise_reg", "noise_reg_weighted")}
    extra = f"  ssim {float(np.mean(row['ssim'])):.4f}" if "ssim" in row else ""
    extra += f"  w_prior {float(np.mean(row['w_prior'])):.4g}" if "w_prior" in row else ""
    mse_255 = (mean["mse"] + mean["mse_down"]) * ORIGINAL_MSE_SCALE
    eta = seconds / step * (num_steps - step)
    return (f"step {step:>5}/{num_steps}  data {mean['data']:.5f} (mse {mean['mse']:.5f} + mse_down "
            f"{mean['mse_down']:.5f}; {mse_255:.1f} in the original's [0, 255] units){extra}  "
            f"noise_reg {mean['noise_reg_weighted']:.5f} (= weight x {mean['noise_reg']:.3g})  lr {row['lr']:.4f}  "
            f"elapsed {_clock(seconds)}  ETA {_clock(eta)}")


def _clock(seconds):
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}h{m % 60:02d}m{s:02d}s" if m >= 60 else f"{m}m{s:02d}s"


def _grid_key(t):
    """Targets with the same key can share one Projector: the same degraded grid (thickenings) and noise level."""
    deg = t.get("degradation")
    if deg is None:
        return "network grid"
    return json.dumps([list(t.degraded.shape), [op.describe() for op in deg.ops], deg.sigma])


def _same_grid_groups(targets):
    groups = {}
    for t in targets:
        groups.setdefault(_grid_key(t), []).append(t)
    return list(groups.values())


def _batch_degradation(chunk):
    """One Degradation for a batch of targets on the same degraded grid: their masks stacked ([N,d,h,w], all
    voxels compared for a target without one)."""
    from generation.restoration.masks import Mask

    first = chunk[0].degradation
    masks = [t.degradation.weights() for t in chunk]
    if all(m is None for m in masks):
        return first.with_mask(None)
    shape = chunk[0].degraded.shape[:3]
    stacked = np.stack([np.ones(shape, np.float32) if m is None else np.asarray(m, np.float32) for m in masks])
    return first.with_mask(Mask(path=", ".join(t.degradation.mask.path or "(array)" for t in chunk
                                               if t.degradation.mask is not None), weights=stacked))


def _rewrite_metrics(folder, metrics):
    from dnnlib.fileutil import atomic_write_text

    atomic_write_text(os.path.join(folder, "metrics.json"), json.dumps(metrics, indent=2) + "\n")
