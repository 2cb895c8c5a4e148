"""What a `predict` run on CPU will cost, said before it starts (`ross3d-model predict`)."""

from __future__ import annotations

from ross3d_benchmarks import GROUNDING_TASKS


def cpu_cost_note(
    device: str, task: str, n_items: int, new_tokens: int, default_of: str | None
) -> str | None:
    """One line: `n_items` items of `task` on CPU and what each costs (None on CUDA or with
    nothing to do). Text items decode token by token until `<|im_end|>` or `new_tokens`, and a
    small or untrained model may never say `<|im_end|>` early. `default_of`: the inference
    protocol whose default `new_tokens` is (the line then suggests `--max-new-tokens`), None
    when the user chose it."""
    if not device.startswith("cpu") or n_items == 0:
        return None
    items = f"{n_items} item{'s' * (n_items != 1)} on CPU"
    if task in GROUNDING_TASKS:
        return f"{task}: {items}, one forward pass each (no generation)"
    hint = (
        ""
        if default_of is None
        else f"; the {default_of} protocol's default: pass --max-new-tokens 16 for a quick run"
    )
    return (
        f"{task}: {items}, each decoding up to {new_tokens} new tokens until "
        f"<|im_end|> (a small or untrained model may never stop early){hint}"
    )
