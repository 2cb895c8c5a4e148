"""Axis-aligned 3D box IoU and the Multi3DRefer Hungarian matching.

Boxes are [cx, cy, cz, dx, dy, dz] (centre and full size, metres, ScanNet aligned frame).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def box_iou_pairs(a_N6: np.ndarray, b_N6: np.ndarray) -> np.ndarray:
    """IoU of box a[i] with box b[i] -> (N,). IoU = inter / (vol_a + vol_b - inter);
    0 where the union is empty (two zero-volume boxes)."""
    a_N6 = np.asarray(a_N6, dtype=np.float64).reshape(-1, 6)
    b_N6 = np.asarray(b_N6, dtype=np.float64).reshape(-1, 6)
    lo = np.maximum(a_N6[:, :3] - a_N6[:, 3:] / 2, b_N6[:, :3] - b_N6[:, 3:] / 2)
    hi = np.minimum(a_N6[:, :3] + a_N6[:, 3:] / 2, b_N6[:, :3] + b_N6[:, 3:] / 2)
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=1)
    union = np.prod(a_N6[:, 3:], axis=1) + np.prod(b_N6[:, 3:], axis=1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def box_iou_matrix(a_P6: np.ndarray, b_G6: np.ndarray) -> np.ndarray:
    """IoU of every box in a with every box in b -> (P, G)."""
    a_P6 = np.asarray(a_P6, dtype=np.float64).reshape(-1, 6)
    b_G6 = np.asarray(b_G6, dtype=np.float64).reshape(-1, 6)
    p, g = len(a_P6), len(b_G6)
    ious = box_iou_pairs(np.repeat(a_P6, g, axis=0), np.tile(b_G6, (p, 1)))
    return ious.reshape(p, g)


def matched_true_positives(
    pred_P6: np.ndarray, gt_G6: np.ndarray, thresholds: tuple[float, ...]
) -> tuple[int, ...]:
    """True positives per IoU threshold after one-to-one Hungarian matching on IoU.

    As M3DRef-CLIP / Ross3D: the IoU matrix is zero-padded to a square float32 matrix and
    `linear_sum_assignment(-iou)` picks the pairs; a pair counts at threshold k iff IoU >= k.
    Matching once (not once per threshold) is what the reference does: with ties the chosen
    pairs can differ from a per-threshold optimum.
    """
    p, g = len(pred_P6), len(gt_G6)
    if p == 0 or g == 0:
        return tuple(0 for _ in thresholds)
    n = max(p, g)
    square = np.zeros((n, n), dtype=np.float32)
    square[:p, :g] = box_iou_matrix(pred_P6, gt_G6)
    rows, cols = linear_sum_assignment(square * -1)
    matched = square[rows[:p], cols[:p]]
    return tuple(int(np.count_nonzero(matched >= k)) for k in thresholds)


def f1_scores(pred_P6: np.ndarray, gt_G6: np.ndarray, thresholds: tuple[float, ...]) -> list[float]:
    """Multi3DRefer F1 per threshold: 2 TP / (P + G); a zero-target query (G = 0) scores 1 iff
    nothing is predicted."""
    p, g = len(pred_P6), len(gt_G6)
    if g == 0:
        return [1.0 if p == 0 else 0.0 for _ in thresholds]
    tps = matched_true_positives(pred_P6, gt_G6, thresholds)
    return [2.0 * tp / (p + g) for tp in tps]
