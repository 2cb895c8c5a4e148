"""Synthetic benchmark files: the requested number of items, in the official layouts."""

import json

import pytest
from ross3d_eval.synthetic import FULL_SIZES, make_synthetic


def annotated_items(benchmark: str, files: dict) -> int:
    data = json.loads(files["annotations"].read_text())
    if benchmark == "sqa3d":
        return len(data["annotations"])
    if benchmark == "scan2cap":  # one item per described object
        return len({(a["scene_id"], a["object_id"]) for a in data})
    return len(data)


@pytest.mark.parametrize("benchmark", sorted(FULL_SIZES))
def test_item_count_and_predictions(tmp_path, benchmark):
    files = make_synthetic(tmp_path, benchmark, n=45, seed=1)
    assert annotated_items(benchmark, files) == 45
    lines = files["predictions"].read_text().splitlines()
    assert 0 < len(lines) <= 45
    assert all(isinstance(json.loads(line), dict) for line in lines)


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown benchmark"):
        make_synthetic(tmp_path, "scannet")
    with pytest.raises(ValueError, match="n must be >= 1"):
        make_synthetic(tmp_path, "scanqa", n=0)
