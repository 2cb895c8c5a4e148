"""A toy TrainTask: a small torch module that returns the named Ross3D losses from examples
shaped like the loader's (tiny images, optional instruction), with random noise and masking
like the real objective, so loop mechanics are tested without the model."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

TASKS = ("scanqa", "scanrefer", None)  # None = vision-only clip


def toy_examples(n: int, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        task = TASKS[i % len(TASKS)]
        out.append(
            {
                "scene_id": f"toy{i:03d}",
                "images": torch.randint(0, 255, (4, 3, 4, 4), generator=g, dtype=torch.uint8),
                "instruction": None if task is None else {"task": task, "id": f"q{i}"},
            }
        )
    return out


class ToyModel(nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        self.config = None
        self.encoder = nn.Sequential(nn.Linear(48, width), nn.GELU(), nn.Linear(width, width))
        self.lm_head = nn.Linear(width, 1)
        self.view_head = nn.Linear(width, 48)
        self.bev_head = nn.Linear(width, 48)
        self.ground_head = nn.Linear(width, 1)
        self.mask_token = nn.Parameter(torch.zeros(width))

    def forward(self, batch: dict, cross_view: bool) -> dict:
        """Named losses; a head that no loss uses runs on one token in its place and enters the
        total times 0 (as Ross3DForCausalLM's one graph): every rank calls the same modules in
        the same order and every parameter gets a gradient, the loss values are unchanged."""
        x = batch["views"].to(self.encoder[0].weight.dtype)  # [B, V, 48]; bf16 under DeepSpeed
        h = self.encoder(x)
        out = {"lm": None, "cross_view": None, "bev": None, "grounding": None}
        idle = []
        noise = torch.randn_like(x)  # like the diffusion noise: needs the seeded RNG
        out["bev"] = (self.bev_head(h.mean(1)) - (x.mean(1) + 0.1 * noise.mean(1))).pow(2).mean()
        if cross_view:
            masked = torch.rand(x.shape[:2], device=x.device) < 0.5
            hm = torch.where(masked[..., None], self.mask_token.expand_as(h), h)
            out["cross_view"] = (self.view_head(hm) - x).pow(2).mean()
        else:
            idle.append(self.view_head(h[0, 0] + self.mask_token).sum())
        text, ground = batch["has_text"], batch["is_grounding"]
        for name, head, rows in (
            ("lm", self.lm_head, text),
            ("grounding", self.ground_head, ground),
        ):
            pred = head(h.mean(1)).squeeze(-1)
            target = 1.0 if name == "lm" else 0.0
            if rows.any():
                out[name] = (pred[rows] - target).pow(2).mean()
            else:
                idle.append(pred.sum())
        present = [v for v in out.values() if v is not None]
        out["total"] = torch.stack(present).sum() + torch.stack([*idle, h.new_zeros(())]).sum() * 0
        return out


class ToyTask:
    hidden_size = 16

    def __init__(self, examples: list[dict]):
        self.examples = examples

    def build_model(self, dtype: torch.dtype | None = None) -> nn.Module:
        model = ToyModel(self.hidden_size)
        return model if dtype is None else model.to(dtype)

    def epoch_items(self, epoch: int):
        return iter(self.examples)

    def collate(self, examples: list[dict], seed: int) -> dict:
        views = torch.stack([e["images"].float().flatten(1) / 255.0 for e in examples])
        tasks = [e["instruction"]["task"] if e["instruction"] else None for e in examples]
        return {
            "views": views,
            "has_text": torch.tensor([t is not None for t in tasks]),
            "is_grounding": torch.tensor([t == "scanrefer" for t in tasks]),
        }

    def to_device(self, batch: dict, device: torch.device) -> dict:
        return {k: v.to(device) for k, v in batch.items()}

    def losses(self, model, batch, cross_view: bool):
        return model(batch, cross_view=cross_view)

    def cross_view_active(self, step: int) -> bool:
        return step % 2 == 0

    def count_tokens(self, batch) -> int:
        return int(batch["views"].shape[0] * batch["views"].shape[1])

    def enable_gradient_checkpointing(self, model) -> None:
        model.gradient_checkpointing = True

    def data_fingerprint(self) -> str:
        return f"toy:{len(self.examples)}"

    def pretrained_files(self) -> dict[str, str]:
        return {}

    def export(self, model, state_dict, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.cpu() for k, v in state_dict.items()}, out_dir / "toy.pt")
