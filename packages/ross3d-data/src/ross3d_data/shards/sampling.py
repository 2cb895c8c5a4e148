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

Semi-supervised mixing: vision-only clips of each dataset form their own group
(``vision_group(dataset)``, e.g. ``vision:arkitscenes``). ``blocks_per_group`` fixes how many
global batches a group contributes to an epoch instead of "all its full blocks": its members are
permuted and, when they run short, permuted again and appended (so a small source is repeated, a
large one subsampled, never a clip twice before all were seen). ``source_blocks(text_blocks,
shares)`` turns shares of the optimiser steps into those block counts.

``rank_slice(order, rank, world_size)``: a disjoint, equal-length slice per rank (the last
``len(order) mod world_size`` indices dropped), for per-rank loaders (``make_loader``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

TASK_GROUPS = {
    "scanqa": "qa",
    "sqa3d": "qa",
    "scan2cap": "caption",
    "scanrefer": "grounding",
    "multi3drefer": "grounding",
}
VISION_GROUP = "vision"


def vision_group(dataset: str | None) -> str:
    """Group of a vision-only clip of ``dataset`` (None: the single legacy vision group)."""
    return VISION_GROUP if dataset is None else f"{VISION_GROUP}:{dataset}"


def is_vision_group(group: str) -> bool:
    return group == VISION_GROUP or group.startswith(VISION_GROUP + ":")


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
    groups: Sequence[str],
    *,
    seed: int,
    epoch: int,
    global_batch: int,
    group_by_task: bool,
    blocks_per_group: Mapping[str, int] | None = None,
) -> list[int]:
    """Example indices of one epoch (see the module docstring); ``groups[i]`` = example i's
    task group. ValueError when not even one global batch can be formed."""
    if global_batch < 1:
        raise ValueError(f"global_batch must be >= 1, got {global_batch}")
    if blocks_per_group and not group_by_task:
        raise ValueError("blocks_per_group needs group_by_task (a share is counted in batches)")
    rng = _rng(seed, epoch)
    if not group_by_task:
        perm = rng.permutation(len(groups))
        order = perm[: len(perm) - len(perm) % global_batch].tolist()
    else:
        fixed = dict(blocks_per_group or {})
        blocks = []
        for name in sorted(set(groups)):
            members = np.flatnonzero(np.asarray(groups, dtype=object) == name)
            if name in fixed:
                blocks += _fixed_blocks(members, fixed[name], global_batch, rng)
                continue
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


def _fixed_blocks(
    members: np.ndarray, n_blocks: int, global_batch: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """``n_blocks`` blocks of ``global_batch`` drawn from successive permutations of
    ``members`` (each member once per pass)."""
    if n_blocks < 0:
        raise ValueError(f"a group's block count must be >= 0, got {n_blocks}")
    need = n_blocks * global_batch
    passes = [members[rng.permutation(len(members))] for _ in range(-(-need // len(members)))]
    drawn = np.concatenate(passes)[:need] if passes else members[:0]
    return [drawn[i : i + global_batch] for i in range(0, need, global_batch)]


def source_blocks(text_blocks: int, shares: Mapping[str, float]) -> dict[str, int]:
    """Global batches per epoch for each vision-only group so that group g takes
    ``shares[g]`` of all steps, the ``text_blocks`` text batches taking the rest:
    ``n_g = round(shares[g] * text_blocks / (1 - sum(shares)))``."""
    total = sum(shares.values())
    if any(s <= 0 for s in shares.values()) or total >= 1:
        raise ValueError(f"vision-only shares must be > 0 and sum below 1, got {dict(shares)}")
    if text_blocks < 1:
        raise ValueError("a share of the steps needs at least one text batch to be relative to")
    return {g: round(s * text_blocks / (1 - total)) for g, s in shares.items()}


def full_blocks(counts: Mapping[str, int], global_batch: int) -> dict[str, int]:
    """Full global batches each group gives on its own (``counts``: group -> examples; its
    incomplete last block dropped)."""
    return {g: n // global_batch for g, n in counts.items()}


def epoch_steps(
    counts: Mapping[str, int],
    global_batch: int,
    group_by_task: bool,
    blocks_per_group: Mapping[str, int] | None = None,
) -> int:
    """Global batches (optimiser steps) of one ``epoch_order`` epoch of ``counts`` (group ->
    examples): task-grouped, each group gives its full blocks or its fixed count; else all
    examples together give ``N // global_batch``."""
    if global_batch < 1:
        raise ValueError(f"global batch must be >= 1, got {global_batch}")
    if any(n < 0 for n in counts.values()):
        raise ValueError(f"example counts must be >= 0: {dict(counts)}")
    if not group_by_task:
        return sum(counts.values()) // global_batch
    blocks = full_blocks(counts, global_batch) | dict(blocks_per_group or {})
    return sum(blocks[g] for g in counts)


def rank_slice(order: Sequence[int], rank: int, world_size: int) -> list[int]:
    """Rank ``rank``'s share: every ``world_size``-th index from ``rank``, equal lengths (the
    last ``len(order) mod world_size`` indices are dropped)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    usable = len(order) - len(order) % world_size
    return list(order[rank:usable:world_size])
