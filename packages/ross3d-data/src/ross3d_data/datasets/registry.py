"""Format registry: which reader opens a folder, and the folders of scenes under a root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ross3d_data.core.errors import SceneError
from ross3d_data.core.scene import Scene
from ross3d_data.datasets import arkitscenes, multiscan, rscan, scannetpp
from ross3d_data.scannet import scene as scannet_scene


@dataclass(frozen=True)
class DatasetFormat:
    """One on-disk layout: ``detect(folder)`` is cheap (file names only); ``load(folder)``
    returns the Scene (ScanNet's ``load(folder, frames_dir)``: ``takes_frames_dir``); ``looks_for`` says in words what ``detect`` checks;
    ``containers``: the split/container folder names of the dataset's published root that
    ``find_scenes`` descends into (e.g. ARKitScenes ``3dod/`` -> ``Training/``)."""

    name: str
    detect: Callable[[Path], bool]
    load: Callable[..., Scene]
    looks_for: str
    # the Scene's scene_id from the folder alone (sample keys, output folders, skip checks)
    scene_id: Callable[[Path], str] = lambda folder: Path(folder).name
    containers: tuple[str, ...] = ()
    # an exported posed-image folder (--frames-dir) is a ScanNet notion; the other datasets
    # read their frames where they are published
    takes_frames_dir: bool = False


CONTAINER_LEVELS = 2  # root/3dod/Training/<video>: two container folders above a scene


FORMATS: dict[str, DatasetFormat] = {
    "scannet": DatasetFormat(
        "scannet",
        scannet_scene.is_scene_dir,
        scannet_scene.load_scene,
        "ScanNet: <id>_vh_clean_2.ply, <id>.sens or a posed folder (pose/ + color/)",
        containers=("scans",),  # not scans_test/: pass it explicitly to use the test scans
        takes_frames_dir=True,
    ),
    "arkitscenes": DatasetFormat(
        "arkitscenes",
        arkitscenes.is_scene_dir,
        arkitscenes.load_scene,
        "ARKitScenes 3dod: <vid>/<vid>_3dod_mesh.ply or <vid>/<vid>_frames/",
        arkitscenes.scene_id_for,
        containers=("3dod", "Training", "Validation"),  # download_data.py's 3dod/<split>/
    ),
    "scannetpp": DatasetFormat(
        "scannetpp",
        scannetpp.is_scene_dir,
        scannetpp.load_scene,
        "ScanNet++: <scene>/iphone/rgb.mkv or <scene>/scans/mesh_aligned_0.05.ply",
        scannetpp.scene_id_for,
        containers=("data",),
    ),
    "3rscan": DatasetFormat(
        "3rscan",
        rscan.is_scene_dir,
        rscan.load_scene,
        "3RScan: <scan_id>/mesh.refined.v2.obj, sequence.zip or sequence/_info.txt",
        rscan.scene_id_for,
    ),
    "multiscan": DatasetFormat(
        "multiscan",
        multiscan.is_scene_dir,
        multiscan.load_scene,
        "MultiScan: <scan>/<scan>.jsonl, <scan>.depth.zlib or <scan>.align.json",
        multiscan.scene_id_for,
    ),
}


def check_format(fmt: str | None) -> None:
    """ValueError unless ``fmt`` is None (detect) or a FORMATS name."""
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown scene format {fmt!r}; choose one of {', '.join(FORMATS)}")


def detect_format(path: Path, fmt: str | None = None) -> str | None:
    """The format of a scene folder (``fmt`` when given and it matches), else None."""
    check_format(fmt)
    names = [fmt] if fmt is not None else list(FORMATS)
    return next((n for n in names if FORMATS[n].detect(Path(path))), None)


def is_scene_dir(path: Path, fmt: str | None = None) -> bool:
    return detect_format(path, fmt) is not None


def _looked_for(fmt: str | None) -> str:
    formats = [FORMATS[fmt]] if fmt is not None else list(FORMATS.values())
    return "looked for " + "; ".join(f.looks_for for f in formats)


def load_scene(scene_dir: Path, frames_dir: Path | None = None, fmt: str | None = None) -> Scene:
    """Open a scene folder of any supported dataset (detected, or ``fmt``).

    ``frames_dir``: an exported posed-image folder, used for ScanNet scans only (a mixed build
    passes it for every root; the other formats read their frames where they are published).
    Raises SceneError naming the folder and what was looked for when no format matches.
    """
    scene_dir = Path(scene_dir)
    if not scene_dir.is_dir():
        raise SceneError(scene_dir, "scene directory not found")
    found = detect_format(scene_dir, fmt)
    if found is None and (frames_dir is None or fmt not in (None, "scannet")):
        raise SceneError(scene_dir, f"not a scene folder; {_looked_for(fmt)}")
    spec = FORMATS[found or "scannet"]
    return spec.load(scene_dir, frames_dir) if spec.takes_frames_dir else spec.load(scene_dir)


def scene_id_of(path: Path, fmt: str | None = None) -> str:
    """The scene id ``load_scene(path)`` gives, from the folder alone (its name when no format
    matches, e.g. an exported posed folder)."""
    found = detect_format(Path(path), fmt)
    return FORMATS[found].scene_id(Path(path)) if found else Path(path).name


def _containers(fmt: str | None) -> tuple[str, ...]:
    formats = [FORMATS[fmt]] if fmt is not None else list(FORMATS.values())
    return tuple(dict.fromkeys(name for f in formats for name in f.containers))


def _scenes_under(path: Path, fmt: str | None, levels: int) -> list[Path]:
    """Scene sub-folders of ``path``; when there are none, those found in its container
    folders (``DatasetFormat.containers``), at most ``levels`` folders down."""
    found = sorted(p for p in path.iterdir() if p.is_dir() and is_scene_dir(p, fmt))
    if found or levels == 0:
        return found
    names = _containers(fmt)
    subs = sorted(p for p in path.iterdir() if p.name in names and p.is_dir())
    return [s for sub in subs for s in _scenes_under(sub, fmt, levels - 1)]


def find_scenes(path: Path, fmt: str | None = None) -> list[Path]:
    """``[path]`` when it is a scene folder, else its scene sub-folders sorted by name; a
    dataset root is descended through its published split/container folders (ScanNet
    ``scans/``, ARKitScenes ``3dod/`` -> ``Training/``, ``Validation/``, ScanNet++ ``data/``).

    Only folder and file names are checked (no file is opened). SceneError naming ``path`` and
    what was looked for when nothing matches.
    """
    path = Path(path)
    if not path.is_dir():
        raise SceneError(path, "not a directory")
    check_format(fmt)
    if is_scene_dir(path, fmt):
        return [path]
    found = _scenes_under(path, fmt, CONTAINER_LEVELS)
    if not found:
        folders = ", ".join(f"{name}/" for name in _containers(fmt)) or "none"
        raise SceneError(
            path, f"no scene folders found here; {_looked_for(fmt)}; container folders: {folders}"
        )
    return found
