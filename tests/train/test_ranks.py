"""`training.ranks` on two gloo processes: what every rank must see before the model is built
(the run folder rank 0 writes, rank 0's data and pretrained files, rank 0's resume checkpoint)
fails on every rank at once with one line naming the rank, instead of a hang or a split run.
Node-local folders are simulated by giving each rank its own folder."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch.distributed
import torch.multiprocessing as mp
from ross3d_model.training import checkpointing as ckpt


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _error(fn) -> str | None:
    try:
        fn()
    except ValueError as err:
        return str(err)
    return None


def _worker(rank: int, port: int, root: str, results) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    from ross3d_model.training.ranks import Ranks, join_process_group

    join_process_group(60, deepspeed=False)
    ranks = Ranks()
    shared, local = Path(root) / "shared", Path(root) / f"local{rank}"
    out = {
        "shared": _error(lambda: ranks.check_run_folder(shared)),
        "local": _error(lambda: ranks.check_run_folder(local)),
        "data": _error(lambda: ranks.same_as_rank0("shard data", f"fp{rank}", "same shards")),
        "same": _error(lambda: ranks.same_as_rank0("shard data", "fp", "same shards")),
        "files": _error(
            lambda: ranks.same_as_rank0(
                "set of pretrained files", {"a": "x", "b": f"size {rank}"}, "same cache"
            )
        ),
        "resume_shared": ranks.agree_resume(shared, True, ckpt.latest_checkpoint),
        "resume_local": _error(lambda: ranks.agree_resume(local, True, ckpt.latest_checkpoint)),
        "fresh": ranks.agree_resume(shared, False, ckpt.latest_checkpoint),
    }
    results.put((rank, out))
    # leave the group together: a rank exiting with gloo's threads alive aborts (SIGABRT)
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def test_two_ranks_agree_or_both_fail_with_one_line(tmp_path):
    for name in ("shared", "local0", "local1"):
        (tmp_path / name).mkdir()
    for folder in (tmp_path / "shared", tmp_path / "local0"):  # rank 1's node lacks step 4
        for step in (2, 4):
            path = ckpt.checkpoint_dir(folder, step)
            path.mkdir(parents=True)
            ckpt.mark_complete(path)
    ckpt.checkpoint_dir(tmp_path / "local1", 2).mkdir(parents=True)
    ckpt.mark_complete(ckpt.checkpoint_dir(tmp_path / "local1", 2))
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    mp.start_processes(_worker, args=(_port(), str(tmp_path), results), nprocs=2,
                       start_method="spawn")  # fmt: skip
    got = dict(results.get() for _ in range(2))
    host = socket.gethostname()
    for rank in (0, 1):  # both ranks raise the same line
        out = got[rank]
        assert out["shared"] is None and out["same"] is None
        assert out["local"] == (
            f"rank 1 ({host}): {tmp_path / 'local1'} is not the folder rank 0 writes (.run_token "
            "missing): the run folder must be on one filesystem shared by all nodes"
        )
        assert out["data"].startswith(f"rank 1 ({host}) sees another shard data than rank 0: ")
        assert out["files"] == (  # only the differing entries
            f"rank 1 ({host}) sees another set of pretrained files than rank 0: "
            "{'b': 'size 1'} vs {'b': 'size 0'}; same cache"
        )
        assert out["resume_shared"] == (4, ckpt.checkpoint_dir(tmp_path / "shared", 4))
        assert out["resume_local"] == (
            f"rank 1 ({host}): {ckpt.checkpoint_dir(tmp_path / 'local1', 4)}: rank 0 resumes "
            "from this checkpoint, this rank does not see it"
        )
        assert out["fresh"] is None
