"""The figures of the one prepared GPU check (issue 22; `benchmarks/gpu_check.sh` runs it).

    uv run python benchmarks/gpu_check.py --json OUT/gpu_check.json --docs docs/benchmarks.md

On one card, at the 7B shape with random bf16 weights (`gpu_smoke.random_7b_config`: nothing
downloaded), gradient checkpointing on:
1. smoke: per sample type (QA, QA on a cross-view step, grounding, vision-only) the forward +
   backward seconds, peak device memory, tokens, tokens/s and MFU (model FLOPs: 6 x trainable
   parameters x LLM tokens + causal attention 12 x layers x hidden x tokens^2 + 2 x frozen
   vision parameters x patches, no recomputation, over the card's dense bf16 peak);
2. generation tokens/s of `--rows` questions on one clip, with and without prefix reuse;
3. one ZeRO-3 optimiser step on this one GPU (DeepSpeed, the shipped zero3 config) at the 7B
   widths with `--zero3-layers` LLM layers (the full 7B's 18 bytes per parameter would not fit
   one card): step seconds, peak memory, parameters;
4. `pytest -m gpu` (its exit code and summary line).
Writes all figures to one JSON (`--json`) and appends a dated table naming the card to
`--docs`. `--device cpu --model-config tiny` runs the same code on CPU in seconds (the test).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from gpu_smoke import examples, random_7b_config

# dense bf16 peak TFLOP/s (no sparsity) by a substring of the device name
PEAK_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, required=True, help="figures (one JSON object)")
    parser.add_argument("--docs", type=Path, default=None, help="markdown file to append to")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--model-config", default="7b", help="7b (random weights) or tiny")
    parser.add_argument("--reps", type=int, default=2, help="timed steps per sample type")
    parser.add_argument("--rows", type=int, default=4, help="questions per clip (generation)")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--zero3-layers", type=int, default=4, help="LLM layers of the step")
    parser.add_argument("--peak-tflops", type=float, default=None, help="else from the name")
    parser.add_argument("--pytest", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda needs a CUDA device (--device cpu for the CPU check)")
    if min(args.reps, args.rows, args.new_tokens, args.zero3_layers) < 1:
        parser.error("--reps, --rows, --new-tokens and --zero3-layers must be >= 1")
    return args


def model_config(name: str):
    from ross3d_model.configuration.model import load_config

    return random_7b_config() if name == "7b" else load_config(name)


def card(device: torch.device, override: float | None) -> dict:
    """The device's name and dense bf16 peak (None when unknown: no MFU)."""
    if device.type != "cuda":
        return {"name": "cpu", "peak_tflops": override}
    name = torch.cuda.get_device_name(device)
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    return {"name": name, "peak_tflops": override or peak}


def model_flops(model, cfg, llm_tokens: int) -> float:
    """Model FLOPs of one training sample (module docstring), no recomputation."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen_vision = sum(p.numel() for p in model.vision_tower.parameters())
    patches = cfg.tokens.num_views * cfg.vision.grid**2
    attention = 12 * cfg.llm.num_layers * cfg.llm.hidden_size * llm_tokens**2
    return 6 * trainable * llm_tokens + attention + 2 * frozen_vision * patches


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def timed_step(model, batch: dict, cross_view: bool, device: torch.device) -> tuple[float, float]:
    """(seconds, peak GiB or None) of one forward + backward."""
    model.zero_grad(set_to_none=True)
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    began = time.perf_counter()
    model(batch, cross_view=cross_view).loss.backward()
    _sync(device)
    return time.perf_counter() - began, _peak_gib(device)


def smoke(model, cfg, tokenizer, device, args, peak_tflops) -> dict:
    """Per sample type: seconds (median of --reps after one warm-up), peak GiB, tokens,
    tokens/s, MFU."""
    from ross3d_model.inputs.batch import collate_examples

    out = {}
    for kind, example in examples(cfg).items():
        for cross_view in (False, True) if kind == "qa" else (False,):
            batch = _to(collate_examples([example], tokenizer, cfg, train=True, seed=0), device)
            runs = [timed_step(model, batch, cross_view, device) for _ in range(args.reps + 1)]
            seconds = statistics.median(r[0] for r in runs[1:])
            tokens = int(batch["attention_mask"].sum()) - 1 + cfg.visual_tokens
            flops = model_flops(model, cfg, tokens)
            mfu = flops / seconds / (peak_tflops * 1e12) if peak_tflops else None
            peaks = [r[1] for r in runs[1:] if r[1] is not None]
            out[kind + ("+cross-view" if cross_view else "")] = {
                "step_s": round(seconds, 4), "peak_gib": round(max(peaks), 2) if peaks else None,
                "tokens": tokens, "tokens_per_s": round(tokens / seconds, 1),
                "mfu": None if mfu is None else round(mfu, 4),
            }  # fmt: skip
    return out


def generation(model, cfg, tokenizer, device, args) -> dict:
    """Greedy tokens/s of --rows questions about one clip, with and without prefix reuse."""
    from ross3d_model.inference.generation import generate_text
    from ross3d_model.inputs.batch import collate_examples

    qa = examples(cfg)["qa"]
    rows = []
    for i in range(args.rows):
        instruction = {**qa["instruction"], "id": f"scanqa/val/{i}", "prompt": f"Question {i}?"}
        rows.append({**qa, "instruction": instruction})
    batch = _to(collate_examples(rows, tokenizer, cfg, train=False), device)
    out = {}
    model.eval()
    for reuse in (True, False):
        _sync(device)
        began = time.perf_counter()
        new = generate_text(model, batch, tokenizer, args.new_tokens, reuse_prefix=reuse)
        _sync(device)
        seconds = time.perf_counter() - began
        tokens = sum(len(r) for r in new)
        key = "prefix_reuse" if reuse else "no_prefix_reuse"
        out[key] = {"tokens": tokens, "seconds": round(seconds, 3),
                    "tokens_per_s": round(tokens / seconds, 1)}  # fmt: skip
    model.train()
    return out


def zero3_step(cfg, tokenizer, device, args) -> dict:
    """One ZeRO-3 optimiser step through the trainer's engine on this one process."""
    from ross3d_model.configuration.run import RunConfig, TrainConfig
    from ross3d_model.inputs.batch import collate_examples
    from ross3d_model.inputs.tokenizer import special_token_ids
    from ross3d_model.training.engine import make_engine
    from ross3d_model.training.trainer import _launcher_env, build_dtype
    from ross3d_model.weights.build import from_config

    cfg = dataclasses.replace(cfg, llm=dataclasses.replace(cfg.llm, num_layers=args.zero3_layers))
    tcfg = TrainConfig(max_steps=2, bf16=device.type == "cuda", deepspeed="zero3",
                       gradient_checkpointing=True, lr=1e-5)  # fmt: skip
    _launcher_env(True)
    model = from_config(cfg, dtype=build_dtype(tcfg), device=device)
    model.set_special_ids(special_token_ids(tokenizer))
    model.train()
    model.gradient_checkpointing_enable({"use_reentrant": False})
    engine = make_engine(RunConfig(model="gpu-check", train=tcfg), model, cfg.llm.hidden_size)
    batch = _to(collate_examples([examples(cfg)["qa"]], tokenizer, cfg, train=True, seed=0), device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    began = time.perf_counter()
    loss = engine.model(batch, cross_view=False).loss
    engine.backward(loss)
    engine.step()
    _sync(device)
    seconds, peak = time.perf_counter() - began, _peak_gib(device)
    params = sum(p.ds_numel if hasattr(p, "ds_numel") else p.numel() for p in model.parameters())
    finite = bool(torch.isfinite(loss.detach()).item())
    del engine, model, loss  # the card is free again for `pytest -m gpu`
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"llm_layers": args.zero3_layers, "params_M": round(params / 1e6, 1),
            "step_s": round(seconds, 3), "peak_gib": None if peak is None else round(peak, 2),
            "loss_finite": finite}  # fmt: skip


LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def run_pytest() -> dict:
    """`pytest -m gpu` in a subprocess: exit code and its summary line. Without the launcher
    variables the ZeRO-3 step set in this process (its port is still held here)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-m", "gpu", "tests/"]
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    root = Path(__file__).parents[1]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=root, env=env)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return {"returncode": done.returncode, "summary": lines[-1] if lines else ""}


def write_json(figures: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if isinstance(value, float) else str(value)


def markdown_table(figures: dict) -> str:
    """A dated section naming the card, one row per figure."""
    c = figures["card"]
    lines = [
        f"## GPU check (`benchmarks/gpu_check.sh`), {figures['date']}, {c['name']}",
        "",
        f"Model config `{figures['model_config']}` (random weights), bf16 peak "
        f"{_fmt(c['peak_tflops'], 0)} TFLOP/s; JSON: `{figures['json']}`.",
        "",
        "| figure | step s | tokens | tokens/s | MFU | peak GiB |",
        "|---|---|---|---|---|---|",
    ]
    for kind, f in figures["smoke"].items():
        mfu = None if f["mfu"] is None else f"{100 * f['mfu']:.1f} %"
        lines.append(
            f"| fwd+bwd {kind} | {_fmt(f['step_s'], 3)} | {f['tokens']} | "
            f"{_fmt(f['tokens_per_s'], 1)} | {mfu or '-'} | {_fmt(f['peak_gib'])} |"
        )
    for key, g in figures["generation"].items():
        lines.append(
            f"| generation, {key.replace('_', ' ')} | {_fmt(g['seconds'], 3)} | {g['tokens']} | "
            f"{_fmt(g['tokens_per_s'], 1)} | - | - |"
        )
    z = figures.get("zero3_step")
    if z is not None:
        lines.append(
            f"| ZeRO-3 optimiser step, 1 GPU, {z['llm_layers']} LLM layers, {z['params_M']} M "
            f"params | {_fmt(z['step_s'], 3)} | - | - | - | {_fmt(z['peak_gib'])} |"
        )
    p = figures.get("pytest")
    if p is not None:
        lines += ["", f"`pytest -m gpu`: exit {p['returncode']}, {p['summary']}"]
    return "\n".join(lines) + "\n"


def append_table(figures: dict, docs: Path) -> None:
    text = docs.read_text() if docs.is_file() else ""
    docs.write_text(text.rstrip("\n") + "\n\n" + markdown_table(figures))


def main(argv: list[str] | None = None) -> dict:
    from ross3d_model.inputs.tokenizer import build_tiny_tokenizer, special_token_ids
    from ross3d_model.weights.build import from_config

    args = parse_args(argv)
    device = torch.device(args.device)
    cfg, tokenizer = model_config(args.model_config), build_tiny_tokenizer()
    figures = {
        "date": datetime.date.today().isoformat(), "card": card(device, args.peak_tflops),
        "model_config": args.model_config, "json": str(args.json),
    }  # fmt: skip
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device.type == "cuda" else None
    model = from_config(cfg, dtype=dtype, device=device)
    model.set_special_ids(special_token_ids(tokenizer))
    model.train()
    model.gradient_checkpointing_enable({"use_reentrant": False})
    peak = figures["card"]["peak_tflops"]
    figures["smoke"] = smoke(model, cfg, tokenizer, device, args, peak)
    write_json(figures, args.json)  # what is measured so far survives a later failure
    figures["generation"] = generation(model, cfg, tokenizer, device, args)
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    figures["zero3_step"] = zero3_step(cfg, tokenizer, device, args)
    figures["pytest"] = None
    write_json(figures, args.json)
    if args.docs is not None:  # the table first: the figures survive a pytest past the timeout
        append_table(figures, args.docs)
    if args.pytest:
        figures["pytest"] = run_pytest()
        write_json(figures, args.json)
        if args.docs is not None:
            p = figures["pytest"]
            with args.docs.open("a") as f:
                f.write(f"\n`pytest -m gpu`: exit {p['returncode']}, {p['summary']}\n")
    return figures


if __name__ == "__main__":
    main()
