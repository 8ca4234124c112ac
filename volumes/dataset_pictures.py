"""A dataset's picture: a montage of its volumes (or an even sample of them), three mid-slices each, named by
the scan each came from, with the dataset's shape and spacing on top and the skipped inputs below.

create writes it as <dataset>/montage.png, extract beside the volumes it writes, info where --picture says.
"""

import os

from volumes import visualize
from volumes.volume_io import file_stem

MONTAGE_NAME = "montage.png"
MAX_ROWS = 12  # volumes drawn; larger datasets are sampled evenly (first and last included)


def volume_name(manifest, index):
    """How a record is called in pictures: its index and the stem of the scan it came from."""
    for f in manifest.get("files") or []:
        if int(f.get("index", -1)) == int(index):
            return f"{int(index)}: {file_stem(f.get('path', 'volume'))}"
    return f"{int(index)}"


def montage(path, manifest, volumes, indices, title=None):
    """Draw volumes ([i,j,k] in [0, 1], records `indices` of the dataset behind `manifest`) into path.

    Returns visualize.draw_panels' result (note says why when no picture was drawn).
    """
    shape = "x".join(str(int(s)) for s in manifest["shape"])
    spacing = [float(s) for s in manifest["spacing"]]
    n = int(manifest.get("num_volumes", len(volumes)))
    shown = f"all {n} volumes" if len(volumes) == n else f"{len(volumes)} of {n} volumes"
    head = f"{title or 'dataset'}: {shown}, {shape} at {'x'.join(f'{s:g}' for s in spacing)} mm"
    return visualize.draw_panels(path, list(volumes), [volume_name(manifest, i) for i in indices],
                                 title=head, footer=visualize.skipped_footer(manifest.get("skipped") or []),
                                 spacings=[spacing] * len(volumes))


def dataset_montage(path, dataset_dir, manifest=None, indices=None):
    """Read the sampled records of a dataset (or those in `indices`) and draw their montage into path."""
    from volumes import records
    from volumes.manifest import load_manifest

    m = manifest or load_manifest(dataset_dir)
    pool = sorted(int(i) for i in indices) if indices is not None else list(range(int(m.num_volumes)))
    wanted = {pool[k] for k in visualize.sample_indices(len(pool), MAX_ROWS)}
    found = {}
    for rec in records.iterate_records(dataset_dir, m):
        if rec.index in wanted:
            found[rec.index] = records.decode_volume(rec.stored, m.storage_dtype).reshape(rec.shape)
    order = sorted(found)
    return montage(path, m, [found[i] for i in order], order, title=os.path.basename(os.path.normpath(dataset_dir)))


def montage_or_note(path, result, log=print):
    """Say where the picture is, or why there is none."""
    log(f"picture: {path}" if result.png else f"no picture: {result.note}")
    return result

