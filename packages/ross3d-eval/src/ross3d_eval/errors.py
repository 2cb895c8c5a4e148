"""Errors raised on bad evaluation input."""

from __future__ import annotations

from pathlib import Path


class EvalInputError(ValueError):
    """Bad input file: the message names the file, the line (or list item) and what is wrong."""

    def __init__(
        self, path: Path | str, why: str, line: int | None = None, item: int | None = None
    ):
        where = str(path)
        if line is not None:
            where += f":{line}"
        elif item is not None:
            where += f" (item {item})"
        super().__init__(f"{where}: {why}")
        self.path = Path(path)
        self.line = line
        self.item = item
        self.why = why


class JavaNotFoundError(RuntimeError):
    """No Java runtime for METEOR / the PTB tokenizer."""
