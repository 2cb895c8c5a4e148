"""Errors raised on bad evaluation input."""

from __future__ import annotations

from ross3d_benchmarks.errors import EvalInputError, read_json

__all__ = ["EvalInputError", "JavaNotFoundError", "read_json"]


class JavaNotFoundError(RuntimeError):
    """No Java runtime for METEOR / the PTB tokenizer."""
