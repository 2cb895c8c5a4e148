"""ShardReader: random access by key, decoding, the example list, held-out clips; sampling."""

import tarfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from many_scene_shards import VIEWS, build_many_scene_shards
from ross3d_data.shards.reader import ShardReader
from ross3d_data.shards.sampling import TASK_GROUPS, epoch_order, rank_slice, task_group


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    return build_many_scene_shards(
        tmp_path_factory.mktemp("many"), n_train=12, n_val=3, n_textless=3, max_shard_bytes=1 << 16
    )


def test_random_access_returns_the_tar_members_of_that_clip(many):
    reader = ShardReader(many["shards"])
    assert len(reader.shard_paths) > 1  # keys are spread over several shards
    key = reader.keys[7]
    shard = next(p for p, s in zip(reader.shard_paths, reader.manifest["shards"], strict=True)
                 if key in s["keys"])  # fmt: skip
    with tarfile.open(shard) as tar:
        expected = {m.name.partition(".")[2]: tar.extractfile(m).read()
                    for m in tar.getmembers() if m.name.startswith(key + ".")}  # fmt: skip
    got = reader.sample(key)
    assert got.pop("__key__") == key and got == expected
    with pytest.raises(KeyError, match="no clip 'scene9999_00'"):
        reader.sample("scene9999_00")


def test_clips_decode_by_key_in_any_order_and_threads_and_the_lru_keeps_the_newest(many):
    reader = ShardReader(many["shards"], cache_clips=2)
    keys = reader.keys[::-1] * 2
    with ThreadPoolExecutor(4) as pool:
        clips = list(pool.map(reader.clip, keys))
    for key, clip in zip(keys, clips, strict=True):
        value = int(key[5:9])  # tiny_clip(scene i) has every pixel = i and object id i
        assert clip.scene_id == key and clip.images_VSS3.shape == (VIEWS, 8, 8, 3)
        assert (clip.images_VSS3 == value).all() and (clip.depth_mm_VSS == 1000 + value).all()
        assert clip.arrays["object_ids"].tolist() == [value]
    first = reader.clip(reader.keys[0])
    assert reader.clip(reader.keys[0]) is first  # cached
    reader.clip(reader.keys[1])
    reader.clip(reader.keys[2])  # evicts keys[0] (cache of 2)
    assert reader.clip(reader.keys[0]) is not first


def test_examples_follow_the_index_and_task_filter(many):
    reader = ShardReader(many["shards"])
    train = [i for i in many["instructions"] if i.split == "train"]
    pairs = reader.examples("train")
    assert Counter((k, i["id"]) for k, i in pairs) == Counter((i.scene_id, i.id) for i in train)
    assert [k for k, _ in pairs] == sorted(k for k, _ in pairs)  # (key, id) order
    qa = reader.examples("val", ["scanqa", "sqa3d"])
    assert {i["task"] for _, i in qa} == {"scanqa", "sqa3d"}
    assert {k for k, _ in qa} == set(many["val"])
    assert reader.examples("test") == []  # no index for the split


def test_only_listed_textless_clips_are_vision_only_and_held_out_clips_never(many):
    reader = ShardReader(many["shards"])
    listed = [many["textless"][0], many["val"][0], many["train"][0], "scene9999_00"]
    usable, refused = reader.vision_only(listed)
    assert usable == [many["textless"][0]] and refused == [many["val"][0]]
    pairs = reader.examples("train", vision_only=listed)
    assert [k for k, i in pairs if i is None] == [many["textless"][0]]
    assert (
        reader.splits_of(many["val"][0]) == ("val",) and reader.splits_of(many["textless"][1]) == ()
    )


def test_a_split_list_marks_a_textless_clip_held_out(tmp_path):
    from ross3d_data.shards.build import ShardConfig

    (tmp_path / "val.txt").write_text("# ScanNet val\nscene0003_00\n\n")
    (tmp_path / "train.txt").write_text("scene0002_00\nscene0000_00\n")
    lists = (("val", tmp_path / "val.txt"), ("train", tmp_path / "train.txt"))
    many = build_many_scene_shards(tmp_path / "a", n_train=2, n_textless=2, split_lists=lists)
    reader = ShardReader(many["shards"])
    assert many["textless"] == ["scene0002_00", "scene0003_00"]
    assert [reader.splits_of(k) for k in reader.keys] == [
        ("train",),
        ("train",),
        ("train",),
        ("val",),
    ]
    assert reader.vision_only(many["textless"]) == (["scene0002_00"], ["scene0003_00"])
    scans = (tmp_path / "a" / "scans",)
    with pytest.raises(ValueError, match="split must be train/val/test"):
        ShardConfig(scenes=scans, out=tmp_path / "o", split_lists=(("dev", tmp_path / "val.txt"),))
    with pytest.raises(ValueError, match=r"no\.txt: split list file not found"):
        ShardConfig(scenes=scans, out=tmp_path / "o", split_lists=(("val", tmp_path / "no.txt"),))


def test_task_groups_are_the_recipes():
    assert TASK_GROUPS == {"scanqa": "qa", "sqa3d": "qa", "scan2cap": "caption",
                           "scanrefer": "grounding", "multi3drefer": "grounding"}  # fmt: skip
    assert task_group(None) == "vision" and task_group({"task": "sqa3d"}) == "qa"
    with pytest.raises(ValueError, match="unknown task 'chat'"):
        task_group({"id": "x", "task": "chat"})


def test_plain_order_is_a_seeded_permutation_less_the_remainder():
    groups = ["qa"] * 50 + ["grounding"] * 23
    order = epoch_order(groups, seed=1, epoch=0, global_batch=8, group_by_task=False)
    assert len(order) == 72 and len(set(order)) == 72  # 73 mod 8 = 1 dropped
    assert order == epoch_order(groups, seed=1, epoch=0, global_batch=8, group_by_task=False)
    assert order != epoch_order(groups, seed=1, epoch=1, global_batch=8, group_by_task=False)
    assert order != epoch_order(groups, seed=2, epoch=0, global_batch=8, group_by_task=False)
    with pytest.raises(ValueError, match="no full global batch"):
        epoch_order(groups[:5], seed=0, epoch=0, global_batch=8, group_by_task=False)


def test_grouped_order_fills_each_batch_from_one_group_and_shuffles_the_batches():
    groups = ["qa"] * 50 + ["grounding"] * 23 + ["caption"] * 16 + ["vision"] * 9
    order = epoch_order(groups, seed=3, epoch=0, global_batch=8, group_by_task=True)
    batches = [order[i : i + 8] for i in range(0, len(order), 8)]
    kinds = [{groups[i] for i in b} for b in batches]
    assert all(len(k) == 1 for k in kinds) and len(set(order)) == len(order)
    # per group: floor(n / 8) full batches; the incomplete last block is dropped
    assert Counter(k.pop() for k in kinds) == {"qa": 6, "grounding": 2, "caption": 2, "vision": 1}
    seq = [groups[b[0]] for b in batches]
    assert seq != sorted(seq) and seq != sorted(seq, reverse=True)  # blocks interleaved


def test_rank_slices_are_disjoint_equal_and_cover_all_but_the_remainder():
    order = list(np.random.default_rng(0).permutation(23))
    parts = [rank_slice(order, r, 4) for r in range(4)]
    assert [len(p) for p in parts] == [5] * 4
    assert sorted(i for p in parts for i in p) == sorted(order[:20])
    with pytest.raises(ValueError, match="rank 4 outside world size 4"):
        rank_slice(order, 4, 4)
