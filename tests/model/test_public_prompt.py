"""predict's reference protocol builds the public eval input token for token.

`public_eval_ids` below restates, rule by rule, how every public `ross3d/eval/model_*.py`
(ross3d@ef570e7; `preprocess_qwen`, `model_scanqa.py` lines 31-82, the same function in the
other four files) turns a question file line into input ids, and the test compares those ids
with what `collate_examples(..., spatial_prompt=False)` gives for the same instruction with the
tiny tokenizer. The raw human text is the public preprocessing's (`process_scanqa.py` ~34,
`process_sqa3d.py` ~45, `process_scan2cap.py` ~134, `process_scanrefer.py` ~91 and
`process_multi3drefer.py` ~68, each `<image>` + separator + our prompt); the grounding files
pass the assistant turn `<ground>` (`model_scanrefer.py` ~152, `model_multi3drefer.py` ~151),
the text files an empty one (`{'from': 'gpt', 'value': None}`, `model_scanqa.py` ~156).
"""

# ruff: noqa: RUF005  (list concatenation kept as the public lines write it)

from __future__ import annotations

import re

import pytest
from model_examples import instruction, make_example
from ross3d_data.instructions.prompts import IMAGE_SEPARATOR
from ross3d_model.inputs.batch import collate_examples
from ross3d_model.inputs.tokenizer import IM_END, IM_START, IMAGE_TOKEN

IMAGE_TOKEN_INDEX = -200  # ross3d/constants.py: the id spliced in for <image>
TASKS = ("scanqa", "sqa3d", "scan2cap", "scanrefer", "multi3drefer")


def _ids(tok, text: str) -> list[int]:
    # `tokenizer(text).input_ids`: Qwen2's tokenizer adds no BOS/EOS, nor does the tiny one
    return tok(text, add_special_tokens=False).input_ids


def public_eval_ids(tok, human: str, gpt: str | None, system: str) -> list[int]:
    """`preprocess_qwen(sources, tokenizer, has_image=True)` of model_scanqa.py, line by line."""
    roles = {"human": "<|im_start|>user", "gpt": "<|im_start|>assistant"}  # line 32
    im_start, im_end = tok.convert_tokens_to_ids([IM_START, IM_END])  # line 34
    nl_tokens = _ids(tok, "\n")  # line 35
    _system = _ids(tok, "system") + nl_tokens  # line 36
    input_id = [im_start] + _system + _ids(tok, system) + [im_end] + nl_tokens  # lines 48-49
    for sender, value in (("human", human), ("gpt", gpt)):  # line 52
        role = roles[sender]  # line 53
        if value is not None and "<image>" in value:  # line 54
            texts = value.split("<image>")  # line 56
            _input_id = _ids(tok, role) + nl_tokens  # line 57
            for i, text in enumerate(texts):  # lines 58-61
                _input_id += _ids(tok, text)
                if i < len(texts) - 1:
                    _input_id += [IMAGE_TOKEN_INDEX] + nl_tokens
            _input_id += [im_end] + nl_tokens  # line 62
        elif value is None:  # lines 65-66
            _input_id = _ids(tok, role) + nl_tokens
        else:  # line 68
            _input_id = _ids(tok, role) + nl_tokens + _ids(tok, value) + [im_end] + nl_tokens
        input_id += _input_id  # line 69
    return input_id


def _public_line(task: str, prompt: str) -> tuple[str, str | None]:
    """(human value, gpt value) of the public question file for our prompt."""
    human = "<image>" + IMAGE_SEPARATOR[task] + prompt
    return human, ("<ground>" if task in ("scanrefer", "multi3drefer") else None)


@pytest.mark.parametrize("task", TASKS)
def test_reference_input_is_the_public_eval_input(tiny_cfg, tiny_tokenizer, task):
    inst = instruction(task, boxes=[[0.0, 0.0, 2.0, 0.6, 0.6, 0.4]] if task == "scan2cap" else [])
    batch = collate_examples(
        [make_example(inst)], tiny_tokenizer, tiny_cfg, train=False, spatial_prompt=False
    )
    ours = batch["input_ids"][0][batch["attention_mask"][0].bool()].tolist()
    human, gpt = _public_line(task, inst["prompt"])
    public = public_eval_ids(tiny_tokenizer, human, gpt, tiny_cfg.text.system_prompt)
    image_id = tiny_tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert [image_id if i == IMAGE_TOKEN_INDEX else i for i in public] == ours


def test_public_input_text(tiny_cfg, tiny_tokenizer):
    """The decoded input of a QA and a grounding item, as docs/architecture.md states it."""
    examples = [make_example(instruction("scanqa")), make_example(instruction("scanrefer"))]
    batch = collate_examples(examples, tiny_tokenizer, tiny_cfg, train=False, spatial_prompt=False)
    texts = [
        tiny_tokenizer.decode(batch["input_ids"][i][batch["attention_mask"][i].bool()])
        for i in range(2)
    ]
    system = f"{IM_START}system\nYou are a helpful assistant.{IM_END}\n"
    qa = "What color is the chair? Answer the question simply."
    assert texts[0] == f"{system}{IM_START}user\n<image>\n {qa}{IM_END}\n{IM_START}assistant\n"
    assert re.fullmatch(
        re.escape(f"{system}{IM_START}user\n<image>\nIdentify the object according to ")
        + r".*"
        + re.escape(f"{IM_END}\n{IM_START}assistant\n<ground>{IM_END}\n"),
        texts[1],
        flags=re.S,
    )
