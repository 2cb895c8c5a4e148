"""Bird's-eye views: the render entry point and config (`render`), the numba and open3d
rasterisers (`jit`, `raster`), RGB-D fusion for scenes without a mesh (`fusion`) and the
files a render writes (`files`).
"""
