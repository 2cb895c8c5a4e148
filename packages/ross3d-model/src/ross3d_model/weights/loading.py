"""Lean model construction (issue 9): the model is first built as a skeleton on the meta device,
each checkpoint tensor it needs is then read lazily (safetensors headers give keys and shapes
without reading; tensors are read one at a time, torch files are memory-mapped) and *assigned*
in place of the meta parameter, and only the parts that no checkpoint provides are built for
real (the Ross3D-only parts when starting from LLaVA-Video; nothing when loading an export).

Sources (`reference_layouts.py` maps their key names onto ours) in priority order; the first
that provides a parameter wins, the others are counted as shadowed and never read:
  export                          `build.from_pretrained(folder)`: our own names (save_pretrained)
  init_from                       LLaVA-Video / released Ross3D layout
  vision.pretrained               SigLIP (transformers layout)
  llm.pretrained                  Qwen2 (transformers layout)
  vae.pretrained                  diffusers VAE (`subfolder`)
  reconstruction.pretrained_denoiser   the ROSS 2D `mm_inv_projector.bin`
Each source *claims* the parameters it must provide in full: a claimed parameter it lacks is
`missing`; a checkpoint key with no place is `unexpected`; a shape that does not fit is
`mismatched`. `InitReport` lists all three (`ross3d-model check-init`).
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

Transform = Callable[[torch.Tensor], torch.Tensor]
SAFETENSORS_STEMS = ("model", "diffusion_pytorch_model")
SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}  # fmt: skip


# ---------------------------------------------------------------------------- checkpoints
class Checkpoint:
    """Keys, shapes and tensors of one checkpoint, read lazily: a safetensors file, a folder with
    one safetensors file or shards + `*.safetensors.index.json`, or a torch file (`.bin`/`.pt`,
    loaded memory-mapped).

    `read` returns safetensors tensors memory-mapped (zero-copy: pages become resident when
    used); `read(copy=True)` reads the bytes into a fresh buffer instead, for tensors that are
    converted or transformed anyway, so the file's pages are never mapped into this process
    (they would stay resident next to the converted copy until the file is closed)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file_of: dict[str, Path] = {}
        self._handles: dict[Path, object] = {}
        self._header: dict[str, dict] = {}
        self._data_start: dict[Path, int] = {}
        self._torch: dict[str, torch.Tensor] | None = None
        files = _weight_files(self.path)
        if files[0].suffix in (".bin", ".pt", ".pth"):
            self._torch = _torch_state(files[0])
            return
        for file in files:
            handle = safe_open(str(file), framework="pt", device="cpu")
            self._handles[file] = handle
            self._file_of.update(dict.fromkeys(handle.keys(), file))
            self._data_start[file], header = _safetensors_header(file)
            self._header.update(header)

    @property
    def keys(self) -> list[str]:
        return sorted(self._torch if self._torch is not None else self._file_of)

    def shape(self, key: str) -> tuple[int, ...]:
        if self._torch is not None:
            return tuple(self._torch[key].shape)
        return tuple(self._handles[self._file_of[key]].get_slice(key).get_shape())

    def dtype(self, key: str) -> torch.dtype | None:
        """Stored dtype (None: a safetensors dtype this reader does not map)."""
        if self._torch is not None:
            return self._torch[key].dtype
        return SAFETENSORS_DTYPES.get(self._header[key]["dtype"])

    def read(self, key: str, copy: bool = False) -> torch.Tensor:
        if self._torch is not None:
            return self._torch[key]
        file = self._file_of[key]
        dtype = self.dtype(key)
        if not copy or dtype is None:
            return self._handles[file].get_tensor(key)
        entry = self._header[key]
        start, end = entry["data_offsets"]
        buffer = bytearray(end - start)
        with open(file, "rb") as fh:
            fh.seek(self._data_start[file] + start)
            if fh.readinto(buffer) != len(buffer):
                raise ValueError(f"{file}: truncated data for {key}")
        if not buffer:
            return torch.empty(entry["shape"], dtype=dtype)
        return torch.frombuffer(buffer, dtype=dtype).reshape(entry["shape"])


class RemoteCheckpoint(Checkpoint):
    """Keys, shapes and dtypes of a hub repo's safetensors files (under `subfolder`, else at the
    root) from their headers alone (HTTP range requests: nothing is downloaded); `check-init`
    uses it, reading tensors is an error. Hub errors propagate as raised
    (`availability.open_part` names a status for each); no safetensors file is a ValueError."""

    def __init__(self, repo_id: str, subfolder: str | None = None) -> None:
        from huggingface_hub import HfApi, parse_safetensors_file_metadata

        self.path = Path(repo_id)
        self._torch = None
        prefix = "" if subfolder is None else subfolder.rstrip("/") + "/"
        files = [
            f
            for f in HfApi().list_repo_files(repo_id)
            if f.endswith(".safetensors") and f.startswith(prefix) and "/" not in f[len(prefix) :]
        ]
        metas = [parse_safetensors_file_metadata(repo_id, f) for f in files]
        if not files:
            raise ValueError(f"{repo_id}: no safetensors files under '{prefix or '/'}'")
        self._header = {
            key: {"dtype": info.dtype, "shape": list(info.shape)}
            for meta in metas
            for key, info in meta.tensors.items()
        }

    @property
    def keys(self) -> list[str]:
        return sorted(self._header)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._header[key]["shape"])

    def read(self, key: str, copy: bool = False) -> torch.Tensor:
        raise ValueError(
            f"{self.path}: opened for its headers only (check-init), cannot read {key}"
        )


def _weight_files(path: Path) -> list[Path]:
    """The weight files of a checkpoint path (clear error naming the path when there are none)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ValueError(f"{path}: no such checkpoint file or folder")
    for stem in SAFETENSORS_STEMS:
        index = path / f"{stem}.safetensors.index.json"
        if index.is_file():
            return _shards_of(index)
        if (path / f"{stem}.safetensors").is_file():
            return [path / f"{stem}.safetensors"]
    found = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    if not found:
        raise ValueError(f"{path}: no safetensors (or .bin) weights in this folder")
    return found


def _safetensors_header(file: Path) -> tuple[int, dict[str, dict]]:
    """(offset of the data section, {key: {dtype, shape, data_offsets}}) of a safetensors file."""
    with open(file, "rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(size))
    header.pop("__metadata__", None)
    return 8 + size, header


def _shards_of(index: Path) -> list[Path]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError) as err:
        raise ValueError(f"{index}: not a safetensors index (no weight_map): {err}") from err
    shards = [index.parent / name for name in sorted(set(weight_map.values()))]
    absent = [s.name for s in shards if not s.is_file()]
    if absent:
        raise ValueError(f"{index}: shard {absent[0]} is missing")
    return shards


def _torch_state(file: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(file, map_location="cpu", mmap=True, weights_only=True)
    except Exception as err:  # torch raises several types for a bad file
        raise ValueError(f"{file}: cannot read as a torch state dict: {err}") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{file}: expected a dict of tensors")
    return state


# ---------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class Link:
    """Our tensor = transform(checkpoint[key]) (transform None = as stored)."""

    source: str
    checkpoint: Checkpoint
    key: str
    transform: Transform | None = None

    def out_shape(self) -> tuple[int, ...]:
        """Shape after the transform, computed on the meta device (nothing is read)."""
        probe = torch.empty(self.checkpoint.shape(self.key), device="meta")
        return tuple((probe if self.transform is None else self.transform(probe)).shape)

    def read(self, dtype: torch.dtype, device: torch.device | None) -> torch.Tensor:
        """The tensor, floating ones cast to `dtype`, on `device` (None: CPU). Read as a copy
        when it is transformed, cast or moved anyway (Checkpoint.read)."""
        stored = self.checkpoint.dtype(self.key)
        cast = stored is not None and stored.is_floating_point and stored != dtype
        moved = device is not None and device.type != "cpu"
        tensor = self.checkpoint.read(self.key, copy=self.transform is not None or cast or moved)
        if self.transform is not None:
            tensor = self.transform(tensor)
        if tensor.is_floating_point():
            tensor = tensor.to(dtype)
        return tensor if device is None else tensor.to(device)


@dataclass
class SourceLinks:
    """What one source provides: our name -> Link; the name prefixes it must provide in full;
    its keys with no place in our model (`unexpected`) and keys skipped on purpose (`ignored`,
    reason -> count)."""

    name: str
    links: dict[str, Link] = field(default_factory=dict)
    claims: tuple[str, ...] = ()
    unexpected: list[str] = field(default_factory=list)
    ignored: Counter = field(default_factory=Counter)


@dataclass
class InitReport:
    """Outcome of matching the sources against the model (`check-init` prints `to_json()`)."""

    loaded: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def to_json(self) -> dict:
        return {
            "missing": self.missing,
            "unexpected": self.unexpected,
            "mismatched": self.mismatched,
            "loaded": self.loaded,
            "ignored": self.ignored,
        }

    def raise_if_bad(self, where: str) -> None:
        if self.ok:
            return
        parts = [
            f"{label} {items[:8]} ({len(items)})"
            for label, items in (
                ("missing", self.missing),
                ("unexpected", self.unexpected),
                ("mismatched", self.mismatched),
            )
            if items
        ]
        raise ValueError(f"{where}: checkpoint does not match the model: " + "; ".join(parts))


def plan_links(
    sources: list[SourceLinks], targets: dict[str, tuple[int, ...]]
) -> tuple[dict[str, Link], InitReport]:
    """Choose one link per target name (first source wins) and report what does not fit."""
    chosen: dict[str, Link] = {}
    report = InitReport()
    ignored: Counter = Counter()
    bad: set[str] = set()
    for src in sources:
        report.unexpected += [f"{src.name}: {k}" for k in src.unexpected]
        ignored.update(src.ignored)
        for name, link in src.links.items():
            if name not in targets:
                report.unexpected.append(f"{src.name}: {link.key} (-> {name}: no such tensor)")
            elif name in chosen:
                ignored[f"{src.name}: shadowed by {chosen[name].source}"] += 1
            elif (got := link.out_shape()) != tuple(targets[name]):
                report.mismatched.append(
                    f"{src.name}: {link.key} gives {got}, {name} is {tuple(targets[name])}"
                )
                bad.add(name)
            else:
                chosen[name] = link
    for src in sources:
        for name in targets:
            if name.startswith(src.claims) and name not in chosen and name not in bad:
                report.missing.append(f"{src.name}: {name}")
    report.missing = sorted(set(report.missing))
    report.loaded = dict(Counter(link.source for link in chosen.values()))
    report.ignored = dict(sorted(ignored.items()))
    return chosen, report


# ---------------------------------------------------------------------------- building
@contextlib.contextmanager
def placement(meta: bool, dtype: torch.dtype | None, device: torch.device | None):
    """Parameters created inside go to the meta device (`meta`; buffers stay real: scheduler
    tables, rotary and position tables are cheap and computed), or are created directly in
    `dtype` on `device`."""
    if meta:
        from accelerate import init_empty_weights

        with init_empty_weights(include_buffers=False):
            yield
        return
    previous = torch.get_default_dtype()
    if dtype is not None:
        torch.set_default_dtype(dtype)
    try:
        with torch.device(device) if device is not None else contextlib.nullcontext():
            yield
    finally:
        torch.set_default_dtype(previous)


def assign_links(
    model: nn.Module,
    chosen: dict[str, Link],
    dtype: torch.dtype | None,
    device: torch.device | None,
) -> None:
    """Read each chosen tensor (one at a time) and put it in place of the model's tensor,
    keeping `requires_grad`; floating tensors are cast to `dtype` (None: the default dtype)."""
    target_dtype = dtype or torch.get_default_dtype()
    for name in sorted(chosen):
        tensor = chosen[name].read(target_dtype, device)
        owner, _, attr = name.rpartition(".")
        module = model.get_submodule(owner)
        if attr in module._parameters:
            old = module._parameters[attr]
            module._parameters[attr] = nn.Parameter(tensor, requires_grad=old.requires_grad)
        else:
            module._buffers[attr] = tensor


def _cast_parameters(module: nn.Module | nn.Parameter, dtype: torch.dtype | None):
    """Floating parameters of `module` (a module or one parameter) cast to `dtype` one at a
    time (buffers keep theirs)."""
    if dtype is not None:
        params = [module] if isinstance(module, nn.Parameter) else module.parameters()
        for param in params:
            if param.is_floating_point() and param.dtype != dtype:
                param.data = param.data.to(dtype)
    return module


def meta_tensors(model: nn.Module) -> list[str]:
    """Names of parameters (and buffers) still on the meta device."""
    named = [*model.named_parameters(), *model.named_buffers()]
    return [name for name, t in named if t.is_meta]


def meta_skeleton(cls, config, inference: bool):
    """`cls(config, inference=inference)` with every parameter on the meta device (nothing
    allocated, nothing read) and the global RNG untouched."""
    with torch.random.fork_rng(devices=[]), placement(True, None, None):
        return cls(config, inference=inference)


def build_from_sources(
    cls,
    config,
    sources: list[SourceLinks],
    dtype: torch.dtype | None,
    device: str | torch.device | None,
    inference: bool,
    where: str,
):
    """Build `cls(config, inference=inference)` leanly: a meta skeleton, the plan of which
    source gives each tensor (ValueError naming `where` if anything is missing, unexpected or
    mismatched), real builds of only the components some tensor of which no source gives
    (random init in float32 on `device`, as a plain build would, then their parameters cast to
    `dtype`: the same values as a float32 build cast afterwards, which is what DeepSpeed's bf16
    did to a float32 model), then every planned tensor read and assigned. `cls` builds each
    component from its config alone (`model.component_builders()`): no checkpoint is read but
    the planned ones."""
    device = torch.device(device) if device is not None else None
    model = meta_skeleton(cls, config, inference)
    targets = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    chosen, report = plan_links(sources, targets)
    report.raise_if_bad(where)
    with placement(False, None, device):
        for name, build in model.component_builders().items():
            names = [n for n in targets if n == name or n.startswith(name + ".")]
            if not all(n in chosen for n in names):
                setattr(model, name, _cast_parameters(build(), dtype))
    assign_links(model, chosen, dtype, device)
    left = meta_tensors(model)
    if left:
        raise ValueError(f"{where}: tensors nothing provides or builds: {left[:8]} ({len(left)})")
    model.init_report = report
    return model if device is None else model.to(device)


def check_sources(cls, config, sources: list[SourceLinks], inference: bool = False) -> InitReport:
    """The plan report of `build_from_sources` on a meta skeleton only (nothing is read)."""
    model = meta_skeleton(cls, config, inference)
    targets = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    return plan_links(sources, targets)[1]
