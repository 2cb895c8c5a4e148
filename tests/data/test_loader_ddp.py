"""make_loader under a real 2-process gloo group: the rank/world come from torch.distributed,
the split happens after the shuffle and gives equal, disjoint slices."""

import json
import socket
from collections import Counter

import pytest

torch = pytest.importorskip("torch")

from many_scene_shards import build_many_scene_shards  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, shards: str, out: str) -> None:
    import torch.distributed as dist
    from ross3d_data.shards.loader import make_loader

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        keys = [[e["scene_id"], e["instruction"]["id"]] for e in make_loader(shards, seed=4)]
        with open(f"{out}/rank{rank}.json", "w") as f:
            json.dump(keys, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_get_disjoint_equal_slices_of_one_permutation(tmp_path):
    from ross3d_data.shards.loader import make_loader

    many = build_many_scene_shards(tmp_path / "d", n_train=6)
    args = (2, _free_port(), str(many["shards"]), str(tmp_path))
    torch.multiprocessing.spawn(_rank_main, args=args, nprocs=2)
    parts = [
        [tuple(k) for k in json.loads((tmp_path / f"rank{r}.json").read_text())] for r in (0, 1)
    ]
    n = sum(i.split == "train" for i in many["instructions"])
    assert len(parts[0]) == len(parts[1]) == n // 2
    assert not set(parts[0]) & set(parts[1])
    whole = [(e["scene_id"], e["instruction"]["id"]) for e in make_loader(many["shards"], seed=4)]
    assert parts[0] == whole[0 : 2 * (n // 2) : 2] and parts[1] == whole[1 : 2 * (n // 2) : 2]
    assert Counter(parts[0] + parts[1]) == Counter(whole[: 2 * (n // 2)])
