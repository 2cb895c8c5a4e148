"""`ross3d-eval` command line: thin typer commands over `ross3d_eval.score` / `report`.

Option names follow docs/cli.md. Messages (the score table, "wrote ...", errors) go to
stderr; stdout carries only `report`'s markdown. Expected errors become one red line on
stderr and exit code 2 (`ross3d_benchmarks.cli.CliApp`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from ross3d_benchmarks import TASKS
from ross3d_benchmarks.cli import CliApp, note, old_argument, renamed, required

from ross3d_eval.errors import JavaNotFoundError
from ross3d_eval.result import PROTOCOLS

app = CliApp(
    name="ross3d-eval",
    help="Score Ross3D benchmark predictions (ScanQA, SQA3D, Scan2Cap, ScanRefer, "
    "Multi3DRefer). Never needs torch.",
    no_args_is_help=True,
    expected=(JavaNotFoundError,),
)
console = Console(stderr=True, highlight=False, soft_wrap=True)

Benchmark = Literal[TASKS]


@app.command()
def score(
    predictions: Annotated[Path, typer.Option("--predictions", help="predictions JSONL")],
    annotations: Annotated[Path, typer.Option("--annotations", help="official annotation file")],
    benchmark: Annotated[Benchmark | None, typer.Option("--benchmark", help="required")] = None,
    questions: Annotated[
        Path | None, typer.Option("--questions", help="SQA3D balanced questions file")
    ] = None,
    boxes: Annotated[
        Path | None, typer.Option("--boxes", help="GT boxes.json {scene_id: {object_id: [6]}}")
    ] = None,
    protocol: Annotated[
        Literal[PROTOCOLS],
        typer.Option("--protocol", help="scoring protocol (docs/benchmarks.md)"),
    ] = "ross3d",
    label_map: Annotated[
        Path | None,
        typer.Option("--label-map", help="scanrefer: ScanNet scannetv2-labels.combined.tsv"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="write the result JSON here")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="an annotated item without a prediction is an error")
    ] = False,
    benchmark_arg: Annotated[Benchmark | None, old_argument("BENCHMARK")] = None,
) -> None:
    """Score PREDICTIONS against ANNOTATIONS; print a table, optionally write RESULT.json.
    Items without a prediction count as wrong and are listed (all of them in RESULT.json)."""
    from ross3d_eval.captions import CaptionScorer
    from ross3d_eval.harness import score as run_score
    from ross3d_eval.result import first_ids

    benchmark = renamed(benchmark, benchmark_arg, "the positional BENCHMARK", "--benchmark")
    with CaptionScorer(progress=console.print) as scorer:
        result = run_score(
            required(benchmark, "--benchmark"), predictions, annotations, questions, boxes,
            protocol, caption_scorer=scorer, label_map=label_map, strict=strict,
        )  # fmt: skip
    console.print(result.table())
    if result.missing:
        note(
            f"{result.missing} of {result.count} items have no prediction in {predictions} "
            f"(scored as wrong): {first_ids(result.missing_ids)}; --strict makes this an error",
            "warning",
        )
    if out is not None:
        result.write_json(out)
        console.print(f"wrote {out}")


@app.command()
def inspect(
    predictions: Annotated[Path, typer.Option("--predictions", help="predictions JSONL")],
    annotations: Annotated[Path, typer.Option("--annotations", help="official annotation file")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder: one <scene_id>.rrd per scene")],
    benchmark: Annotated[Benchmark | None, typer.Option("--benchmark", help="required")] = None,
    boxes: Annotated[
        Path | None, typer.Option("--boxes", help="GT boxes.json {scene_id: {object_id: [6]}}")
    ] = None,
    questions: Annotated[
        Path | None, typer.Option("--questions", help="SQA3D balanced questions file")
    ] = None,
    scenes: Annotated[
        Path | None,
        typer.Option("--scenes", help="ScanNet scene root: meshes from <id>/<id>_vh_clean_2.ply"),
    ] = None,
    only_failures: Annotated[
        bool, typer.Option("--only-failures", help="only items below the top score")
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="at most this many items")
    ] = None,
) -> None:
    """Rerun recordings of predictions: per scene, each item's GT and predicted boxes (green
    IoU >= 0.5, yellow >= 0.25, red below), query, prediction, references and scores.
    Open them with `rerun OUT/<scene_id>.rrd`."""
    from ross3d_eval.inspect import inspect_predictions

    paths = inspect_predictions(
        required(benchmark, "--benchmark"), predictions, annotations, boxes, out, scenes,
        only_failures=only_failures, limit=limit, questions=questions,
    )  # fmt: skip
    if not paths:
        console.print("no items to show (nothing failed?)")
    for path in paths:
        console.print(f"wrote {path}")


@app.command()
def report(
    results: Annotated[list[Path], typer.Argument(help="RESULT.json files from `score`")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write the markdown here")] = None,
) -> None:
    """Markdown table of our scores beside the published numbers (on stdout)."""
    from ross3d_eval.report import write_report

    typer.echo(write_report(results, out))
