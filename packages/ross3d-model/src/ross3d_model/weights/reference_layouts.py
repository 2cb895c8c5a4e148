"""Key layouts of the public checkpoints and how each maps onto `Ross3DForCausalLM` (the sources
of `loading.py`; table in docs/architecture.md).

LLaVA-Video / released Ross3D (`init_from`): LLaVA prefixes (`checkpoint.LLAVA_KEY_MAP`), the
denoiser under `model.mm_inv_projector.net.` in the public DiT's names (ross3d
`multimodal_denoiser/denoiser_dit_multi.py`: timm `Attention` with a fused `qkv`, timm `Mlp`
`fc1/fc2`, `PatchEmbed` conv `x_embedder_{view,bev}.proj`, `z_embedder_{view,bev}` attention
pooling with `cls_token` queries and a `linear` output, `t_embedder.mlp.{0,2}`, position tables
`pos_embed_{view,bev}` [1, N, W]), the frozen VAE under `model.mm_pixel_decoder.pixel_decoder.`
(optional: the public trainer saves the whole state dict). Embedding and LM-head rows are
resized as the public `add_tokens_and_resize_embeddings` does (`LLMConfig.added_token_rows`).

ROSS 2D denoiser (`reconstruction.pretrained_denoiser`, ross `denoiser_dit.py`): one
`pos_embed` [1, N, W] (bilinear-interpolated to each branch's grid, as ross3d
`ross3d_arch.py` lines 213-248 do), one `x_embedder` (copied to both branches, lines 251-256),
`t_embedder`, blocks and `final_layer` as in the released layout. Its `z_embedder.1` (SiLU +
Linear) is copied by the reference to `z_embedder_{view,bev}.1.*` (lines 257-262), names the
Ross3D DiT does not have (its pooling's Linear is `z_embedder_*.proj.1`), so `strict=False`
drops them: the pooling keeps its own init there, and here too (counted as ignored).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from ross3d_model.configuration.model import Ross3DConfig
from ross3d_model.weights.checkpoint import (
    llava_to_ours,
    ours_to_llava,
    resolve_checkpoint,
    write_sharded,
)
from ross3d_model.weights.loading import Checkpoint, Link, SourceLinks

# (source as written, subfolder) -> the opened checkpoint; ValueError when it cannot be opened
Opener = Callable[[str, str | None], Checkpoint]

DENOISER_THEIRS = "model.mm_inv_projector."
DENOISER_OURS = "reconstructor.denoiser."
VAE_THEIRS = "model.mm_pixel_decoder.pixel_decoder."
VAE_OURS = "latent_tokenizer.vae."
ROSS3D_ONLY = ("mask_token", "ground_head.", "reconstructor.")
LLAVA_CORE = ("vision_tower.", "mm_projector.", "language_model.", "image_newline")
EMBEDDING_ROWS = ("language_model.model.embed_tokens.weight", "language_model.lm_head.weight")


# ---------------------------------------------------------------------------- transforms
def _conv1x1(t: torch.Tensor) -> torch.Tensor:
    """PatchEmbed Conv2d 1x1 weight [W, C, 1, 1] -> Linear weight [W, C]."""
    if t.ndim != 4 or t.shape[2:] != (1, 1):
        return t  # left as is: the shape check reports it
    return t.flatten(1)


def _drop_batch(t: torch.Tensor) -> torch.Tensor:
    """[1, ...] -> [...] (position tables, pooling queries)."""
    return t[0] if t.ndim > 1 and t.shape[0] == 1 else t


def _qkv_part(i: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Rows of q (0), k (1) or v (2) of timm's fused qkv (`qkv(x).reshape(B, N, 3, H, d)`)."""

    def part(t: torch.Tensor) -> torch.Tensor:
        return t.chunk(3, dim=0)[i].clone() if t.shape[0] % 3 == 0 else t

    return part


def interpolate_table(grid: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """2D position table [1, s*s, W] -> [grid*grid, W]: bilinear (align_corners False, no
    antialias), rows in (h, w) order, as the reference loader; s == grid copies it."""

    def fn(t: torch.Tensor) -> torch.Tensor:
        side = math.isqrt(t.shape[-2])
        if t.ndim != 3 or side * side != t.shape[-2]:
            return t
        x = t.reshape(1, side, side, t.shape[-1]).permute(0, 3, 1, 2)
        if side != grid:
            x = F.interpolate(x.float(), size=(grid, grid), mode="bilinear").to(t.dtype)
        return x.permute(0, 2, 3, 1).reshape(grid * grid, t.shape[-1]).clone()

    return fn


def resize_rows(vocab: int, added: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Embedding / LM-head rows [R, D] -> [vocab, D]: the first vocab - added rows, then `added`
    rows equal to their mean (public add_tokens_and_resize_embeddings). Other shapes pass."""

    def fn(t: torch.Tensor) -> torch.Tensor:
        keep = vocab - added
        if t.ndim != 2 or t.shape[0] == vocab or added == 0 or t.shape[0] < keep:
            return t
        base = t[:keep]
        mean = base.float().mean(dim=0, keepdim=True).to(t.dtype)
        return torch.cat([base, mean.expand(added, -1)])

    return fn


# Export direction: our tensors -> the stored tensor.
def _to_conv1x1(t: torch.Tensor) -> torch.Tensor:
    return t[:, :, None, None]


def _add_batch(t: torch.Tensor) -> torch.Tensor:
    return t[None]


# ---------------------------------------------------------------------------- denoiser table
def denoiser_table(cfg: Ross3DConfig) -> list[tuple[str, str, str]]:
    """(released name under `model.mm_inv_projector.`, our name under
    `reconstructor.denoiser.`, kind) for every denoiser tensor of `cfg`; kind is "same",
    "conv1x1", "batch1" or "qkv0/1/2"."""
    rc = cfg.reconstruction
    rows: list[tuple[str, str, str]] = []
    for i in (0, 2):
        for p in ("weight", "bias"):
            rows.append(
                (f"net.t_embedder.mlp.{i}.{p}", f"t_embedder.linear_{i // 2 + 1}.{p}", "same")
            )
    for b in _branches(cfg):
        z, ours = f"net.z_embedder_{b}", f"branches.{b}"
        rows += [
            (f"net.x_embedder_{b}.proj.weight", f"{ours}.x_embedder.weight", "conv1x1"),
            (f"net.x_embedder_{b}.proj.bias", f"{ours}.x_embedder.bias", "same"),
            (f"net.pos_embed_{b}", f"{ours}.pos_embed", "batch1"),
            (f"{z}.proj.1.weight", f"{ours}.pooling.proj.1.weight", "same"),
            (f"{z}.proj.1.bias", f"{ours}.pooling.proj.1.bias", "same"),
            (f"{z}.k.weight", f"{ours}.pooling.k.weight", "same"),
            (f"{z}.v.weight", f"{ours}.pooling.v.weight", "same"),
            (f"{z}.cls_token", f"{ours}.pooling.queries", "batch1"),
            (f"{z}.linear.weight", f"{ours}.pooling.out.weight", "same"),
        ]
    for n in range(rc.depth):
        theirs, ours = f"net.blocks.{n}", f"blocks.{n}"
        for p in ("weight", "bias"):
            rows += [
                (f"{theirs}.attn.qkv.{p}", f"{ours}.attn.to_{c}.{p}", f"qkv{j}")
                for j, c in enumerate("qkv")
            ]
            rows += [
                (f"{theirs}.attn.proj.{p}", f"{ours}.attn.to_out.0.{p}", "same"),
                (f"{theirs}.mlp.fc1.{p}", f"{ours}.mlp.net.0.proj.{p}", "same"),
                (f"{theirs}.mlp.fc2.{p}", f"{ours}.mlp.net.2.{p}", "same"),
                (f"{theirs}.adaLN_modulation.1.{p}", f"{ours}.adaLN_modulation.1.{p}", "same"),
            ]
    for p in ("weight", "bias"):
        rows += [
            (f"net.final_layer.linear.{p}", f"final_layer.linear.{p}", "same"),
            (
                f"net.final_layer.adaLN_modulation.1.{p}",
                f"final_layer.adaLN_modulation.1.{p}",
                "same",
            ),
        ]
    return rows


def _by_their_name(rows: list[tuple[str, str, str]]) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for theirs, ours, kind in rows:
        out.setdefault(theirs, []).append((ours, kind))
    return out


def _branches(cfg: Ross3DConfig) -> list[str]:
    rc = cfg.reconstruction
    return [b for b, on in (("view", rc.enable_cross_view), ("bev", rc.enable_bev)) if on]


_TO_OURS = {
    "same": None,
    "conv1x1": _conv1x1,
    "batch1": _drop_batch,
    "qkv0": _qkv_part(0),
    "qkv1": _qkv_part(1),
    "qkv2": _qkv_part(2),
}


def denoiser_to_released(cfg: Ross3DConfig, ours: dict[str, torch.Tensor]) -> dict:
    """Our denoiser tensors (names under `reconstructor.denoiser.`) -> the released names and
    shapes (fused qkv, conv embedder, [1, N, W] tables and queries)."""
    out = {}
    for theirs, parts in _by_their_name(denoiser_table(cfg)).items():
        kind = parts[0][1]
        if kind.startswith("qkv"):
            tensor = torch.cat([ours[name] for name, _ in sorted(parts, key=lambda p: p[1])])
        else:
            tensor = {"same": lambda t: t, "conv1x1": _to_conv1x1, "batch1": _add_batch}[kind](
                ours[parts[0][0]]
            )
        out[DENOISER_THEIRS + theirs] = tensor
    return out


# ---------------------------------------------------------------------------- sources
def llava_source(name: str, ckpt: Checkpoint, cfg: Ross3DConfig) -> SourceLinks:
    """LLaVA-Video or released Ross3D checkpoint (`init_from`)."""
    src = SourceLinks(name)
    table = _by_their_name(denoiser_table(cfg))
    resize = resize_rows(cfg.llm.vocab_size, cfg.llm.added_token_rows)
    for key in ckpt.keys:
        if key.startswith(DENOISER_THEIRS):
            hits = table.get(key[len(DENOISER_THEIRS) :])
            if hits is None:
                src.unexpected.append(key)
            for ours, kind in hits or ():
                src.links[DENOISER_OURS + ours] = Link(name, ckpt, key, _TO_OURS[kind])
        elif key.startswith(VAE_THEIRS):
            src.links[VAE_OURS + key[len(VAE_THEIRS) :]] = Link(name, ckpt, key)
        elif (ours := llava_to_ours(key)) is None:
            src.unexpected.append(key)
        else:
            src.links[ours] = Link(name, ckpt, key, resize if ours in EMBEDDING_ROWS else None)
    ross3d = any(n.startswith(ROSS3D_ONLY) for n in src.links)
    src.claims = LLAVA_CORE + (ROSS3D_ONLY if ross3d else ())
    return src


def siglip_source(name: str, ckpt: Checkpoint, cfg: Ross3DConfig) -> SourceLinks:
    """A SigLIP checkpoint (`vision_model.*` of SiglipModel, or a bare SiglipVisionModel): the
    text tower, the pooling head and layers past `vision.num_layers` are ignored."""
    src = SourceLinks(name, claims=("vision_tower.",))
    for key in ckpt.keys:
        rest = key.removeprefix("vision_model.")
        if key.startswith("text_model.") or key in ("logit_scale", "logit_bias"):
            src.ignored[f"{name}: SigLIP text tower"] += 1
        elif rest.startswith("head."):
            src.ignored[f"{name}: SigLIP pooling head (unused)"] += 1
        elif (
            rest.startswith("encoder.layers.") and int(rest.split(".")[2]) >= cfg.vision.num_layers
        ):
            src.ignored[f"{name}: layers past vision.num_layers"] += 1
        else:
            src.links["vision_tower." + rest] = Link(name, ckpt, key)
    return src


def prefixed_source(name: str, ckpt: Checkpoint, prefix: str, cfg: Ross3DConfig) -> SourceLinks:
    """A component checkpoint whose keys are ours minus `prefix` (Qwen2, VAE, our export: '')."""
    src = SourceLinks(name, claims=(prefix,))
    resize = resize_rows(cfg.llm.vocab_size, cfg.llm.added_token_rows)
    for key in ckpt.keys:
        ours = prefix + key
        src.links[ours] = Link(name, ckpt, key, resize if ours in EMBEDDING_ROWS else None)
    return src


def ross2d_source(name: str, ckpt: Checkpoint, cfg: Ross3DConfig) -> SourceLinks:
    """The ROSS 2D denoiser (`mm_inv_projector.bin`) mapped as the reference loader does."""
    src = SourceLinks(name)
    rows = [r for r in denoiser_table(cfg) if "_view" not in r[0] and "_bev" not in r[0]]
    shared = _by_their_name(rows)
    per_branch = {
        "net.pos_embed": [
            (f"branches.{b}.pos_embed", interpolate_table(_grid(cfg, b))) for b in _branches(cfg)
        ],
        "net.x_embedder.proj.weight": [
            (f"branches.{b}.x_embedder.weight", _conv1x1) for b in _branches(cfg)
        ],
        "net.x_embedder.proj.bias": [
            (f"branches.{b}.x_embedder.bias", None) for b in _branches(cfg)
        ],
    }
    for key in ckpt.keys:
        rel = key.removeprefix(DENOISER_THEIRS)
        if rel in shared:
            for ours, kind in shared[rel]:
                src.links[DENOISER_OURS + ours] = Link(name, ckpt, key, _TO_OURS[kind])
        elif rel in per_branch:
            for ours, fn in per_branch[rel]:
                src.links[DENOISER_OURS + ours] = Link(name, ckpt, key, fn)
        elif rel.startswith("net.z_embedder."):
            src.ignored[f"{name}: z_embedder (the reference's copy lands on names it lacks)"] += 1
        else:
            src.unexpected.append(key)
    expected = [r[1] for r in rows] + [o for v in per_branch.values() for o, _ in v]
    src.claims = tuple(DENOISER_OURS + o for o in expected)
    return src


def _grid(cfg: Ross3DConfig, branch: str) -> int:
    return cfg.reconstruction.view_grid if branch == "view" else cfg.reconstruction.bev_grid


def pretrained_parts(cfg: Ross3DConfig) -> list[tuple[str, str | None, str, str | None]]:
    """(config field, source as written or None, our name prefix, subfolder) of every weights
    source a model config can name, in priority order."""
    rc, vae = cfg.reconstruction, cfg.vae
    return [
        ("init_from", cfg.init_from, "", None),
        ("vision.pretrained", cfg.vision.pretrained, "vision_tower.", None),
        ("llm.pretrained", cfg.llm.pretrained, "language_model.", None),
        ("vae.pretrained", vae.pretrained, VAE_OURS, vae.subfolder),
        ("reconstruction.pretrained_denoiser", rc.pretrained_denoiser, DENOISER_OURS, None),
    ]


def config_sources(
    cfg: Ross3DConfig,
    inference: bool = False,
    errors: list[str] | None = None,
    open_checkpoint: Opener | None = None,
) -> list[SourceLinks]:
    """The sources a model config names, in priority order. A component source whose part
    `init_from` already provides is not opened (nothing downloaded), only counted; with
    `inference` the VAE and denoiser sources are not opened and such keys are ignored. A source
    that cannot be opened raises ValueError, or is appended to `errors` when given.
    `open_checkpoint`: how a source is opened (default: a local path as is, a hub id
    downloaded; check-init passes one that reads headers only, `availability.open_part`)."""
    sources: list[SourceLinks] = []
    notes = SourceLinks("skipped")
    for name, where, prefix, subfolder in pretrained_parts(cfg):
        if where is None:
            continue
        if inference and prefix in (VAE_OURS, DENOISER_OURS):
            notes.ignored[f"{name}: not used for inference"] += 1
        elif prefix and any(n.startswith(prefix) for s in sources for n in s.links):
            notes.ignored[f"{name}: provided by {sources[0].name}"] += 1
        else:
            try:
                opener = open_checkpoint or open_downloaded
                sources.append(_open_source(name, opener(where, subfolder), prefix, cfg))
            except ValueError as err:
                if errors is None:
                    raise
                errors.append(f"{name}: {err}")
    if inference:
        dropped = (VAE_OURS, DENOISER_OURS)
        sources = [drop_parts(s, dropped, "not used for inference") for s in sources]
    return [*sources, notes]


def open_downloaded(where: str, subfolder: str | None) -> Checkpoint:
    """The checkpoint at a local path, or of a hub repo downloaded (`resolve_checkpoint`)."""
    folder = resolve_checkpoint(where, subfolder)
    return Checkpoint(folder / subfolder if subfolder is not None else folder)


def _open_source(name: str, ckpt: Checkpoint, prefix: str, cfg: Ross3DConfig) -> SourceLinks:
    if name == "init_from":
        return llava_source(name, ckpt, cfg)
    if prefix == "vision_tower.":
        return siglip_source(name, ckpt, cfg)
    if prefix == DENOISER_OURS:
        return ross2d_source(name, ckpt, cfg)
    return prefixed_source(name, ckpt, prefix, cfg)


def drop_parts(src: SourceLinks, prefixes: tuple[str, ...], reason: str) -> SourceLinks:
    """`src` without the links to our names under `prefixes` (counted as ignored)."""
    for name in [n for n in src.links if n.startswith(prefixes)]:
        del src.links[name]
        src.ignored[f"{src.name}: {reason}"] += 1
    src.claims = tuple(c for c in src.claims if not c.startswith(prefixes))
    return src


def save_llava_checkpoint(
    model: torch.nn.Module, folder: Path, max_shard_bytes: int = 5 * 2**30
) -> None:
    """Export `model` in the released Ross3D layout (LLaVA prefixes, the denoiser in the public
    DiT's names: fused qkv, conv embedder, [1, N, W] tables); the frozen VAE is left out."""
    state, denoiser = {}, {}
    for name, tensor in model.state_dict().items():
        if name.startswith(DENOISER_OURS):
            denoiser[name[len(DENOISER_OURS) :]] = tensor.detach().cpu()
        elif (key := ours_to_llava(name)) is not None:
            state[key] = tensor.detach().cpu()
    if denoiser:
        state.update(denoiser_to_released(model.cfg, denoiser))
    write_sharded(state, Path(folder), max_shard_bytes)
