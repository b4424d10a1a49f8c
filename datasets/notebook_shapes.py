"""Shapes drawn the way the authors' notebook draws them (triangles generator version 3).

The notebook draws each shape on an 8-bit RGB canvas at ``render_size`` with integer
vertices (the apex at ``int(y0 + w * sqrt(3) / 2)``), scales the canvas by 0.5 into 8-bit
integers (255 -> 127) and only then resizes it bilinearly to ``size``: the rounding of both
integer steps changes the shapes' edges and areas slightly against drawing real-valued
vertices on a float canvas (generator version 2). One channel of the result is returned as
float32; the generator min-max scales every source afterwards.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

WHITE = (255, 255, 255)


def render_notebook_shape(shape: str, left: int, top: int, width: int, render_size: int, size: int) -> np.ndarray:
    """One ``"triangle"`` or ``"circle"`` at integer (column, row) corner and width -> ``(size, size)`` float32."""
    canvas = Image.new("RGB", (render_size, render_size), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    x0, y0, w = int(left), int(top), int(width)
    if shape == "triangle":
        draw.polygon([(x0, y0), (x0 + w // 2, int(y0 + w * math.sqrt(3.0) / 2.0)), (x0 + w, y0)], fill=WHITE)
    elif shape == "circle":
        draw.ellipse([x0, y0, x0 + w, y0 + w], fill=WHITE)
    else:
        raise ValueError(f"unknown shape {shape!r} (triangle, circle)")
    halved = (np.asarray(canvas, dtype=np.float64) * 0.5).astype(np.uint8)
    small = Image.fromarray(halved, mode="RGB").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(small, dtype=np.float32)[:, :, 0]
