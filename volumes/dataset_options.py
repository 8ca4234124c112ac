"""dataset_tool.py's options: one table, from which its flags and their defaults come. Imports no TensorFlow;
allowed values are the library's own constants where it has them."""

from dnnlib.option_table import Option
from volumes.demo_data import RESOLUTIONS
from volumes.records import STORAGE_DTYPES

OPTIONS = (
    Option("input", str, None, "create: folder, glob pattern or list file of scans."),
    Option("output", str, None, "create/extract/split/demo: output folder (not overwritten without --overwrite)."),
    Option("dataset", str, None, "info/extract/split: dataset folder."),
    Option("overwrite", bool, False, "Replace an existing --output."),
    Option("spacing", str, "2", "create: output voxel size in mm, one value or x,y,z."),
    Option("shape", str, None, "create: output shape DxHxW; default keeps a 160x192x224 mm field of view "
           "(80x96x112 at 2 mm, 160x192x224 at 1 mm). Must be --base_shape x 2^k."),
    Option("base_shape", str, "5x6x7", "Base (constant) shape of the generator; valid shapes are base x 2^k."),
    Option("reorient", bool, True, "create: reorient to RAS (exact axis permutation/flip, RAS output grid)."),
    Option("resample", bool, True, "create: resample to --spacing (else keep the scans' spacing; all must agree)."),
    Option("antialias", bool, True, "create: Gaussian pre-filter when the output spacing is coarser."),
    Option("register_to", str, None, "create: affine-register every scan to this template volume (SimpleITK)."),
    Option("center", str, "foreground", "create: centre of the crop/pad.", choices=("foreground", "image")),
    Option("normalize", bool, True, "create: clip to foreground percentiles, map to [0, 1] (else clip to [0, 1])."),
    Option("percentiles", list, ("0.5", "99.5"), "create: low,high foreground percentiles of the intensity clip."),
    Option("foreground_fraction", float, 0.1, "create: foreground = voxels above min + f * (p99.5 - min)."),
    Option("storage_dtype", str, "uint16", "create/demo: stored voxel type.", choices=tuple(STORAGE_DTYPES)),
    Option("labels", str, None, "create: CSV with a filename column plus categorical/continuous columns."),
    Option("filename_column", str, None, "create: CSV column of file names (default: filename/file/path/...)."),
    Option("categorical", list, (), "create: categorical label columns (one-hot)."),
    Option("continuous", list, (), "create: continuous label columns (z-scored). Neither given: numeric columns are "
           "continuous, text columns categorical, and a column mixing numbers and text is an error."),
    Option("subject_column", str, None, "create: subject id column, kept for split (default subject/...)."),
    Option("missing_values", list, (), "create: --labels cells that mean 'missing' (e.g. n/a,NA); a scan whose "
           "label is missing is skipped with a reason. Other text in a column of numbers is an error."),
    Option("max_voxels", int, 512**3, "create: skip scans whose header declares more voxels than this (judged "
           "before reading their data); also bounds the workers by available memory."),
    Option("workers", int, None, "create/demo: worker processes (default: all cores)."),
    Option("num_shards", int, 0, "create: number of TFRecord shards (0: ~256 MB each)."),
    Option("strict", bool, False, "create: stop at the first bad input instead of skipping it."),
    Option("verify", bool, True, "info: read and check every record."),
    Option("full", bool, False, "info: print the whole manifest as JSON (with every file entry)."),
    Option("picture", str, None, "info: also draw the dataset's montage (three mid-slices of up to 12 volumes, "
           "their names, the skipped inputs) into this PNG. create writes <output>/montage.png, extract writes one "
           "beside the volumes."),
    Option("indices", str, None, "extract: records to write, e.g. 0-9,20 (default: all)."),
    Option("dtype", str, "float32", "extract: NIfTI voxel type.", choices=("float32", "uint16", "uint8")),
    Option("test_fraction", float, 0.1, "split: fraction of subjects in the test part."),
    Option("seed", int, 0, "split/demo: random seed."),
    Option("res", str, "demo", "demo: 'demo' = 40x48x56 at 4 mm, '2mm' = 80x96x112 at 2 mm.",
           choices=tuple(RESOLUTIONS)),
    Option("num_volumes", int, None, "demo: number of volumes (default 200)."),
    Option("progress", bool, True, "Show a progress bar."),
)
# Other names of flags: StyleGAN2-ADA's dataset_tool's and our other front ends' -> the flag they stand for.
ALIASES = {"source": "input", "dest": "output", "outdir": "output"}
