"""Loader: contract keys/dtypes/shapes, exactly-once per epoch with 1 and 2 workers and over
ranks, seeding."""

import json
from collections import Counter
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from ross3d_data.instructions import ConvertConfig, convert_instructions  # noqa: E402
from ross3d_data.shards.build import ShardConfig, build_shards  # noqa: E402
from ross3d_data.shards.loader import iter_examples, make_loader  # noqa: E402
from ross3d_data.shards.sample import SampleConfig  # noqa: E402
from ross3d_data.synthetic.annotations import write_demo_annotations  # noqa: E402

V, S, G = 4, 384, 14


@pytest.fixture(scope="module")
def shard_dir(demo_scenes, tmp_path_factory) -> Path:
    """Shards of both demo scenes; instructions (ScanQA + Multi3DRefer, train and val) only for
    the first one, so the second is a vision-only clip."""
    root = tmp_path_factory.mktemp("loader")
    files = write_demo_annotations(demo_scenes, root / "ann")
    first = sorted(Path(d).name for d in demo_scenes)[0]
    lines = []
    for task in ("scanqa", "multi3drefer"):
        for split in ("train", "val"):
            cfg = ConvertConfig(
                task=task,
                input=files[f"{task}_{split}"],
                split=split,
                out=root / f"{task}_{split}.jsonl",
                boxes_json=files["boxes"],
            )
            lines += [
                json.dumps(i.to_dict()) + "\n"
                for i in convert_instructions(cfg).instructions
                if i.scene_id == first
            ]
    (root / "inst.jsonl").write_text("".join(lines))
    out = root / "shards"
    build_shards(
        ShardConfig(
            scenes=tuple(demo_scenes),
            out=out,
            instructions=(root / "inst.jsonl",),
            sample=SampleConfig(views=V),
            max_shard_bytes=100_000,
        )
    )
    return out


def _expected(shard_dir: Path, split: str) -> Counter:
    insts = [json.loads(line) for line in (shard_dir / f"instructions-{split}.jsonl").open()]
    return Counter((i["scene_id"], i["id"]) for i in insts)


def _key(example) -> tuple:
    inst = example["instruction"]
    return example["scene_id"], None if inst is None else inst["id"]


def test_example_matches_contract(shard_dir):
    ex = next(iter(iter_examples(shard_dir, split="val")))
    spec = {
        "frame_ids": (torch.int64, (V,)), "images": (torch.uint8, (V, 3, S, S)),
        "depth_mm": (torch.uint16, (V, S, S)), "K_crop": (torch.float32, (V, 3, 3)),
        "T_aligned_cam": (torch.float32, (V, 4, 4)), "coords": (torch.float32, (V, G, G, 3)),
        "coords_valid": (torch.bool, (V, G, G)), "overlap": (torch.float32, (V, V)),
        "coverage": (torch.float32, (V,)), "bev": (torch.uint8, (3, 432, 432)),
        "bev_world_to_pixel": (torch.float32, (3, 3)),
    }  # fmt: skip
    for key, (dtype, shape) in spec.items():
        assert ex[key].dtype == dtype and tuple(ex[key].shape) == shape, key
    k = len(ex["labels"])
    assert k == 7 and ex["boxes"].dtype == torch.float32 and tuple(ex["boxes"].shape) == (k, 6)
    assert ex["object_ids"].dtype == torch.int64 and ex["object_ids"].tolist() == list(range(7))
    assert isinstance(ex["scene_id"], str) and ex["instruction"]["split"] == "val"
    assert torch.allclose(torch.diagonal(ex["overlap"]), torch.ones(V))
    assert set(ex) == set(spec) | {"scene_id", "boxes", "object_ids", "labels", "instruction"}


def test_iter_examples_val_has_no_vision_only_clips(shard_dir):
    got = Counter(_key(e) for e in iter_examples(shard_dir, split="val"))
    assert got == _expected(shard_dir, "val")


@pytest.mark.parametrize("workers", [1, 2])
def test_each_example_once_per_epoch(shard_dir, demo_scenes, workers):
    vision = sorted(Path(d).name for d in demo_scenes)[1]
    loader = make_loader(shard_dir, num_workers=workers, seed=3, vision_only_scenes=[vision])
    got = Counter(_key(e) for e in loader)
    expected = _expected(shard_dir, "train")
    expected[(vision, None)] = 1
    assert got == expected
    plain = Counter(_key(e) for e in make_loader(shard_dir, seed=3))  # no list: no vision-only
    assert plain == _expected(shard_dir, "train")


def test_ranks_get_disjoint_equal_slices_of_one_shuffled_order(shard_dir):
    n = sum(_expected(shard_dir, "train").values())
    world = 3
    parts = [
        [_key(e) for e in make_loader(shard_dir, seed=5, rank=r, world_size=world)]
        for r in range(world)
    ]
    assert [len(p) for p in parts] == [n // world] * world  # n mod 3 dropped, equal counts
    flat = [k for p in parts for k in p]
    assert len(set(flat)) == len(flat) and set(flat) <= set(_expected(shard_dir, "train"))
    # split after shuffling: rank r holds order[r::3] of the 1-process order of the same seed
    whole = [_key(e) for e in make_loader(shard_dir, seed=5, batch_size=None)]
    assert parts[1] == whole[1 : world * (n // world) : world]


def test_order_is_deterministic_given_seed(shard_dir):
    def order(seed, workers=2):
        return [_key(e) for e in make_loader(shard_dir, num_workers=workers, seed=seed)]

    first = order(1)
    assert order(1, workers=0) == first
    assert order(2) != first and sorted(order(2), key=str) == sorted(first, key=str)


def test_batches_stack_fixed_shapes(shard_dir):
    batch = next(iter(make_loader(shard_dir, split="val", batch_size=2, shuffle=False)))
    assert tuple(batch["images"].shape) == (2, V, 3, S, S)
    assert tuple(batch["coords"].shape) == (2, V, G, G, 3)
    assert len(batch["boxes"]) == 2 and len(batch["instruction"]) == 2


def test_missing_folder_or_manifest_is_a_clear_error(shard_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="no manifest"):
        iter_examples(shard_dir.parent)
    with pytest.raises(FileNotFoundError, match="no such build-shards folder"):
        iter_examples(tmp_path / "nowhere")
