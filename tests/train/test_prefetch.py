"""Background collation: order, bad samples handed on as failures, stale caches stop the run."""

from __future__ import annotations

import pytest
from ross3d_data.cache.store import StaleCacheError
from ross3d_model.training.data import MicroBatch
from ross3d_model.training.prefetch import Prefetcher, collate_one


class _Task:
    """collate returns the items' sum; item -1 is a corrupt sample, item -2 a stale cache."""

    def collate(self, items, seed):
        if -1 in items:
            raise ValueError("corrupt frame")
        if -2 in items:
            raise StaleCacheError("clip-cache/patch_masks.h5: built for other shards")
        return sum(items)

    def count_tokens(self, batch):
        return 10 * batch


def _stream(item_lists):
    return iter(MicroBatch(i, 0, items) for i, items in enumerate(item_lists))


@pytest.mark.parametrize("depth", [0, 2])
def test_order_kept_and_a_bad_sample_is_handed_on_as_a_failure(depth):
    task = _Task()
    fetched = Prefetcher(_stream([[1, 2], [-1], [4]]), lambda m: collate_one(task, m, 0), depth)
    got = list(fetched)
    fetched.close()
    assert [c.micro.index for c in got] == [0, 1, 2]
    assert [c.batch for c in got] == [3, None, 4] and [c.tokens for c in got] == [30, 0, 40]
    assert got[1].error == "ValueError: corrupt frame" and got[0].error is None


@pytest.mark.parametrize("depth", [0, 2])
def test_a_stale_clip_cache_stops_the_run_instead_of_being_skipped(depth):
    task = _Task()
    fetched = Prefetcher(_stream([[1], [-2], [3]]), lambda m: collate_one(task, m, 0), depth)
    assert next(fetched).batch == 1
    with pytest.raises(StaleCacheError, match="built for other shards"):
        next(fetched)
    fetched.close()
