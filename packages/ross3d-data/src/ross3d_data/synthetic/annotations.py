"""Benchmark annotation files, in each OFFICIAL format, for the synthetic demo scenes.

Questions are generated from each scene's own objects (labels and aligned boxes from
``load_scene``; colours from the mesh vertices inside each box), so every answer follows from
the synthetic layout: "What color is the wardrobe?" -> its colour name, "What is next to the
table?" -> the label of the object whose centre is nearest, "How many chairs ..." -> the count.

Written under ``out_dir`` (train and val splits; every scene appears in both with different
questions)::

    scanqa/ScanQA_v1.0_{train,val}.json
    sqa3d/balanced/v1_balanced_{questions,sqa_annotations}_{train,val}_scannetv2.json
    scanrefer/ScanRefer_filtered_{train,val}.json      (Scan2Cap reads the same files)
    multi3drefer/multi3drefer_{train,val}.json         (includes zero-target queries)
    boxes.json                                         ({scene_id: {object_id: box}})
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ross3d_data.instructions import boxes_from_scenes, write_boxes_json

SPLITS = ("train", "val")
PALETTE = {
    "brown": (150, 90, 50), "beige": (200, 170, 110), "blue": (40, 90, 170),
    "green": (40, 150, 80), "red": (170, 40, 50), "yellow": (230, 220, 60),
    "gray": (90, 90, 90), "white": (235, 235, 235), "black": (20, 20, 20),
}  # fmt: skip
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@dataclass(frozen=True)
class DemoObj:
    object_id: int
    label: str
    box_6: np.ndarray
    color: str


def colour_name(rgb_3: np.ndarray) -> str:
    """Nearest palette colour (RGB distance)."""
    names = list(PALETTE)
    ref = np.asarray([PALETTE[n] for n in names], np.float64)
    return names[int(np.argmin(np.linalg.norm(ref - np.asarray(rgb_3, np.float64), axis=1)))]


def scene_objects(scene) -> list[DemoObj]:
    """The scene's objects with a colour from the mesh vertices inside each box (above floor)."""
    mesh = scene.mesh_aligned()
    out = []
    for o in sorted(scene.objects, key=lambda o: o.object_id):
        lo, hi = o.box_6[:3] - o.box_6[3:] / 2, o.box_6[:3] + o.box_6[3:] / 2
        inside = np.all((mesh.vertices_N3 >= lo - 0.01) & (mesh.vertices_N3 <= hi + 0.01), axis=1)
        inside &= mesh.vertices_N3[:, 2] > lo[2] + 0.02  # not the floor under the object
        rgb = mesh.colors_N3[inside].mean(axis=0) if inside.any() else np.zeros(3)
        out.append(DemoObj(int(o.object_id), o.label, np.asarray(o.box_6), colour_name(rgb)))
    return out


def nearest(objs: list[DemoObj], obj: DemoObj) -> DemoObj:
    """The other object whose box centre is nearest in the floor plane (ties: lower id)."""
    others = [o for o in objs if o.object_id != obj.object_id]
    return min(
        others, key=lambda o: (float(np.linalg.norm(o.box_6[:2] - obj.box_6[:2])), o.object_id)
    )


def _counts(objs: list[DemoObj]) -> Counter:
    return Counter(o.label for o in objs)


def _plural(label: str) -> str:
    return label + ("es" if label.endswith(("s", "sh", "ch")) else "s")


def _qa_pairs(objs: list[DemoObj], split: str) -> list[tuple[str, str, list[DemoObj]]]:
    """(question, answer, objects it is about); train/val ask different kinds."""
    counts = _counts(objs)
    unique = [o for o in objs if counts[o.label] == 1]
    pairs = []
    for o in unique:
        if split == "train":
            pairs.append((f"What color is the {o.label}?", o.color, [o]))
        else:
            n = nearest(objs, o)
            pairs.append((f"What is next to the {o.label}?", n.label, [n]))
    for label, n in sorted(counts.items()):
        if n > 1:
            same = [o for o in objs if o.label == label]
            pairs.append((f"How many {_plural(label)} are in the room?", NUMBERS[n], same))
    return pairs


def scanqa_rows(scene_id: str, objs: list[DemoObj], split: str) -> list[dict]:
    return [
        {"answers": [answer], "object_ids": [o.object_id for o in about],
         "object_names": [o.label for o in about], "question": q,
         "question_id": f"{split}-{scene_id}-{k}", "scene_id": scene_id}
        for k, (q, answer, about) in enumerate(_qa_pairs(objs, split))
    ]  # fmt: skip


def sqa3d_rows(scene_id: str, objs: list[DemoObj], split: str, qid0: int) -> tuple[list, list]:
    """(questions, annotations) rows; question ids start at ``qid0``."""
    questions, annotations = [], []
    for k, (q, answer, about) in enumerate(_qa_pairs(objs, split)):
        anchor = nearest(objs, about[0])
        qid = qid0 + k
        questions.append({
            "alternative_situation": [f"I am next to the {anchor.label}."],
            "question": q, "question_id": qid, "scene_id": scene_id,
            "situation": f"I am standing by the {anchor.label}.",
        })  # fmt: skip
        x, y = (float(v) for v in anchor.box_6[:2])
        annotations.append({
            "answer_type": "other",
            "answers": [{"answer": answer, "answer_confidence": "yes", "answer_id": 1}],
            "position": {"x": x, "y": y, "z": 0}, "question_id": qid, "question_type": "N/A",
            "rotation": {"_w": 1.0, "_x": 0, "_y": 0, "_z": 0}, "scene_id": scene_id,
        })  # fmt: skip
    return questions, annotations


def scanrefer_rows(scene_id: str, objs: list[DemoObj], split: str) -> list[dict]:
    rows = []
    for o in objs:
        n = nearest(objs, o)
        texts = (
            [f"this is a {o.color} {o.label}. it is next to the {n.label}.",
             f"the {o.label} is {o.color}. the {n.label} is close to it."]
            if split == "train"
            else [f"a {o.color} {o.label} near the {n.label}."]
        )  # fmt: skip
        for ann, text in enumerate(texts):
            rows.append(
                {
                    "ann_id": str(ann),
                    "description": text,
                    "object_id": str(o.object_id),
                    "object_name": o.label,
                    "scene_id": scene_id,
                    "token": text.split(),
                }
            )
    return rows


def multi3drefer_rows(scene_id: str, objs: list[DemoObj], split: str) -> list[dict]:
    counts = _counts(objs)
    queries: list[tuple[str, str, list[DemoObj], str]] = []
    for label, n in sorted(counts.items()):
        same = [o for o in objs if o.label == label]
        if n > 1:
            queries.append((label, f"all the {_plural(label)} in the room.", same, "mt"))
            absent = next(c for c in PALETTE if all(o.color != c for o in same))
            queries.append((label, f"the {absent} {label}.", [], "zt_w_d"))
        else:
            queries.append((label, f"the {same[0].color} {label}.", same, "st_wo_d"))
    queries.append(("piano", "the piano in the corner.", [], "zt_wo_d"))
    if split == "val":
        queries = queries[::-1]
    return [
        {"ann_id": k, "description": d, "eval_type": t, "object_ids": [o.object_id for o in ts],
         "object_name": label, "scene_id": scene_id, "spatial": False, "color": t == "zt_w_d"}
        for k, (label, d, ts, t) in enumerate(queries)
    ]  # fmt: skip


def _dump(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path


def write_demo_annotations(scene_dirs: list[Path], out_dir: Path) -> dict[str, Path]:
    """Write every benchmark's files for ``scene_dirs`` under ``out_dir``; name -> path."""
    from ross3d_data.datasets import load_scene

    out_dir = Path(out_dir)
    scenes = [load_scene(Path(d)) for d in sorted(scene_dirs)]
    objs = {s.scene_id: scene_objects(s) for s in scenes}
    written = {"boxes": out_dir / "boxes.json"}
    write_boxes_json(boxes_from_scenes(s.root for s in scenes), written["boxes"])
    for si, split in enumerate(SPLITS):
        rows = {"scanqa": [], "questions": [], "annotations": [], "scanrefer": [], "m3d": []}
        for k, (sid, ob) in enumerate(objs.items()):
            rows["scanqa"] += scanqa_rows(sid, ob, split)
            q, a = sqa3d_rows(sid, ob, split, 220_600_000_000 + 1_000_000 * si + 1000 * k)
            rows["questions"] += q
            rows["annotations"] += a
            rows["scanrefer"] += scanrefer_rows(sid, ob, split)
            rows["m3d"] += multi3drefer_rows(sid, ob, split)
        sqa = out_dir / "sqa3d" / "balanced"
        written |= {
            f"scanqa_{split}": _dump(out_dir / "scanqa" / f"ScanQA_v1.0_{split}.json", rows["scanqa"]),
            f"sqa3d_questions_{split}": _dump(
                sqa / f"v1_balanced_questions_{split}_scannetv2.json", {"questions": rows["questions"]}),
            f"sqa3d_annotations_{split}": _dump(
                sqa / f"v1_balanced_sqa_annotations_{split}_scannetv2.json",
                {"annotations": rows["annotations"]}),
            f"scanrefer_{split}": _dump(
                out_dir / "scanrefer" / f"ScanRefer_filtered_{split}.json", rows["scanrefer"]),
            f"multi3drefer_{split}": _dump(
                out_dir / "multi3drefer" / f"multi3drefer_{split}.json", rows["m3d"]),
        }  # fmt: skip
    return written
