"""The input-file error every package raises for a bad benchmark or box file, and its JSON reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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


def read_json(path: Path | str) -> Any:
    """A JSON file's content; EvalInputError naming the file when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise EvalInputError(path, "file not found")
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise EvalInputError(path, f"malformed JSON at line {e.lineno} ({e.msg})") from None
