"""Ross3DForCausalLM: SigLIP (frozen) + projector + Qwen2 + newline/mask tokens + grounding head +
reconstruction branch (denoiser over a frozen VAE's latents). Data flow: docs/architecture.md."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel, Qwen2Config, Qwen2ForCausalLM
from transformers.utils import ModelOutput

from ross3d_model.configuration.model import LLMConfig, Ross3DConfig
from ross3d_model.modeling.grounding import GroundingHead, infonce_loss, object_features
from ross3d_model.modeling.latents import LatentTokenizer
from ross3d_model.modeling.masking import choose_masked_views
from ross3d_model.modeling.objective import combine_losses
from ross3d_model.modeling.position import encode_xyz
from ross3d_model.modeling.reconstruction import Reconstructor
from ross3d_model.modeling.vision import (
    build_projector,
    build_vision_tower,
    frame_tokens,
    normalise_pixels,
    pool_grid,
    vision_features,
)

IGNORE_INDEX = -100  # label of positions the LM loss skips (prompt, visual and pad tokens)


class Ross3DHFConfig(PretrainedConfig):
    """transformers wrapper around the typed `Ross3DConfig` (stored as a dict under `ross3d`)."""

    model_type = "ross3d"

    def __init__(self, ross3d: dict | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ross3d = ross3d if ross3d is not None else Ross3DConfig().to_dict()
        cfg = Ross3DConfig.from_dict(self.ross3d)  # validate early, clear errors
        self.hidden_size = cfg.llm.hidden_size  # read by DeepSpeed "auto" settings

    @property
    def model_cfg(self) -> Ross3DConfig:
        return Ross3DConfig.from_dict(self.ross3d)


def qwen2_hf_config(cfg: LLMConfig) -> Qwen2Config:
    return Qwen2Config(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        rms_norm_eps=cfg.rms_norm_eps,
        tie_word_embeddings=cfg.tie_word_embeddings,
    )


def build_llm(cfg: LLMConfig) -> Qwen2ForCausalLM:
    """A randomly initialised Qwen2 of `cfg`'s shape; the weights of `cfg.pretrained` are
    assigned afterwards by `weights.build` (which checks every shape)."""
    return Qwen2ForCausalLM(qwen2_hf_config(cfg))


@dataclass
class Ross3DOutput(ModelOutput):
    """`loss` = weighted total; `losses` = {lm, cross_view, bev, grounding, total} (None = not
    computed this step); `logits` [B, L, vocab] only when asked; `ground_logits` one [K+1]
    tensor per grounding example (None otherwise); `masked_views` [B, V] bool."""

    loss: torch.Tensor | None = None
    losses: dict | None = None
    logits: torch.Tensor | None = None
    ground_logits: list | None = None
    masked_views: torch.Tensor | None = None


@dataclass
class PreparedInputs:
    """LLM input after splicing: embeds [B, L, D], attention_mask [B, L], labels [B, L],
    input_ids [B, L] (visual positions = -1), visual_start [B], patch_feats [B, V, g, g, D]."""

    embeds: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    input_ids: torch.Tensor
    visual_start: torch.Tensor
    patch_feats: torch.Tensor
    masked_views: torch.Tensor


class Ross3DForCausalLM(PreTrainedModel):
    config_class = Ross3DHFConfig
    base_model_prefix = "ross3d"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ("Qwen2DecoderLayer", "SiglipEncoderLayer")

    def __init__(self, config: Ross3DHFConfig, inference: bool = False) -> None:
        """Every component built from the config alone, in the order below (the random init is
        reproducible under a seed); no checkpoint is read here. With `inference` there is no
        VAE (`latent_tokenizer`) and no denoiser (`reconstructor`).

        Pretrained weights are the weights layer's job: `weights.build.from_config(cfg)` /
        `from_pretrained(folder)` build this class on the meta device and then assign every
        tensor a checkpoint provides (torchtitan's order: skeleton first, weights after)."""
        super().__init__(config)
        self.cfg = config.model_cfg
        self.inference_only = inference
        self.reconstructor = self.latent_tokenizer = None
        for name, build in self.component_builders().items():
            setattr(self, name, build())
        self.special_ids: dict[str, int] = {}
        self.post_init()

    def component_builders(self) -> dict[str, Callable[[], nn.Module | nn.Parameter]]:
        """Top-level component name -> builder (random init from the config)."""
        cfg, d = self.cfg, self.cfg.llm.hidden_size
        builders = {
            "vision_tower": lambda: build_vision_tower(cfg.vision),
            "mm_projector": lambda: build_projector(cfg.vision.hidden_size, d),
            "language_model": lambda: build_llm(cfg.llm),
            # LLaVA initialises the newline with randn / sqrt(D); the mask token likewise.
            "image_newline": lambda: nn.Parameter(torch.randn(d) / d**0.5),
            "mask_token": lambda: nn.Parameter(torch.randn(d) / d**0.5),
            "ground_head": lambda: GroundingHead(d, cfg.grounding),
        }
        if not self.inference_only:
            builders["reconstructor"] = lambda: Reconstructor(cfg.reconstruction, d)
            builders["latent_tokenizer"] = lambda: LatentTokenizer(cfg.vae, load_weights=False)
        return builders

    def _init_weights(self, module: nn.Module) -> None:
        """Components initialise themselves (or are loaded) in __init__; nothing to redo."""

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """Not transformers' loader: a Ross3D folder is read by `weights.build.from_pretrained`
        (lean, every key checked), which this class cannot call without importing the layer
        above it."""
        raise TypeError(
            "load a Ross3D model folder with ross3d_model.weights.build.from_pretrained(folder)"
        )

    def set_special_ids(self, ids: dict[str, int]) -> None:
        """Token ids of `<image>`, `<coord>`, `<ground>`, `<|im_end|>` (tokenizer.special_token_ids).
        `<image>` may lie past the embedding rows (tokenizer.py): it is never embedded."""
        rows = self.cfg.llm.vocab_size
        embedded = {k: v for k, v in ids.items() if k != "image"}
        if embedded and max(embedded.values()) >= rows:
            raise ValueError(f"special token ids {ids} exceed the vocab {rows}")
        self.special_ids = dict(ids)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None) -> None:
        self.language_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs)

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    # ------------------------------------------------------------------ visual tokens
    def patch_features(self, images_BV3SS: torch.Tensor) -> torch.Tensor:
        """uint8 RGB views -> SigLIP layer features -> projector -> [B, V, g, g, D] (pre-pooling,
        27x27). Pixels reach the device as uint8 (a quarter of fp32's bytes) and are normalised
        there."""
        b, v = images_BV3SS.shape[:2]
        dtype = self.mm_projector[0].weight.dtype
        pixels = normalise_pixels(images_BV3SS.flatten(0, 1), self.cfg).to(dtype)
        feats = vision_features(self.vision_tower, pixels, self.cfg.vision)
        return self.mm_projector(feats.to(dtype)).unflatten(0, (b, v))

    def choose_masks(self, batch: dict, cross_view: bool, generator=None) -> torch.Tensor:
        """masked [B, V] bool: none unless cross_view (and the branch is enabled); grounding
        examples are never masked."""
        b, v = batch["coords"].shape[:2]
        if not (cross_view and self.cfg.reconstruction.enable_cross_view):
            return torch.zeros(b, v, dtype=torch.bool)
        rc = self.cfg.reconstruction
        masked = choose_masked_views(
            v, rc.mask_ratio, rc.mask_choice, batch["overlap"].cpu(), generator, batch_size=b
        )
        return masked & ~batch["is_grounding"].cpu()[:, None]

    def prepare_inputs(self, batch: dict, masked_BV: torch.Tensor) -> PreparedInputs:
        """Embed text, build visual tokens and splice them at each `<image>` placeholder."""
        ids = self.special_ids
        if not ids:
            raise ValueError("call model.set_special_ids(special_token_ids(tokenizer)) first")
        feats = self.patch_features(batch["images"])
        s = self.cfg.tokens
        b, v = feats.shape[:2]
        pooled = pool_grid(feats.flatten(0, 1), s.pool_stride, s.pool_mode).unflatten(0, (b, v))
        visual = frame_tokens(
            pooled, batch["coords"], batch["coords_valid"], masked_BV,
            self.mask_token, self.image_newline, self.cfg.position,
        ).flatten(1, 2)  # fmt: skip
        embeds = self.embed_text(batch["input_ids"], batch["coord_centres"])
        return self._splice(batch, embeds, visual.to(embeds.dtype), feats, masked_BV)

    def embed_text(self, ids_BL: torch.Tensor, coord_centres_B3: torch.Tensor) -> torch.Tensor:
        """Text embeddings [B, L, D]; `<coord>` slots plus the 3D PE of the row's query box
        centre (generation embeds question suffixes with it too)."""
        ids = self.special_ids
        # `<image>` may lie past the embedding rows; its position is replaced by the frames
        embeds = self.get_input_embeddings()(ids_BL.masked_fill(ids_BL == ids["image"], 0))
        coord_pe = encode_xyz(coord_centres_B3, embeds.shape[-1], self.cfg.position)
        is_coord = (ids_BL == ids["coord"])[..., None]
        return embeds + is_coord * coord_pe[:, None].to(embeds.dtype)

    def _splice(self, batch, embeds, visual_BND, feats, masked_BV) -> PreparedInputs:
        rows, starts = [], []
        for i in range(embeds.shape[0]):
            n_text = int(batch["attention_mask"][i].sum())
            pos = (batch["input_ids"][i, :n_text] == self.special_ids["image"]).nonzero()
            if len(pos) != 1:
                raise ValueError(f"example {i}: needs exactly one <image> token, got {len(pos)}")
            p = int(pos[0])
            n_vis = visual_BND.shape[1]
            starts.append(p)
            rows.append(
                (
                    torch.cat([embeds[i, :p], visual_BND[i], embeds[i, p + 1 : n_text]]),
                    _splice_ids(batch["labels"][i, :n_text], p, n_vis, IGNORE_INDEX),
                    _splice_ids(batch["input_ids"][i, :n_text], p, n_vis, -1),
                )
            )
        width = max(r[0].shape[0] for r in rows)
        return PreparedInputs(
            embeds=torch.stack([F.pad(r[0], (0, 0, 0, width - len(r[0]))) for r in rows]),
            attention_mask=torch.stack(
                [F.pad(torch.ones_like(r[1]), (0, width - len(r[1]))) for r in rows]
            ),
            labels=torch.stack(
                [F.pad(r[1], (0, width - len(r[1])), value=IGNORE_INDEX) for r in rows]
            ),
            input_ids=torch.stack([F.pad(r[2], (0, width - len(r[2])), value=-1) for r in rows]),
            visual_start=torch.tensor(starts),
            patch_feats=feats,
            masked_views=masked_BV,
        )

    def visual_hidden(self, hidden_BLD: torch.Tensor, prep: PreparedInputs) -> torch.Tensor:
        """Hidden states at the G*G visual positions of each frame, newlines removed [B,V,G*G,D]."""
        b, v = prep.masked_views.shape
        g = self.cfg.pooled_grid
        n = v * g * (g + 1)
        dev = hidden_BLD.device
        idx = prep.visual_start.to(dev)[:, None] + torch.arange(n, device=dev)
        vis = torch.gather(hidden_BLD, 1, idx[..., None].expand(-1, -1, hidden_BLD.shape[-1]))
        return vis.view(b, v, g, g + 1, -1)[:, :, :, :g].reshape(b, v, g * g, -1)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        batch: dict | None = None,
        cross_view: bool = False,
        masked_views: torch.Tensor | None = None,
        return_logits: bool = False,
        generator: torch.Generator | None = None,
        one_graph: bool = True,
        **fields,
    ) -> Ross3DOutput:
        """Named losses for a collated batch (`batch.collate_examples`): LM CE over answer tokens,
        BEV reconstruction for every non-grounding example, cross-view reconstruction of the masked
        frames when `cross_view`, InfoNCE for grounding examples. `masked_views` [B, V] overrides
        the sampled masks (cross_view only; grounding examples are never masked).

        one_graph (training default): a trainable head that a loss does not use (LM head, a
        denoiser branch, the grounding head for a non-grounding example) runs on one hidden
        token in the place the loss would have used it and enters the total times 0. So every
        rank calls the same trainable modules in the same order on every micro-batch (ZeRO-3
        gathers parameters per module call), every trainable parameter gets a gradient
        (exactly 0 from these terms: no stale ZeRO-3 gradient, same DDP/ZeRO reductions) and
        the loss values are unchanged."""
        batch = {**(batch or {}), **fields}
        if masked_views is None:
            masked_views = self.choose_masks(batch, cross_view, generator)
        elif not cross_view:
            raise ValueError("masked_views given but cross_view is False")
        else:  # grounding examples only train the grounding loss: their frames stay visible
            masked_views = masked_views.bool().cpu() & ~batch["is_grounding"].cpu()[:, None]
        prep = self.prepare_inputs(batch, masked_views.bool().cpu())
        hidden = self.language_model.model(
            inputs_embeds=prep.embeds, attention_mask=prep.attention_mask
        ).last_hidden_state
        idle = [] if one_graph else None  # the one-graph terms, in call order
        named = {"lm": self._lm_loss(hidden, prep.labels)}
        if named["lm"] is None and idle is not None:
            idle.append(self.language_model.lm_head(hidden[0, 0]).float().sum())
        named.update(self._reconstruction_losses(hidden, prep, batch, cross_view, generator, idle))
        named["grounding"], ground_logits = self._grounding(hidden, prep, batch, idle)
        logits = self.language_model.lm_head(hidden) if return_logits else None
        losses = combine_losses(named, self.cfg.objective)
        if idle:
            losses["total"] = losses["total"] + torch.stack(idle).sum() * 0.0
        return Ross3DOutput(
            loss=losses["total"], losses=losses, logits=logits,
            ground_logits=ground_logits, masked_views=prep.masked_views,
        )  # fmt: skip

    def _idle_branch(self, token_D: torch.Tensor, branch: str) -> torch.Tensor:
        """One zero latent grid through a denoiser branch (pooling, embedder, shared blocks).
        Deterministic (t = 0, no noise): the RNG stream of the real losses is untouched."""
        denoiser = self.reconstructor.denoiser
        parts = denoiser.branches[branch]
        cond = parts.pooling(token_D.view(1, 1, -1))
        x = token_D.new_zeros(1, denoiser.channels, parts.grid, parts.grid)
        t = torch.zeros(1, dtype=torch.long, device=token_D.device)
        return denoiser(x, t, cond, branch).float().sum()

    def _lm_loss(self, hidden_BLD: torch.Tensor, labels_BL: torch.Tensor) -> torch.Tensor | None:
        """CE over answer tokens only (logits computed just there: the vocab is large)."""
        target = labels_BL[:, 1:].to(hidden_BLD.device)
        keep = target != IGNORE_INDEX
        if not keep.any():
            return None
        logits = self.language_model.lm_head(hidden_BLD[:, :-1][keep])
        return F.cross_entropy(logits.float(), target[keep])

    def _reconstruction_losses(self, hidden, prep, batch, cross_view, generator, idle) -> dict:
        """BEV (and, on cross-view steps, cross-view) losses over the non-grounding examples of
        the enabled branches; `generator` drives the VAE latent sampling, timesteps and noise
        (None = global RNG). A cross-view step without masked views still calls `view_loss`,
        whose zero stays connected to the hidden states. `idle` (a list, one-graph mode) gets
        an idle pass of each branch whose denoiser did not run, in the branch's place."""
        out = {"bev": None, "cross_view": None}
        rec = ~batch["is_grounding"].cpu()
        if rec.any():
            out.update(self._denoising_losses(hidden, prep, batch, rec, cross_view, generator))
        if idle is not None:
            ran = {"bev": out["bev"] is not None}
            ran["view"] = out["cross_view"] is not None and bool(prep.masked_views.any())
            for branch in ("bev", "view"):
                if branch in self.reconstructor.denoiser.branches and not ran[branch]:
                    idle.append(self._idle_branch(hidden[0, 0], branch))
        return out

    def _denoising_losses(self, hidden, prep, batch, rec, cross_view, generator) -> dict:
        """The enabled branches' losses over the examples `rec` [B] (at least one)."""
        out = {}
        dev = hidden.device
        rc = self.cfg.reconstruction
        vis = self.visual_hidden(hidden, prep)[rec.to(dev)]
        masked = prep.masked_views[rec].to(dev)
        if rc.enable_bev:
            cached = batch["bev_moments"][rec].to(dev) if "bev_moments" in batch else None
            bev_lat, bev_valid = self.latent_tokenizer.encode_bev(
                batch["bev"][rec].to(dev), generator, moments=cached
            )
            out["bev"] = self.reconstructor.bev_loss(vis, ~masked, bev_lat, bev_valid, generator)
        if cross_view and rc.enable_cross_view:
            images = batch["images"][rec].to(dev)
            cached = batch["view_moments"][rec].to(dev) if "view_moments" in batch else None
            view_lat = self.latent_tokenizer.encode_views(
                images, generator, views_BV=masked, moments=cached
            )
            out["cross_view"] = self.reconstructor.view_loss(vis, masked, view_lat, generator)
        return out

    def ground_scores(self, hidden_BLD, prep: PreparedInputs, batch, idle=None) -> list:
        """[K+1] logits per grounding example (None for others), query = hidden at `<ground>`.
        `idle` (a list, one-graph mode) gets an idle head pass for each other example."""
        scores = []
        for i, target in enumerate(batch["grounding"]):
            if target is None:
                scores.append(None)
                if idle is not None:
                    token = hidden_BLD[0, 0]
                    idle.append(self.ground_head(token, token[None]).float().sum())
                continue
            pos = (prep.input_ids[i] == self.special_ids["ground"]).nonzero()
            if len(pos) != 1:
                raise ValueError(f"grounding example {i}: needs one <ground> token, got {len(pos)}")
            feats = prep.patch_feats[i]
            centres_pe = encode_xyz(target["boxes"][:, :3], feats.shape[-1], self.cfg.position)
            objects = object_features(
                feats, target["in_box"].to(feats.device), centres_pe.to(feats.device)
            )
            scores.append(
                self.ground_head(hidden_BLD[i, int(pos[0])], objects.to(hidden_BLD.dtype))
            )
        return scores

    def _grounding(self, hidden, prep, batch, idle) -> tuple[torch.Tensor | None, list]:
        scores = self.ground_scores(hidden, prep, batch, idle)
        losses = [
            infonce_loss(s, t["positives"])
            for s, t in zip(scores, batch["grounding"], strict=True)
            if s is not None
        ]
        return (torch.stack(losses).mean() if losses else None), scores


def _splice_ids(seq_L: torch.Tensor, p: int, n: int, fill: int) -> torch.Tensor:
    """Replace the placeholder at p by n copies of `fill`."""
    return torch.cat([seq_L[:p], seq_L.new_full((n,), fill), seq_L[p + 1 :]])
