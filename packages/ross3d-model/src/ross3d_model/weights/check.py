"""`check_init(cfg)` (`ross3d-model check-init`): what `build.from_config(cfg)` would load, from
checkpoint headers and a meta skeleton only, with one row per pretrained part of the config
(`availability.PartStatus`): nothing is downloaded, and offline nothing waits on the hub.

The skeleton needs the VAE's own config (its shapes); when the VAE cannot be found, a tiny
stand-in VAE is built instead and no source's VAE tensors are compared (the VAE row says why).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ross3d_model.configuration.model import Ross3DConfig
from ross3d_model.modeling.model import Ross3DForCausalLM, Ross3DHFConfig
from ross3d_model.weights.availability import (
    DOES_NOT_FIT,
    FOUND,
    NOT_SET,
    HubAccess,
    PartStatus,
    Unavailable,
    find_tokenizer,
    open_part,
)
from ross3d_model.weights.checkpoint import is_local_source
from ross3d_model.weights.loading import Checkpoint, InitReport, check_sources
from ross3d_model.weights.reference_layouts import (
    VAE_OURS,
    config_sources,
    drop_parts,
    pretrained_parts,
)

# (source, subfolder) -> (where found, local folder or None) or why it cannot be opened
Opened = dict[tuple[str, "str | None"], "tuple[str, Path | None] | Unavailable"]


@dataclass
class InitCheck(InitReport):
    """The tensor-level report plus one row per pretrained part and the hub access used; `ok`
    iff every part is loadable and no tensor is missing, unexpected or mismatched."""

    parts: list[PartStatus] = field(default_factory=list)
    hub: HubAccess | None = None

    @property
    def ok(self) -> bool:
        return super().ok and all(part.loadable for part in self.parts)

    def to_json(self) -> dict:
        hub = self.hub or HubAccess(False)
        return {
            "ok": self.ok,
            "hub": {"online": hub.online, "reason": hub.reason, "token": hub.token},
            "parts": [part.to_json() for part in self.parts],
            **super().to_json(),
        }


def check_init(
    cfg: Ross3DConfig, inference: bool = False, hub: HubAccess | None = None
) -> InitCheck:
    """What `from_config(cfg, inference=inference)` would load (see the module docstring);
    `hub` None: `HubAccess.detect()` (once, only when the config names a hub id)."""
    hub = hub if hub is not None else _hub_access(cfg)
    opened: Opened = {}

    def open_checkpoint(where: str, subfolder: str | None) -> Checkpoint:
        try:
            ckpt, found_at, folder = open_part(where, subfolder, hub)
        except Unavailable as err:
            opened[(where, subfolder)] = err
            raise
        opened[(where, subfolder)] = (found_at, folder)
        return ckpt

    errors: list[str] = []
    sources = config_sources(cfg, inference, errors, open_checkpoint)
    skeleton_cfg = cfg
    if not inference and cfg.vae.pretrained is not None:
        vae_source = _vae_config_source(cfg, opened, open_checkpoint)
        if vae_source is None:  # a tiny stand-in: no VAE tensor can be compared
            sources = [drop_parts(s, (VAE_OURS,), "VAE not found") for s in sources]
        vae = dataclasses.replace(cfg.vae, pretrained=vae_source)
        skeleton_cfg = dataclasses.replace(cfg, vae=vae)
    config = Ross3DHFConfig(ross3d=skeleton_cfg.to_dict())
    base = check_sources(Ross3DForCausalLM, config, sources, inference)
    report = InitCheck(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)})
    report.hub = hub
    report.parts = [_tokenizer_row(cfg, hub)]
    report.parts += _weight_rows(cfg, sources[-1].ignored, opened, errors, report)
    return report


def _hub_access(cfg: Ross3DConfig) -> HubAccess:
    named = [cfg.tokenizer] + [source for _, source, _, _ in pretrained_parts(cfg)]
    if all(source is None or is_local_source(source) for source in named):
        return HubAccess(False, "no hub id in the config")
    return HubAccess.detect()


def _vae_config_source(cfg: Ross3DConfig, opened: Opened, open_checkpoint) -> str | None:
    """Where the skeleton reads the VAE config: the local folder it was found in, the hub id
    (found on the hub), or None (not found: a tiny stand-in)."""
    key = (cfg.vae.pretrained, cfg.vae.subfolder)
    if key not in opened:  # provided by init_from: located for its config alone
        with contextlib.suppress(Unavailable):
            open_checkpoint(*key)
    entry = opened[key]
    if isinstance(entry, Unavailable):
        return None
    _, folder = entry
    return cfg.vae.pretrained if folder is None else str(folder)


def _tokenizer_row(cfg: Ross3DConfig, hub: HubAccess) -> PartStatus:
    if cfg.tokenizer is None:
        return PartStatus("tokenizer", None, NOT_SET, detail="the built-in test tokenizer")
    try:
        return PartStatus("tokenizer", cfg.tokenizer, FOUND, find_tokenizer(cfg.tokenizer, hub))
    except Unavailable as err:
        return PartStatus("tokenizer", cfg.tokenizer, err.status, detail=str(err))


def _weight_rows(cfg, skipped, opened: Opened, errors: list[str], report) -> list[PartStatus]:
    """One row per weights source of `cfg` (reference_layouts.pretrained_parts)."""
    rows = []
    for name, source, _, subfolder in pretrained_parts(cfg):
        entry = opened.get((source, subfolder)) if source is not None else None
        reasons = [key[len(name) + 2 :] for key in skipped if key.startswith(f"{name}: ")]
        failed = [e[len(name) + 2 :] for e in errors if e.startswith(f"{name}: ")]
        if source is None:
            by = "init_from" if cfg.init_from is not None and name != "init_from" else "random init"
            row = PartStatus(name, None, NOT_SET, detail=f"its weights: {by}")
        elif isinstance(entry, Unavailable):
            row = PartStatus(name, source, entry.status, detail=str(entry))
            if reasons:
                row.detail += f" ({reasons[0]}; its config is needed for the shapes)"
        elif reasons:
            row = PartStatus(name, source, reasons[0])
        elif failed:
            row = PartStatus(name, source, DOES_NOT_FIT, entry[0] if entry else "", failed[0])
        else:
            row = PartStatus(name, source, FOUND, entry[0] if entry else "")
            row.tensors = report.loaded.get(name, 0)
            problems = [
                item
                for item in (*report.missing, *report.unexpected, *report.mismatched)
                if item.startswith(f"{name}: ")
            ]
            if problems:
                row.status = DOES_NOT_FIT
                row.detail = f"{len(problems)} tensors missing, unexpected or mismatched"
        rows.append(row)
    return rows
