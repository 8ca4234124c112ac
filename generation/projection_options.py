"""The projector's options: one table of what run_projector.py offers (and run_latent.py's embed reuses), with
the defaults the library takes. Imports no TensorFlow, so flag mistakes are reported before it loads.

PROJECTOR_OPTIONS are the settings of generation.projector.Projector (projector.default_options() comes from
them; a row without a flag is a schedule constant of the original); OPTIONS adds what the command projects and
where it writes. A row's key is its name in the options object when it differs from the flag's.
"""

from dnnlib.option_table import Option, defaults
from metrics.generator_interface import NOISE_MODES

LOSSES = ("mse", "mse+ssim")
# The noise regulariser's weight against MSEs in [-1, 1]; what it is for: without it the noise maps alone reproduce
# the target, and the found latent with fresh noise maps does not.
NOISE_REG_WEIGHT = 1e5

PROJECTOR_OPTIONS = (
    Option("num_steps", int, 1000, "Optimisation steps."),
    Option("lr", float, 0.3, "Initial (peak) learning rate.", key="initial_learning_rate"),
    Option("lr_rampup_length", float, 0.05, "Linear learning-rate ramp-up, as a fraction of the steps.", flag=False),
    Option("lr_rampdown_length", float, 0.25, "Cosine learning-rate ramp-down, as a fraction of the steps.",
           flag=False),
    Option("initial_noise_factor", float, 0.05, "Initial latent noise as a fraction of the W spread."),
    Option("noise_ramp_length", float, 0.75, "Latent noise decays to 0 over this fraction of the steps.", flag=False),
    Option("noise_reg_weight", float, NOISE_REG_WEIGHT, "Weight of the 3D noise-map regulariser.",
           key="regularize_noise_weight"),
    Option("w_avg_samples", int, 10000, "Mapping samples for the W mean and spread."),
    # W+ by default (the original and StyleGAN2-ADA optimise one W): from the latent alone it reproduces unseen
    # volumes far better, and every restoration that beats its baseline does so in W+ (bench/RESULTS.md).
    Option("w_plus", bool, True, "Optimise one W per synthesis layer (W+); --now_plus: one W tiled over the layers, "
           "as the original."),
    Option("loss", str, "mse", "Loss: MSE full res + MSE 8x pooled, optionally + SSIM.", choices=LOSSES),
    Option("ssim_weight", float, 1.0, "Weight of (1 - SSIM) with --loss=mse+ssim."),
    Option("downsample_factor", int, 8, "Pooling of the coarse MSE term (in network voxels).", flag=False),
    Option("w_prior_weight", float, 0.0, "Weight of the prior on W: ||w - w_avg||^2 / w_std^2 (BRGM-like)."),
    Option("seed", int, 0, "Seed of the optimisation's random draws."),
)

OPTIONS = (
    Option("network", str, None, "Run directory, checkpoint prefix or generator SavedModel."),
    Option("outdir", str, None, "Output directory (must not exist unless --overwrite)."),
    Option("overwrite", bool, False, "Replace an existing --outdir."),
    Option("target", list, None, "Image files to project, comma-separated; a DICOM series folder is one scan, any "
           "other folder stands for every scan in it (searched as dataset_tool.py create does).", key="targets"),
    Option("data", str, None, "Dataset folder: source of --indices and of the preprocessing manifest."),
    Option("indices", str, None, "Dataset volume indices to project, e.g. 0-3,10 (needs --data)."),
    Option("target_seeds", str, None, "Generated seeds to project (tests recovery of a known latent)."),
    Option("target_psi", float, 1.0, "Truncation psi of the --target_seeds volumes."),
    Option("target_noise_mode", str, "random", "Noise of the --target_seeds volumes.", choices=NOISE_MODES),
    *PROJECTOR_OPTIONS,
    Option("batch", int, 4, "Targets optimised together in one batch."),
    Option("progress_every", int, 100, "Print a progress line every N steps."),
    Option("class_idx", int, None, "Conditional networks: class index (one-hot label)."),
    Option("label", list, None, "Conditional networks: explicit label vector, comma-separated floats."),
    Option("uint8", bool, False, "Also write uint8 copies of the dataset-grid volumes."),
    Option("degradation", str, None, "Forward model applied to the generated volume before the loss, parts joined "
           "by ';': thicken:axis=A,mm=T|factor=F[,profile=box|gaussian][,fwhm_mm=V], mask=PATH (mask:path=PATH,"
           "invert=1 excludes its voxels), noise=SIGMA; 'native': only a --target scan's own geometry. Any spec but "
           "'none' compares --target scans in their own geometry, their thick slices read from their spacing; "
           "'none' (as no flag) resamples them onto the network grid."),
    Option("output_grid", float, None, "With --degradation: also write the restored volume on an isotropic grid "
           "of this spacing (mm) over each target's field of view."),
    Option("ood_reference", int, 2, "Out-of-distribution check: first project this many reference volumes the "
           "same way (--data volumes that are not targets, else generated ones) and warn about a target whose "
           "final data term is more than 1.75x (dataset) or 6x (generated) the largest of theirs "
           "(generation/projection_trust.py). 0: no check (saves their projection time)."),
)


def projector_defaults():
    """The Projector's settings at their defaults, named as in its options object."""
    return defaults(PROJECTOR_OPTIONS, by_key=True)


def command_defaults():
    """Every option of run_projection at its default, named as in its options object."""
    return defaults(OPTIONS, by_key=True)
