"""Cost of the reconstruction losses (cross-view + BEV) relative to the rest of a training step.

Two parts, run by hand (``uv run python benchmarks/bench_recon_overhead.py [--skip-flops]``):

1. Measured step time (forward + backward) of the FULL model (``Ross3DForCausalLM``, the
   shipped ``mid`` config, random weights, a synthetic ScanQA-style example, batch 1) in three
   settings: LM only (reconstruction losses switched off by replacing the model's
   ``_reconstruction_losses`` with one that returns no losses: a benchmark-only switch), LM + BEV
   (what 3 of 4 steps do) and LM + BEV + cross-view (every 4th step).
2. FLOPs at the 7B recipe, forward + backward, counted with ``torch.utils.flop_counter``:
   the LLM (Qwen2-7B shape, on the meta device, 32 x 210 visual + TEXT_TOKENS text tokens),
   the reconstruction losses (the real 7B-size Reconstructor run on CPU: ~3 min here) and the
   frozen VAE encoder (FLUX.1 VAE shape, forward only, meta device).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

V7B, TOKENS_PER_FRAME, TEXT_TOKENS = 32, 210, 150
LLM_7B = dict(hidden=3584, intermediate=18944, layers=28, heads=28, kv_heads=4, vocab=152064)


# ----------------------------------------------------------------------------- step time
def synthetic_example(cfg, seed: int) -> dict:
    """One loader example in the shard contract format (random content, plausible geometry)."""
    from ross3d_model.modeling.masking import choose_masked_views  # noqa: F401  (import cost up front)

    g = torch.Generator().manual_seed(seed)
    v, s, grid = cfg.tokens.num_views, cfg.vision.image_size, cfg.pooled_grid
    bev = torch.zeros(3, 432, 432, dtype=torch.uint8)
    bev[:, 60:380, 40:400] = torch.randint(1, 256, (3, 320, 360), generator=g, dtype=torch.uint8)
    overlap = torch.rand(v, v, generator=g)
    overlap.fill_diagonal_(1.0)
    instruction = {
        "id": "scanqa/train/0", "scene_id": "scene0000_00", "task": "scanqa", "split": "train",
        "prompt": "What color is the chair next to the table? Answer the question simply.",
        "answers": ["brown"], "object_ids": [], "boxes": [], "question_type": None, "eval": {},
    }  # fmt: skip
    return {
        "scene_id": "scene0000_00",
        "frame_ids": torch.arange(v) * 10,
        "images": torch.randint(0, 256, (v, 3, s, s), generator=g, dtype=torch.uint8),
        "coords": torch.rand(v, grid, grid, 3, generator=g) * 6.0 - 3.0,
        "coords_valid": torch.ones(v, grid, grid, dtype=torch.bool),
        "overlap": overlap,
        "coverage": torch.ones(v),
        "bev": bev,
        "bev_world_to_pixel": torch.eye(3),
        "boxes": torch.zeros(0, 6),
        "object_ids": torch.zeros(0, dtype=torch.int64),
        "labels": [],
        "instruction": instruction,
    }


def step_times(config_name: str, repeats: int) -> dict[str, tuple[float, float, float]]:
    from ross3d_model.configuration.model import load_config
    from ross3d_model.inputs.batch import collate_examples
    from ross3d_model.inputs.tokenizer import build_tiny_tokenizer, special_token_ids
    from ross3d_model.weights.build import from_config

    cfg = load_config(config_name)
    tokenizer = build_tiny_tokenizer(vocab_size=cfg.llm.vocab_size)
    torch.manual_seed(0)
    model = from_config(cfg)
    model.set_special_ids(special_token_ids(tokenizer))
    model.train()
    batch = collate_examples([synthetic_example(cfg, 0)], tokenizer, cfg)
    with_recon = model._reconstruction_losses
    settings = {
        "LM only": (False, lambda *a, **k: {"bev": None, "cross_view": None}),
        "LM + BEV": (False, with_recon),
        "LM + BEV + cross-view": (True, with_recon),
    }
    # interleaved rounds (A B C A B C ...) and the minimum per setting: the machine is shared,
    # so load drifts; the minimum is the least disturbed run
    times: dict[str, list[float]] = {name: [] for name in settings}
    for i in range(repeats + 1):  # round 0 warms up
        for name, (cross_view, recon) in settings.items():
            model._reconstruction_losses = recon
            model.zero_grad(set_to_none=True)
            start = time.perf_counter()
            out = model(batch, cross_view=cross_view, generator=torch.Generator().manual_seed(i))
            out.loss.backward()
            if i:
                times[name].append(time.perf_counter() - start)
    results = {}
    for name, (cross_view, recon) in settings.items():  # one FLOP-counted step per setting
        model._reconstruction_losses = recon
        with FlopCounterMode(display=False) as counter:
            out = model(batch, cross_view=cross_view, generator=torch.Generator().manual_seed(0))
            out.loss.backward()
        flops = float(counter.get_total_flops())
        results[name] = (min(times[name]), statistics.median(times[name]), flops)
    model._reconstruction_losses = with_recon
    return results


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def branch_times(config_name: str, repeats: int) -> dict[str, float]:
    """The reconstruction branch alone at the config's sizes (LLM hidden states stand in as
    random leaf tensors): VAE encodes and each loss forward + backward."""
    from ross3d_model.configuration.model import load_config
    from ross3d_model.modeling.latents import LatentTokenizer
    from ross3d_model.modeling.masking import choose_masked_views
    from ross3d_model.modeling.reconstruction import Reconstructor

    cfg = load_config(config_name)
    v, grid = cfg.tokens.num_views, cfg.reconstruction.view_grid
    example = synthetic_example(cfg, 0)
    images, bev = example["images"].unsqueeze(0), example["bev"].unsqueeze(0)
    torch.manual_seed(0)
    tokenizer, recon = (
        LatentTokenizer(cfg.vae),
        Reconstructor(cfg.reconstruction, cfg.llm.hidden_size),
    )
    hidden = torch.randn(1, v, grid * grid, cfg.llm.hidden_size, requires_grad=True)
    masked = choose_masked_views(v, cfg.reconstruction.mask_ratio, generator=torch.Generator())
    view_lat = tokenizer.encode_views(images)
    bev_lat, bev_valid = tokenizer.encode_bev(bev)

    def loss_step(loss_fn):
        recon.zero_grad(set_to_none=True)
        loss_fn().backward()

    return {
        "VAE encode BEV (432 px)": best_of(lambda: tokenizer.encode_bev(bev), repeats),
        f"VAE encode {int(masked.sum())} masked views": best_of(
            lambda: tokenizer.encode_views(images, views_BV=masked), repeats
        ),
        f"VAE encode all {v} views": best_of(lambda: tokenizer.encode_views(images), repeats),
        "bev_loss fwd+bwd": best_of(
            lambda: loss_step(lambda: recon.bev_loss(hidden, ~masked, bev_lat, bev_valid)), repeats
        ),
        "view_loss fwd+bwd": best_of(
            lambda: loss_step(lambda: recon.view_loss(hidden, masked, view_lat)), repeats
        ),
    }


# ----------------------------------------------------------------------------- 7B FLOPs
def llm_flops_7b(seq_len: int) -> tuple[float, float]:
    """(counted fwd+bwd FLOPs, same with causal attention counted as half) for Qwen2-7B."""
    from transformers import Qwen2Config, Qwen2Model

    c = LLM_7B
    qcfg = Qwen2Config(
        hidden_size=c["hidden"], intermediate_size=c["intermediate"],
        num_hidden_layers=c["layers"], num_attention_heads=c["heads"],
        num_key_value_heads=c["kv_heads"], vocab_size=c["vocab"],
    )  # fmt: skip
    qcfg._attn_implementation = "sdpa"
    with torch.device("meta"):
        model = Qwen2Model(qcfg)
        x = torch.randn(1, seq_len, c["hidden"], requires_grad=True)
        with FlopCounterMode(display=False) as counter:
            model(inputs_embeds=x).last_hidden_state.sum().backward()
    total = counter.get_total_flops()
    # the counter charges full L x L attention; flash/causal kernels do about half of it
    attention = 3 * 4 * seq_len**2 * c["hidden"] * c["layers"]
    return float(total), float(total - attention / 2)


def vae_encoder_flops(size: int) -> float:
    """Forward FLOPs of the FLUX.1 VAE encoder (its published architecture) on one image."""
    from diffusers import AutoencoderKL

    with torch.device("meta"):
        vae = AutoencoderKL(
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            latent_channels=16,
            use_quant_conv=False,
            use_post_quant_conv=False,
        )
        with FlopCounterMode(display=False) as counter:
            vae.encode(torch.randn(1, 3, size, size))
    return float(counter.get_total_flops())


def reconstruction_flops_7b() -> dict[str, float]:
    """fwd+bwd FLOPs of view_loss (8 of 32 masked, 4 repeats) and bev_loss at the 7B config."""
    from ross3d_model.configuration.parts import ReconstructionConfig
    from ross3d_model.modeling.reconstruction import Reconstructor

    torch.manual_seed(0)
    recon = Reconstructor(ReconstructionConfig(), LLM_7B["hidden"])
    hidden = torch.randn(1, V7B, 196, LLM_7B["hidden"], requires_grad=True)
    masked = torch.zeros(1, V7B, dtype=torch.bool)
    masked[0, :: V7B // 8] = True
    calls = {
        "bev": lambda: recon.bev_loss(
            hidden, ~masked, torch.randn(1, 64, 27, 27), torch.ones(1, 27, 27, dtype=torch.bool)
        ),
        "cross_view": lambda: recon.view_loss(hidden, masked, torch.randn(1, V7B, 64, 14, 14)),
    }
    out = {}
    for name, call in calls.items():
        with FlopCounterMode(display=False) as counter:
            call().backward()
        out[name] = float(counter.get_total_flops())
    return out


def flop_report() -> None:
    seq = V7B * TOKENS_PER_FRAME + TEXT_TOKENS
    llm_full, llm_causal = llm_flops_7b(seq)
    vae_view, vae_bev = vae_encoder_flops(216), vae_encoder_flops(432)
    rec = reconstruction_flops_7b()
    bev_step = rec["bev"] + vae_bev
    cross_step = rec["cross_view"] + 8 * vae_view  # VAE on the 8 masked views only
    cross_all_views = rec["cross_view"] + V7B * vae_view  # VAE on all 32 views
    print(f"LLM 7B, {seq} tokens, fwd+bwd: {llm_full / 1e12:.1f} TFLOP counted, "
          f"{llm_causal / 1e12:.1f} TFLOP with causal attention halved (used below)")  # fmt: skip
    print(f"VAE encoder fwd: {vae_view / 1e9:.0f} GFLOP per 216 px view, "
          f"{vae_bev / 1e9:.0f} GFLOP per 432 px BEV")  # fmt: skip
    print(f"denoiser fwd+bwd: BEV {rec['bev'] / 1e12:.3f} TFLOP, "
          f"cross-view {rec['cross_view'] / 1e12:.3f} TFLOP")  # fmt: skip
    every = 4
    rows = [
        ("BEV step (denoiser + VAE)", bev_step),
        ("cross-view step (BEV + cross-view, VAE on 8 masked views)", bev_step + cross_step),
        ("cross-view step, VAE on all 32 views", bev_step + cross_all_views),
        (f"average over {every} steps (VAE on 8 views)", bev_step + cross_step / every),
        (f"average over {every} steps (VAE on 32 views)", bev_step + cross_all_views / every),
        ("average, denoiser only (no VAE)", rec["bev"] + rec["cross_view"] / every),
    ]
    print("| setting | extra TFLOP | share of LLM fwd+bwd |\n|---|---|---|")
    for name, flops in rows:
        print(f"| {name} | {flops / 1e12:.2f} | {100 * flops / llm_causal:.2f} % |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="mid")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-flops", action="store_true")
    args = parser.parse_args()
    times = step_times(args.config, args.repeats)
    base, base_flops = times["LM only"][0], times["LM only"][2]
    print(
        f"| setting ({args.config} config, CPU) | min step (s) | median (s) | overhead (min) "
        "| GFLOP fwd+bwd | FLOP overhead |\n|---|---|---|---|---|---|"
    )
    for name, (fastest, median, flops) in times.items():
        print(
            f"| {name} | {fastest:.2f} | {median:.2f} | {100 * (fastest / base - 1):+.1f} % "
            f"| {flops / 1e9:.0f} | {100 * (flops / base_flops - 1):+.1f} % |"
        )
    print(f"\n| reconstruction branch alone ({args.config} config) | min time (s) |\n|---|---|")
    for name, seconds in branch_times(args.config, args.repeats).items():
        print(f"| {name} | {seconds:.2f} |")
    if not args.skip_flops:
        flop_report()


if __name__ == "__main__":
    main()
