"""One graph per micro-batch: with `one_graph` (the training default) every trainable parameter
gets a gradient whatever the sample type, the idle heads' gradients are exactly 0 and the loss
values are those of the forward without the idle terms."""

import pytest
import torch
from model_examples import instruction, make_example
from ross3d_model.inputs.batch import collate_examples

QA = instruction("scanqa")
CAPTION = instruction("scan2cap")
GROUND = instruction("scanrefer")
MASKS = torch.tensor([[False, True, False, False]])


def _run(model, batch, cross_view: bool, one_graph: bool) -> tuple[dict, dict]:
    model.zero_grad(set_to_none=True)
    masks = MASKS.expand(len(batch["is_grounding"]), -1) if cross_view else None
    gen = torch.Generator().manual_seed(0)
    out = model(batch, cross_view=cross_view, masked_views=masks, generator=gen,
                one_graph=one_graph)  # fmt: skip
    out.loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    return out.losses, grads


@pytest.mark.parametrize(
    ("kind", "examples", "cross_view"),
    [
        ("qa", [QA], False),
        ("caption", [CAPTION], False),
        ("qa on a cross-view step", [QA], True),
        ("grounding on a cross-view step", [GROUND], True),
        ("vision-only", [None], False),
        ("grounding + vision-only", [GROUND, None], False),
    ],
)
def test_every_trainable_parameter_gets_a_gradient_and_losses_are_unchanged(
    tiny_model, tiny_cfg, tiny_tokenizer, kind, examples, cross_view
):
    batch = collate_examples(
        [make_example(e, seed=i + 1) for i, e in enumerate(examples)], tiny_tokenizer, tiny_cfg
    )
    plain_losses, plain_grads = _run(tiny_model, batch, cross_view, one_graph=False)
    losses, grads = _run(tiny_model, batch, cross_view, one_graph=True)
    idle = sorted(n for n, g in plain_grads.items() if g is None)
    assert idle, f"{kind}: every head already used, the case tests nothing"
    assert all(g is not None for g in grads.values()), f"{kind}: no gradient for some"
    for name in idle:  # the idle heads get an exactly-zero gradient
        assert not grads[name].any(), name
    for name, g in plain_grads.items():  # the others exactly what they got without idle terms
        if g is not None:
            assert torch.equal(grads[name], g), name
    for key, value in plain_losses.items():
        assert (losses[key] is None) == (value is None), key
        if value is not None:
            assert losses[key].item() == value.item(), key


def test_idle_heads_by_sample_type(tiny_model, tiny_cfg, tiny_tokenizer):
    """Which heads are idle without the trick (known routing): grounding has no LM / denoiser
    work, a vision-only clip no LM / grounding, a non-cross-view step no view branch."""

    def idle_modules(example, cross_view):
        batch = collate_examples([make_example(example, seed=1)], tiny_tokenizer, tiny_cfg)
        _, grads = _run(tiny_model, batch, cross_view, one_graph=False)
        return {_module(n) for n, g in grads.items() if g is None}

    assert idle_modules(QA, False) == {"ground_head", "view branch"}
    assert idle_modules(QA, True) == {"ground_head"}
    assert idle_modules(GROUND, True) == {"lm_head", "view branch", "bev branch", "denoiser"}
    assert idle_modules(None, False) == {"lm_head", "ground_head", "view branch"}


def _module(name: str) -> str:
    branch = "reconstructor.denoiser.branches."
    if name.startswith(branch):
        return name[len(branch) :].split(".")[0] + " branch"
    if name.startswith("reconstructor.denoiser."):
        return "denoiser"
    return name.removeprefix("language_model.").split(".")[0]


def test_every_sample_type_calls_the_same_trainable_modules_in_the_same_order(
    tiny_model, tiny_cfg, tiny_tokenizer
):
    """ZeRO-3 gathers a module's parameters (a collective) at each call and ZeRO-2 buckets
    gradients in backward order: ranks with different sample types must call the trainable
    modules identically. Checked on micro-batches of 2 mixing the types."""
    owners = {
        name: module
        for name, module in tiny_model.named_modules()
        if any(p.requires_grad for p in module.parameters(recurse=False))
    }
    calls: list[str] = []
    hooks = [
        module.register_forward_pre_hook(lambda m, args, name=name: calls.append(name))
        for name, module in owners.items()
    ]
    sequences = {}
    try:
        for kind, examples in {
            "qa + caption": [QA, CAPTION],
            "grounding + vision-only": [GROUND, None],
            "vision-only x2": [None, None],
            "grounding x2": [GROUND, GROUND],
        }.items():
            for cross_view in (False, True):
                batch = collate_examples(
                    [make_example(e, seed=i + 1) for i, e in enumerate(examples)],
                    tiny_tokenizer,
                    tiny_cfg,
                )
                calls.clear()
                _run(tiny_model, batch, cross_view, one_graph=True)
                sequences[kind, cross_view] = list(calls)
    finally:
        for hook in hooks:
            hook.remove()
    first = next(iter(sequences.values()))
    assert "ground_head" in first and "language_model.lm_head" in first
    for key, sequence in sequences.items():
        assert sequence == first, key
