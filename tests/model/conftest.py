"""Fixtures of the model tests: the tiny config, tokenizer and model, and mixed examples
(built by ``model_examples``, a module with a unique name so test files can import it)."""

from __future__ import annotations

import pytest
import torch
from model_examples import instruction, make_example
from ross3d_model.configuration.model import load_config
from ross3d_model.inputs.tokenizer import build_tiny_tokenizer


@pytest.fixture(scope="session")
def tiny_cfg():
    return load_config("tiny")


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session")
def tiny_model(tiny_cfg, tiny_tokenizer):
    from ross3d_model.inputs.tokenizer import special_token_ids
    from ross3d_model.weights.build import from_config

    torch.manual_seed(0)
    model = from_config(tiny_cfg)
    model.set_special_ids(special_token_ids(tiny_tokenizer))
    model.eval()  # no dropout anyway; tests that train build their own model
    return model


@pytest.fixture(scope="session")
def mixed_examples():
    """One example per kind: QA, caption (<coord>), ScanRefer, Multi3DRefer, vision-only."""
    return [
        make_example(instruction("scanqa"), seed=1),
        make_example(instruction("scan2cap"), seed=2),
        make_example(instruction("scanrefer"), seed=3),
        make_example(instruction("multi3drefer", object_ids=[10, 11]), seed=4),
        make_example(None, seed=5),
    ]
