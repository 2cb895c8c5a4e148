"""The Ross3D training task on demo shards: items, semi-supervised clips, mixed batches."""

import dataclasses

import pytest
import torch
from ross3d_model.configuration.model import load_config
from ross3d_model.configuration.run import DataConfig
from ross3d_model.training.task import Ross3DTask


@pytest.fixture(scope="module")
def vision_list(demo_data, tmp_path_factory):
    path = tmp_path_factory.mktemp("lists") / "vision.txt"
    path.write_text(f"# semi-supervised scenes\n{demo_data['scenes'][-1].name}\n")
    return path


@pytest.fixture(scope="module")
def task(demo_data, vision_list):
    data = DataConfig(vision_only_scenes=str(vision_list))
    return Ross3DTask(load_config("tiny"), demo_data["shards"], data, global_batch=2)


def test_items_pair_clips_with_instructions_and_keep_the_listed_vision_only_clip(task, demo_data):
    items = task.epoch_items(0)
    assert len(items) % 2 == 0 and len(task.examples) - len(items) < 2  # remainder dropped
    vision_only = {key for key, inst in task.examples if inst is None}
    assert vision_only == {demo_data["scenes"][-1].name}  # the listed scene without text
    tasks = {inst["task"] for _, inst in items if inst is not None}
    assert tasks == {"scanqa", "sqa3d", "scan2cap", "scanrefer", "multi3drefer"}
    assert all(inst is None or inst["split"] == "train" for _, inst in items)
    ids = [str(i and i["id"]) for _, i in items]
    assert ids == [str(i and i["id"]) for _, i in task.epoch_items(0)]
    other = [str(i and i["id"]) for _, i in task.epoch_items(1)]
    assert other != ids and len(set(other)) == len(other) == len(ids)
    only = Ross3DTask(task.cfg, demo_data["shards"], DataConfig(tasks=["scanqa"]))
    assert {i["task"] for _, i in only.epoch_items(0)} == {"scanqa"}
    assert only.vision_only_refused == []


def test_no_list_means_no_vision_only_clip_and_a_missing_list_is_a_clear_error(task, tmp_path):
    plain = Ross3DTask(task.cfg, task.reader, DataConfig())
    assert all(inst is not None for _, inst in plain.examples)
    with pytest.raises(ValueError, match=r"vision_only_scenes: .*nope\.txt not found"):
        Ross3DTask(task.cfg, task.reader, DataConfig(vision_only_scenes=str(tmp_path / "nope.txt")))


def test_vision_only_clips_give_only_reconstruction_losses_and_checkpointing_is_exact(task):
    items = task.examples
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


def test_data_fingerprint_follows_what_the_order_depends_on(task, demo_data):
    def fp(data=None, **kw):
        return Ross3DTask(task.cfg, task.reader, data or task.data, **kw).data_fingerprint()

    base = fp(global_batch=2)
    assert base == task.data_fingerprint() == fp(global_batch=2)
    moved = dataclasses.replace(task.data, shards=str(demo_data["shards"]))  # same folder
    assert fp(moved, global_batch=2) == base
    changed = [
        fp(dataclasses.replace(task.data, group_by_task=True), global_batch=2),
        fp(dataclasses.replace(task.data, tasks=["scanqa"]), global_batch=2),
        fp(DataConfig(), global_batch=2),  # no vision-only list
        fp(global_batch=4),
        fp(global_batch=2, seed=1),
    ]
    assert base not in changed and len(set(changed)) == len(changed)
