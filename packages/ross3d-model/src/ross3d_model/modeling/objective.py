"""How the training losses are weighted and combined, and when the cross-view loss runs.

L = w_lm * CE + w_cross * L_cross + w_bev * L_bev + w_ground * InfoNCE (all weights 1 in the
paper). A loss that a step does not compute (cross-view off this step, no text in a
vision-only clip, no grounding sample) is passed as None and left out of the total.
"""

from __future__ import annotations

import torch

from ross3d_model.configuration.parts import LOSS_NAMES, ObjectiveConfig


def combine_losses(
    named: dict[str, torch.Tensor | None], cfg: ObjectiveConfig
) -> dict[str, torch.Tensor | None]:
    """Return {lm, cross_view, bev, grounding, total}: the unweighted losses as given (None when
    absent) and ``total`` = weighted sum of the present ones.

    ValueError on an unknown name, a non-scalar loss, or when every loss is absent.
    """
    unknown = set(named) - set(LOSS_NAMES)
    if unknown:
        raise ValueError(f"unknown loss names {sorted(unknown)}; expected {LOSS_NAMES}")
    out: dict[str, torch.Tensor | None] = {name: named.get(name) for name in LOSS_NAMES}
    total: torch.Tensor | None = None
    for name in LOSS_NAMES:
        loss = out[name]
        if loss is None:
            continue
        if loss.ndim != 0:
            raise ValueError(f"loss {name!r} must be a scalar, got shape {tuple(loss.shape)}")
        term = loss * cfg.weight(name)
        total = term if total is None else total + term
    if total is None:
        raise ValueError("combine_losses got no loss at all (every entry is None or missing)")
    out["total"] = total
    return out


def cross_view_active(step: int, cfg: ObjectiveConfig) -> bool:
    """True on optimiser steps 0, k, 2k, ... (k = cfg.cross_view_every), as the public code."""
    if step < 0:
        raise ValueError(f"optimiser step must be >= 0, got {step}")
    return step % cfg.cross_view_every == 0
