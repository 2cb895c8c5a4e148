"""Shared fixtures of the training tests: the toy task and (built once) demo shards."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from toy import ToyTask, toy_examples


@pytest.fixture
def toy_task() -> ToyTask:
    return ToyTask(toy_examples(10))


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> dict:
    """Demo scenes (2 annotated + 1 vision-only), instructions, BEV and 4-view shards."""
    from rich.console import Console
    from ross3d_model.demo import DemoConfig, prepare_data

    out = tmp_path_factory.mktemp("demo")
    cfg = DemoConfig(out=out, scenes=2)
    return prepare_data(cfg, Console(quiet=True))
