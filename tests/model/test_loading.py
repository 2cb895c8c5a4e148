"""loading.py: lazy checkpoint reading (mapped and copied reads agree), the source plan (first
source wins, claims give `missing`, shapes give `mismatched`), dtype handling."""

from __future__ import annotations

import pytest
import torch
from ross3d_model.weights.loading import Checkpoint, Link, SourceLinks, plan_links
from safetensors.torch import save_file


@pytest.fixture
def ckpt(tmp_path):
    state = {
        "a": torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7,
        "b": (torch.arange(6, dtype=torch.float32) / 3).to(torch.bfloat16),
        "c": torch.tensor([3, -1, 2**40], dtype=torch.int64),
        "empty": torch.zeros(0, 5),
    }
    save_file(state, str(tmp_path / "model.safetensors"))
    return Checkpoint(tmp_path), state


def test_mapped_and_copied_reads_agree(ckpt):
    reader, state = ckpt
    assert reader.keys == sorted(state)
    for key, tensor in state.items():
        assert reader.shape(key) == tuple(tensor.shape) and reader.dtype(key) == tensor.dtype
        for copy in (False, True):
            got = reader.read(key, copy=copy)
            assert got.dtype == tensor.dtype and torch.equal(got, tensor), (key, copy)


def test_link_casts_floats_only_and_applies_the_transform(ckpt):
    reader, state = ckpt
    half = Link("s", reader, "a", lambda t: t[:2])
    assert half.out_shape() == (2, 4)
    got = half.read(torch.bfloat16, None)
    assert got.dtype == torch.bfloat16 and torch.equal(got, state["a"][:2].to(torch.bfloat16))
    ints = Link("s", reader, "c").read(torch.bfloat16, None)
    assert ints.dtype == torch.int64 and torch.equal(ints, state["c"])
    widened = Link("s", reader, "b").read(torch.float32, None)
    assert torch.equal(widened, state["b"].float())


def test_plan_first_source_wins_and_reports(ckpt):
    reader, _ = ckpt
    first = SourceLinks("first", links={"x.w": Link("first", reader, "a")}, claims=("x.",))
    second = SourceLinks(
        "second",
        links={
            "x.w": Link("second", reader, "a"),  # shadowed
            "y.w": Link("second", reader, "b"),  # wrong shape
            "z.w": Link("second", reader, "c"),  # no such tensor in the model
        },
        claims=("y.", "q"),
        unexpected=["junk"],
    )
    targets = {"x.w": (3, 4), "x.v": (1,), "y.w": (5,), "q": (2,)}
    chosen, report = plan_links([first, second], targets)
    assert {n: link.source for n, link in chosen.items()} == {"x.w": "first"}
    assert report.loaded == {"first": 1}
    assert report.missing == ["first: x.v", "second: q"]
    assert report.mismatched == ["second: b gives (6,), y.w is (5,)"]
    assert report.unexpected == ["second: junk", "second: c (-> z.w: no such tensor)"]
    assert report.ignored == {"second: shadowed by first": 1}
    with pytest.raises(ValueError, match=r"where: checkpoint does not match the model: missing"):
        report.raise_if_bad("where")


def test_missing_path_and_shard_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no such checkpoint file or folder"):
        Checkpoint(tmp_path / "nope")
    with pytest.raises(ValueError, match="no safetensors"):
        Checkpoint(tmp_path)
