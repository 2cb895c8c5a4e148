"""Synthetic benchmark files in the official formats (for tests, benchmarks and demos).

`make_synthetic(out_dir, benchmark, n, seed)` writes annotations (+ questions / boxes) and a
predictions JSONL whose quality is mixed on purpose (exact, near and wrong answers; good, loose
and wrong boxes; a few items left without a prediction) so every metric lands strictly between
0 and 100. Real benchmark files cannot be redistributed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FULL_SIZES = {
    "scanqa": 4675,
    "sqa3d": 3519,
    "scan2cap": 2068,
    "scanrefer": 9508,
    "multi3drefer": 11120,
}
_NAMES = (
    "chair",
    "table",
    "office chair",
    "door",
    "window",
    "bed",
    "sofa",
    "lamp",
    "cabinet",
    "desk",
    "trash can",
    "shelf",
    "sink",
    "toilet",
    "picture",
    "pillow",
)
_WORDS = (
    "brown",
    "white",
    "black",
    "wooden",
    "small",
    "large",
    "left",
    "right",
    "next",
    "to",
    "near",
    "behind",
    "in",
    "front",
    "of",
    "the",
    "a",
    "corner",
    "wall",
    "room",
    "two",
    "three",
    "round",
    "square",
    "blue",
    "under",
    "on",
    "top",
    "this",
    "is",
)
_QA_PREFIXES = ("What is", "Is the", "How many", "Can I", "Which", "Where is")


def _phrase(rng: np.random.Generator, lo: int, hi: int) -> str:
    return " ".join(rng.choice(_WORDS, size=int(rng.integers(lo, hi + 1))))


def _scenes(rng: np.random.Generator, n_scenes: int, n_objects: int) -> dict:
    """{scene_id: {object_id: (name, box)}} with boxes inside a 8 x 8 x 3 m room."""
    scenes = {}
    for s in range(n_scenes):
        objs = {}
        for o in range(n_objects):
            centre = rng.uniform([0, 0, 0.2], [8, 8, 2.5])
            size = rng.uniform(0.2, 1.5, size=3)
            objs[str(o)] = (str(rng.choice(_NAMES)), np.concatenate([centre, size]))
        scenes[f"scene{s:04d}_00"] = objs
    return scenes


def _jitter(rng: np.random.Generator, box: np.ndarray) -> list[float]:
    """A predicted box: close (IoU > 0.5 mostly), loose, or somewhere else."""
    kind = rng.choice(3, p=[0.5, 0.3, 0.2])
    out = box.copy()
    if kind == 0:
        out[:3] += rng.normal(0, 0.03, 3)
        out[3:] *= rng.uniform(0.9, 1.1, 3)
    elif kind == 1:
        out[:3] += rng.normal(0, 0.12, 3) * box[3:]
        out[3:] *= rng.uniform(0.7, 1.4, 3)
    else:
        out[:3] += rng.uniform(1.5, 3.0, 3)
    return [round(float(v), 4) for v in out]


def _write(out_dir: Path, name: str, data) -> Path:
    path = out_dir / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _write_jsonl(out_dir: Path, rows: list[dict]) -> Path:
    path = out_dir / "predictions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _boxes_json(scenes: dict) -> dict:
    return {
        s: {o: [round(float(v), 4) for v in b] for o, (_, b) in objs.items()}
        for s, objs in scenes.items()
    }


def _answer_guess(rng: np.random.Generator, answers: list[str]) -> str:
    r = rng.random()
    if r < 0.3:
        return answers[0]
    if r < 0.45:
        return answers[-1].capitalize() + "."
    if r < 0.6:
        return answers[0] + " " + str(rng.choice(_WORDS))
    return _phrase(rng, 1, 3)


def _scanqa(rng, n, out_dir):
    anns, preds = [], []
    for i in range(n):
        qid = f"val-scene{i // 10:04d}-{i % 10}"
        answers = [_phrase(rng, 1, 3) for _ in range(int(rng.integers(1, 3)))]
        anns.append(
            {
                "question_id": qid,
                "scene_id": f"scene{i // 10:04d}_00",
                "question": f"{rng.choice(_QA_PREFIXES)} {_phrase(rng, 3, 6)}?",
                "answers": answers,
            }
        )
        if rng.random() > 0.01:
            preds.append({"question_id": qid, "answer": _answer_guess(rng, answers)})
    return {
        "annotations": _write(out_dir, "annotations.json", anns),
        "predictions": _write_jsonl(out_dir, preds),
    }


def _sqa3d(rng, n, out_dir):
    questions, anns, preds = [], [], []
    for i in range(n):
        qid = 220602000000 + i
        answer = _phrase(rng, 1, 2)
        questions.append(
            {
                "question_id": qid,
                "scene_id": f"scene{i // 10:04d}_00",
                "situation": _phrase(rng, 5, 9),
                "question": f"{rng.choice(_QA_PREFIXES)} {_phrase(rng, 3, 6)}?",
            }
        )
        anns.append(
            {
                "question_id": qid,
                "scene_id": f"scene{i // 10:04d}_00",
                "answers": [{"answer": answer, "answer_id": 1}],
            }
        )
        if rng.random() > 0.01:
            preds.append({"question_id": qid, "answer": _answer_guess(rng, [answer])})
    return {
        "questions": _write(out_dir, "questions.json", {"questions": questions}),
        "annotations": _write(out_dir, "annotations.json", {"annotations": anns}),
        "predictions": _write_jsonl(out_dir, preds),
    }


def _scanrefer_like(rng, n_objects_total, out_dir, descriptions_per_object):
    """ScanRefer-style annotations over synthetic scenes: (scenes, annotation list)."""
    n_scenes = -(-n_objects_total // 20)  # ceil: enough objects for n queries
    scenes = _scenes(rng, n_scenes, 20)
    anns = []
    for scene_id, objs in scenes.items():
        for object_id, (name, _) in objs.items():
            for ann_id in range(descriptions_per_object(rng)):
                anns.append(
                    {
                        "scene_id": scene_id,
                        "object_id": object_id,
                        "ann_id": str(ann_id),
                        "object_name": name.replace(" ", "_"),
                        "description": f"this is a {name}. it is {_phrase(rng, 6, 14)}.",
                    }
                )
    return scenes, anns


def _scanrefer(rng, n, out_dir):
    scenes, anns = _scanrefer_like(rng, n, out_dir, lambda r: 1)
    anns = anns[:n]
    preds = []
    for a in anns:
        if rng.random() > 0.01:
            box = scenes[a["scene_id"]][a["object_id"]][1]
            preds.append(
                {k: a[k] for k in ("scene_id", "object_id", "ann_id")} | {"box": _jitter(rng, box)}
            )
    return {
        "annotations": _write(out_dir, "annotations.json", anns),
        "boxes": _write(out_dir, "boxes.json", _boxes_json(scenes)),
        "predictions": _write_jsonl(out_dir, preds),
    }


def _scan2cap(rng, n, out_dir):
    scenes, anns = _scanrefer_like(rng, n, out_dir, lambda r: int(r.integers(3, 7)))
    keep = {(a["scene_id"], a["object_id"]) for a in anns}
    keep = set(sorted(keep)[:n])
    anns = [a for a in anns if (a["scene_id"], a["object_id"]) in keep]
    preds = []
    for scene_id, object_id in sorted(keep):
        if rng.random() > 0.01:
            name, box = scenes[scene_id][object_id]
            caption = f"this is a {name}, it is {_phrase(rng, 5, 12)}."
            preds.append(
                {
                    "scene_id": scene_id,
                    "object_id": object_id,
                    "caption": caption,
                    "box": _jitter(rng, box),
                }
            )
    return {
        "annotations": _write(out_dir, "annotations.json", anns),
        "boxes": _write(out_dir, "boxes.json", _boxes_json(scenes)),
        "predictions": _write_jsonl(out_dir, preds),
    }


_M3D_TYPES = ("zt_w_d", "zt_wo_d", "st_w_d", "st_wo_d", "mt")


def _multi3drefer(rng, n, out_dir):
    scenes = _scenes(rng, max(1, n // 20), 20)
    scene_ids = list(scenes)
    anns, preds = [], []
    for i in range(n):
        scene_id = scene_ids[i % len(scene_ids)]
        eval_type = str(rng.choice(_M3D_TYPES))
        n_targets = {"zt": 0, "st": 1, "mt": int(rng.integers(2, 5))}[eval_type[:2]]
        ids = [str(o) for o in rng.choice(20, size=n_targets, replace=False)]
        anns.append(
            {
                "scene_id": scene_id,
                "ann_id": i,
                "object_ids": [int(o) for o in ids],
                "object_name": "chair",
                "eval_type": eval_type,
                "description": _phrase(rng, 6, 12),
            }
        )
        if rng.random() < 0.01:
            continue
        boxes = [_jitter(rng, scenes[scene_id][o][1]) for o in ids if rng.random() > 0.2]
        if rng.random() < 0.3:
            other = str(rng.integers(20))
            boxes.append(_jitter(rng, scenes[scene_id][other][1]))
        preds.append({"scene_id": scene_id, "ann_id": i, "boxes": boxes})
    return {
        "annotations": _write(out_dir, "annotations.json", anns),
        "boxes": _write(out_dir, "boxes.json", _boxes_json(scenes)),
        "predictions": _write_jsonl(out_dir, preds),
    }


_MAKERS = {
    "scanqa": _scanqa,
    "sqa3d": _sqa3d,
    "scan2cap": _scan2cap,
    "scanrefer": _scanrefer,
    "multi3drefer": _multi3drefer,
}


def make_synthetic(out_dir: Path, benchmark: str, n: int | None = None, seed: int = 0) -> dict:
    """Write `n` items (default: the official val/test size) of `benchmark` into `out_dir`;
    returns {"predictions": path, "annotations": path, ["questions" | "boxes"]: path}."""
    if benchmark not in _MAKERS:
        raise ValueError(f"unknown benchmark {benchmark!r}")
    n = FULL_SIZES[benchmark] if n is None else n
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    return _MAKERS[benchmark](rng, n, out_dir)
