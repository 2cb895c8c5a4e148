import pytest
from ross3d_model.training.data import micro_batches


def _take(n, **kwargs):
    stream = micro_batches(lambda epoch: iter(range(7)), **kwargs)
    return [next(stream) for _ in range(n)]


def test_two_processes_see_what_one_process_with_double_accumulation_sees():
    one = _take(6, micro_batch_size=2, world_size=1, rank=0)
    r0 = _take(3, micro_batch_size=2, world_size=2, rank=0)
    r1 = _take(3, micro_batch_size=2, world_size=2, rank=1)
    assert [m.index for m in r0] == [0, 2, 4] and [m.index for m in r1] == [1, 3, 5]
    for step in range(3):  # step s: global micro-batches 2s, 2s+1 in both layouts
        assert {tuple(m.items) for m in one[2 * step : 2 * step + 2]} == {
            tuple(r0[step].items),
            tuple(r1[step].items),
        }
    # 7 items per epoch: micro-batch 3 = [6, 0] straddles the epoch boundary.
    assert one[3].items == [6, 0] and one[3].epoch == 0 and one[4].epoch == 1


def test_start_skips_exactly_the_used_micro_batches():
    full = _take(5, micro_batch_size=3, world_size=1, rank=0)
    resumed = _take(2, micro_batch_size=3, world_size=1, rank=0, start=3)
    assert [m.items for m in resumed] == [m.items for m in full[3:5]]
    assert [m.index for m in resumed] == [3, 4]


def test_empty_data_is_a_clear_error():
    stream = micro_batches(lambda epoch: iter(()), micro_batch_size=1, world_size=1, rank=0)
    with pytest.raises(ValueError, match="no example"):
        next(stream)
    with pytest.raises(ValueError, match="rank 2 outside"):
        next(micro_batches(lambda e: iter(range(3)), micro_batch_size=1, world_size=2, rank=2))
