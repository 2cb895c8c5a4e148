"""File writers and box helpers for the ross3d-eval tests."""

from __future__ import annotations

import json
from pathlib import Path

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def interval_box(lo: float, hi: float) -> list[float]:
    """A box spanning [lo, hi] in x and [-0.5, 0.5] in y and z (IoUs are 1-D ratios)."""
    return [(lo + hi) / 2, 0.0, 0.0, hi - lo, 1.0, 1.0]


def direct_caption_metrics(scorer, gts, res):
    """pycocoevalcap's scorers called directly (METEOR: the library's own compute_score on the
    shared METEOR process), x100."""
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    meteor, _ = scorer.meteor().meteor.compute_score(gts, res)
    out = {f"BLEU-{i + 1}": 100 * b for i, b in enumerate(bleu)}
    out["METEOR"] = 100 * meteor
    out["ROUGE-L"] = 100 * Rouge().compute_score(gts, res)[0]
    out["CIDEr"] = 100 * Cider().compute_score(gts, res)[0]
    return out
