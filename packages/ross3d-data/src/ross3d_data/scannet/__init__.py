"""ScanNet on disk: `.sens` streams, binary PLY meshes, side files (meta, aggregation, segs),
exported posed-image folders, the scene assembly (`load_scene`) and `export-frames`.
"""
