"""Loss combination and the cross-view schedule."""

import pytest
import torch
from ross3d_model.configuration.parts import ObjectiveConfig
from ross3d_model.modeling.objective import combine_losses, cross_view_active


def test_total_is_weighted_sum_of_present_losses():
    cfg = ObjectiveConfig(lm_weight=1.0, cross_view_weight=0.5, bev_weight=2.0)
    lm = torch.tensor(1.5, requires_grad=True)
    out = combine_losses(
        {"lm": lm, "cross_view": torch.tensor(4.0), "bev": torch.tensor(0.25), "grounding": None},
        cfg,
    )
    assert set(out) == {"lm", "cross_view", "bev", "grounding", "total"}
    assert out["grounding"] is None
    assert out["cross_view"].item() == 4.0  # unweighted, for logging
    assert out["total"].item() == pytest.approx(1.5 + 0.5 * 4.0 + 2.0 * 0.25)
    out["total"].backward()
    assert lm.grad.item() == 1.0


def test_missing_names_count_as_absent():
    out = combine_losses({"grounding": torch.tensor(0.7)}, ObjectiveConfig(grounding_weight=3.0))
    assert out["lm"] is None and out["bev"] is None and out["cross_view"] is None
    assert out["total"].item() == pytest.approx(2.1)


def test_bad_inputs_are_rejected():
    cfg = ObjectiveConfig()
    with pytest.raises(ValueError, match="unknown loss names"):
        combine_losses({"lm": torch.tensor(1.0), "vm": torch.tensor(1.0)}, cfg)
    with pytest.raises(ValueError, match="no loss at all"):
        combine_losses({"lm": None, "bev": None}, cfg)
    with pytest.raises(ValueError, match="scalar"):
        combine_losses({"lm": torch.ones(2)}, cfg)


def test_cross_view_runs_every_kth_step():
    cfg = ObjectiveConfig(cross_view_every=4)
    assert [s for s in range(13) if cross_view_active(s, cfg)] == [0, 4, 8, 12]
    assert all(cross_view_active(s, ObjectiveConfig(cross_view_every=1)) for s in range(5))
    with pytest.raises(ValueError, match="step"):
        cross_view_active(-1, cfg)


@pytest.mark.parametrize(
    "kwargs", [{"cross_view_every": 0}, {"bev_weight": -1.0}, {"lm_weight": float("nan")}]
)
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        ObjectiveConfig(**kwargs)
