"""The shards stay WebDataset-format tars: `webdataset` (dev group only, no source imports it)
reads every clip of a build-shards folder, and its samples decode to the clips ShardReader
gives (README "Dependencies")."""

import numpy as np
import pytest
from many_scene_shards import random_clip, write_shard_folder
from ross3d_data.shards.reader import ShardReader
from ross3d_data.shards.sample import decode_clip


def test_webdataset_reads_our_shards(tmp_path):
    wds = pytest.importorskip("webdataset")
    clips = [random_clip(f"scene{i:04d}_00", i) for i in range(2)]
    folder = write_shard_folder(tmp_path / "shards", clips)
    reader = ShardReader(folder)
    dataset = wds.WebDataset([str(folder / "shard-000000.tar")], shardshuffle=False,
                             empty_check=False)  # fmt: skip
    samples = list(dataset)
    assert [s["__key__"] for s in samples] == reader.keys == [c.scene_id for c in clips]
    for sample in samples:
        ours, theirs = reader.clip(sample["__key__"]), decode_clip(sample)
        np.testing.assert_array_equal(theirs.images_VSS3, ours.images_VSS3)
        np.testing.assert_array_equal(theirs.depth_mm_VSS, ours.depth_mm_VSS)
        np.testing.assert_array_equal(theirs.bev_HW3, ours.bev_HW3)
        for name, array in ours.arrays.items():
            np.testing.assert_array_equal(theirs.arrays[name], array)
