"""`ross3d-eval` command line: thin typer commands over `ross3d_eval.score` / `report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ross3d_eval.errors import EvalInputError, JavaNotFoundError

app = typer.Typer(
    help="Score Ross3D benchmark predictions (ScanQA, SQA3D, Scan2Cap, ScanRefer, "
    "Multi3DRefer). Never needs torch.",
    no_args_is_help=True,
)


def _fail(console: Console, err: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {err}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


@app.command()
def score(
    benchmark: Annotated[
        str, typer.Argument(help="scanqa | sqa3d | scan2cap | scanrefer | multi3drefer")
    ],
    predictions: Annotated[Path, typer.Option(help="predictions JSONL")],
    annotations: Annotated[Path, typer.Option(help="official annotation file")],
    questions: Annotated[Path | None, typer.Option(help="SQA3D balanced questions file")] = None,
    boxes: Annotated[
        Path | None, typer.Option(help="{scene_id: {object_id: [6]}} GT boxes")
    ] = None,
    protocol: Annotated[str, typer.Option(help="ross3d | leo | official")] = "ross3d",
    label_map: Annotated[
        Path | None, typer.Option(help="scanrefer: ScanNet scannetv2-labels.combined.tsv")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="write the result JSON here")] = None,
) -> None:
    """Score PREDICTIONS against ANNOTATIONS; print a table, optionally write RESULT.json."""
    from ross3d_eval.harness import score as run_score

    console = Console()
    try:
        result = run_score(
            benchmark, predictions, annotations, questions, boxes, protocol, label_map=label_map
        )
    except (EvalInputError, JavaNotFoundError, ValueError) as e:
        raise _fail(Console(stderr=True), e) from None
    console.print(result.table())
    if out is not None:
        result.write_json(out)
        console.print(f"wrote {out}")


@app.command()
def report(
    results: Annotated[list[Path], typer.Argument(help="RESULT.json files from `score`")],
    out: Annotated[Path | None, typer.Option(help="write the markdown here")] = None,
) -> None:
    """Markdown table of our scores beside the published numbers."""
    from ross3d_eval.report import write_report

    try:
        text = write_report(results, out)
    except EvalInputError as e:
        raise _fail(Console(stderr=True), e) from None
    typer.echo(text)
