"""`ross3d-model`: train, predict, demo. Thin typer commands: build a config, call one function.

Option names follow docs/cli.md; a deprecated spelling is a hidden parameter resolved with
`renamed`. Messages go to stderr (stdout: `check-init --json` only); expected errors become one
red line on stderr and exit code 2 (`ross3d_benchmarks.cli.CliApp`).
"""

from __future__ import annotations

import dataclasses
import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from ross3d_benchmarks import SPLITS, TASKS
from ross3d_benchmarks.cli import (
    CliApp,
    Device,
    note,
    nothing_to_do,
    old_argument,
    old_option,
    renamed,
    required,
)

app = CliApp(
    name="ross3d-model", add_completion=False, no_args_is_help=True, help=__doc__.split("\n")[0]
)
console = Console(stderr=True)

# choices (tests/test_cli_vocabulary.py checks them against ross3d_model.inference.predict)
INFERENCE_PROTOCOLS = ("reference", "ours")  # predict.PROTOCOLS
DTYPES = ("auto", "bf16", "fp16", "fp32")  # auto + predict.DTYPES
Benchmark = Enum("Benchmark", {task: task for task in TASKS}, type=str)  # repeatable option
RunConfig = Annotated[str, typer.Option("--config", help="run config: tiny | 7b | JSON path")]


@app.command()
def train(
    config: RunConfig,
    shards: Annotated[Path | None, typer.Option("--shards", help="build-shards folder")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="run folder")] = Path("runs/r"),
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue from the last checkpoint")] = (
        False
    ),
    deepspeed: Annotated[
        str | None, typer.Option("--deepspeed", help="zero2 | zero3 | JSON; 'none' = plain DDP")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="no model: write OUT/data_order.jsonl (epoch 0)"),
    ] = False,
    world_size: Annotated[
        int, typer.Option("--world-size", min=1, help="processes assumed by --dry-run")
    ] = 1,
    allow_schedule_change: Annotated[
        bool,
        typer.Option(
            "--allow-schedule-change", help="resume with another --max-steps (reshapes the cosine)"
        ),
    ] = False,
    output_dir: Annotated[Path | None, old_option("--output-dir")] = None,
) -> None:
    """Train (CPU: plain or under torchrun with gloo; CUDA: DeepSpeed ZeRO-2/3 as configured)."""
    from ross3d_model.configuration.run import load_run_config
    from ross3d_model.training.task import train_from_config, write_data_order

    out = renamed(out, output_dir, "--output-dir", "--out")
    run = load_run_config(config)
    updates = {}
    if max_steps is not None:
        updates["max_steps"] = max_steps
    if deepspeed is not None:
        updates["deepspeed"] = None if deepspeed == "none" else deepspeed
    run.train = dataclasses.replace(run.train, **updates)
    if dry_run:
        path = write_data_order(run, out, shards=shards, world_size=world_size)
        console.print(f"data order: {path}")
        return
    result = train_from_config(
        run, out, shards=shards, resume=resume, allow_schedule_change=allow_schedule_change
    )
    if result.is_main and result.stopped_by:  # exit 0: a requeued job resumes
        console.print(f"{result.stopped_by}: checkpoint of step {result.steps} saved in {out}; "
                      "continue with --resume")  # fmt: skip
        return
    if result.is_main:  # under torchrun only rank 0 reports
        console.print(f"metrics: {result.metrics_path}\nloss curve: {result.curve_path}")
        console.print(f"model: {result.export_dir}")
        console.print(f"micro-batches skipped for data errors: {result.skipped_micro_batches}")


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="model folder to write")],
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="required: RUN_DIR/checkpoints/step-N")
    ] = None,
    checkpoint_arg: Annotated[Path | None, old_argument("CHECKPOINT")] = None,
) -> None:
    """A model folder `predict` reads, from any complete (plain or DeepSpeed) checkpoint."""
    from ross3d_model.training.export import export_checkpoint

    checkpoint = renamed(checkpoint, checkpoint_arg, "the positional CHECKPOINT", "--checkpoint")
    folder = export_checkpoint(required(checkpoint, "--checkpoint"), out)
    console.print(f"model: {folder}")


@app.command()
def predict(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="run folder or exported model")],
    benchmark: Annotated[list[Benchmark], typer.Option("--benchmark", help="repeatable")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="PRED.jsonl ('{benchmark}' for several)")
    ],
    shards: Annotated[Path, typer.Option("--shards", help="build-shards folder")],
    split: Annotated[Literal[SPLITS], typer.Option("--split")] = "val",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 8,
    proposals: Annotated[
        Path | None,
        typer.Option(
            "--proposals",
            help="proposal boxes: our boxes.json {scene: {id: [6]}} or the published "
            "scannet_{val,test}_pred_box.json {scannet/scene: [[6], ...]}: grounding candidates "
            "and Scan2Cap queries (required for scan2cap outside train; without it grounding "
            "scores the GT boxes, an oracle)",
        ),
    ] = None,
    inference_protocol: Annotated[
        Literal[INFERENCE_PROTOCOLS],
        typer.Option(
            "--inference-protocol",
            help="reference: public eval input (no spatial prompt, 512 new tokens); "
            "ours: training prompt, the model's max_new_tokens",
        ),
    ] = "reference",
    max_new_tokens: Annotated[
        int | None, typer.Option("--max-new-tokens", min=1, help="override the protocol's")
    ] = None,
    device: Device = "auto",
    dtype: Annotated[
        Literal[DTYPES],
        typer.Option(
            "--dtype", help="auto: on cuda fp16 (reference, as published) or bf16 (ours), else fp32"
        ),
    ] = "auto",
    prefix_reuse: Annotated[
        bool, typer.Option(help="one prefill of prompt + frames per clip and batch")
    ] = True,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="first N items per benchmark")
    ] = None,
    dump_inputs: Annotated[
        Path | None,
        typer.Option(
            "--dump-inputs",
            help="JSON lines {id, benchmark, text}: each item's decoded model input",
        ),
    ] = None,
    boxes: Annotated[Path | None, old_option("--boxes")] = None,
    protocol: Annotated[Literal[INFERENCE_PROTOCOLS] | None, old_option("--protocol")] = None,
) -> None:
    """Predictions in the `ross3d-eval score` formats; resumable (skips ids already in --out).
    Under `torchrun --nproc_per_node N -m ross3d_model.cli predict ...` items are split by rank
    and rank 0 merges the parts into --out."""
    from ross3d_model.inference.predict import PredictConfig, run_predict

    proposals = renamed(proposals, boxes, "--boxes", "--proposals")
    inference_protocol = renamed(inference_protocol, protocol, "--protocol", "--inference-protocol")
    names = [b.value for b in benchmark]
    cfg = PredictConfig(
        checkpoint, shards, names, out, split, batch_size, proposals, max_new_tokens, limit,
        inference_protocol, None if device == "auto" else device,
        None if dtype == "auto" else dtype, prefix_reuse, dump_inputs,
    )  # fmt: skip
    summaries = run_predict(cfg, progress=_print_summary, show_progress=True, notice=note)
    if not any(s.items for s in summaries):
        raise ValueError(f"no {split} instructions for {names} in {shards}")
    if os.environ.get("RANK", "0") == "0" and not any(s.written for s in summaries):
        n = sum(s.skipped_existing for s in summaries)
        nothing_to_do(f"already predicted: {n} items", "delete --out to predict again")


def _print_summary(s) -> None:
    rate = s.written / s.seconds if s.seconds else 0.0
    console.print(
        f"{s.benchmark}: wrote {s.written}, kept {s.skipped_existing} existing, "
        f"{s.missing_proposals} without proposals, {s.unmatched} unmatched (empty caption), "
        f"{s.seconds:.1f} s ({rate:.2f} items/s) -> {s.path}",
        highlight=False, soft_wrap=True,
    )  # fmt: skip


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="demo folder")] = Path("demo-out"),
    steps: Annotated[
        int | None,
        typer.Option("--steps", min=1, help="training steps (default: DemoConfig.steps)"),
    ] = None,
    num_scenes: Annotated[int, typer.Option("--num-scenes", min=2, help="synthetic scenes")] = 3,
    scenes: Annotated[int | None, old_option("--scenes")] = None,
) -> None:
    """CPU end-to-end: demo scenes -> BEV -> shards -> train tiny -> predict -> score -> report."""
    from ross3d_model.demo import DemoConfig, run_demo

    cfg = DemoConfig(out=out, scenes=renamed(num_scenes, scenes, "--scenes", "--num-scenes"))
    if steps is not None:
        cfg = dataclasses.replace(cfg, steps=steps)
    result = run_demo(cfg, console=console)
    console.print(f"[bold]report:[/bold] {result.report}")
    console.print(f"scores: {result.scores}\nmetrics: {result.metrics}")


@app.command("cache-latents")
def cache_latents(
    config: RunConfig,
    shards: Annotated[Path | None, typer.Option("--shards", help="build-shards folder")] = None,
    view_latents: Annotated[
        bool,
        typer.Option("--view-latents", help="also every view's latents (~3 MB per 32-view clip)"),
    ] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="clips per VAE call")] = 8,
    device: Device = "auto",
    views: Annotated[bool, old_option("--views")] = False,
) -> None:
    """Encode every clip's BEV (and with --view-latents its views) with the frozen VAE once:
    SHARDS/clip-cache/{bev,view}_latents.h5 (latent mean and std; training then samples from
    them instead of running the VAE)."""
    import torch

    from ross3d_model.configuration.model import load_config
    from ross3d_model.configuration.run import load_run_config
    from ross3d_model.inputs.caches import BEV_KIND, VIEW_KIND, cache_latents

    view_latents = renamed(view_latents, views, "--views", "--view-latents")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    run = load_run_config(config)
    folder = shards if shards is not None else run.data.shards
    if folder is None:
        raise ValueError("no shards: pass --shards DIR or set data.shards in the run config")
    vae = load_config(run.model).vae
    for kind in (BEV_KIND, VIEW_KIND) if view_latents else (BEV_KIND,):
        path = cache_latents(folder, vae, kind, batch_size=batch_size, device=device)
        console.print(f"{kind}: {path}", highlight=False, soft_wrap=True)


@app.command("check-init")
def check_init(
    model_config: Annotated[
        str | None,
        typer.Option("--model-config", help="required: model config: tiny | mid | 7b | JSON path"),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print one JSON object on stdout (also on errors)")
    ] = False,
    inference: Annotated[
        bool, typer.Option("--inference", help="as predict builds it: no VAE, no denoiser")
    ] = False,
    model_config_arg: Annotated[str | None, old_argument("MODEL_CONFIG")] = None,
) -> None:
    """One row per pretrained part the config names (found / missing / unreachable / needs a
    token / local file absent / does not fit), then every tensor matched against the model from
    checkpoint headers and a meta skeleton: nothing is built or downloaded. Offline
    (HF_HUB_OFFLINE, or the hub does not answer one probe) nothing waits on the hub. Exit 0 iff
    everything loads. Run it before renting GPUs."""
    import json

    from ross3d_model.configuration.model import load_config
    from ross3d_model.weights.build import check_init as check

    model_config = renamed(
        model_config, model_config_arg, "the positional MODEL_CONFIG", "--model-config"
    )
    try:
        report = check(load_config(required(model_config, "--model-config")), inference=inference)
    except Exception as err:
        if as_json:  # the object is printed whatever happens; the error line follows on stderr
            print(json.dumps({"ok": False, "error": str(err).splitlines()[0] if str(err) else ""}))
        raise
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        _print_init_check(report)
    raise typer.Exit(code=0 if report.ok else 1)


def _print_init_check(report) -> None:
    """The check-init table (one row per pretrained part, its detail below it) and the tensor
    summary, on stderr."""
    hub = report.hub
    console.print(f"hub: {'online' if hub.online else 'offline: ' + hub.reason}", highlight=False)
    console.print(f"{'part':<36} {'status':<22} {'tensors':>7}  source", highlight=False)
    for part in report.parts:
        status = part.status + (f" ({part.where})" if part.where else "")
        tensors = str(part.tensors) if part.tensors else "-"
        line = f"{part.part:<36} {status:<22} {tensors:>7}  {part.source or '-'}"
        console.print(line, style="" if part.loadable else "red", highlight=False, soft_wrap=True)
        if part.detail:
            console.print(f"    {part.detail}", highlight=False, soft_wrap=True)
    for label in ("missing", "unexpected", "mismatched"):
        items = getattr(report, label)
        console.print(f"{label} tensors: {len(items)}", highlight=False)
        for item in items[:20]:
            console.print(f"  {item}", highlight=False, soft_wrap=True)
    for name, n in report.ignored.items():
        console.print(f"ignored: {name}: {n}", highlight=False, soft_wrap=True)
    console.print("OK" if report.ok else "NOT OK: see the rows and tensors above", highlight=False)


if __name__ == "__main__":  # `torchrun -m ross3d_model.cli train ...`
    app()
