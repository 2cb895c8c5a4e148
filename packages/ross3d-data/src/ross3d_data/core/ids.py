"""Scene ids say their dataset: ``arkitscenes-41069021``, ``3rscan-<uuid>``, ``multiscan-<scan>``,
``scannetpp-<scene>``; ScanNet keeps its own ``sceneXXXX_YY``. A scene id is a shard key and a
file name, so it never holds a dot (WebDataset splits a key at its first dot)."""

from __future__ import annotations

from pathlib import Path

from ross3d_data.core.errors import SceneError

SCANNET = "scannet"
PREFIXED_DATASETS = ("arkitscenes", "3rscan", "multiscan", "scannetpp")


def make_scene_id(dataset: str, native_id: str) -> str:
    """``<dataset>-<native_id>``; ValueError for an unknown dataset or an id with a dot, a
    slash or whitespace (it must be a shard key and a file name)."""
    if dataset not in PREFIXED_DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; one of {', '.join(PREFIXED_DATASETS)}")
    bad = [c for c in "./\\" if c in native_id] + [c for c in native_id if c.isspace()]
    if not native_id or bad:
        raise ValueError(f"{dataset} scene id {native_id!r} is empty or holds {bad[:1]}")
    return f"{dataset}-{native_id}"


def dataset_of(scene_id: str) -> str:
    """The dataset a scene id belongs to (``scannet`` when it has no known prefix)."""
    prefix = scene_id.split("-", 1)[0]
    return prefix if prefix in PREFIXED_DATASETS and "-" in scene_id else SCANNET


def folder_scene_id(dataset: str, folder: Path) -> str:
    """``<dataset>-<folder name>``, the id of a scan stored in a folder named by its native
    id; SceneError naming the folder when the name cannot be a shard key."""
    try:
        return make_scene_id(dataset, Path(folder).name)
    except ValueError as err:
        raise SceneError(folder, f"not usable as a scene id: {err}") from err
