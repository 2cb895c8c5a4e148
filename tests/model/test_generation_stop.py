"""Generation stops at the end-of-turn token `<|im_end|>` (not at max_new_tokens), per row, and
predict on CPU says what it will cost. The LM head is replaced by a scripted one that emits
a known token sequence per row, so the stopping rule is checked against known answers."""

from __future__ import annotations

import contextlib

import torch
from model_examples import instruction, make_example
from ross3d_model.inference.cost import cpu_cost_note
from ross3d_model.inference.decoding import extend, greedy
from ross3d_model.inference.generation import predict
from ross3d_model.inputs.batch import collate_examples
from torch import nn


class ScriptedHead(nn.Module):
    """An LM head whose argmax at decoding step t of row b is `scripts[b][t]` (the last entry
    repeated past the end); counts its calls."""

    def __init__(self, scripts: list[list[int]], vocab: int) -> None:
        super().__init__()
        self.scripts, self.vocab, self.calls = scripts, vocab, 0

    def forward(self, hidden_BD: torch.Tensor) -> torch.Tensor:
        step = self.calls
        self.calls += 1
        logits = torch.zeros(hidden_BD.shape[0], self.vocab)
        for b, script in enumerate(self.scripts):
            logits[b, script[min(step, len(script) - 1)]] = 1.0
        return logits


@contextlib.contextmanager
def scripted(model, scripts):
    """The model's LM head replaced by a `ScriptedHead` inside the block, restored after (the
    model is shared by the session's tests; monkeypatch would delete a submodule on undo)."""
    lm = model.language_model
    original = lm.lm_head
    lm.lm_head = ScriptedHead(scripts, original.out_features)
    try:
        yield lm.lm_head
    finally:
        lm.lm_head = original


@torch.no_grad()
def test_greedy_stops_each_row_at_im_end(tiny_model):
    eos = tiny_model.special_ids["im_end"]
    lm = tiny_model.language_model
    embeds = torch.randn(2, 3, lm.config.hidden_size, generator=torch.Generator().manual_seed(0))
    hidden, rows = extend(lm.model, embeds, torch.ones(2, 3, dtype=torch.bool), None)
    with scripted(tiny_model, [[5, 6, eos, 7], [8, eos, 9]]) as head:
        out = greedy(lm, rows, hidden[:, -1], max_new_tokens=512, eos=eos)
    assert out == [[5, 6], [8]]  # im_end itself and anything after it left out
    assert head.calls == 3  # the batch stops at the step the last row says im_end, not at 512


@torch.no_grad()
def test_greedy_without_im_end_runs_to_the_limit(tiny_model):
    eos = tiny_model.special_ids["im_end"]
    lm = tiny_model.language_model
    embeds = torch.zeros(1, 2, lm.config.hidden_size)
    hidden, rows = extend(lm.model, embeds, torch.ones(1, 2, dtype=torch.bool), None)
    with scripted(tiny_model, [[5]]) as head:
        assert greedy(lm, rows, hidden[:, -1], max_new_tokens=7, eos=eos) == [[5] * 7]
    assert head.calls == 7


@torch.no_grad()
def test_predicted_answer_ends_at_im_end(tiny_model, tiny_tokenizer, tiny_cfg):
    example = make_example(instruction("scanqa", split="val", eval={"question_id": "q1"}), seed=1)
    batch = collate_examples([example], tiny_tokenizer, tiny_cfg, train=False)
    answer = tiny_tokenizer.encode("brown chair", add_special_tokens=False)
    eos = tiny_model.special_ids["im_end"]
    with scripted(tiny_model, [[*answer, eos, *answer]]) as head:
        (record,) = predict(tiny_model, batch, tiny_tokenizer, max_new_tokens=512)
    assert record == {"question_id": "q1", "answer": "brown chair"}
    assert head.calls == len(answer) + 1


def test_cpu_cost_note_names_items_tokens_and_the_option():
    line = cpu_cost_note("cpu", "scanqa", 18, 512, "reference")
    assert line.startswith("scanqa: 18 items on CPU, each decoding up to 512 new tokens")
    assert line.endswith(
        "the reference protocol's default: pass --max-new-tokens 16 for a quick run"
    )
    given = cpu_cost_note("cpu", "scanqa", 18, 16, None)
    assert "up to 16 new tokens" in given and "--max-new-tokens" not in given
    grounding = cpu_cost_note("cpu", "scanrefer", 5, 512, "reference")
    assert grounding == "scanrefer: 5 items on CPU, one forward pass each (no generation)"
    assert cpu_cost_note("cpu", "scanqa", 0, 512, "reference") is None
    assert cpu_cost_note("cpu", "sqa3d", 1, 8, None).startswith("sqa3d: 1 item on CPU,")
    assert cpu_cost_note("cuda:0", "scanqa", 18, 512, "reference") is None
