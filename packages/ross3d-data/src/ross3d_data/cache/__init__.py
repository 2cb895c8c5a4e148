"""Per-clip caches beside the shards: the fingerprinted HDF5 store (`store`) and grounding
patch masks (`patch_masks`).
"""
