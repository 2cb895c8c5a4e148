"""``ross3d-data`` command line: thin typer commands over library functions.

Each command builds a config, calls one library function and exits non-zero when any scene
failed (see ``ross3d_data.core.jobs``). Add new commands below with ``@app.command(...)``.
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
    n_frames: Annotated[int, typer.Option("--n-frames", min=1, help="raw frames per scene")] = 80,
    full_size: Annotated[
        bool,
        typer.Option("--full-size", help="ScanNet-size frames: 1296x968 colour, 640x480 depth"),
    ] = False,
) -> None:
    """Write synthetic rooms in ScanNet's formats (mesh, meta, annotations, .sens, posed frames)."""
    from ross3d_data.synthetic.scenes import make_demo

    for path in make_demo(
        out, n_scenes=n_scenes, seed=seed, n_frames=n_frames, full_size=full_size
    ):
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
    from ross3d_data.core.errors import SceneError
    from ross3d_data.scannet.export import ExportConfig, export_frames

    cfg = ExportConfig(out=out, every=every, workers=workers, overwrite=overwrite)
    try:
        summary = export_frames(scenes, cfg)
    except (SceneError, ValueError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    summary.print(console)
    raise typer.Exit(summary.exit_code)


@app.command("render-bev")
def render_bev_cmd(
    scenes: Annotated[list[Path], typer.Argument(help="scene folders, or folders of scenes")],
    out: Annotated[Path, typer.Option("--out", "-o", help="writes OUT/<scene_id>/bev.{png,json}")],
    size: Annotated[int, typer.Option("--size", min=8, help="image side in pixels")] = 432,
    ceiling: Annotated[
        float,
        typer.Option("--ceiling", help="cut away everything this many metres above the floor"),
    ] = 2.0,
    backend: Annotated[
        str, typer.Option("--backend", help="mesh renderer: jit | raster | open3d")
    ] = "jit",
    supersample: Annotated[int, typer.Option("--supersample", min=1, help="anti-aliasing")] = 1,
    workers: Workers = 1,
    overwrite: Overwrite = False,
) -> None:
    """Top-down colour images of aligned scenes (mesh, else fused RGB-D frames); resumable."""
    from ross3d_data.bev.grid import BevConfig
    from ross3d_data.bev.render import render_bev_scenes
    from ross3d_data.core.errors import SceneError

    try:
        cfg = BevConfig(
            size_px=size, ceiling_above_floor_m=ceiling, backend=backend, supersample=supersample
        )
        summary = render_bev_scenes(scenes, out, cfg, workers=workers, overwrite=overwrite)
    except (SceneError, ValueError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    summary.print(console)
    raise typer.Exit(summary.exit_code)


@app.command("preview")
def preview_cmd(
    scene: Annotated[Path, typer.Argument(help="one scene folder")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write")],
    views: Annotated[int, typer.Option("--views", min=1, help="number of views")] = 16,
    method: Annotated[str, typer.Option("--method", help="uniform | max-coverage")] = "uniform",
    bev_dir: Annotated[
        Path | None, typer.Option("--bev-dir", help="read BEV_DIR/<scene_id>/bev.png if there")
    ] = None,
) -> None:
    """Picture of the chosen views, their overlap matrix and the cameras on the BEV."""
    from ross3d_data.core.errors import SceneError
    from ross3d_data.preview import PreviewConfig, write_preview

    try:
        cfg = PreviewConfig(views=views, method=method, bev_dir=bev_dir)
        data = write_preview(scene, out, cfg)
    except (SceneError, ValueError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    for note in data.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    console.print(
        f"wrote {out}: {len(data.frame_ids)} views of {data.scene_id}, frames {data.frame_ids}, "
        f"mean coverage {float(data.coverage_V.mean()):.2f}"
    )


@app.command("convert-instructions")
def convert_instructions_cmd(
    task: Annotated[
        str, typer.Option("--task", help="scanqa|sqa3d|scan2cap|scanrefer|multi3drefer")
    ],
    input: Annotated[Path, typer.Option("--input", "-i", help="official benchmark file")],
    split: Annotated[str, typer.Option("--split", help="train | val | test")],
    out: Annotated[Path, typer.Option("--out", "-o", help="instructions JSON lines to write")],
    questions: Annotated[
        Path | None,
        typer.Option("--questions", help="SQA3D questions file (with --input annotations)"),
    ] = None,
    scenes: Annotated[
        Path | None, typer.Option("--scenes", help="scene root: boxes from the scenes' objects")
    ] = None,
    boxes: Annotated[
        Path | None, typer.Option("--boxes", help="boxes.json instead of --scenes")
    ] = None,
    boxes_out: Annotated[
        Path | None, typer.Option("--boxes-out", help="write the --scenes box table (boxes.json)")
    ] = None,
    label_map: Annotated[
        Path | None,
        typer.Option("--label-map", help="scannetv2-labels.combined.tsv: exact unique/multiple"),
    ] = None,
) -> None:
    """Convert an official ScanQA/SQA3D/Scan2Cap/ScanRefer/Multi3DRefer file to instructions."""
    from ross3d_data.core.errors import SceneError
    from ross3d_data.instructions import ConvertConfig, convert_instructions, summary_table

    try:
        cfg = ConvertConfig(task=task, input=input, split=split, out=out, questions=questions,
                            scenes=scenes, boxes_json=boxes, boxes_out=boxes_out, label_map=label_map)  # fmt: skip
        result = convert_instructions(cfg)
    except (SceneError, ValueError, FileNotFoundError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    console.print(summary_table([result]))
    console.print(f"wrote {len(result.instructions)} instructions to {out}")


@app.command("build-shards")
def build_shards_cmd(
    scenes: Annotated[list[Path], typer.Argument(help="scene folders, or folders of scenes")],
    out: Annotated[Path, typer.Option("--out", "-o", help="shard folder")],
    instructions: Annotated[
        list[Path] | None, typer.Option("--instructions", help="instruction .jsonl (repeatable)")
    ] = None,
    bev_dir: Annotated[
        Path | None, typer.Option("--bev-dir", help="read BEV_DIR/<scene_id>/bev.png, else render")
    ] = None,
    frames_dir: Annotated[
        Path | None,
        typer.Option("--frames-dir", help="posed frames exported apart: FRAMES_DIR/<scene_id>"),
    ] = None,
    views: Annotated[int, typer.Option("--views", min=1, help="views per clip")] = 32,
    method: Annotated[str, typer.Option("--method", help="uniform | max-coverage")] = "uniform",
    max_shard_bytes: Annotated[
        int, typer.Option("--max-shard-bytes", help="shard size limit in bytes")
    ] = 1 << 30,
    split_list: Annotated[
        list[str] | None,
        typer.Option(
            "--split-list",
            help="SPLIT=FILE of scene ids (e.g. val=scannetv2_val.txt), recorded per clip "
            "(repeatable); val/test clips are never trained on without text",
        ),
    ] = None,
    workers: Workers = 1,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="rebuild from scratch (drops the cache)")
    ] = False,
) -> None:
    """WebDataset shards of scene clips + per-split instruction indexes (resumable)."""
    from ross3d_data.core.errors import SceneError
    from ross3d_data.shards.build import ShardConfig, build_shards
    from ross3d_data.shards.sample import SampleConfig

    try:
        cfg = ShardConfig(
            scenes=tuple(scenes), out=out, instructions=tuple(instructions or ()), bev_dir=bev_dir,
            frames_dir=frames_dir,
            sample=SampleConfig(views=views, method=method), max_shard_bytes=max_shard_bytes,
            workers=workers, overwrite=overwrite, split_lists=_split_lists(split_list or []),
        )  # fmt: skip
        summary = build_shards(cfg, console)
    except (SceneError, ValueError, FileExistsError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    summary.jobs.print(console)
    console.print(summary.table())
    raise typer.Exit(summary.jobs.exit_code)


def _split_lists(values: list[str]) -> tuple[tuple[str, Path], ...]:
    pairs = []
    for value in values:
        split, eq, path = value.partition("=")
        if not eq or not path:
            raise ValueError(
                f"--split-list {value!r}: expected SPLIT=FILE, e.g. val=scannetv2_val.txt"
            )
        pairs.append((split, Path(path)))
    return tuple(pairs)


@app.command("cache-clips")
def cache_clips_cmd(
    shards: Annotated[Path, typer.Argument(help="build-shards folder")],
    grid: Annotated[
        int, typer.Option("--grid", min=1, help="SigLIP patch grid (vision.grid)")
    ] = 27,
    patch_px: Annotated[
        int, typer.Option("--patch-px", min=1, help="patch side in pixels (vision.patch_size)")
    ] = 14,
    min_inside_fraction: Annotated[
        float, typer.Option("--min-inside-fraction", help="grounding.min_inside_fraction")
    ] = 0.5,
    patch_depth: Annotated[
        str, typer.Option("--patch-depth", help="grounding.patch_depth: any | valid")
    ] = "any",
    workers: Workers = 1,
) -> None:
    """Grounding patch masks of every clip's GT boxes, once per clip:
    SHARDS/clip-cache/patch_masks.h5 (training reads it instead of computing them per
    instruction; defaults are the 7b config's values)."""
    from rich.progress import Progress

    from ross3d_data.cache.patch_masks import PatchMaskParams, cache_patch_masks, shard_keys

    try:
        params = PatchMaskParams(grid, patch_px, min_inside_fraction, patch_depth)
        with Progress(console=console) as bar:
            task = bar.add_task("patch masks", total=len(shard_keys(shards)))
            path = cache_patch_masks(
                shards, params, progress=lambda _key: bar.advance(task), workers=workers
            )
    except (ValueError, FileNotFoundError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    console.print(f"patch masks: {path}")


@app.command("import-mesh")
def import_mesh_cmd(
    mesh: Annotated[Path, typer.Argument(help="mesh file: PLY, OBJ, GLB/glTF, OFF or STL")],
    scene_dir: Annotated[Path, typer.Argument(help="scene folder to put it in")],
    up: Annotated[str, typer.Option("--up", help="the file's up axis: z | y (glTF is y-up)")] = "z",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing mesh")] = (
        False
    ),
) -> None:
    """Put a mesh from another dataset into a scene folder as SCENE_DIR/<id>_vh_clean_2.ply
    (ScanNet's layout, z up), so render-bev and build-shards use it as the scan mesh."""
    from ross3d_data.core.errors import SceneError
    from ross3d_data.mesh_io import import_mesh

    try:
        out = import_mesh(mesh, scene_dir, up=up, overwrite=overwrite)
    except (SceneError, ValueError, FileExistsError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    console.print(f"wrote {out}")


@app.command("export-mesh")
def export_mesh_cmd(
    scene_dir: Annotated[Path, typer.Argument(help="scene folder")],
    out: Annotated[Path, typer.Option("--out", "-o", help="FILE.ply | FILE.obj | FILE.glb")],
    source: Annotated[
        str, typer.Option("--source", help="mesh (aligned scan mesh) | fused (RGB-D points)")
    ] = "mesh",
) -> None:
    """Write a scene's axis-aligned mesh, or the fused RGB-D points its BEV is rendered from,
    for inspection in a mesh viewer."""
    from ross3d_data.core.errors import SceneError
    from ross3d_data.mesh_io import export_scene_geometry

    try:
        path = export_scene_geometry(scene_dir, out, source)
    except (SceneError, ValueError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    console.print(f"wrote {path}")
