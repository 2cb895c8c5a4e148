"""``ross3d-data`` command line: thin typer commands over library functions.

Each command builds a config, calls one library function and exits non-zero when any scene
failed (see ``ross3d_data.jobs``). Add new commands below with ``@app.command(...)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    name="ross3d-data",
    help="ScanNet reading, demo scenes, frame export, BEV rendering and shards for Ross3D.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)

Workers = Annotated[int, typer.Option("--workers", "-j", min=1, help="parallel scene processes")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="redo scenes whose output exists")]


@app.command("make-demo")
def make_demo_cmd(
    out: Annotated[Path, typer.Argument(help="folder to write demo scenes into")],
    n_scenes: Annotated[int, typer.Option("--n-scenes", min=1)] = 2,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Write synthetic rooms in ScanNet's formats (mesh, meta, annotations, .sens, posed frames)."""
    from ross3d_data.demo import make_demo

    for path in make_demo(out, n_scenes=n_scenes, seed=seed):
        console.print(f"wrote {path}")


@app.command("export-frames")
def export_frames_cmd(
    scenes: Annotated[list[Path], typer.Argument(help="scan folders, or folders of scan folders")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output root: OUT/<scene_id>/...")],
    every: Annotated[int, typer.Option("--every", min=1, help="keep every Nth frame")] = 10,
    workers: Workers = 1,
    overwrite: Overwrite = False,
) -> None:
    """Export .sens streams to color/ depth/ pose/ intrinsic/ folders (resumable)."""
    from ross3d_data.errors import SceneError
    from ross3d_data.export import ExportConfig, export_frames

    cfg = ExportConfig(out=out, every=every, workers=workers, overwrite=overwrite)
    try:
        summary = export_frames(scenes, cfg)
    except SceneError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    summary.print(console)
    raise typer.Exit(summary.exit_code)
