"""A small runner for per-scene batch jobs, shared by every ``ross3d-data`` command.

Usage::

    summary = run_scene_jobs(
        [(scene_id, payload), ...],   # payload: anything picklable, passed to fn
        fn,                           # module-level fn(payload) -> str | None (a short note)
        workers=4,                    # > 1: a process pool (spawn), 1: in this process
        desc="export frames",
        is_done=lambda payload: ...,  # output already complete? then skipped ...
        overwrite=False,              # ... unless overwrite
    )
    summary.print()                   # rich table: counts + every failed scene with its reason
    raise typer.Exit(summary.exit_code)

One failing scene never stops the others: its exception becomes a ``failed`` result whose
``detail`` is the error message (a ``SceneError`` names the file). A rich progress bar shows
progress on stderr.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ross3d_data.core.errors import SceneError

Status = Literal["done", "skipped", "failed"]


def make_out_dir(out: Path) -> Path:
    """Create a command's output folder; ValueError naming it when a file is in the way."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: the output must be a folder, but a file has that name")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        raise ValueError(f"{out}: cannot create the output folder ({err.strerror})") from None
    return out


@dataclass(frozen=True)
class JobResult:
    """Outcome of one scene: ``detail`` is the fn's note (done) or the failure reason."""

    name: str
    status: Status
    detail: str = ""
    seconds: float = 0.0


@dataclass
class JobSummary:
    """All results of a run, in input order."""

    desc: str
    results: list[JobResult] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[JobResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def exit_code(self) -> int:
        """0 when nothing failed, else 1 (what a CLI should exit with)."""
        return 1 if self.failed else 0

    def table(self) -> Table:
        title = (
            f"{self.desc}: {self.count('done')} done, {self.count('skipped')} skipped "
            f"(already complete), {self.count('failed')} failed"
        )
        table = Table(title=title, title_justify="left")
        for col in ("scene", "status", "detail"):
            table.add_column(col, overflow="fold")
        for r in self.results:
            if r.status != "skipped":
                style = "red" if r.status == "failed" else None
                table.add_row(r.name, r.status, r.detail, style=style)
        return table

    def print(self, console: Console | None = None) -> None:
        (console or Console(stderr=True)).print(self.table())


def _reason(e: BaseException) -> str:
    return str(e) if isinstance(e, SceneError) else f"{type(e).__name__}: {e}"


def _call(fn: Callable[[Any], str | None], payload: Any) -> tuple[bool, str, float]:
    """Run one job, turning any exception into (False, reason) so nothing escapes a worker."""
    t0 = time.perf_counter()
    try:
        note = fn(payload)
    except Exception as e:  # one bad scene must not stop the batch
        return False, _reason(e), time.perf_counter() - t0
    return True, note or "", time.perf_counter() - t0


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("{task.fields[last]}"), console=console,
    )  # fmt: skip


def run_scene_jobs(
    items: Sequence[tuple[str, Any]],
    fn: Callable[[Any], str | None],
    *,
    workers: int = 1,
    desc: str = "scenes",
    is_done: Callable[[Any], bool] | None = None,
    overwrite: bool = False,
    console: Console | None = None,
) -> JobSummary:
    """Run ``fn(payload)`` for every ``(name, payload)``; see the module docstring."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    summary = JobSummary(desc)
    results: dict[int, JobResult] = {}
    todo = []
    for k, (name, payload) in enumerate(items):
        if not overwrite and is_done is not None and is_done(payload):
            results[k] = JobResult(name, "skipped")
        else:
            todo.append(k)
    console = console or Console(stderr=True)
    with _progress(console) as bar:
        task = bar.add_task(desc, total=len(items), completed=len(results), last="")

        def record(k: int, ok: bool, detail: str, secs: float) -> None:
            name = items[k][0]
            results[k] = JobResult(name, "done" if ok else "failed", detail, secs)
            bar.update(task, advance=1, last=f"{name} {'ok' if ok else 'FAILED'}")

        if workers == 1 or len(todo) <= 1:
            for k in todo:
                record(k, *_call(fn, items[k][1]))
        else:
            _run_pool(items, todo, fn, workers, record)
    summary.results = [results[k] for k in range(len(items))]
    return summary


def _run_pool(items, todo, fn, workers, record) -> None:
    ctx = multiprocessing.get_context("spawn")  # fork is unsafe with open3d/torch threads
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx) as pool:
        futures: dict[Future, int] = {pool.submit(_call, fn, items[k][1]): k for k in todo}
        for fut in as_completed(futures):
            try:
                record(futures[fut], *fut.result())
            except BrokenProcessPool:
                record(futures[fut], False, "worker process died (killed or out of memory)", 0.0)
            except Exception as e:  # e.g. an unpicklable payload: still only this scene fails
                record(futures[fut], False, _reason(e), 0.0)
