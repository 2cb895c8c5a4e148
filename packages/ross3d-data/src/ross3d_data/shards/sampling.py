"""Epoch orders of (clip, instruction) examples, as the Ross3D recipe samples them.

``epoch_order(groups, seed=, epoch=, global_batch=, group_by_task=)`` returns indices into an
example list for one epoch. Its length is a multiple of ``global_batch`` (G), so global batch
b of the epoch is ``order[b * G:(b + 1) * G]`` and no batch straddles two epochs. Randomness is
a numpy PCG64 generator seeded by ``(seed, epoch)``: the same on every process, whatever the
world size.

* ``group_by_task=False``: a uniform random permutation of all N examples; the last N mod G
  examples of the permutation are dropped (a different random remainder every epoch).
* ``group_by_task=True`` (the recipe's ``--group_by_task_length``, public code
  ``ross3d/train/ross3d_trainer.py``, ``get_task_length_grouped_indices``): each task group
  (``TASK_GROUPS``: QA = ScanQA + SQA3D, caption = Scan2Cap, grounding = ScanRefer +
  Multi3DRefer; ``VISION_GROUP`` = vision-only clips) is permuted on its own and cut into
  blocks of G; each group's incomplete last block (< G examples) is dropped; the blocks of all
  groups are then shuffled together. So every global batch holds one group, and vision-only
  clips are mixed in as whole batches of their own at uniformly random positions (their share
  of the steps = their share of the examples). Difference from the public code: it drops each
  group's last block even when it is complete, and reorders a block by length before splitting
  it over devices; here a complete last block is kept and the order inside a block is random.

``rank_slice(order, rank, world_size)``: a disjoint, equal-length slice per rank (the last
``len(order) mod world_size`` indices dropped), for per-rank loaders (``make_loader``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TASK_GROUPS = {
    "scanqa": "qa",
    "sqa3d": "qa",
    "scan2cap": "caption",
    "scanrefer": "grounding",
    "multi3drefer": "grounding",
}
VISION_GROUP = "vision"


def task_group(instruction: dict | None) -> str:
    """Task group of an example (``VISION_GROUP`` for a vision-only clip)."""
    if instruction is None:
        return VISION_GROUP
    task = instruction["task"]
    if task not in TASK_GROUPS:
        raise ValueError(f"instruction {instruction.get('id')!r}: unknown task {task!r}")
    return TASK_GROUPS[task]


def _rng(seed: int, epoch: int) -> np.random.Generator:
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got {seed}, {epoch}")
    return np.random.default_rng([seed, epoch])


def epoch_order(
    groups: Sequence[str], *, seed: int, epoch: int, global_batch: int, group_by_task: bool
) -> list[int]:
    """Example indices of one epoch (see the module docstring); ``groups[i]`` = example i's
    task group. ValueError when not even one global batch can be formed."""
    if global_batch < 1:
        raise ValueError(f"global_batch must be >= 1, got {global_batch}")
    rng = _rng(seed, epoch)
    if not group_by_task:
        perm = rng.permutation(len(groups))
        order = perm[: len(perm) - len(perm) % global_batch].tolist()
    else:
        blocks = []
        for name in sorted(set(groups)):
            members = np.flatnonzero(np.asarray(groups, dtype=object) == name)
            perm = members[rng.permutation(len(members))]
            full = len(perm) - len(perm) % global_batch
            blocks += [perm[i : i + global_batch] for i in range(0, full, global_batch)]
        order = [int(i) for b in rng.permutation(len(blocks)) for i in blocks[b]]
    if not order:
        raise ValueError(
            f"{len(groups)} examples give no full global batch of {global_batch}"
            + (" in any task group" if group_by_task else "")
        )
    return order


def rank_slice(order: Sequence[int], rank: int, world_size: int) -> list[int]:
    """Rank ``rank``'s share: every ``world_size``-th index from ``rank``, equal lengths (the
    last ``len(order) mod world_size`` indices are dropped)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    usable = len(order) - len(order) % world_size
    return list(order[rank:usable:world_size])
