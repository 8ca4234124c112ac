"""One projected target's folder: volumes, latent and noise, the loss curve (CSV and plot), a comparison
picture and the reconstruction metrics."""

import json
import os

import numpy as np

from dnnlib.fileutil import atomic_write_bytes, atomic_write_text
from generation.outputs import encode_image, png_scale, slice_to_uint8, write_volume
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


def comparison_png(path, target_unit, proj_unit, diff_gain=4.0):
    """Rows: target, projection, |difference| x diff_gain; columns: sagittal, coronal, axial mid-slices."""
    from PIL import Image

    from volumes import visualize

    vols = [target_unit, proj_unit, np.clip(np.abs(target_unit - proj_unit) * diff_gain, 0, 1)]
    cells = [[visualize.slice_2d(np.asarray(v)[..., 0] if np.ndim(v) == 4 else v, a) for a in range(3)]
             for v in vols]
    col_w = [max(cells[r][a].shape[1] for r in range(3)) for a in range(3)]
    row_h = max(c.shape[0] for row in cells for c in row)
    gap = 2
    out = np.zeros((3 * row_h + 2 * gap, sum(col_w) + 2 * gap), np.uint8)
    for r in range(3):
        x = 0
        for a in range(3):
            c = slice_to_uint8(cells[r][a], (0.0, 1.0))
            y0 = r * (row_h + gap) + (row_h - c.shape[0]) // 2
            x0 = x + (col_w[a] - c.shape[1]) // 2
            out[y0 : y0 + c.shape[0], x0 : x0 + c.shape[1]] = c
            x += col_w[a] + gap
    s = png_scale(np.shape(target_unit)[:3])
    out = np.repeat(np.repeat(out, s, axis=0), s, axis=1)
    atomic_write_bytes(path, encode_image(Image.fromarray(out), "PNG"))


def curve_csv(curve, i):
    """The loss curve of target i of a batch as CSV text: step, lr and every recorded term."""
    keys = [k for k in CURVE_KEYS if k in curve[0]]
    lines = [",".join(["step", "lr", *keys])]
    for r in curve:
        lines.append(",".join([str(r["step"]), f"{r['lr']:.6g}", *(f"{float(r[k][i]):.6g}" for k in keys)]))
    return "\n".join(lines) + "\n"


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
    atomic_write_text(os.path.join(out, "loss.csv"), curve_csv(curve, i))
    keys = [k for k in CURVE_KEYS if k != "noise_reg" and k in curve[0]]
    # loss.csv above holds the plotted data (and lr, noise_reg).
    plot = curve_png(os.path.join(out, "loss.png"), [{k: r[k][i] for k in keys} for r in curve], keys,
                     steps=[r["step"] for r in curve])
    if plot.note:
        print(f"projection: {plot.note}; the curve is in loss.csv")
    metrics = {}
    if tgt is not None:
        comparison_png(os.path.join(out, "comparison.png"), tgt_unit, proj_unit)
        metrics = {k: float(v) for k, v in reconstruction_metrics(tgt_unit, proj_unit, data_range=1.0).items()}
        metrics["grid"] = "dataset"  # metrics are measured on the dataset grid, in [0, 1]
    if target.get("transform") is not None:
        metrics["native_intensity"] = units
    if target.get("true_ws") is not None:
        metrics["w_rmse"] = float(np.sqrt(np.mean((result.ws[i] - target.true_ws) ** 2)))
    atomic_write_text(os.path.join(out, "metrics.json"), json.dumps(metrics, indent=2) + "\n")
    return metrics
