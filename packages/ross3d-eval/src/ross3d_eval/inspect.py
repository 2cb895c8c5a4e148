"""Benchmark predictions as Rerun recordings: one ``<scene_id>.rrd`` per scene, one item per
step of the ``item`` timeline.

Files are read by the scorers' own readers (``ross3d_eval.inputs`` and each scorer's
``query_key`` / ``load_*``), so a file the scorer refuses is refused here with the same
one-line error. Per scene:

* ``world`` is the ScanNet aligned frame (z up); ``world/objects``: every GT box of the scene
  from the boxes table (grey, labelled ``#<object id>``);
* ``world/mesh``: only with a scenes root holding ScanNet's ``<id>/<id>_vh_clean_2.ply``: the
  file as Rerun's own PLY asset (no parser here: the eval package never depends on the data
  package) under the ``axisAlignment`` of ``<id>/<id>.txt`` (identity when the file has
  none, as ScanNet's test scans). Other datasets' meshes are not shown;
* at step ``i`` of the ``item`` timeline: ``world/target`` the item's GT boxes (blue),
  ``world/prediction`` its predicted boxes coloured by IoU with the best-matching GT box
  (green >= 0.5, yellow >= 0.25, red below; IoU from ``ross3d_eval.boxes``), and ``item`` a
  markdown text: the query, the prediction, the references and the item's scores.

Per-item scores are the parts of the benchmark metrics one item contributes: ScanRefer IoU
and Acc@k, Multi3DRefer F1@k, Scan2Cap the IoU of the captioned box (the caption counts at
threshold k iff IoU >= k; corpus metrics such as CIDEr have no per-item value), ScanQA EM
(the ross3d protocol: the raw answer is one of the references), SQA3D EM and EM-R (ross3d).
An item *fails* when it misses the top score: no prediction, IoU or F1 below the 0.5 level,
or EM 0. ``rerun-sdk`` is imported only here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ross3d_eval.boxes import box_iou_matrix, f1_scores
from ross3d_eval.errors import EvalInputError
from ross3d_eval.inputs import (
    Record,
    get_field,
    gt_box,
    index_annotations,
    index_predictions,
    load_boxes,
    parse_box,
    read_json_list,
    read_jsonl,
)
from ross3d_eval.result import BENCHMARKS

APPLICATION_ID = "ross3d-eval"
GREEN, YELLOW, RED = (40, 200, 70), (240, 200, 30), (220, 40, 40)
TARGET, OBJECT = (60, 140, 255), (150, 150, 150)
NO_BOXES = np.zeros((0, 6))


@dataclass(frozen=True)
class Item:
    """One annotated query as drawn: its boxes (aligned frame), texts and scores."""

    key: str
    scene_id: str
    query: str
    gt_G6: np.ndarray = field(default_factory=lambda: NO_BOXES)
    pred_P6: np.ndarray = field(default_factory=lambda: NO_BOXES)
    prediction: str | None = None  # an answer or caption; None: none (or boxes only)
    references: tuple[str, ...] = ()
    scores: dict[str, float] = field(default_factory=dict)
    predicted: bool = True
    failed: bool = False


def hit_color(iou: float) -> tuple[int, int, int]:
    """Green at IoU >= 0.5, yellow at >= 0.25, red below."""
    return GREEN if iou >= 0.5 else YELLOW if iou >= 0.25 else RED


def best_ious(pred_P6: np.ndarray, gt_G6: np.ndarray) -> np.ndarray:
    """``(P,)`` IoU of each predicted box with its best GT box (0 without GT boxes)."""
    if len(pred_P6) == 0 or len(gt_G6) == 0:
        return np.zeros(len(pred_P6))
    return box_iou_matrix(pred_P6, gt_G6).max(axis=1)


def _text(rec: Record, name: str) -> str | None:
    """An optional string field (None when absent)."""
    return get_field(rec, name, str) if name in rec.data else None


def _boxes_file(boxes: Path | None, benchmark: str) -> Path:
    if boxes is None:
        raise ValueError(f"{benchmark} needs --boxes")
    return Path(boxes)


def _scanrefer_items(predictions: Path, annotations: Path, boxes: Path | None, _q) -> list[Item]:
    from ross3d_eval.scorers import scanrefer as s

    table, boxes = load_boxes(_boxes_file(boxes, "scanrefer")), Path(boxes)
    anns = index_annotations(read_json_list(annotations), s.query_key, s.describe)
    preds = index_predictions(read_jsonl(predictions), s.query_key, anns, s.describe)
    items = []
    for key, rec in anns.items():
        gt = gt_box(table, boxes, key[0], key[1])[None]
        pred = preds.get(key)
        pred_P6 = NO_BOXES if pred is None else parse_box(get_field(pred, "box", list), pred.loc)
        iou = float(best_ious(np.reshape(pred_P6, (-1, 6)), gt).max(initial=0.0))
        query = _text(rec, "description") or ""
        query += f" (target: {get_field(rec, 'object_name', str)} #{key[1]})"
        scores = {"IoU": iou, "Acc@0.25": float(iou >= 0.25), "Acc@0.5": float(iou >= 0.5)}
        items.append(
            Item(
                s.describe(key),
                key[0],
                query,
                gt,
                np.reshape(pred_P6, (-1, 6)),
                scores=scores,
                predicted=pred is not None,
                failed=iou < 0.5,
            )
        )
    return items


def _multi3drefer_items(predictions: Path, annotations: Path, boxes: Path | None, _q) -> list[Item]:
    from ross3d_eval.scorers import multi3drefer as m

    targets = m.load_targets(annotations, _boxes_file(boxes, "multi3drefer"))
    anns = index_annotations(read_json_list(annotations), m.query_key, m.describe)
    preds = index_predictions(read_jsonl(predictions), m.query_key, targets, m.describe)
    items = []
    for key, (eval_type, gt_G6) in targets.items():
        pred = preds.get(key)
        pred_P6 = NO_BOXES
        if pred is not None:
            raw = get_field(pred, "boxes", list)
            pred_P6 = np.array(
                [parse_box(b, pred.loc, f"boxes[{j}]") for j, b in enumerate(raw)], dtype=np.float64
            ).reshape(-1, 6)
        # a missing prediction scores 0 even for a zero-target query (as the scorer)
        f1 = f1_scores(pred_P6, gt_G6, m.THRESHOLDS) if pred is not None else [0.0, 0.0]
        scores = {f"F1@{k}": float(v) for k, v in zip(m.THRESHOLDS, f1, strict=True)}
        query = f"{_text(anns[key], 'description') or ''} ({eval_type}, {len(gt_G6)} targets)"
        items.append(
            Item(
                m.describe(key),
                key[0],
                query,
                gt_G6,
                pred_P6,
                scores=scores,
                predicted=pred is not None,
                failed=scores["F1@0.5"] < 1.0,
            )
        )
    return items


def _scan2cap_items(predictions: Path, annotations: Path, boxes: Path | None, _q) -> list[Item]:
    from ross3d_eval.scorers import scan2cap as c

    table, boxes = load_boxes(_boxes_file(boxes, "scan2cap")), Path(boxes)
    refs = c.load_references(annotations)
    preds = index_predictions(read_jsonl(predictions), c.object_key, refs, "/".join)
    items = []
    for key, references in refs.items():
        gt = gt_box(table, boxes, *key)[None]
        pred, pred_P6, caption = preds.get(key), NO_BOXES, None
        if pred is not None:
            pred_P6 = parse_box(get_field(pred, "box", list), pred.loc)[None]
            caption = get_field(pred, "caption", str)
        iou = float(best_ious(pred_P6, gt).max(initial=0.0))
        scores = {"IoU": iou} | {f"caption counts@{k}": float(iou >= k) for k in c.THRESHOLDS}
        items.append(
            Item(
                "/".join(key),
                key[0],
                f"describe object #{key[1]}",
                gt,
                pred_P6,
                caption,
                tuple(references),
                scores,
                pred is not None,
                failed=iou < 0.5,
            )
        )
    return items


def _scanqa_items(predictions: Path, annotations: Path, boxes: Path | None, _q) -> list[Item]:
    from ross3d_eval.scorers import scanqa as q

    answers = q.load_answers(annotations)
    anns = index_annotations(
        read_json_list(annotations), lambda r: get_field(r, "question_id", str)
    )
    preds = q.load_predictions(predictions, answers)
    table = load_boxes(boxes) if boxes is not None else None
    items = []
    for qid, refs in answers.items():
        rec, pred = anns[qid], preds.get(qid)
        scene_id = get_field(rec, "scene_id", str)
        gt = NO_BOXES
        if table is not None and "object_ids" in rec.data:  # the test split has none
            ids = [str(i) for i in get_field(rec, "object_ids", list)]
            gt = np.array([gt_box(table, Path(boxes), scene_id, i) for i in ids]).reshape(-1, 6)
        em = float(pred is not None and pred in refs)
        items.append(
            Item(
                qid,
                scene_id,
                _text(rec, "question") or "",
                gt,
                NO_BOXES,
                pred,
                tuple(refs),
                {"EM": em},
                pred is not None,
                failed=em < 1,
            )
        )
    return items


def _sqa3d_items(predictions: Path, annotations: Path, _b, questions: Path | None) -> list[Item]:
    from ross3d_eval.scorers import sqa3d as s
    from ross3d_eval.text import clean_answer, match_ross3d

    if questions is None:
        raise ValueError("sqa3d needs --questions")
    found = s.load_items(annotations, Path(questions))
    qs = index_annotations(
        read_json_list(questions, key="questions"), lambda r: get_field(r, "question_id", int)
    )
    preds = index_predictions(
        read_jsonl(predictions), lambda r: get_field(r, "question_id", int), found
    )
    items = []
    for qid, (answer, qtype) in found.items():
        rec, pred = qs[qid], preds.get(qid)
        text = get_field(pred, "answer", str) if pred is not None else None
        em, emr = match_ross3d(clean_answer(text), [clean_answer(answer)]) if text else (0, 0)
        query = f"situation: {_text(rec, 'situation') or '-'}\n\n{get_field(rec, 'question', str)}"
        items.append(
            Item(
                str(qid),
                get_field(rec, "scene_id", str),
                f"[{qtype}] {query}",
                prediction=text,
                references=(answer,),
                scores={"EM": float(em), "EM-R": float(emr)},
                predicted=pred is not None,
                failed=em < 1,
            )
        )
    return items


_COLLECT: dict[str, Callable[..., list[Item]]] = {
    "scanqa": _scanqa_items,
    "sqa3d": _sqa3d_items,
    "scan2cap": _scan2cap_items,
    "scanrefer": _scanrefer_items,
    "multi3drefer": _multi3drefer_items,
}


def collect_items(
    benchmark: str,
    predictions: Path,
    annotations: Path,
    boxes: Path | None = None,
    questions: Path | None = None,
) -> list[Item]:
    """Every annotated item of ``benchmark`` with its prediction and scores, in annotation
    order. EvalInputError (naming the file and line) on bad files, as the scorer."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
    for path in (predictions, annotations, boxes, questions):
        if path is not None and not Path(path).is_file():
            raise EvalInputError(path, "file not found")
    return _COLLECT[benchmark](Path(predictions), Path(annotations), boxes, questions)


def read_axis_alignment(meta_txt: Path) -> np.ndarray:
    """ScanNet ``<id>.txt``'s ``axisAlignment = m00 ... m33`` (row-major 4x4); identity when
    the line is absent (test scans). EvalInputError naming the file when it is malformed."""
    for line in Path(meta_txt).read_text(encoding="utf-8", errors="replace").splitlines():
        name, eq, value = line.partition("=")
        if eq and name.strip() == "axisAlignment":
            try:
                return np.array([float(v) for v in value.split()], np.float64).reshape(4, 4)
            except ValueError:
                raise EvalInputError(meta_txt, "axisAlignment is not 16 numbers") from None
    return np.eye(4)


def scannet_mesh(scenes: Path | None, scene_id: str) -> tuple[Path, np.ndarray] | None:
    """``(<id>_vh_clean_2.ply, T_aligned_world)`` of a ScanNet scene under ``scenes``, else
    None (no root, no such mesh)."""
    if scenes is None or not re.fullmatch(r"[\w.-]+", scene_id):
        return None
    folder = Path(scenes) / scene_id
    ply = folder / f"{scene_id}_vh_clean_2.ply"
    if not ply.is_file():
        return None
    meta = folder / f"{scene_id}.txt"
    return ply, read_axis_alignment(meta) if meta.is_file() else np.eye(4)


def _score_text(name: str, value: float) -> str:
    if name.startswith(("Acc@", "caption counts@", "EM")):
        return f"{name} {'yes' if value >= 1 else 'no'}"
    return f"{name} {value:.3f}"


def item_markdown(benchmark: str, item: Item) -> str:
    """The item's text: query, prediction, references and scores."""
    lines = [f"# {benchmark} {item.key}", "", f"**query**: {item.query}", ""]
    if not item.predicted:
        lines += ["**prediction**: none (scored as wrong)", ""]
    elif item.prediction is not None:
        lines += [f"**prediction**: {item.prediction}", ""]
    if len(item.pred_P6):
        ious = best_ious(item.pred_P6, item.gt_G6)
        lines += [
            "**predicted boxes** (IoU with the best GT box): "
            + ", ".join(f"{v:.3f}" for v in ious),
            "",
        ]
    if item.references:
        lines += ["**references**:", ""] + [f"* {r}" for r in item.references] + [""]
    lines.append("**scores**: " + ", ".join(_score_text(k, v) for k, v in item.scores.items()))
    lines.append("")
    lines.append("**failed**" if item.failed else "**passed**")
    return "\n".join(lines) + "\n"


def _log_boxes(rec, path: str, boxes_K6: np.ndarray, colors, labels, static: bool = False):
    import rerun as rr

    boxes_K6 = np.asarray(boxes_K6, np.float64).reshape(-1, 6)
    if not len(boxes_K6):
        rec.log(path, rr.Clear(recursive=False), static=static)
        return
    rec.log(
        path,
        rr.Boxes3D(
            centers=boxes_K6[:, :3], half_sizes=boxes_K6[:, 3:] / 2, colors=colors, labels=labels
        ),
        static=static,
    )


def _log_scene(rec, scene_id: str, table: dict, scenes: Path | None) -> None:
    """What does not change from item to item: axes, the scene's boxes, its mesh."""
    import rerun as rr

    rec.log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
    objects = sorted((oid, box) for (sid, oid), box in table.items() if sid == scene_id)
    if objects:
        _log_boxes(
            rec,
            "world/objects",
            np.array([b for _, b in objects]),
            [OBJECT] * len(objects),
            [f"#{oid}" for oid, _ in objects],
            static=True,
        )
    mesh = scannet_mesh(scenes, scene_id)
    if mesh is not None:
        ply, T = mesh
        rec.log("world/mesh", rr.Transform3D(translation=T[:3, 3], mat3x3=T[:3, :3]), static=True)
        rec.log("world/mesh/scan", rr.Asset3D(path=ply), static=True)


def _log_item(rec, benchmark: str, step: int, item: Item) -> None:
    import rerun as rr

    rec.set_time("item", sequence=step)
    _log_boxes(
        rec,
        "world/target",
        item.gt_G6,
        [TARGET] * len(item.gt_G6),
        [f"GT {i}" for i in range(len(item.gt_G6))],
    )
    ious = best_ious(item.pred_P6, item.gt_G6)
    _log_boxes(
        rec,
        "world/prediction",
        item.pred_P6,
        [hit_color(v) for v in ious],
        [f"IoU {v:.2f}" for v in ious],
    )
    rec.log(
        "item", rr.TextDocument(item_markdown(benchmark, item), media_type=rr.MediaType.MARKDOWN)
    )


def write_scene_recording(
    path: Path,
    benchmark: str,
    scene_id: str,
    items: list[Item],
    table: dict,
    scenes: Path | None = None,
) -> Path:
    """One scene's recording (see the module docstring), streamed to ``path``.

    Recordings closed before are freed first: rerun-sdk 0.41 keeps each stream's threads
    until that sweep (a run over ScanRefer's 476 scenes grew by ~1.2 MB and 2 threads per
    recording without it). No default blueprint is sent: its stream is never freed."""
    import rerun as rr
    from rerun_bindings import flush_and_cleanup_orphaned_recordings

    flush_and_cleanup_orphaned_recordings()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rec = rr.RecordingStream(APPLICATION_ID, recording_id=f"{benchmark}/{scene_id}")
    rec.save(path)
    try:
        _log_scene(rec, scene_id, table, scenes)
        for step, item in enumerate(items):
            _log_item(rec, benchmark, step, item)
    finally:
        rec.flush()
        rec.disconnect()
    return path


def inspect_predictions(
    benchmark: str,
    predictions: Path,
    annotations: Path,
    boxes: Path | None,
    out_dir: Path,
    scenes: Path | None = None,
    only_failures: bool = False,
    limit: int | None = None,
    questions: Path | None = None,
) -> list[Path]:
    """Write ``out_dir/<scene_id>.rrd`` per scene holding a shown item; returns their paths
    in first-item order. ``only_failures`` keeps the failed items; ``limit`` keeps the first
    ``limit`` items (annotation order, after that filter). ``boxes`` is required by the
    grounding benchmarks and Scan2Cap, optional for ScanQA (its ``object_ids``),
    ``questions`` by SQA3D; ``scenes`` adds ScanNet meshes where it has them."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    items = collect_items(benchmark, predictions, annotations, boxes, questions)
    if only_failures:
        items = [it for it in items if it.failed]
    items = items[:limit]
    by_scene: dict[str, list[Item]] = {}
    for item in items:
        by_scene.setdefault(item.scene_id, []).append(item)
    table = load_boxes(boxes) if boxes is not None else {}
    out_dir = Path(out_dir)
    return [
        write_scene_recording(
            out_dir / f"{scene_id}.rrd", benchmark, scene_id, scene_items, table, scenes
        )
        for scene_id, scene_items in by_scene.items()
    ]
