"""Peak host memory while building Ross3DForCausalLM from checkpoints on disk (issue 9).

Run by hand: ``uv run python benchmarks/bench_build_memory.py [--shape 1.5b|mid] [--work DIR]``.

Shape "1.5b" (default, the largest this 24 GiB machine holds comfortably): a Qwen2-1.5B LLM
(hidden 1536, 28 layers, vocab 151,936 rows in the checkpoint -> 151,649 in the model, the two
added rows mean-initialised), the SigLIP-so400m tower (26 layers), the projector and newline in a
LLaVA-Video layout checkpoint, plus a FLUX-shaped VAE (diffusers folder) and the 7B-recipe
denoiser (width 1024, depth 3) built for real; random bf16 weights. "mid" uses the shipped mid
config the same way.

Each case runs in its own subprocess and reports its peak resident set during the build
(``VmHWM``, reset after imports; it includes file-backed pages the loader touched) minus the RSS
after imports, then again after every weight was read once (``peak_touched``: memory-mapped
weights are resident only once read):
- ``trainer``: the trainer's own build path for the `7b` run config (DeepSpeed ZeRO-3, bf16):
  ``task.build_training_model(cfg, tokenizer, trainer.build_dtype(run.train))``;
- ``lean-bf16``: ``from_config(cfg, dtype=bf16)`` (training start: meta skeleton + assign);
- ``lean-fp32``: the same in float32 (the loaded tensors are converted: 2x is the floor);
- ``export-bf16`` / ``export-inference``: ``from_pretrained`` of a bf16 export (all parts /
  ``inference=True``: no VAE, no denoiser);
- ``old-path``: what the code did before: a random fp32 model built on CPU, the whole
  checkpoint read into memory, then copied in.
The ratio is the peak over the bf16 size of the checkpoint files the case reads.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = ("trainer", "lean-bf16", "lean-fp32", "export-bf16", "export-inference", "old-path")


def shape_config(shape: str, work: Path):
    from ross3d_model.configuration.model import Ross3DConfig, load_config

    data = load_config("mid").to_dict()
    if shape == "1.5b":
        data["llm"].update(
            vocab_size=151649, added_token_rows=2, hidden_size=1536, intermediate_size=8960,
            num_layers=28, num_heads=12, num_kv_heads=2, max_position_embeddings=32768,
        )  # fmt: skip
        data["vision"].update(hidden_size=1152, intermediate_size=4304, num_layers=26, num_heads=16)
        data["reconstruction"].update(width=1024, depth=3, num_heads=16, pool_heads=16)
        data["vae"].update(pretrained=str(work / "vae_repo"), subfolder="vae")
    data["init_from"] = str(work / "llava")
    return Ross3DConfig.from_dict(data)


def write_checkpoints(shape: str, work: Path) -> None:
    """LLaVA-layout checkpoint (+ a diffusers VAE folder for 1.5b) with random bf16 tensors,
    written from a meta model's names and shapes (no fp32 copy is ever built)."""
    import torch
    from ross3d_model.modeling.model import Ross3DForCausalLM, Ross3DHFConfig
    from ross3d_model.weights.checkpoint import ours_to_llava, write_sharded
    from ross3d_model.weights.loading import meta_skeleton

    cfg = shape_config(shape, work)
    if shape == "1.5b":
        write_vae(work / "vae_repo" / "vae")
    skeleton = meta_skeleton(Ross3DForCausalLM, Ross3DHFConfig(ross3d=cfg.to_dict()), False)
    g = torch.Generator().manual_seed(0)
    state = {}
    for name, t in skeleton.state_dict().items():
        key = ours_to_llava(name)
        if key is None or name.startswith(("mask_token", "ground_head.", "reconstructor.")):
            continue
        shape_ = list(t.shape)
        if name.endswith(("embed_tokens.weight", "lm_head.weight")) and shape == "1.5b":
            shape_[0] = 151936  # Qwen2-1.5B's rows; the model keeps 151,647 + 2 mean rows
        state[key] = (torch.randn(shape_, generator=g) * 0.02).to(torch.bfloat16)
    write_sharded(state, work / "llava", max_shard_bytes=2 * 2**30)


def write_vae(folder: Path) -> None:
    import torch
    from diffusers import AutoencoderKL
    from ross3d_model.modeling.latents import FLUX_SCALING_FACTOR, FLUX_SHIFT_FACTOR

    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=16,
        scaling_factor=FLUX_SCALING_FACTOR,
        shift_factor=FLUX_SHIFT_FACTOR,
        use_quant_conv=False,
        use_post_quant_conv=False,
    ).to(torch.bfloat16)
    vae.save_pretrained(str(folder))


def status_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    """Start VmHWM afresh (Linux >= 4.0: writing 5 to clear_refs), so import-time peaks do not
    count."""
    Path("/proc/self/clear_refs").write_text("5")


def run_case(case: str, shape: str, work: Path) -> dict:
    """In this (fresh) process: build as `case` says, return peak RSS figures."""
    import torch
    from ross3d_model.modeling.model import Ross3DForCausalLM, Ross3DHFConfig
    from ross3d_model.weights.build import from_config, from_pretrained
    from ross3d_model.weights.checkpoint import read_state_dict

    cfg = shape_config(shape, work)
    base = status_mib("VmRSS")
    reset_peak()
    start = time.perf_counter()
    if case == "trainer":
        from ross3d_model.configuration.run import load_run_config
        from ross3d_model.inputs.tokenizer import build_tiny_tokenizer
        from ross3d_model.training.task import build_training_model
        from ross3d_model.training.trainer import build_dtype

        dtype = build_dtype(load_run_config("7b").train)
        model = build_training_model(cfg, build_tiny_tokenizer(), dtype)
        read = [work / "llava"] + ([work / "vae_repo"] if shape == "1.5b" else [])
    elif case.startswith("lean"):
        dtype = torch.bfloat16 if case == "lean-bf16" else torch.float32
        model = from_config(cfg, dtype=dtype)
        read = [work / "llava"] + ([work / "vae_repo"] if shape == "1.5b" else [])
    elif case.startswith("export"):
        model = from_pretrained(
            work / "export", torch.bfloat16, inference=case == "export-inference"
        )
        read = [work / "export"]
    else:
        from ross3d_model.weights.checkpoint import llava_to_ours

        plain = cfg.to_dict() | {"init_from": None}
        plain["vae"]["pretrained"] = None  # the old path loaded the VAE with diffusers
        model = Ross3DForCausalLM(Ross3DHFConfig(ross3d=plain))
        theirs = read_state_dict(work / "llava")
        ours = {llava_to_ours(k): v for k, v in theirs.items()}
        shapes = {k: v.shape for k, v in model.state_dict().items()}
        ours = {k: v for k, v in ours.items() if v.shape == shapes[k]}
        model.load_state_dict(ours, strict=False)
        read = [work / "llava"]
    seconds = time.perf_counter() - start
    peak = status_mib("VmHWM")
    with torch.no_grad():  # read every weight once, as a first training step does
        for p in model.parameters():
            p.sum()
    touched = status_mib("VmHWM")
    params = sum(p.numel() for p in model.parameters())
    ckpt = sum(f.stat().st_size for d in read for f in d.rglob("*.safetensors"))
    return {
        "case": case, "seconds": round(seconds, 1), "params_M": round(params / 1e6, 1),
        "baseline_MiB": round(base), "peak_MiB": round(peak),
        "checkpoint_MiB": round(ckpt / 2**20),
        "peak_touched_MiB": round(touched),
        "ratio_build": round((peak - base) / (ckpt / 2**20), 3),
        "ratio_touched": round((touched - base) / (ckpt / 2**20), 3),
    }  # fmt: skip


def export_bf16(shape: str, work: Path) -> None:
    import torch
    from ross3d_model.weights.build import from_config

    model = from_config(shape_config(shape, work), dtype=torch.bfloat16)
    model.save_pretrained(str(work / "export"), max_shard_size="2GB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=("1.5b", "mid"), default="1.5b")
    parser.add_argument("--work", type=Path, default=None, help="reuse checkpoints written here")
    parser.add_argument("--case", choices=CASES, default=None, help="(internal) one case")
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_build_"))
    if args.case is not None:
        print(json.dumps(run_case(args.case, args.shape, work)))
        return
    if not (work / "llava").is_dir():
        print(f"writing checkpoints to {work} ...", flush=True)
        write_checkpoints(args.shape, work)
    if not (work / "export").is_dir():
        export_bf16(args.shape, work)
    for case in args.cases:
        cmd = [sys.executable, __file__, "--shape", args.shape, "--work", str(work), "--case", case]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            print(f"{case}: failed\n{out.stderr[-2000:]}", flush=True)
            continue
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
