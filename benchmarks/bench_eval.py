"""ross3d-eval scoring speed on full-size synthetic inputs of all five benchmarks (run by hand).

    uv run python benchmarks/bench_eval.py [--seed 0]

Writes ScanQA 4,675 / SQA3D 3,519 / Scan2Cap 2,068 / ScanRefer 9,508 / Multi3DRefer 11,120 items
(`ross3d_eval.synthetic`, official formats), then in the same run
  1. scores all five with `ross3d_eval.score` (one shared CaptionScorer: one METEOR JVM), and
  2. scores them again with the reference way of doing it: plain per-item Python loops as in the
     public Ross3D / M3DRef-CLIP scripts (corner-based box IoU, a Python double loop for the IoU
     matrix) and pycocoevalcap's scorers called directly (one Meteor instance for the run),
checks that both give the same numbers, and prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from ross3d_eval import score
from ross3d_eval.captions import CaptionScorer, java_on_path
from ross3d_eval.synthetic import FULL_SIZES, make_synthetic
from ross3d_eval.text import clean_answer, sqa3d_question_type
from scipy.optimize import linear_sum_assignment

ORDER = ("scanqa", "sqa3d", "scan2cap", "scanrefer", "multi3drefer")


# ---- the reference loops (what the public scripts do, item by item) -------------------------


def corners(box):
    c, s = np.asarray(box[:3]), np.asarray(box[3:])
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) / 2
    return c + signs * s


def corner_iou(a, b) -> float:
    ca, cb = corners(a), corners(b)
    lo = np.maximum(ca.min(0), cb.min(0))
    hi = np.minimum(ca.max(0), cb.max(0))
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    va, vb = float(np.prod(ca.max(0) - ca.min(0))), float(np.prod(cb.max(0) - cb.min(0)))
    return inter / (va + vb - inter)


def caption_metrics(meteor, gts, res) -> dict[str, float]:
    bleu = Bleu(4).compute_score(gts, res, verbose=0)[0]
    return {
        "CIDEr": Cider().compute_score(gts, res)[0] * 100,
        "BLEU-4": bleu[3] * 100,
        "METEOR": meteor.compute_score(gts, res)[0] * 100,
        "ROUGE-L": Rouge().compute_score(gts, res)[0] * 100,
    }


def load(path):
    return json.loads(Path(path).read_text())


def load_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def ref_scanqa(files, meteor):
    answers = {a["question_id"]: a["answers"] for a in load(files["annotations"])}
    preds = {p["question_id"]: p["answer"] for p in load_jsonl(files["predictions"])}
    res, gts, correct = {}, {}, 0
    for qid, gt in answers.items():
        pred = preds.get(qid, "")
        res[qid], gts[qid] = [pred.rstrip(".")], gt
        correct += int(qid in preds and pred in gt)
    return {"EM": 100 * correct / len(answers), **caption_metrics(meteor, gts, res)}


def ref_sqa3d(files, meteor):
    questions = {q["question_id"]: q["question"] for q in load(files["questions"])["questions"]}
    preds = {p["question_id"]: p["answer"] for p in load_jsonl(files["predictions"])}
    per_type: dict[str, list[int]] = {}
    em = []
    for ann in load(files["annotations"])["annotations"]:
        qid = ann["question_id"]
        ok = qid in preds and clean_answer(preds[qid]) == clean_answer(ann["answers"][0]["answer"])
        em.append(ok)
        per_type.setdefault(sqa3d_question_type(questions[qid]), []).append(ok)
    return {"EM": 100 * np.mean(em), "What": 100 * np.mean(per_type["what"])}


def ref_scanrefer(files, meteor):
    boxes = load(files["boxes"])
    preds = {
        (p["scene_id"], str(p["object_id"]), str(p["ann_id"])): p["box"]
        for p in load_jsonl(files["predictions"])
    }
    hits25, hits50 = [], []
    for a in load(files["annotations"]):
        key = (a["scene_id"], a["object_id"], a["ann_id"])
        iou = corner_iou(preds[key], boxes[a["scene_id"]][a["object_id"]]) if key in preds else 0
        hits25.append(iou >= 0.25)
        hits50.append(iou >= 0.5)
    return {"Acc@0.25": 100 * np.mean(hits25), "Acc@0.5": 100 * np.mean(hits50)}


def ref_multi3drefer(files, meteor):
    boxes = load(files["boxes"])
    preds = {
        (p["scene_id"], str(p["ann_id"])): p["boxes"] for p in load_jsonl(files["predictions"])
    }
    f25, f50 = [], []
    for a in load(files["annotations"]):
        key = (a["scene_id"], str(a["ann_id"]))
        gt = [boxes[a["scene_id"]][str(o)] for o in a["object_ids"]]
        if key not in preds:
            f25.append(0.0)
            f50.append(0.0)
            continue
        pred = preds[key]
        if not gt or not pred:
            f = float(not gt and not pred)
            f25.append(f)
            f50.append(f)
            continue
        n = max(len(gt), len(pred))
        m = np.zeros((n, n), dtype=np.float32)
        for i, pb in enumerate(pred):
            for j, gb in enumerate(gt):
                m[i, j] = corner_iou(pb, gb)
        rows, cols = linear_sum_assignment(m * -1)
        tp25 = sum(m[rows[i], cols[i]] >= 0.25 for i in range(len(pred)))
        tp50 = sum(m[rows[i], cols[i]] >= 0.5 for i in range(len(pred)))
        f25.append(2 * tp25 / (len(pred) + len(gt)))
        f50.append(2 * tp50 / (len(pred) + len(gt)))
    return {"F1@0.25": 100 * np.mean(f25), "F1@0.5": 100 * np.mean(f50)}


def ref_scan2cap(files, meteor):
    def fmt(text):
        return "sos " + text.replace(".", " . ").replace(",", " , ").lower() + " eos"

    boxes = load(files["boxes"])
    gts = {}
    for a in load(files["annotations"]):
        gts.setdefault(f"{a['scene_id']}|{a['object_id']}", []).append(fmt(a["description"]))
    preds = {f"{p['scene_id']}|{p['object_id']}": p for p in load_jsonl(files["predictions"])}
    out = {}
    for thr in (0.25, 0.5):
        res = {}
        for key in gts:
            scene, obj = key.split("|")
            p = preds.get(key)
            ok = p is not None and corner_iou(p["box"], boxes[scene][obj]) >= thr
            res[key] = [fmt(p["caption"]) if ok else "sos eos"]
        out.update({f"{m}@{thr}": v for m, v in caption_metrics(meteor, gts, res).items()})
    return out


REFERENCE = {
    "scanqa": ref_scanqa,
    "sqa3d": ref_sqa3d,
    "scan2cap": ref_scan2cap,
    "scanrefer": ref_scanrefer,
    "multi3drefer": ref_multi3drefer,
}


# ---- the run --------------------------------------------------------------------------------


def timed(fn):
    """(result, wall seconds, Python CPU seconds of this process)."""
    w0, t0 = time.perf_counter(), os.times()
    out = fn()
    t1 = os.times()
    return out, time.perf_counter() - w0, t1.user - t0.user + t1.system - t0.system


def java_cpu(t0: os.times_result) -> float:
    """CPU seconds of child processes (METEOR's JVM) reaped since t0."""
    t1 = os.times()
    return t1.children_user - t0.children_user + t1.children_system - t0.children_system


def run_ours(files) -> tuple[dict, dict, float, float]:
    results, times = {}, {}
    t0, w0 = os.times(), time.perf_counter()
    with CaptionScorer() as scorer:
        for b in ORDER:
            results[b], *times[b] = timed(lambda b=b: score(b, **files[b], caption_scorer=scorer))
    return results, times, time.perf_counter() - w0, java_cpu(t0)


def run_reference(files) -> tuple[dict, dict, float, float]:
    results, times = {}, {}
    t0, w0 = os.times(), time.perf_counter()
    with java_on_path():
        meteor = Meteor()
    for b in ORDER:
        results[b], *times[b] = timed(lambda b=b: REFERENCE[b](files[b], meteor))
    proc = meteor.meteor_p  # stop and reap the JVM now, so its CPU time is counted
    proc.stdin.close()
    proc.kill()
    proc.wait()
    return results, times, time.perf_counter() - w0, java_cpu(t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = {b: make_synthetic(Path(tmp) / b, b, seed=args.seed) for b in ORDER}
        ours, ours_t, ours_wall, ours_java = run_ours(files)
        ref, ref_t, ref_wall, ref_java = run_reference(files)

    for b in ORDER:
        assert ours[b].count == FULL_SIZES[b], (b, ours[b].count)
        for name, value in ref[b].items():
            assert abs(ours[b].metrics[name] - value) < 1e-9, (
                b,
                name,
                ours[b].metrics[name],
                value,
            )

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {load}")
    print(
        "\n| benchmark | items | ross3d-eval wall / Python CPU (s) | reference wall / Python CPU (s) |"
    )
    print("|---|---|---|---|")
    for b in ORDER:
        (w, c), (rw, rc) = ours_t[b], ref_t[b]
        print(f"| {b} | {ours[b].count:,} | {w:.1f} / {c:.1f} | {rw:.1f} / {rc:.1f} |")
    ours_py = sum(c for _, c in ours_t.values())
    ref_py = sum(c for _, c in ref_t.values())
    print(f"| **all five, wall** | | **{ours_wall:.1f}** | **{ref_wall:.1f}** |")
    print(
        f"| all five, Python CPU + Java CPU | | {ours_py:.1f} + {ours_java:.1f} | "
        f"{ref_py:.1f} + {ref_java:.1f} |"
    )
    agreed = "; ".join(f"{b}: {', '.join(ref[b])}" for b in ORDER)
    print(f"\nscores agree (|diff| < 1e-9) on {agreed}")


if __name__ == "__main__":
    main()
