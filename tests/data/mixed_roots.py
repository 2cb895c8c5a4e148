"""Dataset roots of every supported format, each laid out as its download publishes it, for
the cross-format tests (test_formats.py) and the mixed training test (tests/train).

``write_roots(root)`` writes::

    scannet/scans/demo0000_00, demo0001_00   ScanNet demo scenes (+ scans/annotations/, not a scene)
    arkitscenes/3dod/Training/41069021       ARKitScenes 3dod video (download_data.py layout)
    scannetpp/data/0a1b2c3d4e                ScanNet++ iPhone capture
    3rscan/<uuid>                            3RScan scan (flat, as download.py writes it)
    multiscan/scene_00042_01                 MultiScan scan

and ScanQA train instructions of the two ScanNet scenes (``instructions``). All synthetic:
the datasets' licences forbid redistributing real scans.
"""

from __future__ import annotations

from pathlib import Path

from layouts.arkitscenes import VID, write_arkit_video
from layouts.multiscan import write_multiscan_scan
from layouts.rscan import write_rscan_scan
from layouts.scannetpp import write_scannetpp_scene

SCANNETPP_ID = "0a1b2c3d4e"
RSCAN_ID = "0cac7536-8d6f-2d13-8dc2-2f9d7aa62dc4"
MULTISCAN_ID = "scene_00042_01"
SCANNET_IDS = ("demo0000_00", "demo0001_00")
# the scene id (= shard key) each format's scene gets
VISION_KEYS = {
    "arkitscenes": f"arkitscenes-{VID}",
    "scannetpp": f"scannetpp-{SCANNETPP_ID}",
    "3rscan": f"3rscan-{RSCAN_ID}",
    "multiscan": f"multiscan-{MULTISCAN_ID}",
}


def write_roots(root: Path, scannet_frames: int = 24) -> dict[str, Path]:
    """Write the roots above under ``root``; returns format -> root, plus ``instructions``."""
    from ross3d_data.instructions.registry import ConvertConfig, convert_instructions
    from ross3d_data.synthetic.scenes import make_demo

    root = Path(root)
    scans = root / "scannet" / "scans"
    make_demo(scans, n_scenes=len(SCANNET_IDS), seed=0, n_frames=scannet_frames)
    ann = scans / "annotations"
    instructions = root / "scanqa_train.jsonl"
    source = ann / "scanqa" / "ScanQA_v1.0_train.json"
    cfg = ConvertConfig("scanqa", source, "train", instructions, boxes_json=ann / "boxes.json")
    convert_instructions(cfg)
    write_arkit_video(root / "arkitscenes" / "3dod" / "Training")
    write_scannetpp_scene(root / "scannetpp", SCANNETPP_ID)
    write_rscan_scan(root / "3rscan", RSCAN_ID, zipped=True)
    write_multiscan_scan(root / "multiscan", MULTISCAN_ID)
    names = ("scannet", "arkitscenes", "scannetpp", "3rscan", "multiscan")
    return {name: root / name for name in names} | {"instructions": instructions}
