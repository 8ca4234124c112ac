"""volumes/grid_labels.py: labels above the columns and left of the rows of a picture grid."""

import numpy as np

from volumes.grid_labels import labelled_grid


def test_labels_sit_over_their_column_and_beside_their_row():
    h, w, gap = 30, 60, 4
    img = np.full((2 * h + gap, 3 * w + 2 * gap), 100, np.uint8)  # 2 x 3 cells
    out = labelled_grid(img, ["", "row1"], ["", "seed0001", "seed0002"], gap)
    top, left = out.shape[0] - img.shape[0], out.shape[1] - img.shape[1]
    assert top > 0 and left > 0
    np.testing.assert_array_equal(out[top:, left:], img)  # the grid itself is unchanged
    text_cols = np.flatnonzero(out[:top].max(axis=0) > 200) - left  # x of label pixels above the grid
    assert text_cols.size and text_cols.min() >= w + gap  # nothing above the blank corner column
    assert {int(x // (w + gap)) for x in text_cols} == {1, 2}
    text_rows = np.flatnonzero(out[:, :left].max(axis=1) > 200) - top  # y of label pixels left of the grid
    assert text_rows.size and text_rows.min() >= h + gap and text_rows.max() < 2 * h + gap  # row 1 only
