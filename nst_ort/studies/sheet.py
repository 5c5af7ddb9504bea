"""A labelled contact sheet: a grid of images with titled rows and columns (Pillow).

Layout, in pixels (cells are the largest image's size, each image centred in its cell):

    +-----------+------------------------------------+
    |           | column axis title                  |   HEADER_HEIGHT
    | row axis  | col label 1  | col label 2  | ...  |
    +-----------+--------------+--------------+------+
    | row lab 1 | image        | image        |      |   GAP between and around cells
    | row lab 2 | image        | image        |      |
    +-----------+--------------+--------------+------+
      LABEL_WIDTH (0 when there is no row axis)
"""

from __future__ import annotations

import re

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from nst_ort.imageio import to_uint8

GAP = 6
FONT_SIZE = 13
LINE_HEIGHT = FONT_SIZE + 4
HEADER_HEIGHT = GAP + 3 * LINE_HEIGHT  # the axis title and two lines of column label
LABEL_WIDTH = 140
MAX_CELL = 256  # larger images are shrunk to this longest side on the sheet
BACKGROUND = (255, 255, 255)
MISSING = (224, 224, 224)  # a cell with no image yet
TEXT = (0, 0, 0)


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=FONT_SIZE)


def wrap(label: str, width: int, font) -> list[str]:
    """Break `label` into lines no wider than `width`, after '+', ',' or ' ' or before '..'.

    A single piece wider than `width` keeps its own line (the sheet clips it).
    """
    pieces = [p for p in re.split(r"(?<=[+, ])|(?=\.\.)", label) if p]
    lines: list[str] = []
    for piece in pieces:
        if lines and font.getlength(lines[-1] + piece) <= width:
            lines[-1] += piece
        else:
            lines.append(piece)
    return [line.strip() for line in lines] or [""]


def _draw_lines(sheet: Image.Image, box: tuple[int, int, int, int], lines: list[str], font) -> None:
    """Draw `lines` top-down inside box (x, y, width, height), clipped to it."""
    x, y, w, h = box
    if w <= 0 or h <= 0:
        return
    patch = Image.new("RGB", (w, h), BACKGROUND)
    draw = ImageDraw.Draw(patch)
    for i, line in enumerate(lines):
        draw.text((0, i * LINE_HEIGHT), line, fill=TEXT, font=font)
    sheet.paste(patch, (x, y))


def _thumbnail(image: np.ndarray) -> Image.Image:
    picture = Image.fromarray(to_uint8(image), mode="RGB")
    if max(picture.size) > MAX_CELL:
        picture.thumbnail((MAX_CELL, MAX_CELL), Image.Resampling.LANCZOS)
    return picture


def contact_sheet(
    images: list[list[np.ndarray | None]],
    col_title: str,
    col_labels: list[str],
    row_title: str = "",
    row_labels: list[str] | None = None,
) -> Image.Image:
    """The grid `images[row][col]` (float RGB in [0, 1], or None for a missing cell), titled.

    Without `row_labels` there is no row-title column (a one-axis sheet).
    """
    font = _font()
    thumbs = [[None if image is None else _thumbnail(image) for image in row] for row in images]
    present = [t for row in thumbs for t in row if t is not None]
    cell_w = max((t.width for t in present), default=64)
    cell_h = max((t.height for t in present), default=64)
    rows, cols = len(images), len(col_labels)
    left = LABEL_WIDTH if row_labels is not None else 0
    width = left + cols * cell_w + (cols + 1) * GAP
    height = HEADER_HEIGHT + rows * cell_h + (rows + 1) * GAP
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)

    grid_left = left + GAP
    _draw_lines(sheet, (grid_left, GAP, width - grid_left, LINE_HEIGHT), [col_title], font)
    for c, label in enumerate(col_labels):
        x = grid_left + c * (cell_w + GAP)
        lines = wrap(label, cell_w, font)[:2]
        _draw_lines(sheet, (x, GAP + LINE_HEIGHT, cell_w, 2 * LINE_HEIGHT), lines, font)
    text_width = LABEL_WIDTH - 2 * GAP
    if row_labels is not None:
        lines = wrap(row_title, text_width, font)
        _draw_lines(sheet, (GAP, GAP, text_width, HEADER_HEIGHT - GAP), lines, font)
    for r in range(rows):
        y = HEADER_HEIGHT + GAP + r * (cell_h + GAP)
        if row_labels is not None:
            lines = wrap(row_labels[r], text_width, font)
            _draw_lines(sheet, (GAP, y, text_width, cell_h), lines, font)
        for c in range(cols):
            x = grid_left + c * (cell_w + GAP)
            thumb = thumbs[r][c]
            if thumb is None:
                draw.rectangle((x, y, x + cell_w - 1, y + cell_h - 1), fill=MISSING)
            else:
                sheet.paste(thumb, (x + (cell_w - thumb.width) // 2, y + (cell_h - thumb.height) // 2))
    return sheet
