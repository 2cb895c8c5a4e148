"""View masking for the cross-view loss: counts, randomness, and the overlap-aware greedy."""

import pytest
import torch
from ross3d_model.modeling.masking import choose_masked_views, num_masked_views


@pytest.mark.parametrize(
    ("views", "ratio", "expected"), [(32, 0.25, 8), (8, 0.25, 2), (6, 0.25, 2), (4, 0.1, 0)]
)
def test_random_masks_exactly_round_ratio_views(views, ratio, expected):
    g = torch.Generator().manual_seed(0)
    masked = choose_masked_views(views, ratio, generator=g, batch_size=5)
    assert masked.shape == (5, views) and masked.dtype == torch.bool
    assert masked.sum(dim=1).tolist() == [expected] * 5


def test_random_masks_vary_and_are_reproducible():
    masked = choose_masked_views(32, 0.25, generator=torch.Generator().manual_seed(1), batch_size=4)
    again = choose_masked_views(32, 0.25, generator=torch.Generator().manual_seed(1), batch_size=4)
    assert torch.equal(masked, again)
    assert len({tuple(row.tolist()) for row in masked}) == 4


def test_ratio_that_hides_every_view_is_rejected():
    with pytest.raises(ValueError, match="at least one must stay visible"):
        num_masked_views(1, 0.6)
    with pytest.raises(ValueError, match="mask ratio"):
        num_masked_views(8, 1.0)


def _two_pairs_overlap():
    # views 0/1 are near-duplicates, view 2 is half seen by 3, view 3 40 % seen by 2
    o = torch.full((4, 4), 0.1)
    o.fill_diagonal_(1.0)
    o[0, 1], o[1, 0] = 0.9, 0.8
    o[2, 3], o[3, 2] = 0.5, 0.4
    return o


def test_overlap_aware_picks_the_hand_computed_views():
    # step 1: scores 0.9 (view 0), 0.8, 0.5, 0.4 -> mask 0.
    # step 2 with M={0}: m=1 leaves 0 and 1 covered by 0.1 only -> 0.1; m=2 -> min(0.9, 0.5)=0.5;
    # m=3 -> min(0.9, 0.4)=0.4 -> mask 2. (Masking the two best-covered views {0, 1} would
    # leave each other's only good cover hidden.)
    overlap = _two_pairs_overlap().unsqueeze(0)
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        masked = choose_masked_views(4, 0.5, "overlap-aware", overlap_BVV=overlap, generator=g)
        assert masked[0].nonzero().flatten().tolist() == [0, 2]


def test_overlap_aware_breaks_ties_randomly_and_masks_exact_count():
    overlap = torch.ones(3, 8, 8)
    picks = set()
    for seed in range(6):
        g = torch.Generator().manual_seed(seed)
        masked = choose_masked_views(8, 0.25, "overlap-aware", overlap_BVV=overlap, generator=g)
        assert masked.shape == (3, 8) and masked.sum(dim=1).tolist() == [2, 2, 2]
        picks.update(tuple(row.nonzero().flatten().tolist()) for row in masked)
    assert len(picks) > 3


def test_overlap_aware_needs_a_valid_overlap_matrix():
    with pytest.raises(ValueError, match="needs overlap_BVV"):
        choose_masked_views(4, 0.5, "overlap-aware")
    with pytest.raises(ValueError, match=r"\[B, 4, 4\]"):
        choose_masked_views(4, 0.5, "overlap-aware", overlap_BVV=torch.ones(1, 4, 3))
    bad = torch.ones(1, 4, 4)
    bad[0, 1, 2] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        choose_masked_views(4, 0.5, "overlap-aware", overlap_BVV=bad)
    with pytest.raises(ValueError, match="unknown mask method"):
        choose_masked_views(4, 0.5, "nearest")
