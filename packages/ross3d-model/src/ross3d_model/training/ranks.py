"""What every rank must agree on before the model is built (one node or several).

A run on several nodes needs one shared filesystem for the run folder (rank 0 alone writes the
metrics, the completion markers and the export; every rank writes its checkpoint shards and
resumes from them) and the same shards and pretrained files on every node. `Ranks` joins the
process group torchrun describes (with `train.collective_timeout_s`) and checks each of these
with one host-side gather, so a node that sees another folder, other shards or lacks a file
stops every rank at once with one line naming the rank and its host, instead of hanging in a
collective or silently training on other data.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

TOKEN_FILE = ".run_token"  # OUTPUT_DIR/.run_token: rank 0 writes it at every start


def world_size_from_env() -> int:
    """Processes of this run: torchrun's WORLD_SIZE, else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def join_process_group(timeout_s: float, deepspeed: bool) -> None:
    """Join (or start) the process group torchrun describes, when there is more than one
    process or DeepSpeed needs one: nccl on CUDA (the device of LOCAL_RANK), gloo on CPU, with a
    collective timeout of `timeout_s` (the default 10 minutes is shorter than rank 0 writing a
    7B export while the others wait). DeepSpeed's `init_distributed` then finds the group and
    keeps it, timeout included. A group that exists already (a second run in one process) is
    kept."""
    if dist.is_initialized() or not (world_size_from_env() > 1 or deepspeed):
        return
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else None
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group(
        "nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout_s), device_id=device
    )


class Ranks:
    """Host-side agreement between the processes of the group (or the one process)."""

    def __init__(self) -> None:
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.world_size = dist.get_world_size() if dist.is_initialized() else 1
        self.host = socket.gethostname()
        nccl = dist.is_initialized() and dist.get_backend() != "gloo"
        self._group = dist.new_group(backend="gloo") if nccl and self.world_size > 1 else None

    def gather(self, value) -> list:
        """`value` of every rank, in rank order, on every rank (a gloo all-gather)."""
        if self.world_size == 1:
            return [value]
        out: list = [None] * self.world_size
        dist.all_gather_object(out, value, group=self._group)
        return out

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier(group=self._group)

    def fail_together(self, error: str | None) -> None:
        """Every rank raises the first rank's error when any rank has one (else returns)."""
        errors = self.gather(None if error is None else (self.host, error))
        for rank, found in enumerate(errors):
            if found is not None:
                host, message = found
                where = f"rank {rank} ({host}): " if self.world_size > 1 else ""
                raise ValueError(where + message)

    def same_as_rank0(self, what: str, value, hint: str) -> None:
        """ValueError on every rank when some rank's `value` differs from rank 0's."""
        values = self.gather((self.host, value))
        expected = values[0][1]
        for rank, (host, got) in enumerate(values):
            if got != expected:
                if isinstance(got, dict) and isinstance(expected, dict):  # only what differs
                    keys = sorted(k for k in {*got, *expected} if got.get(k) != expected.get(k))
                    got = {k: got.get(k) for k in keys}
                    expected = {k: expected.get(k) for k in keys}
                raise ValueError(
                    f"rank {rank} ({host}) sees another {what} than rank 0: {_short(got)} vs "
                    f"{_short(expected)}; {hint}"
                )

    def check_run_folder(self, output_dir: Path) -> None:
        """Every rank sees the folder rank 0 writes: rank 0 writes a fresh token into
        OUTPUT_DIR/.run_token, all read it back after a barrier."""
        token_file = Path(output_dir) / TOKEN_FILE
        token = uuid.uuid4().hex if self.rank == 0 else None
        if token is not None:
            token_file.write_text(token + "\n")
        self.barrier()
        expected = self.gather(token)[0]
        seen = token_file.read_text().strip() if token_file.is_file() else None
        error = None
        if seen != expected:
            error = (
                f"{output_dir} is not the folder rank 0 writes ({TOKEN_FILE} "
                f"{'missing' if seen is None else 'differs'}): the run folder must be on one "
                "filesystem shared by all nodes"
            )
        self.fail_together(error)

    def agree_resume(self, output_dir: Path, resume: bool, latest) -> tuple[int, Path] | None:
        """The checkpoint every rank resumes from: rank 0 picks its newest complete one
        (`latest(output_dir)`), every rank checks that it sees that folder complete."""
        from ross3d_model.training.checkpointing import COMPLETE, checkpoint_dir

        found = latest(output_dir) if resume and self.rank == 0 else None
        step = self.gather(None if found is None else found[0])[0]
        if step is None:
            return None
        path = checkpoint_dir(output_dir, step)
        error = None
        if not (path / COMPLETE).is_file():
            error = f"{path}: rank 0 resumes from this checkpoint, this rank does not see it"
        self.fail_together(error)
        return step, path


def _short(value, most: int = 240) -> str:
    text = repr(value)
    return text if len(text) <= most else text[: most - 3] + "..."
