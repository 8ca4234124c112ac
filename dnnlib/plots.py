"""Line plots (PNG, matplotlib) with their data beside them (CSV).

matplotlib is an optional extra (`pip install .[plots]`): without it the CSV is still written, and the result
carries a one-line note saying the picture is missing and why.
"""

import io
import math
import os

from dnnlib.csv_table import write_csv
from dnnlib.easydict import EasyDict
from dnnlib.fileutil import atomic_write_bytes

MISSING_MATPLOTLIB = "matplotlib is not installed (pip install matplotlib, or this project's [plots] extra)"


def line_plot(png_path, x, series, xlabel, ylabel, title=None, log_y=False, csv_path=None, x_name=None,
              size=(640, 400), dpi=100):
    """Draw `series` ({name: y values}) against x into png_path, size pixels, with labelled axes and a legend.

    log_y: a log10 y axis when every value is positive (otherwise linear, and the axis label says so).
    csv_path: also write the data there as CSV (x column named x_name or xlabel, then one column per series);
    None: the caller keeps its own CSV. Returns EasyDict(png (None when not drawn), csv, note (None or why not)).
    """
    x = [float(v) for v in x]
    series = {name: [float(v) for v in ys] for name, ys in series.items()}
    for name, ys in series.items():
        if len(ys) != len(x):
            raise ValueError(f"series {name!r} has {len(ys)} values for {len(x)} x values")
    if csv_path is not None:
        write_csv(csv_path, {x_name or xlabel: x, **series})
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return EasyDict(png=None, csv=csv_path, note=f"{os.path.basename(png_path)} not drawn: {MISSING_MATPLOTLIB}")

    # Figure + Agg canvas directly: no pyplot, so no global backend or window is touched.
    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    finite = [v for ys in series.values() for v in ys if math.isfinite(v)]
    log_y = bool(log_y and finite and min(finite) > 0)
    for name, ys in series.items():
        ax.plot(x, ys, marker="o" if len(x) <= 30 else None, markersize=3, linewidth=1.5, label=name)
    if log_y:
        ax.set_yscale("log")
    if all(v.is_integer() for v in x):  # steps: no ticks between them
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel + (" (log scale)" if log_y else ""))
    if title:
        ax.set_title(title, fontsize=10)
    if len(series) > 1:
        ax.legend(fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(png_path, buf.getvalue())
    return EasyDict(png=png_path, csv=csv_path, note=None)
