"""Checkpoints in the public layouts, written from key lists and shapes read off the public code's
module definitions (NOT from our modules' state dicts), at the tiny config's sizes.

Public sources (github Haochen-Wang409/ross3d at ef570e7, Haochen-Wang409/ross at 20ffc6b):
- Qwen2 (LLaVA-Video's LLM): ross3d `ross3d/model/language_model/qwen2/modeling_qwen2.py`
  lines 237-240 (q/k/v_proj with bias, o_proj without), 183-185 (gate/up/down_proj, no bias),
  82 + 740-741 (RMSNorm `weight`), 935-940 (embed_tokens, layers, norm), 1106-1108 (`model`,
  `lm_head` without bias).
- SigLIP tower: ross3d `ross3d/model/multimodal_encoder/siglip_encoder.py` lines 156-166 (patch
  Conv2d and position Embedding), 192-195 (k/v/q/out_proj), 248-249 (fc1/fc2), 264-266
  (layer_norm1/2), 414-416 (embeddings/encoder/post_layernorm), 491 (`vision_model`), 570-571
  (the last layer deleted, head -> Identity); the LLaVA model keeps it under
  `model.vision_tower.vision_tower.`.
- Projector: ross3d `ross3d/model/multimodal_projector/builder.py` lines 42-49 (mlp2x_gelu:
  Linear, GELU, Linear -> indices 0 and 2).
- Newline and mask token: ross3d `ross3d/model/ross3d_arch.py` lines 55 and 57 ([hidden]).
- Grounding head: ross3d `ross3d/model/language_model/ross3d_qwen.py` lines 103-118
  (zero_target [hidden]; obj/query = Linear, ReLU, LayerNorm, Linear -> indices 0, 2, 3).
- Ross3D denoiser: ross3d `ross3d/model/multimodal_denoiser/denoiser_dit_multi.py`: DiT lines
  178-204 (x_embedder_{bev,view} = timm PatchEmbed: `proj` Conv2d k=1; pos_embed_{bev,view}
  [1, N, W]; z_embedder_{bev,view} = AttentionPoolingClassifier lines 118-125: proj = SiLU +
  Linear(z, W), k/v Linear(W, W, bias=False), cls_token [1, N, W], linear Linear(W, W,
  bias=False); t_embedder; blocks; final_layer), TimestepEmbedder lines 24-28 (mlp.0/mlp.2),
  DiTBlock lines 63-72 (timm Attention: fused `qkv` Linear(W, 3W) and `proj`; timm Mlp
  `fc1`/`fc2`; adaLN_modulation.1 Linear(W, 6W)), FinalLayer lines 87-92 (linear Linear(W, C),
  adaLN_modulation.1 Linear(W, 2W)); Ross3DDenoiserMulti line 307 (`ln_pre`, no affine: no
  keys) and 311 (`net`); builder: ross3d `multimodal_projector/builder.py` lines 75-95.
- ROSS 2D denoiser: ross `ross/model/multimodal_denoiser/denoiser_dit.py` lines 124-136
  (x_embedder PatchEmbed, t_embedder, z_embedder = SiLU + Linear(z, W), pos_embed [1, N, W]),
  blocks and final layer as above (lines 57-98).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

Shapes = dict[str, tuple[int, ...]]


def qwen2_keys(cfg, vocab_rows: int) -> Shapes:
    llm = cfg.llm
    d, i, hd = llm.hidden_size, llm.intermediate_size, llm.hidden_size // llm.num_heads
    kv = llm.num_kv_heads * hd
    keys = {"model.embed_tokens.weight": (vocab_rows, d), "model.norm.weight": (d,)}
    for n in range(llm.num_layers):
        p = f"model.layers.{n}."
        keys |= {
            p + "self_attn.q_proj.weight": (d, d),
            p + "self_attn.q_proj.bias": (d,),
            p + "self_attn.k_proj.weight": (kv, d),
            p + "self_attn.k_proj.bias": (kv,),
            p + "self_attn.v_proj.weight": (kv, d),
            p + "self_attn.v_proj.bias": (kv,),
            p + "self_attn.o_proj.weight": (d, d),
            p + "mlp.gate_proj.weight": (i, d),
            p + "mlp.up_proj.weight": (i, d),
            p + "mlp.down_proj.weight": (d, i),
            p + "input_layernorm.weight": (d,),
            p + "post_attention_layernorm.weight": (d,),
        }
    keys["lm_head.weight"] = (vocab_rows, d)
    return keys


def siglip_keys(cfg, prefix: str, num_layers: int) -> Shapes:
    v = cfg.vision
    c, i, grid = v.hidden_size, v.intermediate_size, v.image_size // v.patch_size
    keys = {
        prefix + "embeddings.patch_embedding.weight": (c, 3, v.patch_size, v.patch_size),
        prefix + "embeddings.patch_embedding.bias": (c,),
        prefix + "embeddings.position_embedding.weight": (grid * grid, c),
        prefix + "post_layernorm.weight": (c,),
        prefix + "post_layernorm.bias": (c,),
    }
    for n in range(num_layers):
        p = f"{prefix}encoder.layers.{n}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            keys |= {p + f"self_attn.{proj}.weight": (c, c), p + f"self_attn.{proj}.bias": (c,)}
        keys |= {
            p + "mlp.fc1.weight": (i, c),
            p + "mlp.fc1.bias": (i,),
            p + "mlp.fc2.weight": (c, i),
            p + "mlp.fc2.bias": (c,),
        }
        for norm in ("layer_norm1", "layer_norm2"):
            keys |= {p + f"{norm}.weight": (c,), p + f"{norm}.bias": (c,)}
    return keys


def llava_video_keys(cfg, vocab_rows: int) -> Shapes:
    """lmms-lab/LLaVA-Video-7B-Qwen2 layout (LlavaQwenForCausalLM) at the config's sizes."""
    d, c = cfg.llm.hidden_size, cfg.vision.hidden_size
    tower = "model.vision_tower.vision_tower.vision_model."
    keys = qwen2_keys(cfg, vocab_rows) | siglip_keys(cfg, tower, cfg.vision.num_layers)
    keys |= {
        "model.mm_projector.0.weight": (d, c),
        "model.mm_projector.0.bias": (d,),
        "model.mm_projector.2.weight": (d, d),
        "model.mm_projector.2.bias": (d,),
        "model.image_newline": (d,),
    }
    return keys


def dit_shared_keys(width: int, depth: int, channels: int) -> Shapes:
    """t_embedder, blocks and final layer of both public DiTs (names under `net.`)."""
    w = width
    keys = {
        "t_embedder.mlp.0.weight": (w, 256),
        "t_embedder.mlp.0.bias": (w,),
        "t_embedder.mlp.2.weight": (w, w),
        "t_embedder.mlp.2.bias": (w,),
        "final_layer.linear.weight": (channels, w),
        "final_layer.linear.bias": (channels,),
        "final_layer.adaLN_modulation.1.weight": (2 * w, w),
        "final_layer.adaLN_modulation.1.bias": (2 * w,),
    }
    for n in range(depth):
        p = f"blocks.{n}."
        keys |= {
            p + "attn.qkv.weight": (3 * w, w),
            p + "attn.qkv.bias": (3 * w,),
            p + "attn.proj.weight": (w, w),
            p + "attn.proj.bias": (w,),
            p + "mlp.fc1.weight": (4 * w, w),
            p + "mlp.fc1.bias": (4 * w,),
            p + "mlp.fc2.weight": (w, 4 * w),
            p + "mlp.fc2.bias": (w,),
            p + "adaLN_modulation.1.weight": (6 * w, w),
            p + "adaLN_modulation.1.bias": (6 * w,),
        }
    return keys


def ross3d_denoiser_keys(cfg) -> Shapes:
    """`model.mm_inv_projector.*` of the released Ross3D model (Ross3DDenoiserMulti)."""
    rc, z = cfg.reconstruction, cfg.llm.hidden_size
    w, ch = rc.width, rc.latent_channels
    net = dit_shared_keys(w, rc.depth, ch)
    for branch, grid in (("bev", rc.bev_grid), ("view", rc.view_grid)):
        n = grid * grid
        net |= {
            f"x_embedder_{branch}.proj.weight": (w, ch, 1, 1),
            f"x_embedder_{branch}.proj.bias": (w,),
            f"pos_embed_{branch}": (1, n, w),
            f"z_embedder_{branch}.proj.1.weight": (w, z),
            f"z_embedder_{branch}.proj.1.bias": (w,),
            f"z_embedder_{branch}.k.weight": (w, w),
            f"z_embedder_{branch}.v.weight": (w, w),
            f"z_embedder_{branch}.cls_token": (1, n, w),
            f"z_embedder_{branch}.linear.weight": (w, w),
        }
    return {f"model.mm_inv_projector.net.{k}": s for k, s in net.items()}


def released_ross3d_keys(cfg) -> Shapes:
    """The released Ross3D checkpoint: LLaVA-Video keys at the new vocabulary, the mask token,
    the denoiser and the grounding head."""
    d = cfg.llm.hidden_size
    keys = llava_video_keys(cfg, cfg.llm.vocab_size) | ross3d_denoiser_keys(cfg)
    keys |= {"model.mask_token": (d,), "ground_head_zero_target": (d,)}
    for head in ("ground_head_obj", "ground_head_query"):
        for i in (0, 2, 3):  # Linear, (ReLU), LayerNorm, Linear
            keys |= {f"{head}.{i}.weight": (d, d) if i != 2 else (d,), f"{head}.{i}.bias": (d,)}
    return keys


def ross2d_denoiser_keys(cfg, grid: int = 27) -> Shapes:
    """`mm_inv_projector.bin` of ROSS (RossDenoiser, one 2D branch on a grid x grid table)."""
    rc, z = cfg.reconstruction, cfg.llm.hidden_size
    w, ch = rc.width, rc.latent_channels
    net = dit_shared_keys(w, rc.depth, ch) | {
        "x_embedder.proj.weight": (w, ch, 1, 1),
        "x_embedder.proj.bias": (w,),
        "z_embedder.1.weight": (w, z),
        "z_embedder.1.bias": (w,),
        "pos_embed": (1, grid * grid, w),
    }
    return {f"model.mm_inv_projector.net.{k}": s for k, s in net.items()}


def random_state(keys: Shapes, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=g) for k, shape in sorted(keys.items())}


def write_safetensors(state: dict[str, torch.Tensor], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
