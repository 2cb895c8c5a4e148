"""Bird's-eye views: the config, pixel grid and result (`grid`), the render entry point
(`render`), the numba and open3d rasterisers (`jit`, `raster`), RGB-D fusion for scenes
without a mesh (`fusion`) and the files a render writes (`files`).
"""
