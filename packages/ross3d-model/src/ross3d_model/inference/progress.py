"""The progress bar `predict` draws on rank 0 (stderr, so the predictions stay the only output)."""

from __future__ import annotations


class ProgressBar:
    """A rich progress bar (items, items/s, elapsed, ETA) on stderr, one task per benchmark."""

    def __init__(self, label: str = "") -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        speed = TextColumn("{task.fields[rate]}")
        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), speed,
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(stderr=True),
        )  # fmt: skip
        self._label, self._task = label, None

    def start(self, benchmark: str, total: int) -> None:
        self._bar.start()
        self._task = self._bar.add_task(f"{benchmark}{self._label}", total=total, rate="")

    def advance(self, n: int) -> None:
        self._bar.advance(self._task, n)
        speed = self._bar.tasks[-1].speed
        self._bar.update(self._task, rate="" if speed is None else f"{speed:.2f} items/s")

    def stop(self) -> None:
        self._bar.stop()
