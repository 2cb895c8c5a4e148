"""A small runner for per-scene batch jobs, shared by every ``ross3d-data`` command.

Usage::

    summary = run_scene_jobs(
        [(scene_id, payload), ...],   # payload: anything picklable, passed to fn
        fn,                           # module-level fn(payload) -> str | None (a short note)
        workers=4,                    # scenes at a time: local > 1 a process pool (spawn),
                                      # 1 this process; ray: tasks in flight
        engine="local",               # or "ray" (core.engines; ray_address=, resources=)
        desc="export frames",
        is_done=lambda payload: ...,  # output already complete? then skipped ...
        overwrite=False,              # ... unless overwrite
    )
    summary.print()                   # rich table: counts + every failed scene with its reason
    raise typer.Exit(summary.exit_code)

One failing scene never stops the others: its exception becomes a ``failed`` result whose
``detail`` is the error message (a ``SceneError`` names the file). A rich progress bar shows
progress on stderr. Resume: ``fn`` must write its outputs atomically (temp name, then rename,
the file ``is_done`` checks last), so a killed run (driver or worker) never leaves a scene that
looks finished and a rerun skips exactly the finished scenes, whatever the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ross3d_data.core.engines import Engine, EngineConfig, TaskResources, run_units

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
    engine: Engine = "local",
    ray_address: str | None = None,
    resources: TaskResources = TaskResources(),
) -> JobSummary:
    """Run ``fn(payload)`` for every ``(name, payload)``; see the module docstring.

    ``engine``/``ray_address``/``resources``: where the units run (``core.engines``); the
    skip, progress and summary logic is the same for every engine.
    """
    cfg = EngineConfig(engine, workers, ray_address, resources)
    summary = JobSummary(desc)
    results: dict[int, JobResult] = {}
    todo = []
    for k, (name, payload) in enumerate(items):
        if not overwrite and is_done is not None and is_done(payload):
            results[k] = JobResult(name, "skipped")
        else:
            todo.append((k, payload))
    console = console or Console(stderr=True)
    with _progress(console) as bar:
        task = bar.add_task(desc, total=len(items), completed=len(results), last="")
        for k, out in run_units(fn, todo, cfg):
            name = items[k][0]
            detail = (out.value or "") if out.ok else out.value
            results[k] = JobResult(name, "done" if out.ok else "failed", detail, out.seconds)
            bar.update(task, advance=1, last=f"{name} {'ok' if out.ok else 'FAILED'}")
    summary.results = [results[k] for k in range(len(items))]
    return summary
