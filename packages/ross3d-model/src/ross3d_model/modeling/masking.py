"""Which views to hide behind the mask token for the cross-view reconstruction loss.

Two methods, both masking exactly ``round(ratio * V)`` views of every sample (Python rounding):

- ``"random"`` (the public Ross3D code): a uniformly random subset.
- ``"overlap-aware"``: a greedy that keeps every masked view well covered by the views that
  stay visible, so the target is actually inferable from the condition. With
  ``overlap[i, j]`` = fraction of view i's valid pixels seen by view j (shard contract) and
  ``cover(k, S) = max_{j in S} overlap[k, j]`` (how much of view k the best single visible view
  shows), it grows the masked set M one view at a time, each time adding the candidate m that
  maximises the worst coverage after the move::

      score(m) = min_{k in M + {m}} cover(k, all - M - {m})

  (masking m also removes m as a cover of the views already masked, hence the min over all of
  M + {m}). Ties are broken by a random permutation drawn from ``generator``, so views that are
  equally covered (e.g. a static camera) still vary between steps.
"""

from __future__ import annotations

import numpy as np
import torch

from ross3d_model.configuration.parts import MASK_METHODS


def num_masked_views(num_views: int, ratio: float) -> int:
    """``round(ratio * num_views)``; ValueError when that would leave no visible view."""
    if num_views < 1:
        raise ValueError(f"num_views must be >= 1, got {num_views}")
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    n = round(ratio * num_views)
    if n >= num_views:
        raise ValueError(
            f"mask ratio {ratio} masks all {num_views} views; at least one must stay visible"
        )
    return n


def choose_masked_views(
    num_views: int,
    ratio: float,
    method: str = "random",
    overlap_BVV: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Return ``masked_BV`` (bool, CPU): True where a view is replaced by the mask token.

    B comes from ``overlap_BVV`` when given, else from ``batch_size`` (default 1). The
    overlap-aware method needs ``overlap_BVV`` [B, V, V] with values in [0, 1].
    """
    if method not in MASK_METHODS:
        raise ValueError(f"unknown mask method {method!r}; expected one of {MASK_METHODS}")
    n_mask = num_masked_views(num_views, ratio)
    if overlap_BVV is not None:
        overlap = _checked_overlap(overlap_BVV, num_views, batch_size)
        batch = overlap.shape[0]
    else:
        if method == "overlap-aware":
            raise ValueError("overlap-aware masking needs overlap_BVV [B, V, V]")
        batch = 1 if batch_size is None else batch_size
    masked = torch.zeros(batch, num_views, dtype=torch.bool)
    for b in range(batch):
        order = torch.randperm(num_views, generator=generator).numpy()
        if method == "random":
            masked[b, torch.from_numpy(order[:n_mask])] = True
        else:
            chosen = _greedy_overlap_aware(overlap[b], n_mask, order)
            masked[b, chosen] = True
    return masked


def _checked_overlap(overlap_BVV: torch.Tensor, num_views: int, batch_size: int | None):
    overlap = overlap_BVV.detach().to("cpu", torch.float64).numpy()
    if overlap.ndim != 3 or overlap.shape[1:] != (num_views, num_views):
        raise ValueError(
            f"overlap_BVV must be [B, {num_views}, {num_views}], got {tuple(overlap.shape)}"
        )
    if batch_size is not None and overlap.shape[0] != batch_size:
        raise ValueError(f"overlap_BVV has batch {overlap.shape[0]}, batch_size={batch_size}")
    if not np.all(np.isfinite(overlap)) or overlap.min() < 0.0 or overlap.max() > 1.0:
        raise ValueError("overlap_BVV must be finite and within [0, 1]")
    return overlap


def _greedy_overlap_aware(overlap_VV: np.ndarray, n_mask: int, order: np.ndarray) -> list[int]:
    """Greedy maximin of the worst masked-view coverage (module docstring); ``order`` breaks ties
    (the first candidate in ``order`` wins among equal scores)."""
    num_views = overlap_VV.shape[0]
    masked: list[int] = []
    for _ in range(n_mask):
        best_view, best_score = -1, -np.inf
        for m in order:
            if m in masked:
                continue
            hidden = [*masked, int(m)]
            visible = np.ones(num_views, dtype=bool)
            visible[hidden] = False
            score = overlap_VV[np.ix_(hidden, visible)].max(axis=1).min()
            if score > best_score:
                best_view, best_score = int(m), score
        masked.append(best_view)
    return masked
