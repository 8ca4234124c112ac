"""Pictures of volumes, the one home for every tool's pictures: orthogonal mid-slices and grids of them as 8-bit
greyscale PNGs, strips and GIFs of generated volumes, and labelled matplotlib figures (rows of volumes, one column
per plane, every row and column named).

Volumes are assumed in the canonical RAS array orientation (axis 0 -> Right, 1 -> Anterior,
2 -> Superior). Slices are drawn the way viewers do: superior (or anterior for axial) at the top,
the subject's right on the right of the picture (neurological convention), anterior on the right
in sagittal views.
"""

import io
import math
import os

import numpy as np

from dnnlib.fileutil import atomic_write_bytes
from volumes.volume_io import to_unit_range

PLANES = {"sagittal": 0, "coronal": 1, "axial": 2}
PLANE_NAMES = tuple(PLANES)  # slices across array axis 0, 1, 2 (RAS data)


def _as_batch(volumes):
    """Accept [i,j,k], [i,j,k,1], [N,i,j,k] or [N,i,j,k,1] (NumPy or tf); return float32 [N,i,j,k]."""
    x = np.asarray(volumes, dtype=np.float32)
    if x.ndim == 5:
        x = x[..., 0]  # first channel: one greyscale picture per volume
    elif x.ndim == 4:
        x = x[None, ..., 0] if x.shape[-1] == 1 else x
    elif x.ndim == 3:
        x = x[None]
    else:
        raise ValueError(f"expected a volume or a batch of volumes, got shape {x.shape}")
    return x


def _auto_range(x):
    # Network outputs live in [-1, 1], files in [0, 1]: negative values say which one this is.
    return (-1.0, 1.0) if float(np.nanmin(x)) < 0 else (0.0, 1.0)


def _to_uint8(img, drange):
    lo, hi = drange
    scaled = (np.nan_to_num(img.astype(np.float64)) - lo) * (255.0 / max(hi - lo, 1e-12))
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def slice_2d(volume, axis, index=None):
    """One slice through array axis `axis` (0 sagittal, 1 coronal, 2 axial), oriented for display."""
    axis = PLANES.get(axis, axis) if isinstance(axis, str) else int(axis)
    index = volume.shape[axis] // 2 if index is None else int(index)
    s = np.take(volume, index, axis=axis)  # remaining axes keep their order
    # Put the upward axis on rows (top first) and the other on columns.
    # sagittal [j,k] -> rows S, cols A; coronal [i,k] -> rows S, cols R; axial [i,j] -> rows A, cols R.
    return s.T[::-1, :]


def _encode_png(gray_u8):
    from PIL import Image

    return encode_image(Image.fromarray(gray_u8, mode="L"), "PNG")


def write_gray_png(path, gray_u8, scale=1):
    """Write a uint8 greyscale picture as a PNG at path, enlarged `scale` times (nearest neighbour), atomically.
    Returns the picture as written."""
    img = _upscale(np.asarray(gray_u8, np.uint8), int(scale))
    atomic_write_bytes(path, _encode_png(img))
    return img


def _pad_to(img, h, w, fill):
    out = np.full((h, w), fill, dtype=img.dtype)
    y0, x0 = (h - img.shape[0]) // 2, (w - img.shape[1]) // 2
    out[y0 : y0 + img.shape[0], x0 : x0 + img.shape[1]] = img
    return out


def _upscale(img, scale):
    return img if scale == 1 else np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)


def mid_slices_image(volume_or_batch, drange=None, gap=2):
    """uint8 picture: one row per volume, three panels (sagittal, coronal, axial) through the middle."""
    x = _as_batch(volume_or_batch)
    drange = _auto_range(x) if drange is None else drange
    rows = []
    for vol in x:
        panels = [_to_uint8(slice_2d(vol, a), drange) for a in range(3)]
        h = max(p.shape[0] for p in panels)
        row = []
        for p in panels:
            row += [_pad_to(p, h, p.shape[1], 0), np.zeros((h, gap), np.uint8)]
        rows.append(np.concatenate(row[:-1], axis=1))
    w = max(r.shape[1] for r in rows)
    out = []
    for r in rows:
        out += [_pad_to(r, r.shape[0], w, 0), np.zeros((gap, w), np.uint8)]
    return np.concatenate(out[:-1], axis=0)


def mid_slices_png(path, volume_or_batch, drange=None, scale=1, gap=2):
    """Save three orthogonal mid-slices (sagittal, coronal, axial) of one volume or each volume of a batch.

    volume_or_batch: [i,j,k], [i,j,k,1], [N,i,j,k] or [N,i,j,k,1]; drange (lo, hi) maps to black..white,
    default [-1, 1] if any value is negative else [0, 1]. scale: integer nearest-neighbour enlargement.
    Written atomically. Returns the uint8 picture.
    """
    return write_gray_png(path, mid_slices_image(volume_or_batch, drange, gap), scale)


def grid_image(volumes, rows, cols, axis=2, drange=None, gap=2):
    """uint8 grid (rows x cols) of mid-slices through `axis`; unused cells stay black."""
    x = _as_batch(volumes)
    rows, cols = int(rows), int(cols)
    if rows < 1 or cols < 1:
        raise ValueError(f"grid needs rows, cols >= 1, got {rows}x{cols}")
    if len(x) > rows * cols:
        raise ValueError(f"{len(x)} volumes do not fit a {rows}x{cols} grid")
    drange = _auto_range(x) if drange is None else drange
    cells = [_to_uint8(slice_2d(v, axis), drange) for v in x]
    h, w = cells[0].shape
    out = np.zeros((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap), np.uint8)
    for n, cell in enumerate(cells):
        r, c = divmod(n, cols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = cell
    return out


def grid_png(path, volumes, rows, cols, axis=2, drange=None, scale=1, gap=2):
    """Save a rows x cols grid of mid-slices through array axis `axis` (0/1/2 or 'sagittal'/'coronal'/'axial').

    volumes: [N,i,j,k] or [N,i,j,k,1] with N <= rows*cols, in [-1,1] or [0,1] (auto) or drange.
    Written atomically. Returns the uint8 picture.
    """
    return write_gray_png(path, grid_image(volumes, rows, cols, axis, drange, gap), scale)


def panel_groups_image(rows, drange, gap=2, group_gap=8, group_fill=128):
    """uint8 picture of side-by-side comparisons: one row per entry of `rows`, each a list of groups, each group a
    list of 2-D slices (oriented for display, e.g. by slice_2d) mapped drange (lo, hi) -> black..white.

    The panels of a group stand `gap` pixels apart, top-aligned (black below a shorter one); the groups of a row are
    parted by a band `group_gap` wide of grey `group_fill`; rows stand `gap` apart (they must be equally wide)."""
    def group(panels, height):
        parts = []
        for p in panels:
            padded = np.zeros((height, p.shape[1]), np.uint8)
            padded[: p.shape[0]] = p
            parts += [padded, np.zeros((height, gap), np.uint8)]
        return np.concatenate(parts[:-1], axis=1)

    out = []
    for groups in rows:
        groups = [[_to_uint8(np.asarray(p), drange) for p in g] for g in groups]
        height = max(p.shape[0] for g in groups for p in g)
        spacer = np.full((height, group_gap), group_fill, np.uint8)
        parts = []
        for g in groups:
            parts += [group(g, height), spacer]
        row = np.concatenate(parts[:-1], axis=1)
        out += [row, np.zeros((gap, row.shape[1]), np.uint8)]
    return np.concatenate(out[:-1], axis=0)


# ----------------------------------------------------------------------------------------------
# Pictures of generated volumes ([-1, 1]): enlarged so small (demo) volumes still show, grids per plane, strip/GIF.


def png_scale(img_shape):
    """Integer enlargement so small (demo) volumes still give pictures about 128 pixels across."""
    return max(1, math.ceil(128 / max(int(d) for d in img_shape)))


def slice_to_uint8(sl, value_range=(-1.0, 1.0)):
    lo, hi = value_range
    return np.clip(np.rint((np.asarray(sl, np.float64) - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)


def encode_image(img, fmt="PNG", **kwargs):
    """A PIL image as file bytes (written with atomic_write_bytes, so no half-written picture is left)."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def write_grids(prefix, vols, rows, cols, row_labels=None, col_labels=None):
    """One rows x cols grid of mid-slices per orientation: <prefix>_sagittal.png, _coronal.png, _axial.png;
    with row_labels and col_labels (one string per row / column), labelled left of the rows and above the columns."""
    scale = png_scale(vols.shape[1:4])
    for axis, name in enumerate(PLANE_NAMES):
        if row_labels is None:
            grid_png(f"{prefix}_{name}.png", to_unit_range(vols), rows, cols, axis, drange=(0, 1), scale=scale)
            continue
        from PIL import Image

        from volumes.grid_labels import labelled_grid

        gap = 2
        img = grid_image(to_unit_range(vols), rows, cols, axis, drange=(0, 1), gap=gap)
        img = _upscale(img, scale)
        img = labelled_grid(img, row_labels, col_labels, gap * scale)
        atomic_write_bytes(f"{prefix}_{name}.png", encode_image(Image.fromarray(img), "PNG"))


def write_mid_slices(path, vol):
    """Sagittal, coronal and axial mid-slices of one [-1, 1] volume as one PNG."""
    mid_slices_png(path, to_unit_range(vol), (0, 1), png_scale(np.shape(vol)[:3]))


def write_strip_and_gif(png_path, gif_path, vols, axis=2, duration_ms=80):
    """Mid-slices of the frames side by side (PNG) and as an animation that loops forth and back (GIF)."""
    from PIL import Image

    frames = [slice_to_uint8(slice_2d(np.asarray(v)[..., 0] if np.ndim(v) == 4 else np.asarray(v), axis))
              for v in vols]
    scale = png_scale(np.shape(vols)[1:4])
    big = [_upscale(f, scale) for f in frames]
    strip = np.concatenate([np.pad(f, ((0, 0), (0, 2))) for f in big], axis=1)[:, :-2]
    atomic_write_bytes(png_path, encode_image(Image.fromarray(strip), "PNG"))
    loop = [Image.fromarray(f) for f in big + big[-2:0:-1]]
    gif = encode_image(loop[0], "GIF", save_all=True, append_images=loop[1:], duration=duration_ms, loop=0)
    atomic_write_bytes(gif_path, gif)


# ----------------------------------------------------------------------------------------------
# Labelled figures (matplotlib): rows of volumes, one column per plane, every row and column named.

def display_aspect(spacing, axis):
    """Height/width of one displayed voxel of slice_2d(volume, axis) for voxel sizes `spacing` (mm)."""
    if spacing is None:
        return 1.0
    b, c = (a for a in range(3) if a != axis)  # slice_2d puts axis c on rows and axis b on columns
    return float(spacing[c]) / float(spacing[b])


def panel_figure(rows, row_labels, planes=PLANE_NAMES, title=None, footer=None, drange=(0.0, 1.0), cmaps=None,
                 spacings=None, cell_inches=1.6, dpi=100):
    """A matplotlib Figure: one row per volume of `rows` ([i,j,k] arrays), one column per plane (mid-slices,
    oriented as slice_2d), each row named by row_labels on its left and each column by its plane on top.

    drange: (lo, hi) mapped to black..white, for every row or one per row (a list of pairs); cmaps: None (grey)
    or one colormap name per row; spacings: None (square voxels) or one voxel size triple per row, so
    anisotropic scans are drawn in millimetres. title on top, footer (a few lines of text) below.
    Raises ImportError when matplotlib is missing (draw_panels turns that into a note).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if len(rows) != len(row_labels):
        raise ValueError(f"{len(rows)} rows of volumes for {len(row_labels)} row labels")
    if not rows:
        raise ValueError("a picture needs at least one volume")
    axes_of = [PLANES.get(p, p) if isinstance(p, str) else int(p) for p in planes]
    dranges = list(drange) if drange and isinstance(drange[0], tuple | list) else [drange] * len(rows)
    footer_lines = 0 if not footer else footer.count("\n") + 1
    height = cell_inches * len(rows) + (0.35 if title else 0) + 0.18 * footer_lines + 0.3
    fig = Figure(figsize=(cell_inches * len(axes_of) + 1.3, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(len(rows), len(axes_of), squeeze=False)
    for r, vol in enumerate(rows):
        vol = np.asarray(vol, np.float32)
        vol = vol[..., 0] if vol.ndim == 4 else vol
        lo, hi = dranges[r]
        for col, axis in enumerate(axes_of):
            ax = grid[r][col]
            aspect = display_aspect(None if spacings is None else spacings[r], axis)
            ax.imshow(slice_2d(vol, axis), cmap=(cmaps[r] if cmaps else None) or "gray", vmin=lo, vmax=hi,
                      interpolation="nearest", aspect=aspect)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                name = planes[col] if isinstance(planes[col], str) else PLANE_NAMES[axis]
                ax.set_title(name, fontsize=9)
            if col == 0:  # horizontal, wrapped: long scan names must not run into the next row
                ax.set_ylabel(wrap_label(row_labels[r]), fontsize=7, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    if footer:
        fig.supxlabel(footer, fontsize=7, ha="left", x=0.01)
    return fig


def wrap_label(text, width=18):
    """A row label in lines of at most `width` characters (its own line breaks kept, long names cut)."""
    import textwrap

    return "\n".join(part for line in str(text).split("\n")
                     for part in (textwrap.wrap(line, width, break_on_hyphens=True) or [""]))


def draw_panels(path, rows, row_labels, **kwargs):
    """panel_figure(rows, row_labels, **kwargs) written atomically as a PNG at path.

    Returns EasyDict(png=path or None, note=None or why no picture, figure). matplotlib is an optional extra:
    without it nothing is written and the note says so.
    """
    from dnnlib.easydict import EasyDict
    from dnnlib.plots import MISSING_MATPLOTLIB

    try:
        fig = panel_figure(rows, row_labels, **kwargs)
    except ImportError:
        return EasyDict(png=None, note=f"{os.path.basename(str(path))} not drawn: {MISSING_MATPLOTLIB}",
                        figure=None)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    atomic_write_bytes(path, buf.getvalue())
    return EasyDict(png=str(path), note=None, figure=fig)


def sample_indices(n, k):
    """At most k indices spread evenly over range(n), first and last included."""
    if n <= k:
        return list(range(n))
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, k)})


def skipped_footer(skipped, max_lines=4, width=80):
    """A few lines listing skipped inputs (their reasons, the file by its name), for a montage's footer."""
    if not skipped:
        return "skipped: none"
    lines = [f"skipped {len(skipped)}:"]
    for s in skipped[:max_lines]:
        reason = str(s.get("reason", s) if isinstance(s, dict) else s)
        path = str(s.get("path", "")) if isinstance(s, dict) else ""
        if path and reason.startswith(path):
            reason = os.path.basename(path) + reason[len(path):]
        lines.append("  " + (reason if len(reason) <= width else reason[: width - 3] + "..."))
    if len(skipped) > max_lines:
        lines.append(f"  ... and {len(skipped) - max_lines} more (dataset.json lists them all)")
    return "\n".join(lines)
