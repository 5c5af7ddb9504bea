"""The contact sheet: its size from the cells, labels that wrap, grey squares for missing cells."""

from __future__ import annotations

import numpy as np
from PIL import ImageFont

from nst_ort.studies.sheet import (
    BACKGROUND,
    FONT_SIZE,
    GAP,
    HEADER_HEIGHT,
    LABEL_WIDTH,
    MAX_CELL,
    MISSING,
    contact_sheet,
    wrap,
)


def test_two_axis_sheet_size_and_a_missing_cell():
    image = np.full((20, 30, 3), 0.5, np.float32)
    sheet = np.asarray(contact_sheet([[image, None], [image, image]], "cols", ["a", "b"], "rows", ["1", "2"]))
    actual = sheet.shape[:2]
    desired = (HEADER_HEIGHT + 2 * 20 + 3 * GAP, LABEL_WIDTH + 2 * 30 + 3 * GAP)
    assert actual == desired
    x, y = LABEL_WIDTH + GAP + 30 + GAP, HEADER_HEIGHT + GAP  # row 0, column 1
    assert tuple(sheet[y + 10, x + 15]) == MISSING
    assert tuple(sheet[y + 10, LABEL_WIDTH + GAP + 15]) == (128, 128, 128)


def test_one_axis_sheet_has_no_row_labels_and_large_images_shrink():
    image = np.zeros((2 * MAX_CELL, MAX_CELL, 3), np.float32)
    sheet = np.asarray(contact_sheet([[image]], "cols", ["only"]))
    assert sheet.shape[:2] == (HEADER_HEIGHT + MAX_CELL + 2 * GAP, MAX_CELL // 2 + 2 * GAP)
    assert tuple(sheet[0, 0]) == BACKGROUND


def test_wrap_breaks_after_plus_and_comma_and_before_ranges():
    font = ImageFont.load_default(size=FONT_SIZE)
    assert wrap("relu1_1+relu2_1+relu3_1", 70, font) == ["relu1_1+", "relu2_1+", "relu3_1"]
    assert wrap("relu1_1..relu5_1", 60, font) == ["relu1_1", "..relu5_1"]
    assert wrap("short", 500, font) == ["short"]
