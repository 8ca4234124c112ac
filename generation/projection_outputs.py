"""One projected target's folder: volumes, latent and noise, the loss curve (CSV and plot), a comparison
picture and the reconstruction metrics."""

import json
import os

import numpy as np

from dnnlib.csv_table import csv_text, write_csv
from dnnlib.fileutil import atomic_write_text
from generation.outputs import write_volume
from volumes.volume_io import to_unit_range

CURVE_KEYS = ("loss", "data", "noise_reg_weighted", "mse", "mse_down", "noise_reg", "ssim", "w_prior")
# What the curve terms are, for the plot's title (short lines: a title wider than the figure is cut off). The
# projector compares volumes in the network's range [-1, 1]; the original's MSEs were 127.5^2 times larger.
CURVE_TITLE = ("projection loss = data + noise_reg_weighted\n"
               "mse, mse_down: mean squared error of volumes in [-1, 1]\n"
               "(x 16256 = the original's units, volumes in [0, 255])")


def curve_png(path, curve, keys=("loss", "data", "noise_reg_weighted"), size=(640, 400), steps=None):
    """Line plot (log y) of the loss curve of one target; curve rows hold scalars for that target, steps their
    optimisation steps (default 1, 2, ...). Returns dnnlib.plots.line_plot's result (note: why no PNG)."""
    from dnnlib import plots

    steps = list(range(1, len(curve) + 1)) if steps is None else list(steps)
    series = {k: [float(r[k]) for r in curve] for k in keys if k in curve[0]}
    # A term that is zero throughout (the regulariser at weight 0) would turn the log axis linear.
    series = {k: v for k, v in series.items() if any(v)} or series
    return plots.line_plot(path, steps, series, xlabel="optimisation step", ylabel="value", log_y=True,
                           title=CURVE_TITLE, size=size)


DIFF_GAIN = 4.0  # differences are small next to the [0, 1] range: drawn x4 so they show


def comparison_rows(target, proj):
    """The comparison picture's rows for one target: (label, volume [i,j,k] in [0, 1], voxel sizes in mm).

    target: an EasyDict of projection_targets (dataset, seed or image file; with or without a degradation);
    proj: its projection [D,H,W,C] in [-1, 1] on the network grid. Rows: the target (when known on the network
    grid), the degraded input the projector compared with (on its own grid) and the baseline (linear
    interpolation back to the network grid) when there is a degradation, the projection, and the difference:
    with the target when known, else between the input and the projection degraded the same way.
    """
    from volumes.volume_io import voxel_sizes

    unit = lambda v: to_unit_range(np.asarray(v))[..., 0] if np.ndim(v) == 4 else to_unit_range(np.asarray(v))  # noqa: E731
    net_sp = voxel_sizes(np.asarray(target.affine, np.float64)) if target.get("affine") is not None else None
    proj_unit = unit(proj)
    rows = []
    if target.get("volume") is not None:
        rows.append(("target", unit(target.volume), net_sp))
    deg = target.get("degradation")
    if deg is not None:
        from generation.restoration.trivial_inverse import trivial_inverse_volume

        grid_sp = voxel_sizes(np.asarray(target.grid_affine, np.float64))
        rows.append(("degraded input", unit(target.degraded), grid_sp))
        baseline = trivial_inverse_volume(deg, target.degraded, proj_unit.shape)
        rows.append(("baseline:\nlinear interpolation", unit(baseline), net_sp))
    rows.append(("projection", proj_unit, net_sp))
    if target.get("volume") is not None:
        diff = np.abs(rows[0][1] - proj_unit)
        rows.append((f"|target - projection|\nx{DIFF_GAIN:g}", np.clip(diff * DIFF_GAIN, 0, 1), net_sp))
    else:
        seen = unit(deg(np.asarray(proj)[None]).numpy()[0])
        diff = np.abs(unit(target.degraded) - seen)
        rows.append((f"|input - degraded\nprojection| x{DIFF_GAIN:g}", np.clip(diff * DIFF_GAIN, 0, 1), grid_sp))
    return rows


def comparison_png(path, target, proj, title=None):
    """Draw comparison_rows(target, proj) (rows labelled, columns sagittal / coronal / axial) into path.
    Returns volumes.visualize.draw_panels' result (note: why no picture)."""
    from volumes import visualize

    rows = comparison_rows(target, proj)
    return visualize.draw_panels(path, [r[1] for r in rows], [r[0] for r in rows], title=title,
                                 spacings=[r[2] for r in rows], cell_inches=1.5)


def _comparison_title(target):
    kind = "image file" if target.get("path") else "generated volume" if target.get("true_ws") is not None else \
        "dataset volume"
    deg = target.get("degradation")
    return f"{target.name} ({kind}); degradation: {deg.spec() if deg is not None else 'none'}"


def curve_columns(curve, i):
    """The loss curve of target i of a batch as CSV columns: step, lr and every recorded term."""
    keys = [k for k in CURVE_KEYS if k in curve[0]]
    return {"step": [r["step"] for r in curve], "lr": [float(r["lr"]) for r in curve],
            **{k: [float(r[k][i]) for r in curve] for k in keys}}


def curve_csv(curve, i):
    """The loss curve of target i of a batch as CSV text (loss.csv)."""
    return csv_text(curve_columns(curve, i))


def write_target_outputs(out, target, i, result, affine, uint8=False):
    """Everything for target i of a projection batch into folder `out`; returns its metrics dict."""
    from metrics.reconstruction import reconstruction_metrics

    os.makedirs(out, exist_ok=True)
    proj, tgt = result.volumes[i], target.volume
    # tgt is None for an image target read in its own geometry: it has no network-grid copy to compare with.
    proj_unit, tgt_unit = to_unit_range(proj), None if tgt is None else to_unit_range(tgt)
    write_volume(os.path.join(out, "projected.nii.gz"), proj, affine, uint8)
    if tgt is not None:
        write_volume(os.path.join(out, "target.nii.gz"), tgt, affine, uint8)
    if target.get("transform") is not None:
        from generation.native_grid import to_native_grid, to_source_intensity
        from volumes import volume_io

        native, native_affine = to_native_grid(proj_unit[..., 0], affine, target.transform)
        native, units = to_source_intensity(native, target.transform)
        volume_io.write_nifti(os.path.join(out, "projected_native.nii.gz"), native, native_affine)
    np.save(os.path.join(out, "latent.npy"), result.ws[i])
    np.savez(os.path.join(out, "noise.npz"), *[n[i] for n in result.noise])
    curve = result.curve
    write_csv(os.path.join(out, "loss.csv"), curve_columns(curve, i))
    keys = [k for k in CURVE_KEYS if k != "noise_reg" and k in curve[0]]
    # loss.csv above holds the plotted data (and lr, noise_reg).
    plot = curve_png(os.path.join(out, "loss.png"), [{k: r[k][i] for k in keys} for r in curve], keys,
                     steps=[r["step"] for r in curve])
    if plot.note:
        print(f"projection: {plot.note}; the curve is in loss.csv")
    metrics = {}
    picture = comparison_png(os.path.join(out, "comparison.png"), target, proj, title=_comparison_title(target))
    if picture.note:
        print(f"projection: {picture.note}")
    if tgt is not None:
        metrics = {k: float(v) for k, v in reconstruction_metrics(tgt_unit, proj_unit, data_range=1.0).items()}
        metrics["grid"] = "dataset"  # metrics are measured on the dataset grid, in [0, 1]
    if target.get("transform") is not None:
        metrics["native_intensity"] = units
    if target.get("true_ws") is not None:
        metrics["w_rmse"] = float(np.sqrt(np.mean((result.ws[i] - target.true_ws) ** 2)))
    atomic_write_text(os.path.join(out, "metrics.json"), json.dumps(metrics, indent=2) + "\n")
    return metrics
