"""Labels around a picture grid: a label above each column and one left of each row (e.g. the seeds of a style mix)."""

import numpy as np

MARGIN = 4  # pixels between a label and the grid


def labelled_grid(img, row_labels, col_labels, gap):
    """The uint8 grid `img` [H, W] (len(row_labels) x len(col_labels) equal cells, `gap` pixels apart) with a
    white-on-black label centred above each column and left of each row; empty labels are left out."""
    from PIL import Image, ImageDraw, ImageFont

    img = np.asarray(img, np.uint8)
    rows, cols = len(row_labels), len(col_labels)
    cell_h, cell_w = (img.shape[0] - (rows - 1) * gap) / rows, (img.shape[1] - (cols - 1) * gap) / cols
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))

    def size(text):
        left, top, right, bottom = measure.textbbox((0, 0), text, font=font)
        return right - left, bottom - top

    left = max([size(t)[0] for t in row_labels if t] or [0]) + 2 * MARGIN
    top = max([size(t)[1] for t in col_labels if t] or [0]) + 2 * MARGIN
    canvas = Image.new("L", (img.shape[1] + left, img.shape[0] + top), 0)
    canvas.paste(Image.fromarray(img), (left, top))
    draw = ImageDraw.Draw(canvas)
    for c, text in enumerate(col_labels):
        if text:
            x = left + c * (cell_w + gap) + (cell_w - size(text)[0]) / 2
            draw.text((x, MARGIN), text, fill=255, font=font)
    for r, text in enumerate(row_labels):
        if text:
            y = top + r * (cell_h + gap) + (cell_h - size(text)[1]) / 2
            draw.text((left - MARGIN - size(text)[0], y), text, fill=255, font=font)
    return np.asarray(canvas)
