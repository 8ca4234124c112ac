"""run_generator.py's options: one table, from which its flags come. Imports no TensorFlow, so flag mistakes are
reported before it loads; allowed values are the library's own constants."""

from dnnlib.option_table import Option
from generation.interpolation import INTERPOLATIONS, SPACES
from metrics.generator_interface import NOISE_MODES

OPTIONS = (
    Option("network", str, None, "Run directory, checkpoint prefix or generator SavedModel."),
    Option("outdir", str, None, "Output directory (must not exist unless --overwrite)."),
    Option("overwrite", bool, False, "Replace an existing --outdir."),
    Option("seeds", str, None, "Seeds, e.g. 0-9,20 (generate, interpolate, average)."),
    Option("row_seeds", str, None, "style-mix: seeds of the rows (they give the styles not replaced)."),
    Option("col_seeds", str, None, "style-mix: seeds of the columns (they give the styles in --styles)."),
    Option("styles", str, None, "style-mix: ws taken from the column seed: presets (coarse, middle, fine: lowest, "
           "middle, highest third of the resolutions; at 2 mm coarse = ws 0-2 (5x6x7, 10x12x14), middle = 3-4 "
           "(20x24x28), fine = 5-9 (40x48x56, 80x96x112); on the demo network coarse = ws 0, middle = 1-4, fine = "
           "5-7; style-mix prints the network's own), a resolution or range such as 10x12x14 or 5x6x7-10x12x14, ws "
           "index ranges such as 0-3 (0-6: the original's default), all, or none. Default: the column's anatomy "
           "(coarse and middle), the row's detail."),
    Option("psi", float, 0.5, "Truncation psi (1 = none)."),
    Option("truncation_cutoff", int, None, "Truncate only the first N ws (default: all)."),
    Option("noise_mode", str, None, "Per-layer noise. Default: random (from the seed) for generate/average, const "
           "for style-mix/interpolate, whose noise is shared by every volume (random = one draw from --noise_seed).",
           choices=NOISE_MODES),
    Option("noise_seed", int, 0, "style-mix/interpolate: seed of the shared noise when --noise_mode=random."),
    Option("class_idx", int, None, "Conditional networks: class index (one-hot label)."),
    Option("label", list, None, "Conditional networks: explicit label vector, comma-separated floats."),
    Option("batch", int, 4, "Volumes per generator call."),
    Option("uint8", bool, False, "Also write a uint8 copy of every volume (*_uint8.nii.gz)."),
    Option("frames", int, 16, "interpolate: frames per segment between consecutive seeds (ends included)."),
    Option("space", str, "z", "interpolate: latent space.", choices=SPACES),
    Option("interp", str, "linear", "interpolate: linear or spherical.", choices=tuple(INTERPOLATIONS)),
    Option("axis", int, 2, "interpolate: slice axis of the strip/GIF (0 sagittal, 1 coronal, 2 axial)."),
    Option("save_frames", bool, True, "interpolate: write every frame as NIfTI (frameNNNN.nii.gz, beside "
           "interpolation_frames.png); --nosave_frames writes the pictures only."),
    Option("projected_w", str, None, "Latents of run_projector.py (its --outdir, one target's folder or a "
           "latent.npy / projected_w.npz) instead of seeds: generate re-synthesises them (with the projection's "
           "noise maps unless --noise_mode is given), style-mix uses them as the rows, interpolate goes through them "
           "in W. Alias --latent."),
)
