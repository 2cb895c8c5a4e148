"""Errors raised by the data readers."""

from __future__ import annotations

from pathlib import Path


class SceneError(Exception):
    """A scene file is missing, corrupt or inconsistent.

    The message always names the file (``path``) and what is wrong with it (``why``), so a
    failing scene in a batch job can be fixed without a debugger.
    """

    def __init__(self, path: Path | str, why: str) -> None:
        self.path = Path(path)
        self.why = why
        super().__init__(f"{self.path}: {why}")

    def __reduce__(self):  # keep (path, why) across process pools
        return (type(self), (self.path, self.why))
