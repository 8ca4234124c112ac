"""run_latent.py's options: one table, from which its flags come. Imports no TensorFlow.

embed projects with the projector's own options: its rows are generation.projection_options' (same names,
defaults and allowed values), not copies.
"""

from dnnlib.option_table import Option, pick
from generation import projection_options
from generation.latent_stats.regression import METHODS

# The projector's settings embed offers, as run_projector.py's flags. One default differs: embed projects into W
# unless --w_plus. Latent statistics (means, regressions, trajectories) are taken where the mapping network puts
# its outputs; per-layer W+ latents reconstruct better but lie off that distribution.
EMBED_PROJECTOR_OPTIONS = tuple(
    o._replace(default=False, help="embed (the projector's, but W by default): optimise one W per synthesis layer "
               "(W+) instead of one W tiled over the layers.") if o.name == "w_plus" else o
    for o in pick(projection_options.OPTIONS, "num_steps", "lr", "w_plus", "noise_reg_weight",
                  "initial_noise_factor", "w_prior_weight", "w_avg_samples", "seed", "progress_every",
                  help_prefix="embed (the projector's): "))

OPTIONS = (
    Option("outdir", str, None, "Output directory (must not exist unless --overwrite)."),
    Option("overwrite", bool, False, "Replace an existing --outdir."),
    Option("network", str, None, "embed: run directory, checkpoint prefix, generator SavedModel or shipped name; "
           "other commands: overrides the embedding's network."),
    Option("data", str, None, "embed: dataset folder (or a split of one); other commands: overrides the "
           "embedding's dataset."),
    Option("indices", str, None, "embed: dataset volume indices, e.g. 0-9 (default: all)."),
    Option("embedding", str, None, "atlas, regress, trajectory: a folder written by embed."),
    Option("run", str, None, "progress: a training run directory."),
    Option("seeds", str, "0-5", "progress: seeds shown in every snapshot."),
    *EMBED_PROJECTOR_OPTIONS,
    Option("batch", int, 4, "Volumes per projector batch (embed) or per generator call."),
    # atlas
    Option("segments", int, 4, "atlas: segments of each discrete geodesic of the intrinsic mean."),
    Option("geodesic_steps", int, 100, "atlas: optimisation steps of the intrinsic mean."),
    Option("geodesic_lr", float, None, "atlas: Adam step in latent units (default: 2% of the latents' spread)."),
    # regress / trajectory
    Option("covariates", list, None, "regress, trajectory: covariates of the model (default: the one of --at or "
           "--change; it is always included)."),
    Option("method", str, "linear", "regress, trajectory: linear least squares or Gaussian kernel (Nadaraya-Watson) "
           "regression.", choices=METHODS),
    Option("bandwidth", float, None, "kernel: bandwidth in standard deviations of the covariates (default: by "
           "leave-one-out error)."),
    Option("folds", int, None, "Cross-validation folds (default: leave-one-out up to 50 subjects, else 10)."),
    Option("at", str, None, "regress: covariate and its values, e.g. age=30,50,70."),
    Option("hold", list, None, "regress: other covariates' values, e.g. group=1 (default: mean / most frequent)."),
    Option("subject", str, None, "trajectory: the subject, by dataset index (or row name such as index00003)."),
    Option("change", str, None, "trajectory: covariate change, e.g. age=+20 (added) or group=1 (set)."),
    Option("frames", int, 5, "trajectory: frames of the strip/GIF along the change."),
    Option("axis", int, 2, "Slice axis of strips and GIFs (0 sagittal, 1 coronal, 2 axial)."),
)
