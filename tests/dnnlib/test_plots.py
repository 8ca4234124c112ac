"""dnnlib/plots.py: a PNG of the asked size with the data as CSV beside it; without matplotlib, the CSV and a note."""

import sys

import numpy as np
import pytest
from PIL import Image

from dnnlib import csv_table, plots

X = [1, 2, 3, 4]
SERIES = {"loss": [1.0, 0.1, 0.01, 0.001], "mse": [0.5, 0.25, 0.125, 0.0625]}


def test_csv_beside_the_plot_holds_the_data(tmp_path):
    plots.line_plot(str(tmp_path / "c.png"), X, SERIES, "optimisation step", "value", csv_path=str(tmp_path / "c.csv"),
                    x_name="step")
    want = "step,loss,mse\n1,1,0.5\n2,0.1,0.25\n3,0.01,0.125\n4,0.001,0.0625\n"
    assert (tmp_path / "c.csv").read_text() == want
    back = np.loadtxt(tmp_path / "c.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(back, np.column_stack([X, SERIES["loss"], SERIES["mse"]]))


# (size in pixels, log_y, series): log axes, linear axes and the fallback to linear for a non-positive value.
PNG_CASES = [((640, 400), True, SERIES), ((300, 200), False, SERIES), ((480, 360), True, {"ssim": [-0.1, 0, 0.5, 1]})]


@pytest.mark.parametrize("size, log_y, series", PNG_CASES)
def test_png_has_the_asked_size_and_shows_every_series(tmp_path, size, log_y, series):
    pytest.importorskip("matplotlib")
    result = plots.line_plot(str(tmp_path / "p.png"), X, series, "step", "value", title="t", log_y=log_y, size=size)
    assert result.png == str(tmp_path / "p.png") and result.note is None and result.csv is None
    img = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))
    assert img.shape == (size[1], size[0], 3)
    # matplotlib's first two line colours (tab:blue, tab:orange) are drawn, one per series.
    for colour in [(31, 119, 180), (255, 127, 14)][: len(series)]:
        assert (np.abs(img.astype(int) - colour).sum(axis=-1) < 30).sum() > 20, colour


def test_without_matplotlib_the_csv_is_written_with_a_note(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)  # import matplotlib... raises ImportError
    result = plots.line_plot(str(tmp_path / "p.png"), X, SERIES, "step", "value", csv_path=str(tmp_path / "p.csv"))
    assert result.png is None and "p.png not drawn: matplotlib is not installed" in result.note
    assert not (tmp_path / "p.png").exists() and (tmp_path / "p.csv").read_text().startswith("step,loss,mse\n")


def test_mismatched_lengths_are_refused(tmp_path):
    with pytest.raises(ValueError, match="'mse' has 2 values for 4 x values"):
        plots.line_plot(str(tmp_path / "p.png"), X, {"mse": [1.0, 2.0]}, "step", "value")
    with pytest.raises(ValueError, match="differ in length"):
        csv_table.csv_text({"a": [1, 2], "b": [1]})
