"""Scene ids name their dataset and are valid shard keys."""

import pytest
from ross3d_data.core.ids import dataset_of, make_scene_id


def test_ids_round_trip_their_dataset():
    assert make_scene_id("arkitscenes", "41069021") == "arkitscenes-41069021"
    uuid = "754e884c-ea24-2175-8b34-cead19d4198d"  # 3RScan ids hold dashes themselves
    assert dataset_of(make_scene_id("3rscan", uuid)) == "3rscan"
    assert dataset_of("scene0000_00") == "scannet"
    assert dataset_of("multiscan-scene_00000_00") == "multiscan"
    assert dataset_of("arkitscenes") == "scannet"  # a bare word is no prefixed id


@pytest.mark.parametrize("native", ["41069021.5", "a/b", "a b", ""])
def test_ids_that_cannot_be_keys_are_refused(native):
    with pytest.raises(ValueError, match="arkitscenes scene id"):
        make_scene_id("arkitscenes", native)


def test_unknown_datasets_are_refused():
    with pytest.raises(ValueError, match="unknown dataset"):
        make_scene_id("matterport", "x")
