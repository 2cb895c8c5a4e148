"""`ross3d-model`: train, predict, demo. Thin typer commands: build a config, call one function."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()


def _fail(err: Exception) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/red] {err}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


@app.command()
def train(
    config: Annotated[str, typer.Option("--config", help="run config: tiny | 7b | JSON path")],
    shards: Annotated[Path | None, typer.Option("--shards", help="build-shards folder")] = None,
    output_dir: Annotated[Path, typer.Option("--output-dir", help="run folder")] = Path("runs/r"),
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue from the last checkpoint")] = (
        False
    ),
    deepspeed: Annotated[
        str | None, typer.Option("--deepspeed", help="zero2 | zero3 | JSON; 'none' = plain DDP")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="no model: write OUTPUT_DIR/data_order.jsonl (epoch 0)"),
    ] = False,
    world_size: Annotated[
        int, typer.Option("--world-size", min=1, help="processes assumed by --dry-run")
    ] = 1,
) -> None:
    """Train (CPU: plain or under torchrun with gloo; CUDA: DeepSpeed ZeRO-2/3 as configured)."""
    from ross3d_model.configuration.run import load_run_config
    from ross3d_model.training.task import train_from_config, write_data_order

    try:
        run = load_run_config(config)
        updates = {}
        if max_steps is not None:
            updates["max_steps"] = max_steps
        if deepspeed is not None:
            updates["deepspeed"] = None if deepspeed == "none" else deepspeed
        run.train = dataclasses.replace(run.train, **updates)
        if dry_run:
            path = write_data_order(run, output_dir, shards=shards, world_size=world_size)
            console.print(f"data order: {path}")
            return
        result = train_from_config(run, output_dir, shards=shards, resume=resume)
    except (ValueError, FileNotFoundError) as err:
        raise _fail(err) from None
    if result.is_main:  # under torchrun only rank 0 reports
        console.print(f"metrics: {result.metrics_path}\nloss curve: {result.curve_path}")
        console.print(f"model: {result.export_dir}")
        console.print(f"micro-batches skipped for data errors: {result.skipped_micro_batches}")


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="RUN_DIR/checkpoints/step-N")],
    out: Annotated[Path, typer.Option("--out", help="model folder to write")],
) -> None:
    """A model folder `predict` reads, from any complete (plain or DeepSpeed) checkpoint."""
    from ross3d_model.training.export import export_checkpoint

    try:
        folder = export_checkpoint(checkpoint, out)
    except (ValueError, FileNotFoundError) as err:
        raise _fail(err) from None
    console.print(f"model: {folder}")


@app.command()
def predict(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="run folder or exported model")],
    benchmark: Annotated[
        list[str], typer.Option("--benchmark", help="scanqa|sqa3d|scan2cap|scanrefer|multi3drefer")
    ],
    out: Annotated[Path, typer.Option("--out", help="PRED.jsonl ('{benchmark}' for several)")],
    shards: Annotated[Path, typer.Option("--shards", help="build-shards folder")],
    split: Annotated[str, typer.Option("--split")] = "val",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 8,
    boxes: Annotated[
        Path | None,
        typer.Option(
            "--boxes",
            help="proposals boxes.json {scene: {id: [6]}}: grounding candidates and Scan2Cap "
            "queries (required for scan2cap outside train)",
        ),
    ] = None,
    protocol: Annotated[
        str,
        typer.Option(
            "--protocol",
            help="reference: public eval input (no spatial prompt, 512 new tokens); "
            "ours: training prompt, the model's max_new_tokens",
        ),
    ] = "reference",
    max_new_tokens: Annotated[
        int | None, typer.Option("--max-new-tokens", min=1, help="override the protocol's")
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="cuda | cpu (default: cuda if available)")
    ] = None,
    dtype: Annotated[
        str | None, typer.Option("--dtype", help="bf16 | fp32 (default: bf16 on cuda, else fp32)")
    ] = None,
    prefix_reuse: Annotated[
        bool, typer.Option(help="one prefill of prompt + frames per clip and batch")
    ] = True,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="first N items per benchmark")
    ] = None,
) -> None:
    """Predictions in the `ross3d-eval score` formats; resumable (skips ids already in --out).
    Under `torchrun --nproc_per_node N -m ross3d_model.cli predict ...` items are split by rank
    and rank 0 merges the parts into --out."""
    from ross3d_model.inference.predict import PredictConfig, run_predict

    try:
        cfg = PredictConfig(
            checkpoint, shards, list(benchmark), out, split, batch_size, boxes, max_new_tokens,
            limit, protocol, device, dtype, prefix_reuse,
        )  # fmt: skip
        summaries = run_predict(cfg, progress=_print_summary, show_progress=True)
    except (ValueError, FileNotFoundError) as err:
        raise _fail(err) from None
    if not any(s.items for s in summaries):
        raise _fail(ValueError(f"no {split} instructions for {benchmark} in {shards}"))


def _print_summary(s) -> None:
    rate = s.written / s.seconds if s.seconds else 0.0
    console.print(
        f"{s.benchmark}: wrote {s.written}, kept {s.skipped_existing} existing, "
        f"{s.missing_proposals} without proposals, {s.unmatched} unmatched (empty caption), "
        f"{s.seconds:.1f} s ({rate:.2f} items/s) -> {s.path}"
    )


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="demo folder")] = Path("demo-out"),
    steps: Annotated[
        int | None,
        typer.Option("--steps", min=1, help="training steps (default: DemoConfig.steps)"),
    ] = None,
    scenes: Annotated[int, typer.Option("--scenes", min=2, help="synthetic scenes")] = 3,
) -> None:
    """CPU end-to-end: demo scenes -> BEV -> shards -> train tiny -> predict -> score -> report."""
    from ross3d_model.demo import DemoConfig, run_demo

    try:
        cfg = DemoConfig(out=out, scenes=scenes)
        if steps is not None:
            cfg = dataclasses.replace(cfg, steps=steps)
        result = run_demo(cfg, console=console)
    except (ValueError, FileNotFoundError) as err:
        raise _fail(err) from None
    console.print(f"[bold]report:[/bold] {result.report}")
    console.print(f"scores: {result.scores}\nmetrics: {result.metrics}")


@app.command("cache-latents")
def cache_latents(
    config: Annotated[str, typer.Option("--config", help="run config: tiny | 7b | JSON path")],
    shards: Annotated[Path | None, typer.Option("--shards", help="build-shards folder")] = None,
    views: Annotated[
        bool, typer.Option("--views", help="also every view's latents (~3 MB per 32-view clip)")
    ] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="clips per VAE call")] = 8,
    device: Annotated[str, typer.Option("--device", help="cpu | cuda | cuda:N")] = "cpu",
) -> None:
    """Encode every clip's BEV (and with --views its views) with the frozen VAE once:
    SHARDS/clip-cache/{bev,view}_latents.h5 (latent mean and std; training then samples from
    them instead of running the VAE)."""
    from ross3d_model.configuration.model import load_config
    from ross3d_model.configuration.run import load_run_config
    from ross3d_model.inputs.caches import BEV_KIND, VIEW_KIND, cache_latents

    try:
        run = load_run_config(config)
        folder = shards if shards is not None else run.data.shards
        if folder is None:
            raise ValueError("no shards: pass --shards DIR or set data.shards in the run config")
        vae = load_config(run.model).vae
        for kind in (BEV_KIND, VIEW_KIND) if views else (BEV_KIND,):
            path = cache_latents(folder, vae, kind, batch_size=batch_size, device=device)
            console.print(f"{kind}: {path}")
    except (ValueError, FileNotFoundError) as err:
        raise _fail(err) from None


@app.command("check-init")
def check_init(
    model_config: Annotated[str, typer.Argument(help="model config: tiny | mid | 7b | JSON path")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    inference: Annotated[
        bool, typer.Option("--inference", help="as predict builds it: no VAE, no denoiser")
    ] = False,
) -> None:
    """Match every pretrained part the config names against the model, from checkpoint headers
    and a meta skeleton (nothing is built): missing / unexpected / mismatched tensors. Exit 0
    iff all three are empty. Run it before renting GPUs."""
    import json

    from ross3d_model.configuration.model import load_config
    from ross3d_model.weights.build import check_init as check

    try:
        report = check(load_config(model_config), inference=inference)
    except (ValueError, FileNotFoundError) as err:
        raise _fail(err) from None
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for label in ("missing", "unexpected", "mismatched"):
            items = getattr(report, label)
            console.print(f"{label}: {len(items)}", highlight=False)
            for item in items[:20]:
                console.print(f"  {item}", highlight=False, soft_wrap=True)
        for title, counts in (("loaded", report.loaded), ("ignored", report.ignored)):
            for name, n in counts.items():
                console.print(f"{title}: {name}: {n}", highlight=False, soft_wrap=True)
        console.print("OK" if report.ok else "NOT OK", highlight=False)
    raise typer.Exit(code=0 if report.ok else 1)


if __name__ == "__main__":  # `torchrun -m ross3d_model.cli train ...`
    app()
