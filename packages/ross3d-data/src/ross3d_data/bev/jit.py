"""Compiled (numba) top-down z-buffer rasteriser: the default BEV mesh backend.

Same contract and sampling rule as ``bev_raster.render_mesh_raster`` (pixel-space vertices
``(col, row, z)``, one sample at each pixel centre, the highest surface at or below the cut wins,
a later face wins an exact tie); it walks each face's pixel bounding box in a compiled loop
instead of materialising every (face, pixel) candidate, which is what made the numpy version
memory-bound. The first call in a process compiles the kernel (cached on disk by numba).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ross3d_data.bev.raster import _INSIDE_EPS, _shade


@functools.cache
def _kernel():
    try:
        import numba
    except ImportError as exc:  # numba is a declared dependency; keep the message useful anyway
        raise ImportError(f"BEV backend 'jit' needs numba (pip install numba): {exc}") from exc

    @numba.njit(cache=True, nogil=True)
    def zbuffer(x, y, z, faces, size, z_max, eps, zbuf, owner, w1_out, w2_out):
        for f in range(faces.shape[0]):
            i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
            if z[i0] > z_max and z[i1] > z_max and z[i2] > z_max:
                continue
            x0, y0 = x[i0], y[i0]
            e1x, e1y, e2x, e2y = x[i1] - x0, y[i1] - y0, x[i2] - x0, y[i2] - y0
            det = e1x * e2y - e1y * e2x
            if abs(det) <= 1e-9:  # no footprint seen from above (walls)
                continue
            a, b, c, d = e2y / det, -e2x / det, -e1y / det, e1x / det
            dz1, dz2 = z[i1] - z[i0], z[i2] - z[i0]
            lo_c = max(math.ceil(min(x0, x[i1], x[i2]) - 0.5), 0)
            hi_c = min(math.floor(max(x0, x[i1], x[i2]) - 0.5), size - 1)
            lo_r = max(math.ceil(min(y0, y[i1], y[i2]) - 0.5), 0)
            hi_r = min(math.floor(max(y0, y[i1], y[i2]) - 0.5), size - 1)
            for r in range(lo_r, hi_r + 1):
                py = r + 0.5 - y0
                for col in range(lo_c, hi_c + 1):
                    px = col + 0.5 - x0
                    w1 = a * px + b * py
                    w2 = c * px + d * py
                    if w1 < -eps or w2 < -eps or w1 + w2 > 1.0 + eps:
                        continue
                    zz = z[i0] + w1 * dz1 + w2 * dz2
                    k = r * size + col
                    if zz <= z_max and zz >= zbuf[k]:
                        zbuf[k] = zz
                        owner[k] = f
                        w1_out[k] = w1
                        w2_out[k] = w2

    return zbuffer


def render_mesh_jit(
    vertices_px_N3: np.ndarray,
    colors_N3: np.ndarray,
    faces_F3: np.ndarray,
    size_px: int,
    z_max_m: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise a coloured mesh top-down; returns ``(image_HW3 uint8, hit_HW bool)`` exactly as
    ``render_mesh_raster`` does (black = empty, a black surface drawn as (1, 1, 1))."""
    verts = np.asarray(vertices_px_N3, dtype=np.float64)
    x, y, z = (np.ascontiguousarray(verts[:, j]) for j in range(3))
    faces = np.ascontiguousarray(faces_F3, dtype=np.int64)
    n = size_px * size_px
    zbuf = np.full(n, -np.inf)
    owner = np.full(n, -1, dtype=np.int64)
    w1, w2 = np.zeros(n), np.zeros(n)
    _kernel()(x, y, z, faces, size_px, float(z_max_m), float(_INSIDE_EPS), zbuf, owner, w1, w2)
    flat = np.flatnonzero(owner >= 0)
    bary = np.stack([1.0 - w1[flat] - w2[flat], w1[flat], w2[flat]], axis=1)
    return _shade(faces[owner[flat]], bary, flat, colors_N3, size_px)
