"""A density image of many points, coloured by class (numpy only, no Qt; unit-tested directly).

Drawing a million markers costs pyqtgraph 1.4 s per update and pans at 10 fps (docs/DESIGN.md), yet a
screen only has ~400,000 pixels: beyond a few hundred thousand points the plot is a picture of how
many points of which class fall on each pixel. So the points in view are binned at the view's pixel
resolution with ``np.bincount`` on flat pixel indices (about 2 ms per million points, several times
faster than ``np.histogram2d``, which sorts), once for the count and once per colour channel with
each point's class colour as the weight. A pixel's colour is then the count-weighted mean of its
points' colours (a per-class blend, as datashader's categorical shading does), and its opacity
grows with the logarithm of its count, so single points stay visible next to dense cores.
"""

from __future__ import annotations

import numpy as np

ALPHA_FLOOR = 0.3      # opacity of a pixel holding one point when the densest holds many
DIM_GREY = 0.8         # as scatter.dimmed(): unselected colours move 80% towards a pale grey
DIM_LEVEL = 225 / 255.0


def pixel_bins(x: np.ndarray, y: np.ndarray, x_range, y_range, shape) -> np.ndarray:
    """Flat pixel index (row * width + column) of each point for an image of `shape` (rows, cols)
    spanning x_range x y_range, row 0 at y_range[0]; points outside (NaN included) get
    rows * cols, a spare bin. Written as few passes over the points as numpy allows: this runs
    on every zoom over up to a million points."""
    rows, cols = int(shape[0]), int(shape[1])
    (x0, x1), (y0, y1) = (map(float, x_range)), (map(float, y_range))
    fx = np.subtract(x, x0, dtype=np.float64)
    fx *= cols / (x1 - x0) if x1 > x0 else 0.0
    fy = np.subtract(y, y0, dtype=np.float64)
    fy *= rows / (y1 - y0) if y1 > y0 else 0.0
    inside = fx >= 0
    inside &= fx < cols
    inside &= fy >= 0
    inside &= fy < rows                      # every comparison with NaN is False: NaN is outside
    with np.errstate(invalid="ignore"):      # NaN and huge values cast to garbage, replaced below
        flat = fy.astype(np.intp)
        flat *= cols
        flat += fx.astype(np.intp)
    np.putmask(flat, ~inside, rows * cols)
    return flat


def bin_colours(flat: np.ndarray, rgb: tuple[np.ndarray, np.ndarray, np.ndarray] | None, n_pixels: int):
    """(count (n_pixels,), channel sums: three (n_pixels,) arrays) of the points at flat pixel
    indices, each weighted by its colour's red, green and blue (0..1, float64: np.bincount
    converts other weights on every call); the spare out-of-view bin is dropped (views, no copy)."""
    count = np.bincount(flat, minlength=n_pixels + 1)[:n_pixels]
    if rgb is None:
        return count, tuple(np.zeros(n_pixels) for _ in range(3))
    return count, tuple(np.bincount(flat, weights=rgb[c], minlength=n_pixels + 1)[:n_pixels] for c in range(3))


def blend_rgba(count: np.ndarray, sums, shape, norm: float | None = None,
               dimmed: bool = False) -> np.ndarray:
    """The (rows, cols, 4) uint8 RGBA image of binned points: colour = mean colour of the pixel's
    points, opacity = ALPHA_FLOOR .. 1 on log(1 + count) / log(1 + norm) (norm: the densest pixel
    unless given, so a selection layer can share the base layer's scale); empty pixels are clear.
    `dimmed` greys the colours and halves the opacity the way unselected points are drawn.

    Only the filled pixels are computed, one channel at a time, in place: 16 ms for 200,000 filled
    pixels where a (filled, 4) float block with clip and cast took 60 ms (load 9, 2 cores)."""
    rows, cols = int(shape[0]), int(shape[1])
    count = np.asarray(count).reshape(-1)
    out = np.zeros((rows * cols, 4), dtype=np.uint8)
    filled = np.flatnonzero(count)
    if len(filled) == 0:
        return out.reshape(rows, cols, 4)
    n = count[filled].astype(np.float64)
    peak = float(norm if norm is not None else n.max())
    per_point = 255.0 / n
    for c in range(3):
        v = np.take(sums[c], filled)
        v *= per_point                                   # count-weighted mean colour, 0..255
        if dimmed:
            v *= 1 - DIM_GREY
            v += 255.0 * DIM_LEVEL * DIM_GREY
        v += 0.5                                         # round: the assignment below truncates
        out[filled, c] = v
    alpha = np.log1p(n)
    alpha *= (1 - ALPHA_FLOOR) / np.log1p(max(peak, 1.0))
    np.minimum(alpha, 1 - ALPHA_FLOOR, out=alpha)
    alpha += ALPHA_FLOOR
    if dimmed:
        alpha *= 0.5
        np.maximum(alpha, 0.08, out=alpha)
    alpha *= 255.0
    alpha += 0.5
    out[filled, 3] = alpha
    return out.reshape(rows, cols, 4)


def density_rgba(x, y, rgb, x_range, y_range, shape, norm: float | None = None, dimmed: bool = False):
    """One call for a layer: (RGBA image, densest pixel's count) of points x, y coloured rgb."""
    rows, cols = int(shape[0]), int(shape[1])
    flat = pixel_bins(x, y, x_range, y_range, (rows, cols))
    count, sums = bin_colours(flat, rgb, rows * cols)
    peak = float(count.max()) if len(count) else 0.0
    return blend_rgba(count, sums, (rows, cols), norm=norm, dimmed=dimmed), peak
