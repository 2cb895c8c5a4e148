"""The Ross3D training task on demo shards: items, semi-supervised clips, mixed batches."""

import pytest
import torch
from ross3d_model.config import load_config
from ross3d_model.training.config import DataConfig
from ross3d_model.training.task import Ross3DTask


@pytest.fixture(scope="module")
def task(demo_data):
    return Ross3DTask(load_config("tiny"), demo_data["shards"], DataConfig(), shuffle_buffer=8)


def test_items_pair_clips_with_instructions_and_keep_the_vision_only_clip(task, demo_data):
    items = list(task.epoch_items(0))
    vision_only = {s["__key__"] for s, inst in items if inst is None}
    assert vision_only == {demo_data["scenes"][-1].name}  # the scene without annotations
    tasks = {inst["task"] for _, inst in items if inst is not None}
    assert tasks == {"scanqa", "sqa3d", "scan2cap", "scanrefer", "multi3drefer"}
    assert all(inst is None or inst["split"] == "train" for _, inst in items)
    again = list(task.epoch_items(0))
    assert [i and i["id"] for _, i in again] == [i and i["id"] for _, i in items]
    other = [i and i["id"] for _, i in task.epoch_items(1)]
    assert other != [i and i["id"] for _, i in items] and sorted(map(str, other)) == sorted(
        str(i and i["id"]) for _, i in items
    )
    only = Ross3DTask(
        task.cfg, demo_data["shards"], DataConfig(tasks=["scanqa"], vision_only=False)
    )
    assert {i["task"] for _, i in only.epoch_items(0)} == {"scanqa"}


def test_vision_only_clips_give_only_reconstruction_losses_and_checkpointing_is_exact(task):
    items = list(task.epoch_items(0))
    vision = [it for it in items if it[1] is None][:1]
    qa = [it for it in items if it[1] is not None and it[1]["task"] == "scanqa"][:1]
    ground = [it for it in items if it[1] is not None and it[1]["task"] == "scanrefer"][:1]
    torch.manual_seed(0)
    model = task.build_model().train()
    torch.manual_seed(1)
    alone = task.losses(model, task.collate(vision, seed=1), cross_view=True)
    assert alone["lm"] is None and alone["grounding"] is None
    assert alone["bev"] is not None and alone["cross_view"] is not None
    mixed_batch = task.collate(vision + qa + ground, seed=1)  # mixed-task batch
    torch.manual_seed(1)
    mixed = task.losses(model, mixed_batch, cross_view=False)
    assert mixed["cross_view"] is None and None not in (mixed["lm"], mixed["grounding"])
    assert task.count_tokens(mixed_batch) > 3 * 4 * 210
    task.enable_gradient_checkpointing(model)
    torch.manual_seed(1)
    again = task.losses(model, mixed_batch, cross_view=False)
    assert again["total"].item() == pytest.approx(mixed["total"].item(), rel=1e-6)
    again["total"].backward()
    assert model.mask_token.grad is None or torch.isfinite(model.mask_token.grad).all()
