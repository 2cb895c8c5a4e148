"""Every scan dataset the data package reads, behind one ``load_scene`` / ``find_scenes``.

A format is detected from a folder's layout (or forced with ``fmt``); each reader turns its
dataset's published layout into the same ``Scene`` (core.scene).
"""

from ross3d_data.datasets.registry import (
    FORMATS,
    DatasetFormat,
    detect_format,
    find_scenes,
    is_scene_dir,
    load_scene,
)

__all__ = ["FORMATS", "DatasetFormat", "detect_format", "find_scenes", "is_scene_dir", "load_scene"]
