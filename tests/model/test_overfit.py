"""A tiny model overfits one scene: every loss falls to half or less (slow: ~30 train steps)."""

import pytest
import torch
from model_examples import instruction, make_example
from ross3d_model.inputs.batch import collate_examples
from ross3d_model.inputs.tokenizer import special_token_ids
from ross3d_model.weights.build import from_config

STEPS, LR = 30, 3e-3


@pytest.mark.slow
def test_tiny_model_overfits_one_scene(tiny_cfg, tiny_tokenizer):
    torch.manual_seed(0)
    model = from_config(tiny_cfg)
    model.set_special_ids(special_token_ids(tiny_tokenizer))
    examples = [
        make_example(instruction("scanqa", answers=["brown"]), seed=1),
        make_example(instruction("scanrefer"), seed=1),
    ]
    batch = collate_examples(examples, tiny_tokenizer, tiny_cfg)
    masks = torch.tensor([[False, True, False, False]] * 2)

    def losses():
        # the same timesteps, noise and latent samples every time, so the values are comparable
        with torch.no_grad():
            gen = torch.Generator().manual_seed(0)
            out = model(batch, cross_view=True, masked_views=masks, generator=gen)
        return {k: float(out.losses[k]) for k in ("lm", "cross_view", "bev", "grounding")}

    before = losses()
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=LR, weight_decay=0
    )
    model.train()
    for _ in range(STEPS):
        opt.zero_grad()
        model(batch, cross_view=True, masked_views=masks).loss.backward()
        opt.step()
    after = losses()
    for name in before:
        assert after[name] <= 0.5 * before[name], (name, before[name], after[name])
