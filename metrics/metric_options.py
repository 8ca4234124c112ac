"""run_metrics.py's options: one table, from which its flags come. Imports no TensorFlow, so flag mistakes are
reported before it loads; allowed values are the library's own constants."""

from dnnlib.option_table import Option
from metrics.generator_interface import NOISE_MODES

# Intensity scalings of the volumes fed to a 3D feature network (metrics.feature_networks applies them).
INPUT_SCALES = ("minus_one_one", "zero_one", "zscore")

OPTIONS = (
    Option("network", str, None, "Run directory, checkpoint prefix (<run>/checkpoints/ckpt-N) or SavedModel."),
    Option("data", str, None, "Dataset directory of the reals (made by dataset_tool.py)."),
    Option("metrics", list, ("fid_slices", "kid", "mmd", "ms_ssim"),
           "Comma-separated metric names; --metrics=list prints them with descriptions."),
    Option("num", int, 100, "Number of fakes (and at most as many reals)."),
    Option("batch", int, 4, "Volumes per batch."),
    Option("feature_weights", str, None, "Slice metrics: standard FID Inception weights (.pb/.tgz/.npz/.pt; "
           "default: cached or pinned download); keras:<.h5|.keras> = Keras InceptionV3 (not comparable); "
           "'random' = plumbing only."),
    Option("feature_network", str, None, "3D feature network: Keras .keras/.h5 file or SavedModel directory."),
    Option("feature_layer", str, None, "Layer (Keras) or output key (SavedModel) of the 3D network."),
    Option("feature_input", str, "minus_one_one", "Intensity scaling of volumes fed to the 3D network.",
           choices=INPUT_SCALES),
    Option("slice_step", int, 0, "Slice FID: 0 = middle slice only, k = every k-th slice around the middle."),
    Option("kernel_size", int, 11, "MS-SSIM window (odd); reduced to the largest that fits, and reported."),
    Option("seed", int, 0, "Seed of the latents, of their random noise maps and of pair sampling."),
    Option("psi", float, 1.0, "Truncation psi of the fakes."),
    Option("noise_mode", str, "random", "Noise mode of the generator.", choices=NOISE_MODES),
    Option("cache_dir", str, None, "Where to cache real statistics (default <data>/.cache)."),
    Option("json", str, None, "Write all results to this JSON file."),
    Option("overwrite", bool, False, "Allow --json to replace an existing file (and --report_dir a report this "
           "project wrote)."),
    Option("heldout", str, None, "memorization*: dataset directory of a held-out split of the training data's "
           "population (e.g. dataset_tool.py split's test/), the reference the samples are judged against."),
    Option("report_dir", str, None, "memorization*: write each audit's report (table, distance plot, closest "
           "pairs) to <report_dir>/<metric>/."),
    Option("cells", int, 0, "memorization*: k-means cells of the C_T test (0 = about one per 10 held-out volumes, "
           "at most 10)."),
    Option("run_log", bool, True, "Append results to <run>/metric-<name>.jsonl when --network is a run directory."),
)
