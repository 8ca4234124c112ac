"""generation/projection_outputs.py: the loss curve as CSV and plot (the comparison picture:
test_projection_pictures.py)."""

import sys

import numpy as np
import pytest
from PIL import Image

from generation import projection_outputs


def _curve():
    return [{"step": s, "lr": 0.1 * s, "loss": np.array([1.0 / s, 2.0 / s]), "mse": np.array([0.5, 0.25 / s]),
             "mse_down": np.array([0.1, 0.2]), "noise_reg": np.array([1e-6, 2e-6])} for s in (1, 2)]


def test_curve_csv_of_one_target():
    text = projection_outputs.curve_csv(_curve(), 1)
    assert text == "step,lr,loss,mse,mse_down,noise_reg\n1,0.1,2,0.25,0.2,2e-06\n2,0.2,1,0.125,0.2,2e-06\n"


def test_curve_picture(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [{k: r[k][0] for k in ("loss", "mse", "mse_down")} for r in _curve()]
    plot = projection_outputs.curve_png(str(tmp_path / "loss.png"), rows, steps=[1, 2])
    assert plot.note is None and Image.open(tmp_path / "loss.png").size == (640, 400)


def test_curve_title_fits_the_picture():
    # Each title line, drawn as line_plot draws it (fontsize 10, 100 dpi), is narrower than the 640-pixel figure.
    pytest.importorskip("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    renderer = FigureCanvasAgg(fig).get_renderer()
    widths = [fig.text(0, 0, line, fontsize=10).get_window_extent(renderer).width
              for line in projection_outputs.CURVE_TITLE.splitlines()]
    assert len(widths) == 3 and max(widths) < 560


def test_curve_picture_without_matplotlib_is_a_note(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    for name in [m for m in sys.modules if m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    rows = [{"loss": 1.0}, {"loss": 0.5}]
    plot = projection_outputs.curve_png(str(tmp_path / "loss.png"), rows)
    assert "loss.png not drawn" in plot.note and not (tmp_path / "loss.png").exists()
