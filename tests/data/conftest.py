"""Shared fixtures for the data tests.

``demo_scenes``: two demo scenes (``ross3d_data.synthetic.scenes.make_demo``) made once per session; treat
them as read-only. ``tiny_scene``: a factory writing a small hand-built scan folder (see
``tiny_scenes.make_tiny_scene``). ``real_data``: the real TUM sample folder, or a skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tiny_scenes import make_tiny_scene


@pytest.fixture(scope="session")
def demo_scenes(tmp_path_factory) -> list[Path]:
    from ross3d_data.synthetic.scenes import make_demo

    return make_demo(tmp_path_factory.mktemp("demo"), n_scenes=2, seed=0)


@pytest.fixture
def real_data() -> Path:
    root = os.environ.get("ROSS3D_REAL_DATA")
    if not root:
        pytest.skip("set ROSS3D_REAL_DATA=/work/shared/data to run tests on the real TUM sample")
    path = Path(root) / "tum_fr3_teddy"
    if not path.is_dir():
        pytest.skip(f"ROSS3D_REAL_DATA={root} has no tum_fr3_teddy folder")
    return path


@pytest.fixture
def tiny_scene(tmp_path):
    """Factory: ``tiny_scene(name=..., n_frames=5, invalid=(2,), export=False, root=None)``."""

    def make(root=None, **kw):
        return make_tiny_scene(root or tmp_path, **kw)

    return make
