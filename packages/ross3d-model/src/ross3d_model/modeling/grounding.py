"""Grounding: object features from patches inside a box, the InfoNCE head, and box selection.

Object k's feature = mean of the pre-pooling (27x27, projected) patch features whose 14x14-pixel
patch has >= `min_inside_fraction` of its pixels inside box k (per-pixel aligned xyz from depth),
plus the sine PE of the box centre. The hidden state at `<ground>` is scored against every
object and a learnable zero-target by cosine / temperature through two MLPs (Linear, ReLU,
LayerNorm, Linear); the loss is InfoNCE with all target objects (or the zero-target) as
positives.

Which patches belong to a box (the masks `in_box`) is decided by the one definition of that rule,
`ross3d_data.cache.patch_masks.patches_in_boxes` (numpy): the data side needs it without torch
(`cache-clips`), and the model needs it only in the collate on the CPU (`inputs.batch`), never
per step on the GPU, so there is no torch copy here.

Switches (`GroundingConfig`, reference values from the public Ross3D code):
- `patch_depth` (used by the mask rule): "any" (reference, `ross3d_arch.py` ~536-554: every
  pixel's unprojected point is tested, an invalid-depth pixel unprojects to the camera centre)
  or "valid" (only pixels with depth count).
- `head_init`: "reference" (the head's Linears N(0, 0.02), biases 0, as Qwen2's
  `_init_weights` gives them; zero-target N(0, 1): `ross3d_qwen.py` ~103) or "torch" (PyTorch's
  Linear default, zero-target N(0, 0.02^2)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ross3d_model.configuration.model import GroundingConfig


def object_features(
    patch_feats_VggD: torch.Tensor, in_box_KVgg: torch.Tensor, centre_pe_KD: torch.Tensor
) -> torch.Tensor:
    """Mean patch feature per box (zeros when no patch qualifies) + centre PE -> [K, D]."""
    weights = in_box_KVgg.flatten(1).to(patch_feats_VggD.dtype)  # [K, V*g*g]
    counts = weights.sum(dim=1, keepdim=True).clamp(min=1.0)
    mean = (weights / counts) @ patch_feats_VggD.flatten(0, 2)
    return mean + centre_pe_KD.to(mean.dtype)


def _mlp(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.LayerNorm(dim), nn.Linear(dim, dim))


class GroundingHead(nn.Module):
    """Scores K objects + a zero-target against a query hidden state (names match the checkpoint
    keys `ground_head_obj.*`, `ground_head_query.*`, `ground_head_zero_target`)."""

    def __init__(self, hidden_size: int, cfg: GroundingConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.obj = _mlp(hidden_size)
        self.query = _mlp(hidden_size)
        self.zero_target = nn.Parameter(torch.randn(hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise as `cfg.head_init` says (module docstring); LayerNorms stay (1, 0)."""
        if self.cfg.head_init == "reference":
            for layer in (*self.obj, *self.query):
                if isinstance(layer, nn.Linear):
                    nn.init.normal_(layer.weight, std=0.02)
                    nn.init.zeros_(layer.bias)
            nn.init.normal_(self.zero_target, std=1.0)
        else:
            for layer in (*self.obj, *self.query):
                if isinstance(layer, (nn.Linear, nn.LayerNorm)):
                    layer.reset_parameters()
            nn.init.normal_(self.zero_target, std=0.02)

    def forward(self, query_D: torch.Tensor, objects_KD: torch.Tensor) -> torch.Tensor:
        """Cosine similarity / temperature [K + 1]; the last entry is the zero-target."""
        cands = torch.cat([objects_KD, self.zero_target[None].to(objects_KD.dtype)], dim=0)
        obj = F.normalize(self.obj(cands), dim=-1)
        query = F.normalize(self.query(query_D), dim=-1)
        return (obj @ query) / self.cfg.temperature


def infonce_loss(logits_K1: torch.Tensor, positives: list[int]) -> torch.Tensor:
    """-log(sum exp(positive logits) / sum exp(all)); no positives -> the zero-target (last)."""
    idx = positives if positives else [logits_K1.shape[0] - 1]
    logits = logits_K1.float()  # bf16 logits up to 1/0.07: keep the log-sum-exp in float32
    return torch.logsumexp(logits, 0) - torch.logsumexp(logits[idx], 0)


def select_single(logits_K1: torch.Tensor) -> int:
    """ScanRefer: argmax over the K candidates (the zero-target is ignored)."""
    return int(logits_K1[:-1].argmax())


def select_multi(logits_K1: torch.Tensor, threshold: float) -> list[int]:
    """Multi3DRefer, the reference rule (`ross3d/eval/eval_multi3drefer.py` ~100-111): nothing if
    the zero-target (last entry) has the largest logit; else softmax over all K + 1 entries, drop
    the zero-target without renormalising, and take candidates in decreasing probability until
    their summed probability reaches `threshold` (all K when it never does). Returns candidate
    indices in the order taken (may be empty)."""
    logits = logits_K1.float()
    zero = logits.shape[0] - 1
    if int(logits.argmax()) == zero:
        return []
    probs = logits.softmax(0)[:zero]
    chosen, total = [], 0.0
    for i in probs.argsort(descending=True, stable=True).tolist():
        chosen.append(i)
        total += float(probs[i])
        if total >= threshold:
            break
    return chosen
