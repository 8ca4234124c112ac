"""The memorisation audit's report folder: what a paper or a data-sharing request can show.

<report_dir>/<metric>/ (written atomically; a folder this project wrote before is replaced):

* ``report.txt`` -- the statistics, how they were computed, the per-cell table of C_T and the closest pairs;
* ``distances.png`` -- histograms of the nearest-training distances of generated and of held-out volumes, with the
  copy threshold (matplotlib, an optional extra: without it the picture is skipped and report.txt says so);
* ``samples.csv``, ``heldout.csv`` -- per volume: index, nearest training index, distance;
* ``closest_pairs.png`` -- one row per closest pair: the generated volume's mid-slices (sagittal, coronal, axial),
  its nearest training volume's, and their difference (grey = equal, white = the sample brighter).
"""

import io
import json
import os

import numpy as np

from dnnlib.csv_table import write_csv
from dnnlib.fileutil import atomic_output_dir, atomic_write_bytes, atomic_write_text
from dnnlib.plots import MISSING_MATPLOTLIB
from volumes.visualize import panel_groups_image, write_gray_png


def pairs_image(pairs, train_slices, gap=2, group_gap=8):
    """uint8 picture, one row per pair (sample | nearest training | sample - training), volumes in [-1, 1]."""
    rows = [[s, train_slices[t], [a - b for a, b in zip(s, train_slices[t], strict=True)]] for _, _, t, s in pairs]
    return panel_groups_image(rows, (-1, 1), gap, group_gap)


def distance_histogram(path, sample_d, heldout_d, threshold, title):
    """Both distributions as densities on shared bins, the copy threshold as a line. None, or why not drawn."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return f"distances.png not drawn: {MISSING_MATPLOTLIB}"
    fig = Figure(figsize=(6.4, 4.0), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    both = np.concatenate([sample_d, heldout_d])
    bins = np.linspace(both.min(), both.max(), 40) if both.max() > both.min() else 10
    ax.hist(sample_d, bins=bins, density=True, alpha=0.6, label=f"generated -> training (n={len(sample_d)})")
    ax.hist(heldout_d, bins=bins, density=True, alpha=0.6, label=f"held-out -> training (n={len(heldout_d)})")
    ax.axvline(threshold, color="k", linestyle="--", linewidth=1, label="5th percentile of held-out")
    ax.set_xlabel("distance to the nearest training volume")
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return None


def report_text(name, results, info, pairs, note):
    lines = [f"{name}: memorisation audit", f"space: {info['space']}; distance: {info['distance']}",
             f"training {info['num_train']}, held-out {info['num_heldout']}, generated {info['num_samples']} volumes",
             ""]
    width = max(len(k) for k in results)
    lines += [f"{k.ljust(width)}  {v:.6g}" for k, v in results.items()]
    lines += ["", f"C_T over {info['cells']} k-means cells of the training vectors; a cell counts with at least "
                  f"{info['min_cell_samples']} generated and 1 held-out volume:",
              "cell  held-out  generated  z        kept"]
    for c in info["cell_table"]:
        z = "-" if c["z"] is None else f"{c['z']:.3f}"
        lines.append(f"{c['cell']:<4}  {c['heldout']:<8}  {c['samples']:<9}  {z:<7}  {'yes' if c['kept'] else 'no'}")
    lines += ["", f"copy threshold (the {info['copy_percentile']:g}th percentile of held-out distances): "
                  f"{info['copy_threshold']:.6g}", "",
              "closest pairs (closest_pairs.png, top to bottom; sample = index of the generated volume in seed "
              "order):", "rank  sample  training  distance"]
    lines += [f"{r:<4}  {s:<6}  {t:<8}  {d:.6g}" for r, (d, s, t, _) in enumerate(pairs)]
    lines += ["", "C_T << 0 (e.g. below -3): generated volumes sit closer to training volumes than new subjects do "
                  "(data-copying); C_T >> 0: farther (underfitting). These statistics are evidence, not a privacy "
                  "guarantee."]
    if note:
        lines += ["", f"note: {note}"]
    return "\n".join(lines) + "\n"


def write_report(folder, name, results, info, sample_d, sample_idx, heldout_d, heldout_idx, pairs, train_slices):
    with atomic_output_dir(folder, overwrite=True) as tmp:
        note = distance_histogram(os.path.join(tmp, "distances.png"), sample_d, heldout_d, info["copy_threshold"],
                                  f"{name}: {info['distance']} in {info['space'].split(' (')[0]}")
        write_gray_png(os.path.join(tmp, "closest_pairs.png"), pairs_image(pairs, train_slices), scale=2)
        write_csv(os.path.join(tmp, "samples.csv"),
                  {"sample": list(range(len(sample_d))), "nearest_training": [int(i) for i in sample_idx],
                   "distance": [float(d) for d in sample_d]})
        write_csv(os.path.join(tmp, "heldout.csv"),
                  {"heldout": list(range(len(heldout_d))), "nearest_training": [int(i) for i in heldout_idx],
                   "distance": [float(d) for d in heldout_d]})
        atomic_write_text(os.path.join(tmp, "report.txt"), report_text(name, results, info, pairs, note))
        atomic_write_text(os.path.join(tmp, "summary.json"), json.dumps(
            {"results": results, "info": {k: v for k, v in info.items() if k != "report"}}, indent=2,
            sort_keys=True, default=str) + "\n")
