"""Typed configs of the Ross3D model, one dataclass per component, loaded from / saved to JSON.

Every size comes from a config (REFERENCE section 2 gives the 7B recipe: `configs/model/7b.json`).
`configs/model/tiny.json` builds a random model that runs on CPU in seconds.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ross3d_model.configuration.parts import ObjectiveConfig, ReconstructionConfig, VaeConfig
from ross3d_model.configuration.schema import build_section
from ross3d_model.configuration.variants import resolve_file

CONFIG_DIR = Path(__file__).parent / "configs" / "model"

SPATIAL_PROMPT = (
    "The video captures 3D spatial information of a scene. Please focus on the spatial "
    "relationships in the video and answer the following questions."
)


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


@dataclass
class VisionConfig:
    """SigLIP vision tower. `pretrained` is a hub id or local folder; None = random init."""

    pretrained: str | None = None
    hidden_size: int = 1152  # SigLIP hidden width
    intermediate_size: int = 4304  # SigLIP MLP width
    num_layers: int = 27  # SigLIP layers built (LLaVA-Video keeps 26 of 27)
    num_heads: int = 16  # attention heads
    image_size: int = 384  # side in pixels of the square input crop
    patch_size: int = 14  # side in pixels of one patch
    select_layer: int = -2  # hidden_states[-2]: second-to-last layer (LLaVA convention)
    frozen: bool = True  # the tower is not trained
    # per-channel mean subtracted from pixels in [0, 1]
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    # per-channel std the pixels are divided by
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    # whose width/height sets the colour resize before the centre crop: "depth" = the public
    # rule (512 px wide for ScanNet), "color" = the frame's own aspect (514 px); applied when the
    # shards are built (`build-shards --resize-aspect`), checked against them (shard_layout)
    resize_aspect: str = "color"

    def __post_init__(self) -> None:
        _choice("vision.resize_aspect", self.resize_aspect, ("color", "depth"))
        for name in ("hidden_size", "intermediate_size", "num_layers", "num_heads", "patch_size"):
            _positive(name, getattr(self, name))
        if self.hidden_size % self.num_heads:
            raise ValueError("vision hidden_size must be divisible by num_heads")
        if self.image_size < self.patch_size:
            raise ValueError("image_size must be >= patch_size")
        if not -self.num_layers - 1 <= self.select_layer <= self.num_layers:
            raise ValueError(f"select_layer {self.select_layer} outside the tower's layers")
        self.image_mean = tuple(self.image_mean)
        self.image_std = tuple(self.image_std)
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            raise ValueError("image_mean/image_std must be 3 values, std > 0")

    @property
    def grid(self) -> int:
        """Patches per side (27 for 384/14: SigLIP drops the 6-pixel remainder)."""
        return self.image_size // self.patch_size


@dataclass
class ProjectorConfig:
    """LLaVA `mlp2x_gelu` projector: Linear(vision -> llm), GELU, Linear(llm -> llm)."""

    kind: str = "mlp2x_gelu"  # projector type (only mlp2x_gelu)

    def __post_init__(self) -> None:
        if self.kind != "mlp2x_gelu":
            raise ValueError(f"unknown projector kind {self.kind!r} (only 'mlp2x_gelu')")


@dataclass
class LLMConfig:
    """Qwen2 decoder. `pretrained` is a hub id or local folder; None = random init."""

    pretrained: str | None = None
    vocab_size: int = 152064  # embedding and LM-head rows
    hidden_size: int = 3584  # Qwen2 hidden width
    intermediate_size: int = 18944  # MLP width
    num_layers: int = 28  # decoder layers
    num_heads: int = 28  # attention heads
    num_kv_heads: int = 4  # key/value heads (grouped-query attention)
    max_position_embeddings: int = 32768  # longest sequence the rotary positions cover
    rope_theta: float = 1_000_000.0  # rotary embedding base
    rms_norm_eps: float = 1e-6  # RMSNorm epsilon
    tie_word_embeddings: bool = False  # the LM head shares the input embedding
    # Rows for tokens added on top of the pretrained vocabulary (`<ground>`, `<coord>`: 2 at 7B,
    # vocab_size = len(tokenizer) = 151,649). A checkpoint with a different row count gives its
    # first vocab_size - added_token_rows rows; the added input and output rows are the mean of
    # those (public train_3d.py add_tokens_and_resize_embeddings). 0 = shapes must match.
    added_token_rows: int = 0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads"):
            _positive(name, getattr(self, name))
        if not 0 <= self.added_token_rows < self.vocab_size:
            raise ValueError(
                f"added_token_rows must be in [0, vocab_size), got {self.added_token_rows}"
            )
        _positive("num_kv_heads", self.num_kv_heads)
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError("hidden_size % num_heads and num_heads % num_kv_heads must be 0")


@dataclass
class TokenConfig:
    """How frames become visual tokens."""

    pool_mode: str = "bilinear"  # LLaVA-Video mm_spatial_pool_mode
    pool_stride: int = 2  # each view's patch grid is pooled by this (27 -> 14)
    num_views: int = 32  # views per clip (build-shards --views must match)

    def __post_init__(self) -> None:
        if self.pool_mode not in ("bilinear", "average", "max"):
            raise ValueError(f"pool_mode must be bilinear/average/max, got {self.pool_mode!r}")
        _positive("pool_stride", self.pool_stride)
        _positive("num_views", self.num_views)


INVALID_DEPTH_RULES = ("camera-centre", "zero")


@dataclass
class PositionConfig:
    """3D sine position encoding of aligned xyz (Video-3D-LLM's discrete variant)."""

    # lower corner of the encoded world box (metres)
    min_xyz: tuple[float, float, float] = (-15.0, -15.0, -5.0)
    # upper corner of the encoded world box (metres)
    max_xyz: tuple[float, float, float] = (15.0, 15.0, 5.0)
    voxel_size: float = 0.1  # xyz are discretised to voxels of this side (metres)
    temperature: float = 10000.0  # sine encoding temperature
    # a token cell's xyz: "camera-centre" (public code: mean over all its pixels, invalid depth
    # unprojecting to the camera centre) or "zero" (mean of valid pixels; no valid pixel: zero PE)
    invalid_depth: str = "camera-centre"

    def __post_init__(self) -> None:
        _choice("position.invalid_depth", self.invalid_depth, INVALID_DEPTH_RULES)
        self.min_xyz = tuple(float(v) for v in self.min_xyz)
        self.max_xyz = tuple(float(v) for v in self.max_xyz)
        if len(self.min_xyz) != 3 or len(self.max_xyz) != 3:
            raise ValueError("min_xyz and max_xyz need 3 values")
        if any(lo >= hi for lo, hi in zip(self.min_xyz, self.max_xyz, strict=True)):
            raise ValueError(f"min_xyz {self.min_xyz} must be < max_xyz {self.max_xyz}")
        _positive("voxel_size", self.voxel_size)
        _positive("temperature", self.temperature)


HEAD_INITS = ("reference", "torch")
PATCH_DEPTH_RULES = ("any", "valid")


@dataclass
class GroundingConfig:
    """InfoNCE grounding head over candidate boxes plus a learnable zero-target.

    `head_init` and `patch_depth` are reference switches (grounding.py docstring,
    docs/architecture.md "Reference switches")."""

    temperature: float = 0.07  # InfoNCE temperature of the candidate scores
    min_inside_fraction: float = 0.5  # a patch belongs to a box when >= 50 % of its pixels do
    multi_threshold: float = 0.4  # Multi3DRefer: candidates until summed prob >= this (public 0.4)
    head_init: str = "reference"
    patch_depth: str = "any"

    def __post_init__(self) -> None:
        _positive("temperature", self.temperature)
        _choice("grounding.head_init", self.head_init, HEAD_INITS)
        _choice("grounding.patch_depth", self.patch_depth, PATCH_DEPTH_RULES)
        if not 0 < self.min_inside_fraction <= 1:
            raise ValueError("min_inside_fraction must be in (0, 1]")
        if not 0 < self.multi_threshold <= 1:
            raise ValueError("multi_threshold must be in (0, 1]")


LM_LABEL_SETS = ("turn-and-markers", "answer")
OVERFLOWS = ("error", "truncate")


@dataclass
class TextConfig:
    """Prompting, LM labels and sequence limits.

    `lm_labels` (training CE targets, batch.py): "turn-and-markers" = the public code's
    `preprocess_qwen` (the whole assistant turn `<|im_start|>assistant\n ... <|im_end|>\n` plus
    every newline, `<|im_start|>` and `<|im_end|>` token of the sequence); "answer" = the answer
    tokens and the closing `<|im_end|>` only.

    `overflow` (batch.py): a sequence of more than `max_length` tokens (visual tokens counted)
    is an "error", or is "truncate"d to its first `max_length` tokens as the public code cuts
    the spliced embeddings and labels (`ross3d_arch.py` lines 951-955,
    `tokenizer_model_max_length` = `--model_max_length 32768` of `train_ross3d.sh` line 55)."""

    # sentence before the question in training (and predict's ours protocol)
    spatial_prompt: str = SPATIAL_PROMPT
    system_prompt: str = "You are a helpful assistant."  # the chat template's system turn
    max_length: int = 8192  # tokens per sequence, visual tokens included (see overflow)
    max_new_tokens: int = 64  # predict's decoding limit under --inference-protocol ours
    lm_labels: str = "turn-and-markers"
    overflow: str = "error"

    def __post_init__(self) -> None:
        _choice("text.lm_labels", self.lm_labels, LM_LABEL_SETS)
        _choice("text.overflow", self.overflow, OVERFLOWS)
        _positive("max_length", self.max_length)
        _positive("max_new_tokens", self.max_new_tokens)


@dataclass
class Ross3DConfig:
    """The whole model. The reconstruction sections are the branch's own dataclasses (docs/model_interfaces.md)."""

    vision: VisionConfig = field(default_factory=VisionConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    tokens: TokenConfig = field(default_factory=TokenConfig)
    position: PositionConfig = field(default_factory=PositionConfig)
    grounding: GroundingConfig = field(default_factory=GroundingConfig)
    text: TextConfig = field(default_factory=TextConfig)
    vae: VaeConfig = field(default_factory=VaeConfig)
    reconstruction: ReconstructionConfig = field(default_factory=ReconstructionConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    tokenizer: str | None = None  # hub id / folder of the tokenizer
    # LLaVA-layout checkpoint (hub id / folder, e.g. lmms-lab/LLaVA-Video-7B-Qwen2) whose weights
    # initialise the model (the released Ross3D layout too; loading.py); None = none.
    init_from: str | None = None
    seed: int = 0  # seed of the batch builder's random choices when none is passed

    def __post_init__(self) -> None:
        if self.pooled_grid < 1:
            raise ValueError("pooling leaves no tokens")
        mismatches = derived_size_mismatches(self)
        if mismatches:
            raise ValueError("; ".join(mismatches))

    @property
    def pooled_grid(self) -> int:
        """Tokens per side after pooling: ceil(27 / 2) = 14."""
        return -(-self.vision.grid // self.tokens.pool_stride)

    @property
    def tokens_per_frame(self) -> int:
        """Visual tokens per frame in the LLM input, newlines included (14 x 15 = 210)."""
        return self.pooled_grid * (self.pooled_grid + 1)

    @property
    def visual_tokens(self) -> int:
        """Visual tokens of one clip in the LLM input (32 x 210 = 6,720 at 7B)."""
        return self.tokens.num_views * self.tokens_per_frame

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Ross3DConfig:
        """From a JSON object; an unknown key lists its section's valid keys, a wrong type
        names the key and the expected type (`schema.build_section`)."""
        return build_section(cls, data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Ross3DConfig:
        """A model config file; a `"base"` key names the model config it overrides
        (`configuration.variants`)."""
        path = Path(path)
        data = resolve_file(path, "model config", shipped_configs(), localize_paths)
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from err


SOURCE_FIELDS = (
    ("init_from",), ("tokenizer",), ("vision", "pretrained"), ("llm", "pretrained"),
    ("vae", "pretrained"), ("reconstruction", "pretrained_denoiser"),
)  # fmt: skip
LOCAL_SUFFIXES = (".bin", ".pt", ".pth", ".safetensors", ".json")  # a file, never a hub id


def localize_paths(data: dict, folder: Path) -> dict:
    """`data` (one model config file's keys) with every relative local path of a pretrained
    source made absolute against `folder`, the file's own folder, so a run finds it from any
    working directory and on every node: a path that exists there, starts with `.` or names a
    checkpoint file (LOCAL_SUFFIXES). Hub ids (`org/name`) and absolute paths are kept. The
    shipped configs are not rewritten: their relative paths (`checkpoints/...`) stay relative
    to the working directory."""
    out = dict(data)
    for keys in SOURCE_FIELDS:
        node = out
        for key in keys[:-1]:
            if not isinstance(node.get(key), dict):
                break
            node[key] = node = dict(node[key])
        else:
            value = node.get(keys[-1])
            if isinstance(value, str) and _is_relative_local(value, folder):
                node[keys[-1]] = str((folder / value).resolve())
    return out


def _is_relative_local(value: str, folder: Path) -> bool:
    path = Path(value)
    if path.is_absolute():
        return False
    return (folder / path).exists() or value.startswith(".") or path.suffix in LOCAL_SUFFIXES


def derived_size_mismatches(cfg: Ross3DConfig) -> list[str]:
    """Every size that follows from others but is also written in the config, checked: one
    message per mismatch, naming both fields and their values.

    - the visual token grid (`vision.image_size // vision.patch_size`, pooled by
      `tokens.pool_stride`: 384 // 14 = 27 -> 14) is `reconstruction.view_grid` (one view
      target token per visual token);
    - the view / BEV latent grids of the VAE (`vae.view_size` 216 -> 14, `vae.bev_size`
      432 -> 27) are `reconstruction.view_grid` / `reconstruction.bev_grid`;
    - the target channels (`vae.latent_channels` x 4, the 2x2 space-to-channel: 16 -> 64) are
      `reconstruction.latent_channels`;
    - `text.max_length` leaves room for text after the visual tokens (`tokens.num_views` x
      `tokens_per_frame`: 32 x 210 = 6,720 < 8,192) and fits `llm.max_position_embeddings`.
    """
    rc, vae, vision = cfg.reconstruction, cfg.vae, cfg.vision
    token_grid = (
        f"the visual token grid {cfg.pooled_grid} (vision.image_size {vision.image_size} // "
        f"vision.patch_size {vision.patch_size} = {vision.grid}, pooled by tokens.pool_stride "
        f"{cfg.tokens.pool_stride})"
    )
    checks = [
        (
            rc.view_grid == cfg.pooled_grid,
            f"reconstruction.view_grid {rc.view_grid} != {token_grid}",
        ),
        (
            rc.view_grid == vae.view_grid,
            f"reconstruction.view_grid {rc.view_grid} != {vae.view_grid}, the latent grid of "
            f"vae.view_size {vae.view_size}",
        ),
        (
            rc.bev_grid == vae.bev_grid,
            f"reconstruction.bev_grid {rc.bev_grid} != {vae.bev_grid}, the latent grid of "
            f"vae.bev_size {vae.bev_size}",
        ),
        (
            rc.latent_channels == vae.target_channels,
            f"reconstruction.latent_channels {rc.latent_channels} != {vae.target_channels} "
            f"= 4 x vae.latent_channels {vae.latent_channels} (2x2 space-to-channel)",
        ),
        (
            cfg.text.max_length > cfg.visual_tokens,
            f"text.max_length {cfg.text.max_length} <= {cfg.visual_tokens} visual tokens "
            f"(tokens.num_views {cfg.tokens.num_views} x {cfg.tokens_per_frame} per frame): "
            "no room for text",
        ),
        (
            cfg.text.max_length <= cfg.llm.max_position_embeddings,
            f"text.max_length {cfg.text.max_length} > llm.max_position_embeddings "
            f"{cfg.llm.max_position_embeddings}",
        ),
    ]
    return [message for ok, message in checks if not ok]


def shipped_configs() -> dict[str, Path]:
    """Name -> path of every config shipped in `configs/model/`."""
    return {p.stem: p for p in sorted(CONFIG_DIR.glob("*.json"))}


def load_config(name_or_path: str | Path) -> Ross3DConfig:
    """Load a shipped model config by name ('tiny', 'mid', '7b', '7b-plus': `configs/model/`,
    not the run configs of the same names) or any JSON file path."""
    shipped = shipped_configs()
    if str(name_or_path) in shipped:
        return Ross3DConfig.load(shipped[str(name_or_path)])
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"{path}: no such model config (shipped model configs: {sorted(shipped)})")
    return Ross3DConfig.load(path)
