"""``ross3d-data`` command line: thin typer commands over library functions.

Each command builds a config, calls one library function and exits non-zero when any scene
failed (see ``ross3d_data.core.jobs``). Option names follow docs/cli.md: reuse the
``Annotated`` option types below in new commands; a deprecated spelling is a hidden parameter
(``old_option`` / ``old_argument``) resolved with ``renamed``. Expected errors become one red
line on stderr and exit code 2 (``ross3d_benchmarks.cli.CliApp``); all messages go to stderr. A resumable
command re-run on finished output exits 0 and says there is nothing to do.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from ross3d_benchmarks import SPLITS, TASKS
from ross3d_benchmarks.cli import (
    CliApp,
    note,
    nothing_to_do,
    old_argument,
    old_option,
    renamed,
    required,
)

from ross3d_data.core.engines import ENGINES, EngineError
from ross3d_data.core.errors import SceneError

app = CliApp(
    name="ross3d-data",
    help="ScanNet reading, demo scenes, frame export, BEV rendering and shards for Ross3D.",
    no_args_is_help=True,
    add_completion=False,
    expected=(SceneError, EngineError),  # EngineError: Ray missing or unreachable
)
console = Console(stderr=True)

# choices (tests/test_cli_vocabulary.py checks them against the library's own tuples)
VIEW_METHODS = ("uniform", "max-coverage")  # ross3d_data.views.selection.VIEW_METHODS
BEV_BACKENDS = ("jit", "raster", "open3d")  # ross3d_data.bev.grid.BACKENDS
PATCH_DEPTHS = ("any", "valid")  # ross3d_data.cache.patch_masks.PATCH_DEPTH_RULES
UP_AXES = ("auto", "z", "y")  # ross3d_data.mesh_io.UP_AXES
MESH_SOURCES = ("mesh", "fused")  # ross3d_data.mesh_io.export_scene_geometry
RESIZE_ASPECTS = ("color", "depth")  # ross3d_data.views.coords.RESIZE_ASPECTS
SQA3D_TEXT_RULES = ("published", "cleaned")  # ross3d_data.instructions.sqa3d.SQA3D_TEXT_RULES
SCENE_FORMATS = ("scannet", "arkitscenes", "scannetpp", "3rscan", "multiscan")  # datasets.FORMATS

Scenes = Annotated[
    list[Path], typer.Argument(help="scene folders, folders of scenes or dataset roots")
]
Workers = Annotated[int, typer.Option("--workers", "-j", min=1, help="parallel scene processes")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="redo scenes whose output exists")]
Method = Annotated[Literal[VIEW_METHODS], typer.Option("--method", help="view selection")]
EngineOpt = Annotated[
    Literal[ENGINES],
    typer.Option("--engine", help="where scenes run: local processes or a Ray cluster"),
]
RayAddress = Annotated[
    str | None,
    typer.Option("--ray-address", help="Ray cluster to join (default: start or join a local one)"),
]
SceneFormat = Annotated[
    Literal[SCENE_FORMATS] | None,
    typer.Option("--format", help="read every folder as this dataset (default: detect each)"),
]


def _finish(summary, what: str) -> None:
    """Print a scene-job summary (or that a re-run had nothing to do) and exit with its code."""
    if summary.results and summary.count("skipped") == len(summary.results):
        n = len(summary.results)
        nothing_to_do(f"already {what}: {n} scene{'s' * (n != 1)}")
    else:
        summary.print(console)
    raise typer.Exit(summary.exit_code)


@app.command("make-demo")
def make_demo_cmd(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="required: folder to write demo scenes into")
    ] = None,
    num_scenes: Annotated[int, typer.Option("--num-scenes", min=1)] = 2,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    num_frames: Annotated[
        int, typer.Option("--num-frames", min=1, help="raw frames per scene")
    ] = 80,
    full_size: Annotated[
        bool,
        typer.Option("--full-size", help="ScanNet-size frames: 1296x968 colour, 640x480 depth"),
    ] = False,
    out_arg: Annotated[Path | None, old_argument("OUT")] = None,
    n_scenes: Annotated[int | None, old_option("--n-scenes")] = None,
    n_frames: Annotated[int | None, old_option("--n-frames")] = None,
) -> None:
    """Write synthetic rooms in ScanNet's formats (mesh, meta, annotations, .sens, posed frames)."""
    from ross3d_data.synthetic.scenes import make_demo

    out = required(renamed(out, out_arg, "the positional OUT", "--out"), "--out")
    num_scenes = renamed(num_scenes, n_scenes, "--n-scenes", "--num-scenes")
    num_frames = renamed(num_frames, n_frames, "--n-frames", "--num-frames")
    for path in make_demo(
        out, n_scenes=num_scenes, seed=seed, n_frames=num_frames, full_size=full_size
    ):
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)


@app.command("export-frames")
def export_frames_cmd(
    scenes: Annotated[
        list[Path], typer.Argument(help="ScanNet scan folders, folders of them or the ScanNet root")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="output root: OUT/<scene_id>/...")],
    every: Annotated[int, typer.Option("--every", min=1, help="keep every Nth frame")] = 10,
    fmt: SceneFormat = None,
    workers: Workers = 1,
    overwrite: Overwrite = False,
    engine: EngineOpt = "local",
    ray_address: RayAddress = None,
) -> None:
    """Export .sens streams to color/ depth/ pose/ intrinsic/ folders (resumable; ScanNet only)."""
    from ross3d_data.datasets.frames import export_frames
    from ross3d_data.scannet.export import ExportConfig

    if fmt not in (None, "scannet"):
        raise ValueError(
            f"export-frames applies to ScanNet .sens scans only, not --format {fmt} "
            "(its frames are read where they are published)"
        )

    cfg = ExportConfig(
        out=out, every=every, workers=workers, overwrite=overwrite, engine=engine,
        ray_address=ray_address,
    )  # fmt: skip
    _finish(export_frames(scenes, cfg), "exported")


@app.command("render-bev")
def render_bev_cmd(
    scenes: Scenes,
    out: Annotated[Path, typer.Option("--out", "-o", help="writes OUT/<scene_id>/bev.{png,json}")],
    size: Annotated[int, typer.Option("--size", min=8, help="image side in pixels")] = 432,
    ceiling: Annotated[
        float,
        typer.Option("--ceiling", help="cut away everything this many metres above the floor"),
    ] = 2.0,
    backend: Annotated[
        Literal[BEV_BACKENDS], typer.Option("--backend", help="mesh renderer")
    ] = "jit",
    supersample: Annotated[int, typer.Option("--supersample", min=1, help="anti-aliasing")] = 1,
    fmt: SceneFormat = None,
    workers: Workers = 1,
    overwrite: Overwrite = False,
    engine: EngineOpt = "local",
    ray_address: RayAddress = None,
) -> None:
    """Top-down colour images of aligned scenes (mesh, else fused RGB-D frames); resumable."""
    from ross3d_data.bev.grid import BevConfig
    from ross3d_data.bev.render import render_bev_scenes

    cfg = BevConfig(
        size_px=size, ceiling_above_floor_m=ceiling, backend=backend, supersample=supersample
    )
    summary = render_bev_scenes(
        scenes, out, cfg, workers=workers, overwrite=overwrite, engine=engine,
        ray_address=ray_address, fmt=fmt,
    )  # fmt: skip
    _finish(summary, "rendered")


@app.command("preview")
def preview_cmd(
    scene: Annotated[Path, typer.Argument(help="one scene folder")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write")],
    views: Annotated[int, typer.Option("--views", min=1, help="number of views")] = 16,
    method: Method = "uniform",
    bev_dir: Annotated[
        Path | None, typer.Option("--bev-dir", help="read BEV_DIR/<scene_id>/bev.png if there")
    ] = None,
    fmt: SceneFormat = None,
) -> None:
    """Picture of the chosen views, their overlap matrix and the cameras on the BEV."""
    from ross3d_data.preview import PreviewConfig, write_preview

    cfg = PreviewConfig(views=views, method=method, bev_dir=bev_dir, scene_format=fmt)
    data = write_preview(scene, out, cfg)
    for text in data.notes:
        note(text)
    console.print(
        f"wrote {out}: {len(data.frame_ids)} views of {data.scene_id}, frames {data.frame_ids}, "
        f"mean coverage {float(data.coverage_V.mean()):.2f}",
        highlight=False, soft_wrap=True,
    )  # fmt: skip


@app.command("inspect")
def inspect_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for the .rrd recordings")],
    scenes: Annotated[
        list[Path] | None,
        typer.Argument(help="scene folders, folders of scenes or dataset roots"),
    ] = None,
    views: Annotated[int, typer.Option("--views", min=1, help="views per scene")] = 16,
    method: Method = "uniform",
    fmt: SceneFormat = None,
    bev_dir: Annotated[
        Path | None, typer.Option("--bev-dir", help="read BEV_DIR/<scene_id>/bev.png, else render")
    ] = None,
    shards: Annotated[
        Path | None, typer.Option("--shards", help="build-shards folder (with --clip)")
    ] = None,
    clip: Annotated[
        list[str] | None, typer.Option("--clip", help="clip key in --shards (repeatable)")
    ] = None,
) -> None:
    """Rerun recordings to look at: OUT/<scene_id>.rrd per scene (mesh, boxes, posed views,
    trajectory, BEV, 3D tokens), or OUT/<key>.clip.rrd per shard clip (--shards, --clip).
    Open them with `rerun OUT/<name>.rrd`."""
    from ross3d_data.inspect import inspect_clip, inspect_scene

    if bool(scenes) == bool(shards or clip):
        raise ValueError("give scene folders, or --shards with --clip, not both or neither")
    if scenes:
        from ross3d_data.datasets import find_scenes

        folders = [d for s in scenes for d in find_scenes(s, fmt)]
        write = [partial(inspect_scene, d, out, views=views, method=method, fmt=fmt,
                         bev_dir=bev_dir) for d in folders]  # fmt: skip
    else:
        shards = required(shards, "--shards")
        write = [partial(inspect_clip, shards, key, out) for key in required(clip, "--clip")]
    for one in write:  # each line as soon as its file is written
        console.print(f"wrote {one()}", highlight=False, soft_wrap=True)


@app.command("convert-instructions")
def convert_instructions_cmd(
    split: Annotated[Literal[SPLITS], typer.Option("--split")],
    out: Annotated[Path, typer.Option("--out", "-o", help="instructions JSON lines to write")],
    benchmark: Annotated[
        Literal[TASKS] | None, typer.Option("--benchmark", help="required")
    ] = None,
    annotations: Annotated[
        Path | None, typer.Option("--annotations", help="required: official benchmark file")
    ] = None,
    questions: Annotated[
        Path | None,
        typer.Option("--questions", help="SQA3D questions file (with --annotations)"),
    ] = None,
    scenes: Annotated[
        Path | None, typer.Option("--scenes", help="scene root: boxes from the scenes' objects")
    ] = None,
    boxes: Annotated[
        Path | None, typer.Option("--boxes", help="GT boxes.json instead of --scenes")
    ] = None,
    boxes_out: Annotated[
        Path | None, typer.Option("--boxes-out", help="write the --scenes box table (boxes.json)")
    ] = None,
    label_map: Annotated[
        Path | None,
        typer.Option("--label-map", help="scannetv2-labels.combined.tsv: exact unique/multiple"),
    ] = None,
    sqa3d_text: Annotated[
        Literal[SQA3D_TEXT_RULES],
        typer.Option(
            "--sqa3d-text",
            help="published: situation/question verbatim, empty alternatives kept (the public "
            "process_sqa3d.py); cleaned: whitespace stripped, empty alternatives dropped",
        ),
    ] = "published",
    task: Annotated[Literal[TASKS] | None, old_option("--task")] = None,
    input: Annotated[Path | None, old_option("--input")] = None,
    input_short: Annotated[Path | None, old_option("-i")] = None,
) -> None:
    """Convert an official ScanQA/SQA3D/Scan2Cap/ScanRefer/Multi3DRefer file to instructions."""
    from ross3d_data.instructions import ConvertConfig, convert_instructions, summary_table

    benchmark = required(renamed(benchmark, task, "--task", "--benchmark"), "--benchmark")
    annotations = renamed(annotations, input, "--input", "--annotations")
    annotations = required(
        renamed(annotations, input_short, "-i", "--annotations"), "--annotations"
    )
    cfg = ConvertConfig(task=benchmark, input=annotations, split=split, out=out,
                        questions=questions, scenes=scenes,
                        boxes_json=boxes, boxes_out=boxes_out, label_map=label_map,
                        sqa3d_text=sqa3d_text)  # fmt: skip
    result = convert_instructions(cfg)
    console.print(summary_table([result]))
    for text in result.warnings:
        note(text, "warning")
    console.print(f"wrote {len(result.instructions)} instructions to {out}", highlight=False)


@app.command("build-shards")
def build_shards_cmd(
    scenes: Scenes,
    out: Annotated[Path, typer.Option("--out", "-o", help="shard folder")],
    instructions: Annotated[
        list[Path] | None, typer.Option("--instructions", help="instruction .jsonl (repeatable)")
    ] = None,
    bev_dir: Annotated[
        Path | None,
        typer.Option(
            "--bev-dir",
            help="read BEV_DIR/<scene_id>/bev.png (ours) or view_0.jpg (Ross3D's released "
            "renders: pass their scans/ folder), else render",
        ),
    ] = None,
    frames_dir: Annotated[
        Path | None,
        typer.Option(
            "--frames-dir", help="ScanNet posed frames exported apart: FRAMES_DIR/<scene_id>"
        ),
    ] = None,
    views: Annotated[int, typer.Option("--views", min=1, help="views per clip")] = 32,
    method: Method = "uniform",
    resize_aspect: Annotated[
        Literal[RESIZE_ASPECTS],
        typer.Option(
            "--resize-aspect",
            help="colour resize width from the frame's aspect (ours) or the depth map's (the "
            "published rule, model config vision.resize_aspect of 7b)",
        ),
    ] = "color",
    fmt: SceneFormat = None,
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
    engine: EngineOpt = "local",
    ray_address: RayAddress = None,
) -> None:
    """WebDataset shards of scene clips + per-split instruction indexes (resumable; a finished
    folder is left as it is unless --overwrite)."""
    from ross3d_data.shards.build import ShardConfig, build_shards
    from ross3d_data.shards.sample import SampleConfig

    cfg = ShardConfig(
        scenes=tuple(scenes), out=out, instructions=tuple(instructions or ()), bev_dir=bev_dir,
        frames_dir=frames_dir,
        sample=SampleConfig(views=views, method=method, resize_aspect=resize_aspect),
        max_shard_bytes=max_shard_bytes,
        workers=workers, overwrite=overwrite, split_lists=_split_lists(split_list or []),
        scene_format=fmt, engine=engine, ray_address=ray_address,
    )  # fmt: skip
    built = None if overwrite else _finished_shards(out)
    if built is not None:
        nothing_to_do(f"already built: {built} shards", "pass --overwrite to rebuild")
        return
    summary = build_shards(cfg, console)
    summary.jobs.print(console)
    console.print(summary.table())
    for text in summary.warnings(views):
        note(text, "warning")
    raise typer.Exit(summary.jobs.exit_code)


def _finished_shards(out: Path) -> int | None:
    """Number of shards of a complete build (no failed scene) in ``out``, else None."""
    from ross3d_data.shards.build import MANIFEST, read_manifest

    if not (out / MANIFEST).is_file():
        return None
    manifest = read_manifest(out)
    return None if manifest["summary"]["failed"] else len(manifest["shards"])


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
    shards: Annotated[
        Path | None, typer.Option("--shards", help="required: build-shards folder")
    ] = None,
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
        Literal[PATCH_DEPTHS], typer.Option("--patch-depth", help="grounding.patch_depth")
    ] = "any",
    workers: Workers = 1,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="recompute a cache that is already up to date")
    ] = False,
    engine: EngineOpt = "local",
    ray_address: RayAddress = None,
    shards_arg: Annotated[Path | None, old_argument("SHARDS")] = None,
) -> None:
    """Grounding patch masks of every clip's GT boxes, once per clip:
    SHARDS/clip-cache/patch_masks.h5 (training reads it instead of computing them per
    instruction; defaults are the 7b config's values). An up-to-date cache is left as it is."""
    from rich.progress import Progress

    from ross3d_data.cache.patch_masks import PatchMaskParams, cache_patch_masks, shard_keys

    shards = required(renamed(shards, shards_arg, "the positional SHARDS", "--shards"), "--shards")
    params = PatchMaskParams(grid, patch_px, min_inside_fraction, patch_depth)
    done = None if overwrite else _cached_clips(shards, params)
    if done is not None:
        nothing_to_do(f"already cached: {done} clips' patch masks", "pass --overwrite to rebuild")
        return
    with Progress(console=console) as bar:
        task = bar.add_task("patch masks", total=len(shard_keys(shards)))
        path = cache_patch_masks(
            shards, params, progress=lambda _key: bar.advance(task), workers=workers,
            engine=engine, ray_address=ray_address,
        )  # fmt: skip
    console.print(f"patch masks: {path}", highlight=False, soft_wrap=True)


def _cached_clips(shards: Path, params) -> int | None:
    """Number of clips of an up-to-date patch-mask cache of ``shards`` (same params, same
    shard build, every clip there), else None."""
    from ross3d_data.cache.patch_masks import open_patch_masks, shard_keys
    from ross3d_data.cache.store import StaleCacheError

    try:
        open_patch_masks(shards, params).close()
    except StaleCacheError:
        return None
    return len(shard_keys(shards))


@app.command("import-mesh")
def import_mesh_cmd(
    mesh: Annotated[Path, typer.Argument(help="mesh file: PLY, OBJ, GLB/glTF, OFF or STL")],
    scene_dir: Annotated[Path, typer.Argument(help="scene folder to put it in")],
    up: Annotated[
        Literal[UP_AXES],
        typer.Option("--up", help="the file's up axis; auto: y for glTF (its spec), else z"),
    ] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing mesh")] = (
        False
    ),
) -> None:
    """Put a mesh from another dataset into a scene folder as SCENE_DIR/<id>_vh_clean_2.ply
    (ScanNet's layout, z up), so render-bev and build-shards use it as the scan mesh."""
    from ross3d_data.mesh_io import import_mesh

    imported = import_mesh(mesh, scene_dir, up=up, overwrite=overwrite)
    if up == "auto":
        note(f"{mesh}: read as {imported.up} up ({imported.up_source}); pass --up to override")
    for text in imported.warnings:
        note(text, "warning")
    console.print(f"wrote {imported.path}", highlight=False, soft_wrap=True)


@app.command("export-mesh")
def export_mesh_cmd(
    scene_dir: Annotated[Path, typer.Argument(help="scene folder")],
    out: Annotated[Path, typer.Option("--out", "-o", help="FILE.ply | FILE.obj | FILE.glb")],
    source: Annotated[
        Literal[MESH_SOURCES],
        typer.Option("--source", help="mesh: the aligned scan mesh; fused: RGB-D points"),
    ] = "mesh",
    fmt: SceneFormat = None,
) -> None:
    """Write a scene's axis-aligned mesh, or the fused RGB-D points its BEV is rendered from,
    for inspection in a mesh viewer."""
    from ross3d_data.mesh_io import export_scene_geometry

    path = export_scene_geometry(scene_dir, out, source, fmt)
    console.print(f"wrote {path}", highlight=False, soft_wrap=True)


@app.command("proposals")
def proposals_cmd(
    scenes: Scenes,
    masks: Annotated[
        Path, typer.Option("--masks", help="LEO's Mask3D masks: MASKS/<scene_id>.mask.npz")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="proposals file: scannet_{val,test}_pred_box.json")
    ],
    top: Annotated[
        int, typer.Option("--top", min=1, help="first N masks of each scene (published: 50)")
    ] = 50,
    fmt: SceneFormat = None,
) -> None:
    """Mask3D proposal boxes as Ross3D evaluates with them (extract_pred_box.py): the min/max box
    of each of the first --top masks, in the published scannet_{val,test}_pred_box.json layout
    (a list of boxes per "scannet/<scene>") that `ross3d-model predict --proposals` reads."""
    from ross3d_data.proposals import ProposalsConfig, make_proposals

    summary = make_proposals(scenes, ProposalsConfig(masks, out, top, fmt))
    summary.print(console)
    console.print(f"wrote {out}", highlight=False, soft_wrap=True)
    raise typer.Exit(summary.exit_code)
