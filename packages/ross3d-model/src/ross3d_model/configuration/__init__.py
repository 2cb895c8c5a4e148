"""Every config dataclass of the model and of a training run, and the shipped JSON configs.

Imports no torch, transformers, diffusers or deepspeed (a test checks it in a fresh process):
loading and checking a config is instant. Two kinds of config share names ('7b', 'tiny', ...):
a *model config* (`Ross3DConfig`, `configs/model/*.json`, `load_config`) and a *run config*
(`RunConfig`, `configs/*.json`, `load_run_config`) whose `model` field names a model config.
A config file may be `{"base": NAME, ...overrides}` (`variants`).

- `model`: `Ross3DConfig` and its sections, `load_config`, `shipped_configs`;
  sizes derived from others are checked when a config is built (`derived_size_mismatches`).
- `parts`: the reconstruction sections (`VaeConfig`, `ReconstructionConfig`, `ObjectiveConfig`).
- `run`: `RunConfig` (`TrainConfig`, `DataConfig`), `load_run_config`, `shipped_run_configs`,
  the DeepSpeed files (`load_deepspeed_config`, `check_deepspeed_config`), `steps_per_epoch`.
- `variants`: base + overrides resolution (`merge`, `resolve_file`).
"""

from ross3d_model.configuration.model import (
    GroundingConfig,
    LLMConfig,
    PositionConfig,
    ProjectorConfig,
    Ross3DConfig,
    TextConfig,
    TokenConfig,
    VisionConfig,
    derived_size_mismatches,
    load_config,
    shipped_configs,
)
from ross3d_model.configuration.parts import ObjectiveConfig, ReconstructionConfig, VaeConfig
from ross3d_model.configuration.run import (
    DataConfig,
    RunConfig,
    TrainConfig,
    check_deepspeed_config,
    load_deepspeed_config,
    load_run_config,
    shipped_run_configs,
    steps_per_epoch,
)
from ross3d_model.configuration.variants import merge, resolve_file

__all__ = [
    "DataConfig",
    "GroundingConfig",
    "LLMConfig",
    "ObjectiveConfig",
    "PositionConfig",
    "ProjectorConfig",
    "ReconstructionConfig",
    "Ross3DConfig",
    "RunConfig",
    "TextConfig",
    "TokenConfig",
    "TrainConfig",
    "VaeConfig",
    "VisionConfig",
    "check_deepspeed_config",
    "derived_size_mismatches",
    "load_config",
    "load_deepspeed_config",
    "load_run_config",
    "merge",
    "resolve_file",
    "shipped_configs",
    "shipped_run_configs",
    "steps_per_epoch",
]
