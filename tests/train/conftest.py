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
    """Demo scenes (1 annotated + 1 vision-only), instructions, BEV and 4-view shards; built
    once per test session even under pytest-xdist (the workers share the base temp folder)."""
    from filelock import FileLock
    from rich.console import Console
    from ross3d_model.demo import DemoConfig, prepare_data

    root = tmp_path_factory.getbasetemp().parent / "train-demo-data"
    with FileLock(str(root) + ".lock"):
        return prepare_data(DemoConfig(out=root, scenes=1), Console(quiet=True), reuse=True)
