"""One projected target's folder: volumes, latent and noise, the loss curve (CSV and plot), a comparison
picture and the reconstruction metrics."""

import json
import os

import numpy as np

from dnnlib.fileutil import atomic_write_bytes, atomic_write_text
from generation.outputs import encode_image, png_scale, slice_to_uint8, write_volume
from volumes.volume_io import to_unit_range

CURVE_KEYS = ("loss", "mse", "mse_down", "noise_reg", "ssim")
CURVE_COLOURS = {"loss": (200, 30, 30), "mse": (30, 90, 200), "mse_down": (30, 150, 60), "ssim": (150, 90, 0)}


def curve_png(path, curve, keys=("loss", "mse", "mse_down"), size=(640, 400)):
    """Line plot (log10 y) of the loss curve of one target; curve rows hold scalars for that target."""
    from PIL import Image, ImageDraw

    w, h = size
    left, right, top, bottom = 60, 110, 20, 40
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    series = {k: np.log10(np.maximum([float(r[k]) for r in curve], 1e-12)) for k in keys if k in curve[0]}
    lo = min(float(v.min()) for v in series.values())
    hi = max(float(v.max()) for v in series.values())
    hi = hi if hi > lo else lo + 1
    n = max(len(curve) - 1, 1)
    draw.rectangle([left, top, w - right, h - bottom], outline="black")
    for frac in (0.0, 0.5, 1.0):
        y = top + (1 - frac) * (h - top - bottom)
        draw.text((5, y - 6), f"{10 ** (lo + frac * (hi - lo)):.3g}", fill="black")
        x = left + frac * (w - left - right)
        draw.text((x - 10, h - bottom + 5), str(int(round(frac * n)) + 1), fill="black")
    draw.text((left, h - 18), "step", fill="black")
    for row, (k, v) in enumerate(series.items()):
        pts = [(left + i / n * (w - left - right), top + (1 - (y - lo) / (hi - lo)) * (h - top - bottom))
               for i, y in enumerate(v)]
        colour = CURVE_COLOURS.get(k, (0, 0, 0))
        draw.line(pts if len(pts) > 1 else pts * 2, fill=colour, width=2)
        draw.text((w - right + 8, top + 15 * row), k, fill=colour)
    atomic_write_bytes(path, encode_image(img, "PNG"))


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
    proj_unit, tgt_unit = to_unit_range(proj), to_unit_range(tgt)
    write_volume(os.path.join(out, "projected.nii.gz"), proj, affine, uint8)
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
    curve_png(os.path.join(out, "loss.png"), [{k: r[k][i] for k in keys} for r in curve], keys)
    comparison_png(os.path.join(out, "comparison.png"), tgt_unit, proj_unit)
    metrics = {k: float(v) for k, v in reconstruction_metrics(tgt_unit, proj_unit, data_range=1.0).items()}
    metrics["grid"] = "dataset"  # metrics are measured on the dataset grid, in [0, 1]
    if target.get("transform") is not None:
        metrics["native_intensity"] = units
    if target.get("true_ws") is not None:
        metrics["w_rmse"] = float(np.sqrt(np.mean((result.ws[i] - target.true_ws) ** 2)))
    atomic_write_text(os.path.join(out, "metrics.json"), json.dumps(metrics, indent=2) + "\n")
    return metrics
