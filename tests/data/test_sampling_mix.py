"""Semi-supervised mixing: vision-only sources as their own groups with a fixed share of steps."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from many_scene_shards import build_many_scene_shards
from ross3d_data.shards.reader import ShardReader
from ross3d_data.shards.sampling import (
    epoch_order,
    epoch_steps,
    full_blocks,
    is_vision_group,
    source_blocks,
    vision_group,
)


def test_shares_of_the_steps_become_block_counts():
    # 10 text batches; a source taking half of all steps needs 10 batches of its own
    assert source_blocks(10, {"vision:a": 0.5}) == {"vision:a": 10}
    # two sources of 25 % each beside 6 text batches: 12 steps, 3 each
    assert source_blocks(6, {"vision:a": 0.25, "vision:b": 0.25}) == {"vision:a": 3, "vision:b": 3}
    with pytest.raises(ValueError, match="sum below 1"):
        source_blocks(6, {"vision:a": 0.6, "vision:b": 0.4})
    with pytest.raises(ValueError, match="> 0"):
        source_blocks(6, {"vision:a": 0.0})


def test_vision_groups_name_their_dataset():
    assert vision_group("arkitscenes") == "vision:arkitscenes"
    assert vision_group(None) == "vision"
    assert is_vision_group("vision:3rscan") and is_vision_group("vision")
    assert not is_vision_group("qa") and not is_vision_group("visionary")


def test_a_fixed_block_count_repeats_a_small_source_one_pass_at_a_time():
    groups = ["qa"] * 16 + ["vision:a"] * 3
    order = epoch_order(
        groups, seed=5, epoch=0, global_batch=4, group_by_task=True,
        blocks_per_group={"vision:a": 2},
    )  # fmt: skip
    assert len(order) == 6 * 4  # 4 text batches + the 2 fixed ones
    batches = [order[i : i + 4] for i in range(0, len(order), 4)]
    kinds = [{groups[i] for i in b} for b in batches]
    assert all(len(k) == 1 for k in kinds)
    vision = [i for b, k in zip(batches, kinds, strict=True) if k == {"vision:a"} for i in b]
    assert sorted(Counter(vision).values()) == [2, 3, 3]  # 8 draws from 3 clips, pass by pass
    assert sorted(i for i in order if groups[i] == "qa") == list(range(16))


def test_a_fixed_block_count_subsamples_a_large_source_without_repeats():
    groups = ["qa"] * 8 + ["vision:big"] * 40
    order = epoch_order(
        groups, seed=1, epoch=2, global_batch=4, group_by_task=True,
        blocks_per_group={"vision:big": 1},
    )  # fmt: skip
    vision = [i for i in order if groups[i] == "vision:big"]
    assert len(vision) == 4 and len(set(vision)) == 4
    assert full_blocks(Counter(groups), 4) == {"qa": 2, "vision:big": 10}
    counts = Counter(groups)
    assert epoch_steps(counts, 4, True, {"vision:big": 1}) == len(order) // 4 == 3
    assert epoch_steps(counts, 4, True) == 12 and epoch_steps(counts, 4, False) == 12


def test_fixed_counts_need_task_grouping():
    with pytest.raises(ValueError, match="group_by_task"):
        epoch_order(["qa"] * 8, seed=0, epoch=0, global_batch=4, group_by_task=False,
                    blocks_per_group={"qa": 1})  # fmt: skip


def test_vision_sources_select_the_textless_clips_of_their_datasets(tmp_path):
    other = ("3rscan-a0b1-c2", "arkitscenes-41069021", "arkitscenes-47333462")
    many = build_many_scene_shards(tmp_path, n_train=2, n_textless=1, other_textless=other)
    reader = ShardReader(many["shards"])
    textless = lambda pairs: [k for k, i in pairs if i is None]  # noqa: E731
    assert textless(reader.examples("train", vision_sources=["arkitscenes"])) == list(other[1:])
    assert textless(reader.examples("train", vision_sources=["scannet"])) == ["scene0002_00"]
    both = reader.examples("train", vision_only=["scene0002_00"], vision_sources=["3rscan"])
    assert textless(both) == sorted(["scene0002_00", "3rscan-a0b1-c2"], key=reader.keys.index)
    assert len([k for k, i in both if i is not None]) == len(reader.examples("train"))
