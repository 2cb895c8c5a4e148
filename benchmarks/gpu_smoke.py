"""GPU smoke test of the 7B recipe shape (needs CUDA; run by hand on a lent GPU).

    uv run python benchmarks/gpu_smoke.py [--reps 3] [--new-tokens 32] [--gpus 8]

Builds Ross3DForCausalLM with the shipped `7b` model config on the device in bf16 with random
weights (no download: no pretrained SigLIP / LLaVA / denoiser; the VAE gets FLUX's encoder
widths 128-256-512-512 at random, the tokenizer is the built-in tiny one), gradient
checkpointing on, 32 views per clip. Reports per sample type (QA, QA on a cross-view step,
grounding, vision-only clip): forward + backward seconds, peak device memory (model, grads and
activations; no optimiser state: ZeRO shards that), trainable parameters left without a
gradient (0 expected: one graph); then greedy generation tokens/s and the projected hours of
the recipe (run config `7b`: max_steps x the accumulation its global batch gives on `--gpus`
GPUs micro-batches per GPU, the mean step time of the sample types, `--gpus` data-parallel GPUs
sharing the global batch).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_recon_overhead import synthetic_example

FLUX_ENCODER_WIDTHS = [128, 256, 512, 512]
RECIPE_GROUPS = {"qa": 79_445 + 26_515, "caption": 36_665, "grounding": 36_665 + 43_838}


def random_7b_config():
    from ross3d_model.configuration.model import load_config

    cfg = load_config("7b")
    return dataclasses.replace(
        cfg,
        vision=dataclasses.replace(cfg.vision, pretrained=None),
        llm=dataclasses.replace(cfg.llm, pretrained=None),
        vae=dataclasses.replace(
            cfg.vae,
            pretrained=None,
            tiny_block_out_channels=FLUX_ENCODER_WIDTHS,
            tiny_norm_num_groups=32,
        ),
        reconstruction=dataclasses.replace(cfg.reconstruction, pretrained_denoiser=None),
        tokenizer=None,
        init_from=None,
    )


def examples(cfg) -> dict[str, dict]:
    """One synthetic 32-view example per sample type (a wall 2 m in front of every camera)."""
    v, s = cfg.tokens.num_views, cfg.vision.image_size
    K = torch.tensor([[300.0, 0, s / 2], [0, 300.0, s / 2], [0, 0, 1]])
    geometry = {
        "depth_mm": torch.full((v, s, s), 2000, dtype=torch.int32),
        "K_crop": K.repeat(v, 1, 1),
        "T_aligned_cam": torch.eye(4).repeat(v, 1, 1),
        "boxes": torch.tensor([[0.0, 0.0, 2.0, 1.0, 1.0, 0.4], [0.8, 0.0, 2.0, 0.4, 0.4, 0.4]]),
        "object_ids": torch.tensor([10, 11]),
        "labels": ["chair", "table"],
    }
    qa = {**synthetic_example(cfg, seed=0), **geometry}
    grounding = dict(qa)
    grounding["instruction"] = {
        **qa["instruction"], "id": "scanrefer/train/0", "task": "scanrefer", "answers": [],
        "object_ids": [10], "prompt": "Identify the object according to the following "
        "description.\nthe brown chair",
    }  # fmt: skip
    return {"qa": qa, "grounding": grounding, "vision-only": {**qa, "instruction": None}}


def step(model, batch, cross_view: bool) -> tuple[float, float, int]:
    """(seconds, peak GiB, trainable parameters without a gradient) of one forward + backward."""
    model.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    model(batch, cross_view=cross_view).loss.backward()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    missing = sum(1 for p in model.parameters() if p.requires_grad and p.grad is None)
    return seconds, torch.cuda.max_memory_allocated() / 2**30, missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--gpus", type=int, default=8)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_smoke needs a CUDA device")

    from ross3d_model.configuration.run import load_run_config, steps_per_epoch
    from ross3d_model.inference.generation import generate_text
    from ross3d_model.inputs.batch import collate_examples
    from ross3d_model.inputs.tokenizer import build_tiny_tokenizer, special_token_ids
    from ross3d_model.weights.build import from_config

    cfg, device = random_7b_config(), torch.device("cuda")
    torch.manual_seed(0)
    began = time.perf_counter()
    model = from_config(cfg, dtype=torch.bfloat16, device=device)
    tokenizer = build_tiny_tokenizer()
    model.set_special_ids(special_token_ids(tokenizer))
    model.train()
    model.gradient_checkpointing_enable({"use_reentrant": False})
    print(f"{torch.cuda.get_device_name()}: built in {time.perf_counter() - began:.1f} s, "
          f"{torch.cuda.memory_allocated() / 2**30:.1f} GiB")  # fmt: skip

    times = []
    for kind, example in examples(cfg).items():
        for cross_view in (False, True) if kind == "qa" else (False,):
            batch = collate_examples([example], tokenizer, cfg, train=True, seed=0)
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            runs = [step(model, batch, cross_view) for _ in range(args.reps + 1)][1:]
            seconds = statistics.median(r[0] for r in runs)
            times.append(seconds)
            label = kind + (" (cross-view step)" if cross_view else "")
            print(f"{label:26s} fwd+bwd {seconds:6.2f} s  peak {max(r[1] for r in runs):6.1f} "
                  f"GiB  params without grad {runs[-1][2]}", flush=True)  # fmt: skip

    model.eval()
    batch = collate_examples([examples(cfg)["qa"]], tokenizer, cfg, train=False)
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    with torch.no_grad():
        torch.cuda.synchronize()
        began = time.perf_counter()
        new = generate_text(model, batch, tokenizer, max_new_tokens=args.new_tokens)
        torch.cuda.synchronize()
    tokens = sum(len(row) for row in new)
    print(f"generation: {tokens} tokens in {time.perf_counter() - began:.2f} s (prefill included)")

    run = load_run_config("7b")
    # 7b derives max_steps from the shard data; REFERENCE 3's train counts per task group
    steps = run.train.max_steps or steps_per_epoch(RECIPE_GROUPS, 256, group_by_task=True)
    accum = run.train.for_world(args.gpus).grad_accum  # from train.global_batch_size
    micro = steps * accum  # per GPU: each GPU one micro-batch
    hours = micro * statistics.mean(times) / 3600
    print(f"projected: {steps} steps x {accum} micro-batches per "
          f"GPU x {statistics.mean(times):.2f} s = {hours:.1f} h on {args.gpus} GPUs "
          f"(forward + backward only; optimiser and ZeRO communication not included)")  # fmt: skip


if __name__ == "__main__":
    main()
