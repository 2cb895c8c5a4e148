"""Foundation every other sub-package builds on: errors, frame/mesh/object records, pure
numpy geometry, the parallel per-scene job runner. Imports nothing else from ross3d_data.
"""
