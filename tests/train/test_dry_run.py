"""`train --dry-run`: the first epoch's global batches on shards of many scenes, no model.

Checks the order the trainer will use (issue: scene-sorted shards gave steps of ~13 distinct
scenes where a random permutation gives ~195): distinct scenes per step as a random
permutation's, single-task-group steps with group_by_task, every example once per epoch over
the ranks, and the ranks' micro-batches (the trainer's entry point) tile exactly those steps.
"""

import json
import random
import sys
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))

from many_scene_shards import build_many_scene_shards
from ross3d_data.shards.sampling import TASK_GROUPS
from ross3d_model.cli import app
from ross3d_model.configuration.run import load_run_config
from ross3d_model.training.data import micro_batches
from ross3d_model.training.task import build_task

MICRO, ACCUM, WORLD = 2, 4, 4  # global batch 32


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """60 scenes with 10-70 train instructions each, 2 val scenes, 4 scenes without text."""
    return build_many_scene_shards(
        tmp_path_factory.mktemp("many"), n_train=60, n_val=2, n_textless=4, max_shard_bytes=1 << 18
    )


def _config(tmp_path: Path, group_by_task: bool, vision: Path | None = None) -> Path:
    run = {"model": "tiny",
           "train": {"micro_batch_size": MICRO, "grad_accum": ACCUM, "seed": 7},
           "data": {"group_by_task": group_by_task,
                    "vision_only_scenes": None if vision is None else str(vision)}}  # fmt: skip
    path = tmp_path / f"run-{group_by_task}.json"
    path.write_text(json.dumps(run))
    return path


def _dry_run(
    config: Path, shards: Path, out: Path, note: str = "", world: int = WORLD
) -> list[dict]:
    args = ["train", "--config", str(config), "--shards", str(shards), "--output-dir", str(out),
            "--dry-run", "--world-size", str(world)]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert note in " ".join(res.output.split())
    assert not (out / "model").exists() and not list(out.glob("checkpoint*"))  # no model built
    return [json.loads(line) for line in (out / "data_order.jsonl").open()]


def _random_permutation_distinct(examples: list[str], batch: int, trials: int = 20) -> float:
    rng = random.Random(0)
    means = []
    for _ in range(trials):
        perm = examples[:]
        rng.shuffle(perm)
        steps = [perm[i : i + batch] for i in range(0, len(perm) - batch + 1, batch)]
        means.append(sum(len(set(s)) for s in steps) / len(steps))
    return sum(means) / len(means)


def _group(item: dict) -> str:
    return TASK_GROUPS.get(item["task"], item["task"])


@pytest.mark.parametrize("group_by_task", [True, False])
def test_dry_run_steps_are_shuffled_grouped_and_cover_the_epoch_once(many, tmp_path, group_by_task):
    steps = _dry_run(_config(tmp_path, group_by_task), many["shards"], tmp_path / "out")
    g = MICRO * ACCUM * WORLD
    train = [i for i in many["instructions"] if i.split == "train"]
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1))
    assert all(len(s["items"]) == g for s in steps)
    ids = [it["id"] for s in steps for it in s["items"]]
    assert len(ids) == len(set(ids))  # every example at most once per epoch
    by_id = {i.id: i for i in train}
    assert set(ids) <= set(by_id)  # train split only: no val scene, no vision-only clip
    for s in steps:
        assert all(by_id[it["id"]].scene_id == it["scene_id"] for it in s["items"])
    per_group = Counter(TASK_GROUPS[i.task] for i in train)
    if group_by_task:
        assert all(len({_group(it) for it in s["items"]}) == 1 for s in steps)
        dropped = {k: n % g for k, n in per_group.items()}  # each group's incomplete block
        seq = [_group(s["items"][0]) for s in steps]
        assert seq != sorted(seq)  # the groups' batches are interleaved
    else:
        dropped = {"all": len(train) % g}
        assert sum(len({_group(it) for it in s["items"]}) > 1 for s in steps) > len(steps) / 2
    assert len(train) - len(ids) == sum(dropped.values())
    distinct = sum(len({it["scene_id"] for it in s["items"]}) for s in steps) / len(steps)
    expected = _random_permutation_distinct([i.scene_id for i in train], g)
    assert abs(distinct - expected) <= 0.1 * expected, (distinct, expected)
    assert expected > 20  # 32 examples over 60 scenes: the check has room to fail


def test_ranks_micro_batches_tile_the_dry_run_steps(many, tmp_path):
    config = _config(tmp_path, True)
    steps = _dry_run(config, many["shards"], tmp_path / "out")
    task = build_task(load_run_config(config), many["shards"], WORLD)
    per_rank = []
    for rank in range(WORLD):
        stream = micro_batches(
            task.epoch_items, micro_batch_size=MICRO, world_size=WORLD, rank=rank
        )
        per_rank.append([next(stream) for _ in range(len(steps) * ACCUM)])
    for s, step in enumerate(steps):
        got = []
        for m in sorted((m for r in per_rank for m in r[s * ACCUM : (s + 1) * ACCUM]),
                        key=lambda m: m.index):  # fmt: skip
            got += [it[1]["id"] for it in m.items]
        assert got == [it["id"] for it in step["items"]]
    assert [len(r) for r in per_rank] == [len(steps) * ACCUM] * WORLD  # equal counts
    # resume mid-epoch: starting at step 5 gives exactly the rest of rank 1's micro-batches
    stream = micro_batches(task.epoch_items, micro_batch_size=MICRO, world_size=WORLD, rank=1,
                           start=5 * ACCUM * WORLD)  # fmt: skip
    assert [next(stream).items for _ in range(3)] == [m.items for m in per_rank[1][5 * ACCUM :][:3]]


def test_listed_vision_only_clips_form_their_own_batches_and_held_out_ones_never(many, tmp_path):
    vision = tmp_path / "vision.txt"
    vision.write_text("\n".join(many["textless"] + many["val"]) + "\n")
    cfg = json.loads(_config(tmp_path, True, vision).read_text())
    cfg["train"]["micro_batch_size"], cfg["train"]["grad_accum"] = 1, 1  # global batch 4
    path = tmp_path / "small.json"
    path.write_text(json.dumps(cfg))
    note = "2 clip(s) of data.vision_only_scenes are val/test clips"
    steps = _dry_run(path, many["shards"], tmp_path / "out", note)
    vision_steps = [s for s in steps if any(it["task"] == "vision" for it in s["items"])]
    assert len(vision_steps) == 1  # 4 textless clips = one batch of 4
    assert sorted(it["scene_id"] for it in vision_steps[0]["items"]) == many["textless"]
    assert not {it["scene_id"] for s in steps for it in s["items"]} & set(many["val"])


def _global_batch_config(tmp_path: Path, **train) -> Path:
    run = {"model": "tiny", "data": {"group_by_task": True},
           "train": {"micro_batch_size": 1, "global_batch_size": 8, "seed": 7, **train}}  # fmt: skip
    path = tmp_path / "global.json"
    path.write_text(json.dumps(run))
    return path


def test_global_batch_size_gives_the_same_steps_on_any_world_size(many, tmp_path):
    """The recipe's invariant: global batch 8 on 2 processes (accumulation 4) and on 4
    (accumulation 2) trains the same items in the same steps, as many steps."""
    config = _global_batch_config(tmp_path)
    two = _dry_run(config, many["shards"], tmp_path / "w2", "accumulation 4 x 2 processes", 2)
    four = _dry_run(config, many["shards"], tmp_path / "w4", "accumulation 2 x 4 processes", 4)
    train = sum(1 for i in many["instructions"] if i.split == "train")
    assert len(two) == len(four) > train // 8 - 3  # one incomplete block per task group dropped
    assert all(len(s["items"]) == 8 for s in two + four)
    assert two == four  # same items, same order, same step count
    # rank r of W trains micro-batches r, r + W, ...: the ranks of either layout tile each step
    task2 = build_task(load_run_config(config), many["shards"], 2)
    task4 = build_task(load_run_config(config), many["shards"], 4)
    assert task2.global_batch == task4.global_batch == 8
    assert task2.epoch_items(0) == task4.epoch_items(0)


def test_an_indivisible_world_size_or_a_contradicting_grad_accum_is_one_line(many, tmp_path):
    args = ["train", "--config", str(_global_batch_config(tmp_path)), "--shards",
            str(many["shards"]), "--out", str(tmp_path / "o"), "--dry-run", "--world-size", "3"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2
    line = " ".join(res.output.split())
    assert "global_batch_size 8 cannot be split over 3 processes x micro-batch 1" in line
    assert "world sizes 1, 2, 4, 8 at micro-batch 1" in line and "global_batch_size 6 / 9" in line
    args[2] = str(_global_batch_config(tmp_path, grad_accum=2))  # 1 x 2 x 2 = 4 != 8
    args[-1] = "2"
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2
    assert "set only global_batch_size (grad_accum 4 is derived)" in " ".join(res.output.split())
    args[-1] = "4"  # 1 x 2 x 4 = 8: both set and consistent is accepted
    assert CliRunner().invoke(app, args).exit_code == 0
